//! Fixed inputs, a three-node chain built from them, and the bad-input corpus generator,
//! shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use dice::cbor::{write_array_header, write_bstr, write_int, write_map_header, write_tstr};
use dice::{label, CdiValues, Config, ConfigDescriptor, Handover, InputValues, Mode};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The test device secret.
pub fn uds() -> dice::Cdi {
    dice::hash(b"libs/dice test UDS")[..32].try_into().unwrap()
}

/// The payload's configuration descriptor, as microdroid_manager writes it for a config path
/// (AOSP packages/modules/Virtualization, `microdroid_manager/src/dice.rs`).
pub fn payload_config() -> Vec<u8> {
    let mut d = Vec::new();
    write_map_header(&mut d, 2);
    write_int(&mut d, label::COMPONENT_NAME);
    write_tstr(&mut d, "Microdroid payload");
    write_int(&mut d, -71000);
    write_tstr(&mut d, "/config_path");
    d
}

/// The component names of the three nodes.
pub const NAMES: [&str; 3] = ["vm_entry", "Microdroid vendor", "Microdroid payload"];

/// Inputs of the three nodes: `vm_entry` (Debug, salted hidden input, security version),
/// `Microdroid vendor` (Normal, code descriptor), `Microdroid payload` (Debug, AVF keys in the
/// descriptor, authority descriptor, hidden input).
pub fn stages() -> Vec<InputValues> {
    vec![
        InputValues {
            code_hash: dice::hash(b"kernel digest || initrd digest"),
            code_descriptor: Vec::new(),
            config: Config::Descriptor(
                ConfigDescriptor {
                    component_name: Some(NAMES[0].into()),
                    security_version: Some(3),
                    ..Default::default()
                }
                .to_bytes(),
            ),
            authority_hash: dice::hash(b"vbmeta public key"),
            authority_descriptor: Vec::new(),
            mode: Mode::Debug,
            hidden: dice::hash(b"instance salt"),
        },
        InputValues {
            code_hash: dice::hash(b"vendor hashtree root"),
            code_descriptor: b"vendor image descriptor".to_vec(),
            config: Config::Descriptor(
                ConfigDescriptor {
                    component_name: Some(NAMES[1].into()),
                    component_version: Some(1),
                    resettable: true,
                    security_version: Some(1),
                    rkp_vm_marker: true,
                }
                .to_bytes(),
            ),
            authority_hash: dice::hash(b"vendor vbmeta public key"),
            authority_descriptor: Vec::new(),
            mode: Mode::Normal,
            hidden: [0; 64],
        },
        InputValues {
            code_hash: dice::hash(b"apk root hash"),
            code_descriptor: Vec::new(),
            config: Config::Descriptor(payload_config()),
            authority_hash: dice::hash(b"apk certificate hash"),
            authority_descriptor: b"apk signer".to_vec(),
            mode: Mode::Debug,
            hidden: dice::hash(b"instance id"),
        },
    ]
}

/// The nodes built the three ways: a new chain from the UDS, the Android main flow on it, the
/// handover main flow on the handover of that. Returns the CDIs after each node, the chain
/// after each node, and the final handover.
pub struct Built {
    pub cdis: Vec<CdiValues>,
    pub chains: Vec<Vec<u8>>,
    pub handover: Handover,
}

pub fn build() -> Built {
    let s = stages();
    let (c1, chain1) = dice::new_chain(&uds(), &s[0]);
    let (c2, chain2) = dice::android_main_flow(&c1, &chain1, &s[1]).unwrap();
    let h2 = Handover {
        cdis: c2.clone(),
        chain: Some(chain2.clone()),
    };
    let h3 = dice::android_handover_main_flow(&h2, &s[2]).unwrap();
    Built {
        cdis: vec![c1, c2, h3.cdis.clone()],
        chains: vec![chain1, chain2, h3.chain.clone().unwrap()],
        handover: h3,
    }
}

// --- Building blocks for hand-made (bad) chains --------------------------------------------

pub fn bstr(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_bstr(&mut v, b);
    v
}

pub fn tstr(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    write_tstr(&mut v, s);
    v
}

pub fn map(pairs: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    write_map_header(&mut v, pairs.len() as u64);
    for (k, val) in pairs {
        write_int(&mut v, *k);
        v.extend_from_slice(val);
    }
    v
}

pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    write_array_header(&mut v, items.len() as u64);
    for i in items {
        v.extend_from_slice(i);
    }
    v
}

pub fn id(key: &VerifyingKey) -> String {
    hex(&dice::certificate_id(key.as_bytes()))
}

/// The claims open-dice writes for `input`, issued by `issuer` for `subject`.
pub fn claims(
    issuer: &VerifyingKey,
    subject: &VerifyingKey,
    input: &InputValues,
) -> Vec<(i64, Vec<u8>)> {
    let Config::Descriptor(desc) = &input.config else {
        panic!("descriptor inputs only")
    };
    vec![
        (label::ISS, tstr(&id(issuer))),
        (label::SUB, tstr(&id(subject))),
        (label::CODE_HASH, bstr(&input.code_hash)),
        (label::CONFIGURATION_DESCRIPTOR, bstr(desc)),
        (label::CONFIGURATION_HASH, bstr(&dice::hash(desc))),
        (label::AUTHORITY_HASH, bstr(&input.authority_hash)),
        (label::MODE, bstr(&[input.mode as u8])),
        (
            label::SUBJECT_PUBLIC_KEY,
            bstr(&dice::cose_key_ed25519(subject)),
        ),
        (label::KEY_USAGE, bstr(&[0x20])),
        (label::PROFILE_NAME, tstr(dice::PROFILE_NAME)),
    ]
}

/// A COSE_Sign1 over `payload` with the given protected header bytes, signed with Ed25519
/// whatever the header says.
pub fn sign1(key: &SigningKey, protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let tbs = array(&[
        tstr("Signature1"),
        bstr(protected),
        bstr(&[]),
        bstr(payload),
    ]);
    let sig = key.sign(&tbs).to_bytes();
    array(&[bstr(protected), map(&[]), bstr(payload), bstr(&sig)])
}

pub const PROTECTED_EDDSA: [u8; 3] = [0xa1, 0x01, 0x27];

/// The items of a definite-length CBOR array, as raw bytes (for the well-formed chains here).
pub fn split_chain(chain: &[u8]) -> Vec<Vec<u8>> {
    // Our chains have < 24 items and entries below 64 KiB: walk them with a tiny skipper.
    fn item_len(b: &[u8]) -> usize {
        let ai = b[0] & 0x1f;
        let major = b[0] >> 5;
        let (arg, head) = match ai {
            0..=23 => (u64::from(ai), 1),
            24 => (u64::from(b[1]), 2),
            25 => (u64::from(u16::from_be_bytes([b[1], b[2]])), 3),
            _ => panic!("unexpected head"),
        };
        match major {
            0 | 1 | 7 => head,
            2 | 3 => head + arg as usize,
            4 => {
                let mut n = head;
                for _ in 0..arg {
                    n += item_len(&b[n..]);
                }
                n
            }
            5 => {
                let mut n = head;
                for _ in 0..arg * 2 {
                    n += item_len(&b[n..]);
                }
                n
            }
            _ => panic!("unexpected major type"),
        }
    }
    let count = usize::from(chain[0] & 0x1f);
    let mut items = Vec::new();
    let mut pos = 1;
    for _ in 0..count {
        let n = item_len(&chain[pos..]);
        items.push(chain[pos..pos + n].to_vec());
        pos += n;
    }
    assert_eq!(pos, chain.len());
    items
}

/// The fuzz seeds (`fuzz/seeds/dice/`): valid handovers and chains.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let b = build();
    let zero = CdiValues {
        cdi_attest: [0; 32],
        cdi_seal: [0; 32],
    };
    vec![
        ("handover-3-nodes.cbor", b.handover.to_bytes()),
        (
            "handover-no-chain.cbor",
            Handover {
                cdis: b.cdis[0].clone(),
                chain: None,
            }
            .to_bytes(),
        ),
        ("chain-1-node.cbor", b.chains[0].clone()),
        ("chain-3-nodes.cbor", b.chains[2].clone()),
        (
            "chain-open-dice-zero-input.cbor",
            dice::android_handover_main_flow(
                &Handover {
                    cdis: zero,
                    chain: None,
                },
                &InputValues::default(),
            )
            .unwrap()
            .chain
            .unwrap(),
        ),
    ]
}

/// The bad-input corpus (`testdata/bad/`, see its README): (file name, bytes). `handover-*`
/// files go to `Handover::parse`, `chain-*` files to `verify_chain`.
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let b = build();
    let s = stages();
    let good_handover = b.handover.to_bytes();
    let chain = b.chains[2].clone();
    let items = split_chain(&chain);
    let root = dice::keypair_from_cdi(&uds());
    let k1 = dice::keypair_from_cdi(&b.cdis[0].cdi_attest);
    let k2 = dice::keypair_from_cdi(&b.cdis[1].cdi_attest);
    let handover_with = |attest: Vec<u8>, seal: Vec<u8>, first: i64, second: i64| {
        map(&[(first, attest), (second, seal)])
    };
    // A chain [root, entry 1 made from `claims` and signed by the root with `protected`].
    let first_entry = |claims: &[(i64, Vec<u8>)], protected: &[u8]| {
        array(&[items[0].clone(), sign1(&root, protected, &map(claims))])
    };
    let entry1_claims = || claims(&root.verifying_key(), &k1.verifying_key(), &s[0]);

    // --- handovers ---
    let mut out: Vec<(&'static str, Vec<u8>)> =
        vec![("handover-truncated.cbor", good_handover[..50].to_vec())];
    out.push((
        "handover-wrong-first-key.cbor",
        handover_with(bstr(&[1; 32]), bstr(&[2; 32]), 2, 1),
    ));
    out.push((
        "handover-short-cdi.cbor",
        handover_with(bstr(&[1; 31]), bstr(&[2; 32]), 1, 2),
    ));
    out.push(("handover-not-a-map.cbor", chain.clone()));
    out.push(("handover-one-pair.cbor", map(&[(1, bstr(&[1; 32]))])));
    out.push((
        "handover-cdi-not-bstr.cbor",
        handover_with(bstr(&[1; 32]), tstr(&"x".repeat(32)), 1, 2),
    ));
    {
        let mut h = vec![0xa2, 0x01];
        h.extend_from_slice(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        out.push(("handover-huge-length.cbor", h));
    }
    out.push((
        "handover-chain-truncated.cbor",
        good_handover[..good_handover.len() - 10].to_vec(),
    ));
    {
        // Key 3 holds 11 open arrays of two items: more than open-dice's skip stack takes.
        let mut h = good_handover[..71].to_vec();
        h[0] = 0xa3;
        h.push(0x03);
        h.extend([0x82; 11]);
        h.extend([0x00; 12]);
        out.push(("handover-deep-chain.cbor", h));
    }

    // --- chains ---
    out.push(("chain-one-item.cbor", array(&items[..1])));
    out.push(("chain-not-an-array.cbor", good_handover.clone()));
    {
        let mut e2 = items[2].clone();
        let n = e2.len();
        e2[n - 20] ^= 0x01;
        let mut it = items.clone();
        it[2] = e2;
        out.push(("chain-bad-signature.cbor", array(&it)));
    }
    {
        // Entry 2 names the root as its issuer but is signed (validly) by entry 1's key.
        let mut c = claims(&root.verifying_key(), &k2.verifying_key(), &s[1]);
        c.insert(3, (label::CODE_DESCRIPTOR, bstr(&s[1].code_descriptor)));
        let e2 = sign1(&k1, &PROTECTED_EDDSA, &map(&c));
        out.push((
            "chain-issuer-mismatch.cbor",
            array(&[items[0].clone(), items[1].clone(), e2]),
        ));
    }
    {
        // Entry 2 with the right issuer, signed by the root instead of entry 1's key.
        let c = claims(&k1.verifying_key(), &k2.verifying_key(), &s[1]);
        let e2 = sign1(&root, &PROTECTED_EDDSA, &map(&c));
        out.push((
            "chain-wrong-signer.cbor",
            array(&[items[0].clone(), items[1].clone(), e2]),
        ));
    }
    {
        let mut c = entry1_claims();
        c.insert(3, (label::CODE_HASH, bstr(&[0xcc; 64])));
        out.push((
            "chain-duplicate-claim.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    out.push((
        "chain-es256-alg.cbor",
        first_entry(
            &entry1_claims(),
            &map(&[(1, {
                let mut v = Vec::new();
                write_int(&mut v, -7);
                v
            })]),
        ),
    ));
    {
        let int = |v: i64| {
            let mut o = Vec::new();
            write_int(&mut o, v);
            o
        };
        let ec2 = map(&[
            (1, int(2)),
            (3, int(-7)),
            (-1, int(1)),
            (-2, bstr(&[0x11; 32])),
            (-3, bstr(&[0x22; 32])),
        ]);
        out.push(("chain-root-ec2-key.cbor", array(&[ec2, items[1].clone()])));
    }
    {
        let mut c = vec![0x82];
        c.extend_from_slice(&items[0]);
        c.extend_from_slice(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
        out.push(("chain-huge-length.cbor", c));
    }
    {
        let mut c = vec![0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00];
        c.extend_from_slice(&items[0]);
        out.push(("chain-huge-count.cbor", c));
    }
    {
        let mut c = vec![0x81u8; 1000];
        c.push(0x00);
        out.push(("chain-deep-nesting.cbor", c));
    }
    {
        let mut c = chain.clone();
        c.push(0x00);
        out.push(("chain-trailing-data.cbor", c));
    }
    {
        let mut c = entry1_claims();
        c[2] = (label::CODE_HASH, bstr(&[0xcc; 32]));
        out.push((
            "chain-short-code-hash.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    {
        let mut c = entry1_claims();
        c.retain(|(k, _)| *k != label::SUBJECT_PUBLIC_KEY);
        out.push((
            "chain-missing-subject-key.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    {
        let mut c = vec![0x9f];
        c.extend_from_slice(&items[0]);
        c.extend_from_slice(&items[1]);
        c.push(0xff);
        out.push(("chain-indefinite-array.cbor", c));
    }
    {
        let mut key = dice::cose_key_ed25519(&root.verifying_key());
        // 58 20 <32 bytes> -> 58 1f <31 bytes>
        key[12] = 0x1f;
        key.pop();
        out.push(("chain-short-root-key.cbor", array(&[key, items[1].clone()])));
    }
    {
        let mut c = entry1_claims();
        c[4] = (label::CONFIGURATION_HASH, bstr(&[0; 64]));
        out.push((
            "chain-config-hash-mismatch.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    {
        let mut c = entry1_claims();
        c[1] = (label::SUB, tstr(&id(&k2.verifying_key())));
        out.push((
            "chain-subject-mismatch.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    {
        // COSE_Sign1 without its signature.
        let e1 = &items[1];
        let mut three = vec![0x83];
        let parts = split_chain(e1);
        for p in &parts[..3] {
            three.extend_from_slice(p);
        }
        out.push((
            "chain-sign1-three-items.cbor",
            array(&[items[0].clone(), three]),
        ));
    }
    {
        let mut c = entry1_claims();
        c[6] = (label::MODE, bstr(&[1, 0]));
        out.push((
            "chain-two-byte-mode.cbor",
            first_entry(&c, &PROTECTED_EDDSA),
        ));
    }
    out
}
