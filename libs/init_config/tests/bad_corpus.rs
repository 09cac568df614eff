//! The bad-input corpus in `testdata/bad/` (the fuzz target's seeds): one assertion per file
//! of the specific error `InitConfig::parse` gives. Regenerate with
//! `cargo test -p init_config --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use init_config::{ConfigError, InitConfig, MAX_CONFIG_SIZE};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("too_large.rc", vec![b'#'; MAX_CONFIG_SIZE + 1]),
        (
            "not_utf8.rc",
            b"service a /x\n  setenv A \xff\xfe\n".to_vec(),
        ),
        ("no_services.rc", b"# nothing here\n\n".to_vec()),
        ("unknown_option.rc", b"service a /x\n    bogus\n".to_vec()),
        ("relative_path.rc", b"service a x\n".to_vec()),
        ("defined_twice.rc", b"service a /x\nservice a /y\n".to_vec()),
        ("unterminated.rc", b"service a /x \"open\n".to_vec()),
        (
            "unknown_capability.rc",
            b"service a /x\n  capabilities SYS_WIZARD\n".to_vec(),
        ),
        ("option_outside.rc", b"  oneshot\nservice a /x\n".to_vec()),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn each_file_gets_its_error() {
    let err =
        |name: &str| InitConfig::parse(&std::fs::read(dir().join(name)).unwrap()).expect_err(name);
    let syntax = |name: &str| match err(name) {
        ConfigError::Syntax { line, message } => (line, message),
        other => panic!("{name}: {other:?}"),
    };
    assert!(matches!(err("too_large.rc"), ConfigError::TooLarge(n) if n == MAX_CONFIG_SIZE + 1));
    assert!(matches!(err("not_utf8.rc"), ConfigError::NotUtf8));
    assert!(matches!(err("no_services.rc"), ConfigError::NoServices));
    let (line, message) = syntax("unknown_option.rc");
    assert_eq!(line, 2);
    assert!(message.contains("unknown option \"bogus\""), "{message}");
    assert!(syntax("relative_path.rc").1.contains("not absolute"));
    assert!(syntax("defined_twice.rc").1.contains("defined twice"));
    assert!(syntax("unterminated.rc").1.contains("unterminated"));
    let (line, message) = syntax("unknown_capability.rc");
    assert_eq!(line, 2);
    assert!(
        message.contains("unknown capability \"SYS_WIZARD\""),
        "{message}"
    );
    assert!(syntax("option_outside.rc").1.contains("outside a service"));
}
