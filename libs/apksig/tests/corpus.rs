//! The bad-APK corpus (`testdata/bad/`, see its README): one test per file, each asserting the
//! specific error; plus the positive controls of `testdata/good/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;

use apksig::{Error, Scheme, SignatureAlgorithm};

/// The platform SDK the corpus is verified for.
const SDK: u32 = 34;

fn verify(rel: &str) -> Result<apksig::SignerInfo, Error> {
    let bytes = fixtures::testdata(rel);
    // Every corpus file also goes through the fuzz entry point.
    apksig::fuzz_entry(&bytes);
    apksig::verify(&mut std::io::Cursor::new(bytes), SDK)
}

macro_rules! bad {
    ($name:ident, $file:expr, $pat:pat) => {
        #[test]
        fn $name() {
            match verify(concat!("bad/", $file)) {
                Err($pat) => {}
                other => panic!("{}: unexpected {:?}", $file, other),
            }
        }
    };
}

bad!(too_small, "too-small.apk", Error::TooSmall(4));
bad!(
    no_signing_block,
    "no-signing-block.apk",
    Error::NoSigningBlock
);
bad!(
    garbage_after_eocd,
    "garbage-after-eocd.apk",
    Error::Zip(ziparchive::ZipError::NoEndOfCentralDirectory)
);
bad!(
    wrong_digest,
    "wrong-digest.apk",
    Error::DigestMismatch(SignatureAlgorithm::RsaPkcs1Sha256)
);
bad!(
    signature_invalid,
    "signature-invalid.apk",
    Error::SignatureInvalid(SignatureAlgorithm::RsaPkcs1Sha256)
);
bad!(
    unsupported_algorithm,
    "unsupported-algorithm.apk",
    Error::NoSupportedSignature
);
bad!(sdk_mismatch, "sdk-mismatch.apk", Error::SdkVersionMismatch);
bad!(
    block_size_mismatch,
    "block-size-mismatch.apk",
    Error::SigningBlockSizeMismatch { .. }
);
bad!(
    truncated_block,
    "truncated-block.apk",
    Error::InvalidSigningBlockSize(_)
);
bad!(
    truncated_pair,
    "truncated-pair.apk",
    Error::MalformedSigningBlock(_)
);
bad!(cert_mismatch, "cert-mismatch.apk", Error::PublicKeyMismatch);
bad!(
    no_certificates,
    "no-certificates.apk",
    Error::NoCertificates
);
bad!(
    eocd_offset_changed,
    "eocd-offset-changed.apk",
    Error::CentralDirectoryNotBeforeEocd { .. }
);
bad!(
    zip64,
    "zip64.apk",
    Error::Zip(ziparchive::ZipError::BadZip64(_))
);
bad!(
    data_between_block_and_cd,
    "data-between-block-and-cd.apk",
    Error::NoSigningBlock
);
bad!(
    entry_after_signing_block,
    "entry-after-signing-block.apk",
    Error::EntryAfterSigningBlock { .. }
);
bad!(v3_stripped, "v3-stripped.apk", Error::V3Stripped);
bad!(
    no_scheme_block,
    "no-scheme-block.apk",
    Error::NoSignatureSchemeBlock
);
bad!(
    no_signer_for_sdk,
    "no-signer-for-sdk.apk",
    Error::SignerCountForSdk { sdk: 34, count: 0 }
);

// Fault matrix row 10: digests and signatures name different algorithms.
bad!(
    algorithm_lists_differ,
    "algorithm-lists-differ.apk",
    Error::AlgorithmListMismatch
);

// Fault matrix row 8: re-aligned (zipalign-style padding) after signing.
bad!(
    realigned_after_signing,
    "realigned-after-signing.apk",
    Error::DigestMismatch(SignatureAlgorithm::RsaPkcs1Sha256)
);

#[test]
fn every_bad_file_has_a_test() {
    let dir = fixtures::crate_dir().join("testdata/bad");
    let here = include_str!("corpus.rs");
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".apk") {
            assert!(
                here.contains(&format!("\"{name}\"")),
                "no test for bad/{name}"
            );
        }
    }
}

#[test]
fn good_zero_padded() {
    let s = verify("good/zero-padded.apk").unwrap();
    assert_eq!(s.scheme, Scheme::V3);
}

#[test]
fn good_unknown_pair() {
    verify("good/unknown-pair.apk").unwrap();
}

/// Fault matrix row 11: an unknown additional attribute, and an unknown algorithm's digest and
/// signature beside the real ones, do not stop the APK from verifying with its RSA signer.
#[test]
fn good_unknown_attribute_and_algorithm() {
    for file in ["good/unknown-attribute.apk", "good/unknown-algorithm.apk"] {
        let s = verify(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(s.algorithm, SignatureAlgorithm::RsaPkcs1Sha256, "{file}");
        assert_eq!(s.scheme, Scheme::V3, "{file}");
    }
}

#[test]
fn good_v2_only_falls_back() {
    let s = verify("good/v2-only.apk").unwrap();
    assert_eq!(s.scheme, Scheme::V2);
    assert_eq!((s.min_sdk, s.max_sdk), (0, u32::MAX));
}

#[test]
fn signed_fixtures_verify() {
    for (f, alg) in [
        ("signed-rsa.apk", SignatureAlgorithm::RsaPkcs1Sha256),
        ("signed-ec.apk", SignatureAlgorithm::EcdsaSha256),
    ] {
        let s = verify(f).unwrap();
        assert_eq!(s.algorithm, alg);
        assert_eq!(s.scheme, Scheme::V3);
        assert_eq!((s.min_sdk, s.max_sdk), (24, 0x7fff_ffff));
    }
}

/// Fault matrix row 12: a v3.1 block (key rotation that targets newer SDKs) does not change who
/// signed the APK. AOSP's apkverify, which Microdroid uses, reads only the v3 block, so the
/// v3 signer identifies the APK (and keys its secrets) whatever a v3.1 block says; here too,
/// whether that block holds another key's valid signer or garbage, and for every SDK.
#[test]
fn a_v31_block_does_not_change_the_signer() {
    use apksig::block::{V31_BLOCK_ID, V3_BLOCK_ID};
    let rsa = fixtures::testdata("signed-rsa.apk");
    let ec = fixtures::testdata("signed-ec.apk");
    let plain = apksig::verify(&mut std::io::Cursor::new(&rsa), SDK).unwrap();
    // The EC APK's v3 signer, offered as the rotated signer for SDK 33 and later.
    let rotated = fixtures::pair_value(&ec, V3_BLOCK_ID);
    for v31 in [rotated, b"garbage".to_vec()] {
        let apk = fixtures::with_extra_pair(&rsa, V31_BLOCK_ID, v31);
        for sdk in [24, 33, SDK] {
            let s = apksig::verify(&mut std::io::Cursor::new(&apk), sdk).unwrap();
            assert_eq!(s.scheme, Scheme::V3);
            assert_eq!(s.algorithm, SignatureAlgorithm::RsaPkcs1Sha256);
            assert_eq!(s.public_key_der, plain.public_key_der);
        }
    }
}

/// Two v3 signers for one SDK: AOSP refuses the APK rather than choosing, and says how many.
#[test]
fn two_v3_signers_for_one_sdk_are_refused() {
    use apksig::block::V3_BLOCK_ID;
    let rsa = fixtures::testdata("signed-rsa.apk");
    let ec = fixtures::testdata("signed-ec.apk");
    // A v3 value is a length-prefixed sequence of length-prefixed signers: join the two.
    let signers = [
        fixtures::pair_value(&rsa, V3_BLOCK_ID),
        fixtures::pair_value(&ec, V3_BLOCK_ID),
    ];
    let mut joined = Vec::new();
    for value in &signers {
        joined.extend_from_slice(&value[4..]);
    }
    let mut two = (joined.len() as u32).to_le_bytes().to_vec();
    two.extend_from_slice(&joined);
    let apk = fixtures::with_pair_replaced(&rsa, V3_BLOCK_ID, two);
    for sdk in [24, SDK] {
        let err = apksig::verify(&mut std::io::Cursor::new(&apk), sdk).unwrap_err();
        assert!(
            matches!(err, Error::SignerCountForSdk { sdk: s, count: 2 } if s == sdk),
            "{err:?}"
        );
    }
}

/// The checked-in fixtures are what the generator produces now (signing is deterministic).
#[test]
fn fixtures_are_up_to_date() {
    for (name, bytes) in fixtures::all().unwrap() {
        assert!(
            fixtures::testdata(&name) == bytes,
            "testdata/{name} is stale: run `cargo run -p apksig --example make_fixtures`"
        );
    }
}

/// The fuzz entry point over the committed fuzz seeds and every test file.
#[test]
fn fuzz_entry_over_seeds_and_testdata() {
    let root = fixtures::crate_dir();
    for dir in [
        "fuzz/seeds/signing_block",
        "testdata",
        "testdata/bad",
        "testdata/good",
        "testdata/apksigner",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                apksig::fuzz_entry(&std::fs::read(&p).unwrap());
            }
        }
    }
}
