//! The workspace's build profiles (Cargo.toml) keep the promises their comments make about what
//! is optimised. Nothing here compiles anything: it reads `cargo metadata` and Cargo.toml.

use boot_tests::workspace_root;
use std::collections::BTreeSet;
use std::process::Command;

/// Names of the packages in the workspace's resolved dependency graph (Linux, x86-64) that
/// build a proc macro.
fn proc_macro_packages() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "{out:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let resolved: BTreeSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .filter_map(|node| node["id"].as_str())
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)))
        .filter(|p| {
            p["targets"].as_array().is_some_and(|targets| {
                targets.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
                })
            })
        })
        .map(|p| p["name"].as_str().expect("package name").to_owned())
        .collect()
}

/// Packages that Cargo.toml builds at opt-level 0 in the dev profile by name.
fn unoptimised_in_dev() -> BTreeSet<String> {
    let manifest =
        std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    let mut names = BTreeSet::new();
    let mut section: Option<String> = None;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header
                .strip_prefix("profile.dev.package.")
                .map(|name| name.trim_matches('"').to_owned());
        } else if line.replace(' ', "") == "opt-level=0" {
            if let Some(name) = &section {
                names.insert(name.clone());
            }
        }
    }
    names
}

/// `[profile.dev.package."*"]` optimises every dependency for the tests' sake, and it takes
/// precedence over `build-override`: a proc macro left out of the named list is compiled
/// optimised, which cost the test build a quarter of its CPU time.
#[test]
fn every_proc_macro_and_the_syn_stack_are_built_unoptimised_in_tests() {
    let listed = unoptimised_in_dev();
    let macros = proc_macro_packages();
    assert!(
        macros.contains("serde_derive") && macros.contains("thiserror-impl"),
        "{macros:?}"
    );
    let missing: Vec<&str> = macros
        .iter()
        .map(String::as_str)
        .chain(["syn", "quote", "proc-macro2"])
        .filter(|name| !listed.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "Cargo.toml builds these compile-time crates optimised in tests: {missing:?}; add a \
         [profile.dev.package.<name>] with opt-level = 0 for each"
    );
}
