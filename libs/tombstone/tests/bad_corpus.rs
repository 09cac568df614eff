//! The bad-input corpus in `testdata/bad/`: crash messages a handler (or anything else that
//! reaches the crash socket) might send, each with its specific error. Regenerate with
//! `cargo test -p tombstone --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use tombstone::message::{CrashMessage, MessageError, MESSAGE_LEN, NGREG};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn good() -> [u8; MESSAGE_LEN] {
    CrashMessage {
        signal: libc::SIGSEGV,
        code: 1,
        pid: 10,
        tid: 10,
        fault_addr: 0,
        gregs: [0; NGREG],
    }
    .encode()
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good().to_vec();
        f(&mut b);
        b
    };
    vec![
        ("short.bin", good()[..100].to_vec()),
        ("long.bin", with(&|b| b.push(0))),
        ("bad_magic.bin", with(&|b| b[..4].copy_from_slice(b"XXXX"))),
        (
            "bad_version.bin",
            with(&|b| b[4..8].copy_from_slice(&7u32.to_le_bytes())),
        ),
        (
            "not_a_crash_signal.bin",
            with(&|b| b[8..12].copy_from_slice(&libc::SIGKILL.to_le_bytes())),
        ),
        ("empty.bin", Vec::new()),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn each_bad_message_has_its_error() {
    let err = |name: &str| {
        CrashMessage::parse(&std::fs::read(dir().join(name)).unwrap()).expect_err(name)
    };
    assert_eq!(err("short.bin"), MessageError::BadLength(100));
    assert_eq!(err("long.bin"), MessageError::BadLength(MESSAGE_LEN + 1));
    assert_eq!(err("bad_magic.bin"), MessageError::BadMagic(*b"XXXX"));
    assert_eq!(err("bad_version.bin"), MessageError::BadVersion(7));
    assert_eq!(
        err("not_a_crash_signal.bin"),
        MessageError::NotACrashSignal(libc::SIGKILL)
    );
    assert_eq!(err("empty.bin"), MessageError::BadLength(0));
}

#[test]
fn fuzz_entry_point_survives_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        tombstone::fuzz_entry(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    tombstone::fuzz_entry(&good());
    tombstone::fuzz_entry(b"5555d000-5555e000 r-xp 00001000 fe:01 1 /nonexistent\n");
}
