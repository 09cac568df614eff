//! The bad-input corpus in `testdata/bad/` (the fuzz target's seeds): what `parse_death_reason`
//! makes of each hostile death-reason port content. Regenerate with
//! `cargo test -p vm_status --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use vm_status::{parse_death_reason, DeathReason, MAX_DETAIL_CHARS};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut long = b"MICRODROID_UNKNOWN_RUNTIME_ERROR|".to_vec();
    long.resize(long.len() + 10_000, b'x');
    vec![
        ("empty.txt", Vec::new()),
        ("blank.txt", b"\r\n\0\0 \t".to_vec()),
        ("unknown_reason.txt", b"NOT_A_REASON|x".to_vec()),
        (
            "escape_sequences.txt",
            b"MICRODROID_UNKNOWN_RUNTIME_ERROR|\x1b[2J\x1b]0;x\x07".to_vec(),
        ),
        ("long_detail.txt", long),
        (
            "invalid_utf8.txt",
            b"MICRODROID_PAYLOAD_HAS_CHANGED|\xff\xfe".to_vec(),
        ),
        ("only_separator.txt", b"|".to_vec()),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn each_file_gets_its_reading() {
    let parse = |name: &str| parse_death_reason(&std::fs::read(dir().join(name)).unwrap());
    assert_eq!(parse("empty.txt"), None);
    assert_eq!(parse("blank.txt"), None);
    let r = parse("unknown_reason.txt").unwrap();
    assert_eq!(
        (r.reason, r.detail.as_deref()),
        (DeathReason::Unknown, Some("NOT_A_REASON|x"))
    );
    let r = parse("escape_sequences.txt").unwrap();
    assert_eq!(r.reason, DeathReason::MicrodroidUnknownRuntimeError);
    assert_eq!(r.detail.as_deref(), Some("\\u{1b}[2J\\u{1b}]0;x\\u{7}"));
    let detail = parse("long_detail.txt").unwrap().detail.unwrap();
    assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS + " [...]".len());
    let r = parse("invalid_utf8.txt").unwrap();
    assert_eq!(r.reason, DeathReason::MicrodroidPayloadHasChanged);
    assert_eq!(r.detail.as_deref(), Some("\u{fffd}\u{fffd}"));
    let r = parse("only_separator.txt").unwrap();
    assert_eq!(
        (r.reason, r.detail.as_deref()),
        (DeathReason::Unknown, Some("|"))
    );
}
