//! The fuzz campaign's scripts (scripts/fuzz.sh, scripts/fuzz-rustc): the knobs they add have
//! the effect they claim. Nothing here builds or runs a fuzz target.

use boot_tests::workspace_root;
use std::process::{Command, Output};

/// `scripts/fuzz-rustc` run with `echo` in rustc's place: prints the command it would run.
fn wrapped(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/fuzz-rustc"))
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
        .arg(workspace_root().join("scripts/fuzz.sh"))
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
        .arg(workspace_root().join("scripts/fuzz.sh"))
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

/// The `cargo` command line (and the debug-info setting it got) that `scripts/fuzz.sh` builds
/// with under `FUZZ_PROFILE=profile` (unset: `None`), from a stand-in `cargo` on PATH that records them and
/// fails the build, so that nothing is compiled.
fn fuzz_build_command(profile: Option<&str>) -> String {
    let bin = tempfile::tempdir().expect("temp dir");
    let record = bin.path().join("args");
    let cargo = format!(
        "#!/bin/sh\necho \"$@ debug=$CARGO_PROFILE_DEV_DEBUG\" > '{}'\nexit 1\n",
        record.display()
    );
    for (name, body) in [
        ("cargo", cargo.as_str()),
        ("cargo-fuzz", "#!/bin/sh\nexit 1\n"),
    ] {
        let path = bin.path().join(name);
        std::fs::write(&path, body).expect("write stand-in");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod stand-in");
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut fuzz = Command::new("bash");
    fuzz.arg(workspace_root().join("scripts/fuzz.sh"))
        .env("PATH", path)
        .env("FUZZ_ONLY", "apex")
        .env_remove("FUZZ_PROFILE");
    if let Some(profile) = profile {
        fuzz.env("FUZZ_PROFILE", profile);
    }
    let out = fuzz.output().expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("fuzz: build FAILED"), "{stderr}");
    std::fs::read_to_string(&record).expect("the stand-in cargo ran")
}

#[test]
fn fuzz_profile_dev_builds_unoptimised_with_line_tables_and_release_is_the_default() {
    let dev = fuzz_build_command(Some("dev"));
    assert!(
        dev.starts_with("fuzz build --fuzz-dir fuzz -s address --dev "),
        "{dev}"
    );
    assert!(dev.ends_with(" debug=line-tables-only\n"), "{dev}");
    for profile in [None, Some("release")] {
        let release = fuzz_build_command(profile);
        assert!(
            release.starts_with("fuzz build --fuzz-dir fuzz -s address --target-dir "),
            "{profile:?}: {release}"
        );
    }
}
