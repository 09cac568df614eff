//! Bad idsig inputs (`testdata/bad/`, see its README): one test per file.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use idsig::Error;

fn check(name: &str) -> Result<idsig::Verified, Error> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bad")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    assert!(idsig::fuzz_entry(&bytes));
    let apk = common::apksig_testdata("apksigner/testkey.apk");
    idsig::verify(&bytes, &mut std::io::Cursor::new(apk), 34, true)
}

macro_rules! bad {
    ($name:ident, $file:expr, $pat:pat) => {
        #[test]
        fn $name() {
            match check($file) {
                Err($pat) => {}
                other => panic!("{}: unexpected {:?}", $file, other),
            }
        }
    };
}

bad!(
    bad_version,
    "bad-version.idsig",
    Error::UnsupportedVersion(3)
);
bad!(
    truncated_header,
    "truncated-header.idsig",
    Error::Truncated(_)
);
bad!(
    truncated_tree,
    "truncated-tree.idsig",
    Error::TreeTruncated { .. }
);
bad!(
    bad_hash_algorithm,
    "bad-hash-algorithm.idsig",
    Error::UnsupportedHashAlgorithm(2)
);
bad!(
    bad_block_size,
    "bad-block-size.idsig",
    Error::UnsupportedBlockSize(13)
);
bad!(salt_too_long, "salt-too-long.idsig", Error::SaltTooLong(33));
bad!(
    short_root_hash,
    "short-root-hash.idsig",
    Error::InvalidRootHashLength(31)
);
bad!(
    root_hash_changed,
    "root-hash-changed.idsig",
    Error::SignatureInvalid
);
bad!(tree_changed, "tree-changed.idsig", Error::TreeMismatch);
bad!(
    apk_digest_changed,
    "apk-digest-changed.idsig",
    Error::ApkDigestMismatch
);
bad!(
    signature_changed,
    "signature-changed.idsig",
    Error::SignatureInvalid
);
bad!(
    certificate_changed,
    "certificate-changed.idsig",
    Error::CertificateMismatch
);
bad!(unsigned, "unsigned.idsig", Error::Unsigned);

#[test]
fn unsigned_root_hash_change_is_caught_by_the_tree() {
    let (mut sig, tree) = {
        let good = common::apksig_testdata("apksigner/testkey.apk.idsig");
        let (s, t) = idsig::V4Signature::parse(&good).unwrap();
        (s, t.to_vec())
    };
    sig.signing_info.signature.clear();
    sig.hashing_info.raw_root_hash[0] ^= 1;
    let apk = common::apksig_testdata("apksigner/testkey.apk");
    let r = idsig::verify(
        &sig.to_bytes(&tree).unwrap(),
        &mut std::io::Cursor::new(apk),
        34,
        false,
    );
    assert!(matches!(r, Err(Error::RootHashMismatch)), "{r:?}");
}

#[test]
fn corpus_is_up_to_date_and_complete() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad");
    let here = include_str!("corpus.rs");
    let expected = common::bad_idsigs();
    for (name, bytes) in &expected {
        assert!(
            std::fs::read(dir.join(name)).unwrap() == *bytes,
            "stale: {name}"
        );
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".idsig") {
            assert!(
                here.contains(&format!("\"{name}\"")),
                "no test for bad/{name}"
            );
        }
    }
}

/// The fuzz entry point over the committed fuzz seeds.
#[test]
fn fuzz_entry_over_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/idsig");
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(idsig::fuzz_entry(&bytes));
    }
}
