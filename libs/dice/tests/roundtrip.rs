//! Chains and handovers built by the writers read back through the parsers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{build, stages, NAMES};
use dice::{CdiValues, Config, Handover, Mode};

#[test]
fn new_chain_then_two_main_flows_verify() {
    let s = stages();
    let (c1, chain1) = dice::new_chain(&common::uds(), &s[0]);
    let (c2, chain2) = dice::android_main_flow(&c1, &chain1, &s[1]).unwrap();
    let (c3, chain3) = dice::android_main_flow(&c2, &chain2, &s[2]).unwrap();
    // The handover main flow gives the same bytes as the plain main flow.
    let b = build();
    assert_eq!(chain3, b.chains[2]);
    assert_eq!(c3, b.cdis[2]);

    assert_eq!(chain1[0], 0x82);
    assert_eq!(chain2[0], 0x83);
    assert_eq!(chain3[0], 0x84);
    // Old items are kept verbatim.
    assert_eq!(chain2[1..chain1.len()], chain1[1..]);
    assert_eq!(chain3[1..chain2.len()], chain2[1..]);

    let entries = dice::verify_chain(&chain3).unwrap();
    assert_eq!(entries.len(), 3);
    let root = dice::keypair_from_cdi(&common::uds()).verifying_key();
    assert_eq!(entries[0].issuer, common::id(&root));
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.component_name.as_deref(), Some(NAMES[i]));
        assert_eq!(e.mode, s[i].mode);
        assert_eq!(e.code_hash, s[i].code_hash);
        assert_eq!(e.authority_hash, s[i].authority_hash);
        assert_eq!(e.profile_name.as_deref(), Some(dice::PROFILE_NAME));
        assert_eq!(e.key_usage, [0x20]);
        let Config::Descriptor(d) = &s[i].config else {
            panic!()
        };
        assert_eq!(&e.configuration_descriptor, d);
        assert_eq!(e.configuration_hash.as_deref(), Some(&dice::hash(d)[..]));
        let nonempty = |v: &Vec<u8>| (!v.is_empty()).then(|| v.clone());
        assert_eq!(e.code_descriptor, nonempty(&s[i].code_descriptor));
        assert_eq!(e.authority_descriptor, nonempty(&s[i].authority_descriptor));
        if i > 0 {
            assert_eq!(e.issuer, entries[i - 1].subject);
        }
    }
    for (e, c) in entries.iter().zip([&c1, &c2, &c3]) {
        let k = dice::keypair_from_cdi(&c.cdi_attest).verifying_key();
        assert_eq!(e.subject_public_key, k.as_bytes());
        assert_eq!(e.subject, common::id(&k));
    }
    assert_eq!(
        [entries[0].mode, entries[1].mode, entries[2].mode],
        [Mode::Debug, Mode::Normal, Mode::Debug]
    );
}

#[test]
fn handover_round_trip_and_layout() {
    let b = build();
    let h = &b.handover;
    let bytes = h.to_bytes();
    // open-dice `DiceAndroidHandoverMainFlow` layout (src/android.c; docs/formats/dice.md).
    assert_eq!(bytes[0], 0xa3);
    assert_eq!(bytes[1..4], [0x01, 0x58, 0x20]);
    assert_eq!(bytes[4..36], h.cdis.cdi_attest);
    assert_eq!(bytes[36..39], [0x02, 0x58, 0x20]);
    assert_eq!(bytes[39..71], h.cdis.cdi_seal);
    assert_eq!(bytes[71], 0x03);
    assert_eq!(bytes[72], 0x84); // array(4): root + three entries
    assert_eq!(&bytes[72..], b.chains[2].as_slice());

    let back = Handover::parse(&bytes).unwrap();
    assert_eq!(&back, h);
    assert_eq!(back.to_bytes(), bytes);
    // Zero padding after the map (a reserved-memory region) is ignored.
    let mut padded = bytes.clone();
    padded.resize(8192, 0);
    assert_eq!(Handover::parse(&padded).unwrap(), back);

    let no_chain = Handover {
        cdis: b.cdis[0].clone(),
        chain: None,
    };
    let nb = no_chain.to_bytes();
    assert_eq!((nb.len(), nb[0]), (71, 0xa2));
    assert_eq!(Handover::parse(&nb).unwrap(), no_chain);
}

#[test]
fn handover_main_flow_without_chain_starts_one_from_current_cdis() {
    let cdis = CdiValues {
        cdi_attest: [3; 32],
        cdi_seal: [4; 32],
    };
    let s = stages();
    let next = dice::android_handover_main_flow(
        &Handover {
            cdis: cdis.clone(),
            chain: None,
        },
        &s[0],
    )
    .unwrap();
    let (expected_cdis, _) = dice::main_flow(&cdis, &s[0], Some(dice::PROFILE_NAME));
    assert_eq!(next.cdis, expected_cdis);
    let chain = next.chain.as_deref().unwrap();
    assert_eq!(chain[0], 0x82);
    let root = dice::keypair_from_cdi(&cdis.cdi_attest).verifying_key();
    assert_eq!(chain[1..46], dice::cose_key_ed25519(&root)[..]);
    assert_eq!(dice::verify_chain(chain).unwrap().len(), 1);
    // new_chain is that with CDI_Attest = CDI_Seal = UDS.
    let uds = [5u8; 32];
    let (c, ch) = dice::new_chain(&uds, &s[0]);
    let h = dice::android_handover_main_flow(
        &Handover {
            cdis: CdiValues {
                cdi_attest: uds,
                cdi_seal: uds,
            },
            chain: None,
        },
        &s[0],
    )
    .unwrap();
    assert_eq!((h.cdis, h.chain.unwrap()), (c, ch));
}

#[test]
fn chain_bytes_are_deterministic_and_tamper_evident() {
    let a = build();
    let b = build();
    assert_eq!(a.chains, b.chains);
    let chain = &a.chains[2];
    // Flip every 11th byte in turn: each must be rejected, never panic.
    for i in (1..chain.len()).step_by(11) {
        let mut c = chain.clone();
        c[i] ^= 0x40;
        assert!(
            dice::verify_chain(&c).is_err(),
            "byte {i} flipped still verifies"
        );
        assert!(dice::fuzz_entry(&c));
    }
    // Every prefix is rejected.
    for n in 0..chain.len() {
        assert!(dice::verify_chain(&chain[..n]).is_err());
        assert!(dice::fuzz_entry(&chain[..n]));
    }
    let h = a.handover.to_bytes();
    for n in 0..71 {
        assert!(Handover::parse(&h[..n]).is_err(), "prefix {n}");
    }
}
