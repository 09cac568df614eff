//! The fuzz campaign's scripts (scripts/fuzz.sh, scripts/fuzz-rustc): the knobs they add have
//! the effect they claim. Nothing here builds or runs a fuzz target.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (this crate lives in `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `scripts/fuzz-rustc` run with `echo` in rustc's place: prints the command it would run.
fn wrapped(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/fuzz-rustc"))
        .arg("echo")
        .args(args)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

#[test]
fn the_rustc_wrapper_turns_comparison_tracing_off_for_big_number_arithmetic_only() {
    // cargo-fuzz's own flag comes first; the wrapper's, appended, is the one LLVM keeps.
    let traced = "-Cllvm-args=-sanitizer-coverage-trace-compares";
    assert_eq!(
        wrapped(&["--crate-name", "num_bigint_dig", traced]),
        format!("--crate-name num_bigint_dig {traced} -Cllvm-args=-sanitizer-coverage-trace-compares=false")
    );
    for crate_name in ["rsa", "apksig", "num_bigint"] {
        assert_eq!(
            wrapped(&["--crate-name", crate_name, traced]),
            format!("--crate-name {crate_name} {traced}")
        );
    }
    // A crate name as the last argument (no value after it) is passed through.
    assert_eq!(wrapped(&["-vV", "--crate-name"]), "-vV --crate-name");
}

/// `scripts/fuzz.sh` with `FUZZ_ONLY` set to `only`.
fn fuzz_with_only(only: &str) -> Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/fuzz.sh"))
        .env("FUZZ_ONLY", only)
        .output()
        .expect("run bash")
}

#[test]
fn a_fuzz_only_name_that_is_no_target_fails_before_anything_is_built() {
    for only in ["bogus", "apex bogus", "apex signing_blok session_stream"] {
        let out = fuzz_with_only(only);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let wrong = only
            .split(' ')
            .find(|n| n.contains("bog") || n.contains("blok"));
        assert_eq!(out.status.code(), Some(1), "{only}: {stderr}");
        assert!(
            stderr.contains(&format!("fuzz: no target named {}", wrong.unwrap_or(""))),
            "{only}: {stderr}"
        );
        assert!(!stderr.contains("building"), "{only}: {stderr}");
    }
}

#[test]
fn a_fuzz_profile_other_than_release_or_dev_fails_before_anything_is_built() {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/fuzz.sh"))
        .env("FUZZ_PROFILE", "debug")
        .env("FUZZ_ONLY", "apex")
        .output()
        .expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fuzz: FUZZ_PROFILE must be release or dev, not debug"),
        "{stderr}"
    );
    assert!(!stderr.contains("building"), "{stderr}");
}
