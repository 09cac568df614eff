//! Bad payload metadata inputs (`testdata/bad/`, see its README): one test per file.
#![allow(clippy::unwrap_used, clippy::panic)]

use payload_metadata::Error;

fn read(name: &str) -> Result<payload_metadata::Metadata, Error> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bad")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    assert!(payload_metadata::fuzz_entry(&bytes));
    payload_metadata::from_bytes(&bytes)
}

macro_rules! bad {
    ($name:ident, $file:expr, $pat:pat) => {
        #[test]
        fn $name() {
            match read($file) {
                Err($pat) => {}
                other => panic!("{}: unexpected {:?}", $file, other),
            }
        }
    };
}

bad!(
    truncated_length,
    "truncated-length.bin",
    Error::Truncated {
        needed: 4,
        available: 2
    }
);
bad!(
    truncated_body,
    "truncated-body.bin",
    Error::Truncated {
        needed: 13,
        available: 6
    }
);
bad!(too_large, "too-large.bin", Error::TooLarge(0x8000_0000));
bad!(over_limit, "over-limit.bin", Error::TooLarge(0x10_0001));
bad!(bad_varint, "bad-varint.bin", Error::Decode(_));
bad!(
    bad_submessage_length,
    "bad-submessage-length.bin",
    Error::Decode(_)
);
bad!(wrong_wire_type, "wrong-wire-type.bin", Error::Decode(_));
bad!(invalid_utf8, "invalid-utf8.bin", Error::Decode(_));

#[test]
fn every_bad_file_has_a_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad");
    let here = include_str!("corpus.rs");
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            here.contains(&format!("\"{name}\"")),
            "no test for bad/{name}"
        );
    }
}

/// The fuzz entry point over the committed fuzz seeds.
#[test]
fn fuzz_entry_over_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/metadata_proto");
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(payload_metadata::fuzz_entry(&bytes));
    }
}
