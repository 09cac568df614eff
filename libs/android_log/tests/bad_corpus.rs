//! The bad-input corpus in `testdata/bad/`: one test per file asserting the specific error.
//! `write_*` go through `parse_write` (logdw datagrams), `entry_*` through `Entry::parse`
//! (logdr records). Regenerate with
//! `cargo test -p android_log --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use android_log::{
    encode_write, parse_write, Entry, LogError, LogId, INFO, MAX_PAYLOAD, WRITE_HEADER_LEN,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn entry() -> Entry {
    Entry {
        lid: LogId::Main,
        pid: 1,
        tid: 2,
        uid: 0,
        sec: 3,
        nsec: 4,
        priority: INFO,
        tag: "t".into(),
        message: "m".into(),
    }
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let write = encode_write(LogId::Main, 1, 0, 0, INFO, "tag", "message");
    let rec = entry().encode();
    let with = |base: &[u8], f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.to_vec();
        f(&mut b);
        b
    };
    vec![
        ("write_short.bin", write[..WRITE_HEADER_LEN].to_vec()),
        ("write_unknown_buffer.bin", with(&write, &|b| b[0] = 8)),
        ("write_oversized.bin", {
            let mut b = write[..WRITE_HEADER_LEN].to_vec();
            b.resize(WRITE_HEADER_LEN + MAX_PAYLOAD + 1, b'x');
            b
        }),
        ("entry_short.bin", rec[..20].to_vec()),
        ("entry_bad_header_size.bin", with(&rec, &|b| b[2] = 24)),
        (
            "entry_length_mismatch.bin",
            with(&rec, &|b| b[0] = b[0].wrapping_add(5)),
        ),
        (
            "entry_oversized.bin",
            with(&rec, &|b| {
                b[..2].copy_from_slice(&(MAX_PAYLOAD as u16 + 1).to_le_bytes())
            }),
        ),
        (
            "entry_unknown_buffer.bin",
            with(&rec, &|b| b[20..24].copy_from_slice(&300u32.to_le_bytes())),
        ),
        ("entry_no_priority.bin", {
            let mut b = rec[..28].to_vec();
            b[..2].copy_from_slice(&0u16.to_le_bytes());
            b
        }),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

#[test]
fn writer_datagrams() {
    assert_eq!(
        parse_write(&read("write_short.bin")).unwrap_err(),
        LogError::Short(WRITE_HEADER_LEN)
    );
    assert_eq!(
        parse_write(&read("write_unknown_buffer.bin")).unwrap_err(),
        LogError::UnknownBuffer(8)
    );
    assert_eq!(
        parse_write(&read("write_oversized.bin")).unwrap_err(),
        LogError::Oversized(MAX_PAYLOAD + 1)
    );
}

#[test]
fn reader_records() {
    let err = |name: &str| Entry::parse(&read(name)).expect_err(name);
    assert_eq!(err("entry_short.bin"), LogError::Short(20));
    assert_eq!(
        err("entry_bad_header_size.bin"),
        LogError::BadHeaderSize(24)
    );
    assert!(matches!(
        err("entry_length_mismatch.bin"),
        LogError::LengthMismatch { .. }
    ));
    assert_eq!(
        err("entry_oversized.bin"),
        LogError::Oversized(MAX_PAYLOAD + 1)
    );
    assert_eq!(
        err("entry_unknown_buffer.bin"),
        LogError::UnknownBuffer(300)
    );
    assert_eq!(err("entry_no_priority.bin"), LogError::NoPriority);
}

#[test]
fn fuzz_entry_point_survives_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        android_log::fuzz_entry(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    android_log::fuzz_entry(&entry().encode());
}
