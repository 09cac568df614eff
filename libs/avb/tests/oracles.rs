//! External oracles: OpenSSL verifies (and reproduces) our signatures, an independent
//! implementation of avbtool's public key encoding (Python big integers over the modulus
//! OpenSSL prints) matches ours, and veritysetup builds the same tree as our hashtree footer.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use avb::{Algorithm, Descriptor, HashtreeFooterOptions, SigningKey, VbmetaImage, VbmetaOptions};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testkeys");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avb-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (scripts/setup.sh installs the oracles)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn veritysetup() -> Command {
    let p = [
        "/usr/sbin/veritysetup",
        "/sbin/veritysetup",
        "/usr/bin/veritysetup",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    Command::new(p.unwrap_or("veritysetup"))
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_pem_file(Path::new(KEYS).join(name)).unwrap()
}

fn sample_vbmeta(key: &SigningKey, alg: Algorithm) -> Vec<u8> {
    let mut img: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let info = avb::add_hashtree_footer_to_vec(
        &mut img,
        &HashtreeFooterOptions::new("system", b"\x00\x11\x22\x33", None),
    )
    .unwrap();
    let opts = VbmetaOptions {
        algorithm: Some(alg),
        ..Default::default()
    };
    let props = Descriptor::Property(avb::PropertyDescriptor {
        key: "com.android.build.system.os_version".into(),
        value: b"15".to_vec(),
    });
    avb::build_vbmeta(
        &opts,
        &[Descriptor::Hashtree(info.descriptor), props],
        Some(key),
    )
    .unwrap()
}

/// (signed data = header ‖ aux, signature)
fn split(blob: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let img = VbmetaImage::parse(blob).unwrap();
    let h = &img.header;
    let auth = 256 + h.authentication_data_block_size as usize;
    let mut signed = blob[..256].to_vec();
    signed.extend_from_slice(&blob[auth..auth + h.auxiliary_data_block_size as usize]);
    let s = 256 + h.signature_offset as usize;
    (signed, blob[s..s + h.signature_size as usize].to_vec())
}

#[test]
fn openssl_verifies_and_reproduces_our_signatures() {
    for (keyname, alg, dgst) in [
        ("testkey_rsa4096", Algorithm::Sha256Rsa4096, "-sha256"),
        ("testkey_rsa2048", Algorithm::Sha256Rsa2048, "-sha256"),
        ("testkey_rsa4096", Algorithm::Sha512Rsa4096, "-sha512"),
    ] {
        let k = key(&format!("{keyname}.pem"));
        let blob = sample_vbmeta(&k, alg);
        let (signed, sig) = split(&blob);
        let tag = format!("{keyname}-{}", alg.name());
        let data = scratch(&format!("{tag}.data"));
        let sigf = scratch(&format!("{tag}.sig"));
        std::fs::write(&data, &signed).unwrap();
        std::fs::write(&sigf, &sig).unwrap();
        let pubpem = Path::new(KEYS).join(format!("{keyname}.pub.pem"));
        let out = run(Command::new("openssl")
            .args(["dgst", dgst, "-verify"])
            .arg(&pubpem)
            .arg("-signature")
            .arg(&sigf)
            .arg(&data));
        assert_eq!(out.trim(), "Verified OK", "{tag}");
        // PKCS#1 v1.5 is deterministic: OpenSSL's own signature (what avbtool gets from
        // `openssl rsautl -sign`) is byte-identical to ours.
        let theirs = scratch(&format!("{tag}.theirs"));
        run(Command::new("openssl")
            .args(["dgst", dgst, "-sign"])
            .arg(Path::new(KEYS).join(format!("{keyname}.pem")))
            .arg("-out")
            .arg(&theirs)
            .arg(&data));
        assert_eq!(std::fs::read(&theirs).unwrap(), sig, "{tag}");
        // A modified byte is rejected by OpenSSL too.
        let mut tampered = signed.clone();
        tampered[300] ^= 1;
        std::fs::write(&data, &tampered).unwrap();
        let st = Command::new("openssl")
            .args(["dgst", dgst, "-verify"])
            .arg(&pubpem)
            .arg("-signature")
            .arg(&sigf)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            !st.status.success(),
            "{tag}: openssl accepted a tampered vbmeta"
        );
    }
}

#[test]
fn public_key_encoding_matches_independent_implementation() {
    for (keyname, bits) in [("testkey_rsa4096", 4096u32), ("testkey_rsa2048", 2048)] {
        let ours = key(&format!("{keyname}.pem"))
            .public_key()
            .unwrap()
            .to_avb_bytes();
        let modulus = run(Command::new("openssl")
            .args(["rsa", "-pubin", "-noout", "-modulus", "-in"])
            .arg(Path::new(KEYS).join(format!("{keyname}.pub.pem"))));
        let hex_n = modulus.trim().strip_prefix("Modulus=").unwrap();
        // avbtool's RSAPublicKey.encode, written again in Python.
        let script = format!(
            "import struct,sys\nn=int('{hex_n}',16)\nbits={bits}\nb=2**32\nn0inv=b-pow(n,-1,b)\nrr=pow(2**n.bit_length(),2,n)\n\
             sys.stdout.write((struct.pack('!II',bits,n0inv)+n.to_bytes(bits//8,'big')+rr.to_bytes(bits//8,'big')).hex())\n"
        );
        let theirs = run(Command::new("python3").arg("-c").arg(&script));
        assert_eq!(verity::to_hex(&ours), theirs.trim(), "{keyname}");
    }
}

#[test]
fn hashtree_footer_tree_matches_veritysetup() {
    let data: Vec<u8> = (0..(700 * 4096 + 77) as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut img = data.clone();
    let salt = [0xaa, 0xbb, 0xcc, 0xdd];
    let info = avb::add_hashtree_footer_to_vec(
        &mut img,
        &HashtreeFooterOptions::new("system", &salt, Some(&key("testkey_rsa4096.pem"))),
    )
    .unwrap();
    let d = &info.descriptor;
    let padded = scratch("ht.data");
    std::fs::write(&padded, &img[..d.image_size as usize]).unwrap();
    let hash = scratch("ht.hash");
    let _ = std::fs::remove_file(&hash);
    let out = run(veritysetup()
        .args(["format", "--no-superblock", "--salt=aabbccdd"])
        .arg(&padded)
        .arg(&hash));
    let root = out
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(root, info.root_hex());
    let tree = std::fs::read(&hash).unwrap();
    assert_eq!(
        tree.as_slice(),
        &img[d.tree_offset as usize..(d.tree_offset + d.tree_size) as usize]
    );
    // And veritysetup verifies the combined image in place (data and tree in one file, like the
    // kernel table the lead builds: hash_start_block = tree_offset / 4096).
    let combined = scratch("ht.combined");
    std::fs::write(&combined, &img).unwrap();
    run(veritysetup()
        .args(["verify", "--no-superblock", "--salt=aabbccdd"])
        .arg(format!("--hash-offset={}", d.tree_offset))
        .arg(format!("--data-blocks={}", d.image_size / 4096))
        .arg(&combined)
        .arg(&combined)
        .arg(info.root_hex()));
}
