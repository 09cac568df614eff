//! Shared by the tests and the `make_bad_idsigs` example.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

pub fn apksig_testdata(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../apksig/testdata")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn apksig_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../apksig")
        .join(rel)
}

/// The bad idsig corpus: (file name, bytes), all derived from apksigner's idsig of
/// `apksig/testdata/apksigner/testkey.apk`.
pub fn bad_idsigs() -> Vec<(&'static str, Vec<u8>)> {
    let good = apksig_testdata("apksigner/testkey.apk.idsig");
    let (sig, tree) = idsig::V4Signature::parse(&good).unwrap();
    let tree = tree.to_vec();
    let enc = |s: &idsig::V4Signature, t: &[u8]| s.to_bytes(t).unwrap();
    let mut out = Vec::new();

    let mut b = good.clone();
    b[0] = 3;
    out.push(("bad-version.idsig", b));
    out.push(("truncated-header.idsig", good[..40].to_vec()));
    out.push(("truncated-tree.idsig", good[..good.len() - 100].to_vec()));

    let mut s = sig.clone();
    s.hashing_info.hash_algorithm = 2;
    out.push(("bad-hash-algorithm.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.hashing_info.log2_blocksize = 13;
    out.push(("bad-block-size.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.hashing_info.salt = vec![0; 33];
    out.push(("salt-too-long.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.hashing_info.raw_root_hash.pop();
    out.push(("short-root-hash.idsig", enc(&s, &tree)));

    // Well-formed, but do not match the APK.
    let mut s = sig.clone();
    s.hashing_info.raw_root_hash[0] ^= 1;
    out.push(("root-hash-changed.idsig", enc(&s, &tree)));
    let mut t = tree.clone();
    t[100] ^= 1;
    out.push(("tree-changed.idsig", enc(&sig, &t)));
    let mut s = sig.clone();
    s.signing_info.apk_digest[0] ^= 1;
    out.push(("apk-digest-changed.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.signing_info.signature[10] ^= 1;
    out.push(("signature-changed.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.signing_info.x509_certificate =
        std::fs::read(apksig_path("testkeys/testkey_ec.x509.der")).unwrap();
    out.push(("certificate-changed.idsig", enc(&s, &tree)));
    let mut s = sig.clone();
    s.signing_info.signature.clear();
    out.push(("unsigned.idsig", enc(&s, &tree)));
    out
}
