//! The bad-input corpus in `testdata/bad/` (the fuzz target's seeds): one assertion per file
//! of the specific error `VmPayloadConfig::from_json` and `task()` give. Regenerate with
//! `cargo test -p payload_config --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use payload_config::{ConfigError, VmPayloadConfig, MAX_CONFIG_SIZE};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut large =
        b"{\"task\": {\"type\": \"executable\", \"command\": \"/x\"}, \"x\": \"".to_vec();
    large.resize(MAX_CONFIG_SIZE + 1, b'a');
    vec![
        ("too_large.json", large),
        ("not_json.json", b"{\"task\": ".to_vec()),
        ("wrong_type.json", b"{\"task\": {\"type\": 3, \"command\": \"x\"}}".to_vec()),
        (
            "unknown_task_type.json",
            b"{\"task\": {\"type\": \"service\", \"command\": \"x\"}}".to_vec(),
        ),
        (
            "unsupported_os.json",
            b"{\"os\": {\"name\": \"android\"}, \"task\": {\"type\": \"executable\", \"command\": \"/x\"}}"
                .to_vec(),
        ),
        ("no_task.json", b"{}".to_vec()),
        (
            "empty_command.json",
            b"{\"task\": {\"type\": \"executable\", \"command\": \"\"}}".to_vec(),
        ),
        (
            "relative_executable.json",
            b"{\"task\": {\"type\": \"executable\", \"command\": \"bin/x\"}}".to_vec(),
        ),
        (
            "launcher_path.json",
            b"{\"task\": {\"type\": \"microdroid_launcher\", \"command\": \"../x.so\"}}".to_vec(),
        ),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

/// What the fuzz target does: parse, then take the task.
fn check(name: &str) -> ConfigError {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    match VmPayloadConfig::from_json(&bytes) {
        Err(e) => e,
        Ok(config) => match config.task() {
            Err(e) => e,
            Ok(task) => panic!("{name} was accepted: {task:?}"),
        },
    }
}

#[test]
fn each_file_gets_its_error() {
    assert!(
        matches!(check("too_large.json"), ConfigError::TooLarge(n) if n == MAX_CONFIG_SIZE + 1)
    );
    assert!(matches!(check("not_json.json"), ConfigError::Json(_)));
    assert!(matches!(check("wrong_type.json"), ConfigError::Json(_)));
    // A task type AOSP does not define (fault matrix row 31): named in the error.
    assert!(
        matches!(check("unknown_task_type.json"), ConfigError::Json(e) if e.to_string().contains("unknown variant `service`")),
        "{}",
        check("unknown_task_type.json")
    );
    assert!(
        matches!(check("unsupported_os.json"), ConfigError::UnsupportedOs(os) if os == "android")
    );
    assert!(matches!(check("no_task.json"), ConfigError::NoTask));
    assert!(matches!(
        check("empty_command.json"),
        ConfigError::EmptyCommand
    ));
    assert!(
        matches!(check("relative_executable.json"), ConfigError::RelativeExecutable(c) if c == "bin/x")
    );
    assert!(
        matches!(check("launcher_path.json"), ConfigError::BadLauncherName(c) if c == "../x.so")
    );
}
