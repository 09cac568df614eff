//! docs/reliability.md is the fault matrix: every row names the test that covers it. This test
//! fails when a row names a test, file, module or crate that does not exist (a renamed or
//! deleted test leaves its row pointing nowhere).
//!
//! Host-only: no VM, no build of the guest.

use boot_tests::workspace_root;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') || name == "corpus" {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// What a name in the Test column may be: a function or module of some Rust file, a package,
/// or a file (from the repository root or from a crate's directory).
struct Known {
    items: BTreeSet<String>,
    packages: BTreeSet<String>,
    files: Vec<String>,
}

fn known() -> Known {
    let root = workspace_root();
    let mut all = Vec::new();
    walk(&root, &mut all);
    let mut items = BTreeSet::new();
    let mut packages = BTreeSet::new();
    let mut files = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        files.push(rel);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref() == Some("Cargo.toml") {
            let text = fs::read_to_string(path).unwrap_or_default();
            if let Some(package) = text
                .lines()
                .skip_while(|l| l.trim() != "[package]")
                .find_map(|l| l.trim().strip_prefix("name = "))
            {
                packages.insert(package.trim_matches('"').to_owned());
            }
        }
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                // A module file, or a fuzz target named by its file.
                items.insert(stem.to_string_lossy().into_owned());
            }
            let text = fs::read_to_string(path).unwrap_or_default();
            for line in text.lines() {
                let line = line.trim_start();
                for keyword in ["fn ", "pub fn ", "mod ", "pub mod ", "async fn "] {
                    if let Some(rest) = line.strip_prefix(keyword) {
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            items.insert(name);
                        }
                    }
                }
            }
        }
    }
    Known {
        items,
        packages,
        files,
    }
}

/// The backquoted names in the last column of every table row of the page.
fn named_tests(page: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in page.lines().enumerate() {
        if !line.starts_with("| ") || line.starts_with("| Fault") || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let Some(test_cell) = cells.len().checked_sub(2).and_then(|i| cells.get(i)) else {
            continue;
        };
        let mut rest = *test_cell;
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            out.push((i + 1, after[..end].to_owned()));
            rest = &after[end + 1..];
        }
    }
    out
}

fn exists(name: &str, known: &Known) -> bool {
    if workspace_root().join(name).exists() {
        return true;
    }
    if name.contains('/') || name.ends_with(".rs") {
        return workspace_root().join(name).exists()
            || known.files.iter().any(|f| f.ends_with(&format!("/{name}")));
    }
    if known.packages.contains(name) {
        return true;
    }
    let last = name.rsplit("::").next().unwrap_or(name);
    known.items.contains(last)
}

#[test]
fn every_row_names_a_test_that_exists() {
    let root = workspace_root();
    let page = fs::read_to_string(root.join("docs/reliability.md")).unwrap();
    let known = known();
    let named = named_tests(&page);
    assert!(
        named.len() > 50,
        "the matrix names only {} tests",
        named.len()
    );
    let missing: Vec<String> = named
        .iter()
        .filter(|(_, name)| !exists(name, &known))
        .map(|(line, name)| format!("docs/reliability.md:{line}: `{name}`"))
        .collect();
    assert!(
        missing.is_empty(),
        "rows name tests that do not exist:\n{}",
        missing.join("\n")
    );
}

/// The page's "Covered: C, partial: P, open: O." line counts its rows.
#[test]
fn the_counts_match_the_rows() {
    let page = fs::read_to_string(workspace_root().join("docs/reliability.md")).unwrap();
    let status_of = |line: &str| -> Option<String> {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | # | fault | status | tests |
        if cells.len() != 6 || cells[1].parse::<u32>().is_err() {
            return None;
        }
        cells[3].split(':').next().map(str::to_owned)
    };
    let mut counts = std::collections::BTreeMap::new();
    for status in page.lines().filter_map(status_of) {
        *counts.entry(status).or_insert(0u32) += 1;
    }
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    assert_eq!(
        count("covered") + count("partial") + count("open"),
        58,
        "{counts:?}"
    );
    let line = format!(
        "Covered: {}, partial: {}, open: {}.",
        count("covered"),
        count("partial"),
        count("open")
    );
    assert!(page.contains(&line), "the page should say {line:?}");
}

#[test]
fn a_missing_test_is_noticed() {
    let known = known();
    assert!(exists("every_row_names_a_test_that_exists", &known));
    assert!(exists("tests/tests/reliability_matrix.rs", &known));
    assert!(exists("sepolicy.rs", &known));
    assert!(exists("host_tools", &known));
    assert!(!exists("no_such_test_anywhere_xyzzy", &known));
    assert!(!exists("tests/tests/no_such_file.rs", &known));
    let rows =
        named_tests("| Fault | What | Test |\n|---|---|---|\n| x | `not_this` | `a` `b::c` |\n");
    assert_eq!(rows, [(3, "a".to_owned()), (3, "b::c".to_owned())]);
}
