//! Oracles: apksigner's v4 idsig of the apksig fixtures, and `apksigner verify` on ours.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::process::Command;

use apksig::keys::PrivateKey;
use common::{apksig_path, apksig_testdata};

const SDK: u32 = 34;

#[test]
fn apksigner_idsig_parses_to_the_root_hash_we_compute() {
    for k in ["testkey", "testkey_ec"] {
        let apk = apksig_testdata(&format!("apksigner/{k}.apk"));
        let theirs = apksig_testdata(&format!("apksigner/{k}.apk.idsig"));
        let (sig, tree) = idsig::V4Signature::parse(&theirs).unwrap();
        assert_eq!(sig.version, 2);
        assert_eq!(sig.hashing_info.log2_blocksize, 12);
        assert!(sig.hashing_info.salt.is_empty());
        let (ours, our_tree) = idsig::create(&mut Cursor::new(&apk), SDK, None).unwrap();
        assert_eq!(
            ours.hashing_info.raw_root_hash, sig.hashing_info.raw_root_hash,
            "{k}"
        );
        assert_eq!(our_tree, tree, "{k}");
        assert_eq!(
            ours.signing_info.apk_digest, sig.signing_info.apk_digest,
            "{k}"
        );
        assert_eq!(
            ours.signing_info.signature_algorithm_id,
            sig.signing_info.signature_algorithm_id
        );
        // Full apksigner-style verification of their idsig, signature required.
        let v = idsig::verify(&theirs, &mut Cursor::new(&apk), SDK, true).unwrap();
        assert!(v.signed);
        assert_eq!(
            v.root_hash.as_slice(),
            sig.hashing_info.raw_root_hash.as_slice()
        );
        // Guest path: header via Read + Seek, tree read at its offset.
        let mut c = Cursor::new(&theirs);
        let h = idsig::V4Signature::read_from(&mut c).unwrap();
        assert_eq!(h.read_merkle_tree(&mut c).unwrap(), tree);
    }
}

#[test]
fn our_signed_rsa_idsig_is_byte_identical_to_apksigner() {
    let apk = apksig_testdata("apksigner/testkey.apk");
    let key =
        PrivateKey::from_pkcs8_der(&std::fs::read(apksig_path("testkeys/testkey.pk8")).unwrap())
            .unwrap();
    let cert = std::fs::read(apksig_path("testkeys/testkey.x509.der")).unwrap();
    let (sig, tree) = idsig::create(&mut Cursor::new(&apk), SDK, Some((&key, &cert))).unwrap();
    let bytes = sig.to_bytes(&tree).unwrap();
    assert!(
        bytes == apksig_testdata("apksigner/testkey.apk.idsig"),
        "differs from apksigner"
    );
    assert_eq!(idsig::V4Signature::parse(&bytes).unwrap().0, sig);
}

#[test]
fn apksigner_verifies_our_idsigs() {
    let dir = std::env::temp_dir().join(format!("idsig-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for k in ["testkey", "testkey_ec"] {
        let apk = apksig_testdata(if k == "testkey" {
            "signed-rsa.apk"
        } else {
            "signed-ec.apk"
        });
        let key = PrivateKey::from_pkcs8_der(
            &std::fs::read(apksig_path(&format!("testkeys/{k}.pk8"))).unwrap(),
        )
        .unwrap();
        let cert = std::fs::read(apksig_path(&format!("testkeys/{k}.x509.der"))).unwrap();
        let (sig, tree) = idsig::create(&mut Cursor::new(&apk), SDK, Some((&key, &cert))).unwrap();
        let apk_path = dir.join(format!("{k}.apk"));
        let idsig_path = dir.join(format!("{k}.apk.idsig"));
        std::fs::write(&apk_path, &apk).unwrap();
        std::fs::write(&idsig_path, sig.to_bytes(&tree).unwrap()).unwrap();
        let out = Command::new("apksigner")
            .args([
                "verify",
                "-v",
                "--min-sdk-version",
                "28",
                "--v4-signature-file",
            ])
            .arg(&idsig_path)
            .arg(&apk_path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run apksigner ({e}): install Debian `apksigner`"));
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("Verified using v4 scheme (APK Signature Scheme v4): true"),
            "{text}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn unsigned_idsig_like_aosp() {
    let apk = apksig_testdata("signed-rsa.apk");
    let (sig, tree) = idsig::create(&mut Cursor::new(&apk), SDK, None).unwrap();
    let bytes = sig.to_bytes(&tree).unwrap();
    let v = idsig::verify(&bytes, &mut Cursor::new(&apk), SDK, false).unwrap();
    assert!(!v.signed);
    assert!(matches!(
        idsig::verify(&bytes, &mut Cursor::new(&apk), SDK, true),
        Err(idsig::Error::Unsigned)
    ));
}
