//! The bad-input corpus in `testdata/bad/`: one test per file asserting the specific error.
//! `*.txt` go through `Bootconfig::parse_bytes`, `*.bin` through `read_attached` (trailer,
//! then text). Regenerate with `cargo test -p bootconfig --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use bootconfig::Error;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

const GOOD: &[u8] = b"androidboot.vbmeta.digest = \"00ff\"\nandroidboot.slot_suffix = \"_a\"\n";

fn good_blob() -> Vec<u8> {
    bootconfig::attach(b"070701-cpio-stand-in", GOOD).unwrap()
}

fn set_u32(b: &mut [u8], from_end: usize, v: u32) {
    let n = b.len();
    b[n - from_end..n - from_end + 4].copy_from_slice(&v.to_le_bytes());
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let blob = good_blob();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = blob.clone();
        f(&mut b);
        b
    };
    vec![
        (
            "unterminated_quote.txt",
            b"androidboot.slot_suffix = \"_a\nandroidboot.x = 1\n".to_vec(),
        ),
        ("invalid_key.txt", b"androidboot..slot = \"_a\"\n".to_vec()),
        ("key_with_space.txt", b"android boot = 1\n".to_vec()),
        ("duplicate_key.txt", b"a = 1\nb = 2\na = 3\n".to_vec()),
        (
            "key_tree.txt",
            b"androidboot {\n  slot_suffix = \"_a\"\n}\n".to_vec(),
        ),
        (
            "not_utf8.txt",
            b"androidboot.name = \"\xc3\x28\"\n".to_vec(),
        ),
        (
            "control_char.txt",
            b"androidboot.name = ab\x07cd\n".to_vec(),
        ),
        (
            "garbage_after_value.txt",
            b"androidboot.name = \"a\" \"b\"\n".to_vec(),
        ),
        ("missing_key.txt", b" = \"orphan\"\n".to_vec()),
        (
            "trailer_no_magic.bin",
            with(&|b| {
                let n = b.len();
                b[n - 1] = b'X';
            }),
        ),
        ("trailer_truncated.bin", blob[blob.len() - 15..].to_vec()),
        (
            "trailer_size_past_start.bin",
            with(&|b| set_u32(b, 20, 10_000)),
        ),
        ("trailer_huge_size.bin", with(&|b| set_u32(b, 20, u32::MAX))),
        (
            "trailer_checksum_mismatch.bin",
            with(&|b| set_u32(b, 16, 12345)),
        ),
        (
            "trailer_bad_text.bin",
            bootconfig::attach(b"cpio", b"a = \"unterminated\n").unwrap(),
        ),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn good_inputs_parse() {
    assert_eq!(
        bootconfig::read_attached(&good_blob())
            .unwrap()
            .get("androidboot.slot_suffix"),
        Some("_a")
    );
}

#[test]
fn fuzz_entry_point_survives_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        bootconfig::fuzz_entry(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    bootconfig::fuzz_entry(&good_blob());
    bootconfig::fuzz_entry(GOOD);
}

fn err(name: &str) -> Error {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    if name.ends_with(".txt") {
        bootconfig::Bootconfig::parse_bytes(&bytes).expect_err(name)
    } else {
        bootconfig::read_attached(&bytes).expect_err(name)
    }
}

macro_rules! bad {
    ($test:ident, $file:literal, $pat:pat) => {
        #[test]
        fn $test() {
            let e = err($file);
            assert!(matches!(e, $pat), "{}: got {e:?}", $file);
        }
    };
}

bad!(
    unterminated_quote,
    "unterminated_quote.txt",
    Error::Syntax { line: 3, .. }
);
bad!(
    invalid_key,
    "invalid_key.txt",
    Error::InvalidKey { line: 1, .. }
);
bad!(
    key_with_space,
    "key_with_space.txt",
    Error::Syntax { line: 1, .. }
);
bad!(
    duplicate_key,
    "duplicate_key.txt",
    Error::DuplicateKey { line: 3, .. }
);
bad!(key_tree, "key_tree.txt", Error::Unsupported { line: 1, .. });
bad!(not_utf8, "not_utf8.txt", Error::NotUtf8);
bad!(
    control_char,
    "control_char.txt",
    Error::Syntax { line: 1, .. }
);
bad!(
    garbage_after_value,
    "garbage_after_value.txt",
    Error::Syntax { line: 1, .. }
);
bad!(
    missing_key,
    "missing_key.txt",
    Error::Syntax { line: 1, .. }
);
bad!(trailer_no_magic, "trailer_no_magic.bin", Error::BadMagic);
bad!(
    trailer_truncated,
    "trailer_truncated.bin",
    Error::Truncated { .. }
);
bad!(
    trailer_size_past_start,
    "trailer_size_past_start.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    trailer_huge_size,
    "trailer_huge_size.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    trailer_checksum_mismatch,
    "trailer_checksum_mismatch.bin",
    Error::ChecksumMismatch {
        expected: 12345,
        ..
    }
);
bad!(
    trailer_bad_text,
    "trailer_bad_text.bin",
    Error::Syntax { .. }
);
