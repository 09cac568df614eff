//! The documentation is self-contained: every relative Markdown link in README.md and in the
//! `*.md` files under docs/, examples/ and libs/ names a file or directory of this repository,
//! and no page cites the private reference notes a user does not have.
//!
//! Host-only: no VM, no build of the guest.

use boot_tests::workspace_root;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories never walked: build output, fuzzing corpora, VCS data.
fn skipped_dir(name: &str) -> bool {
    name == "target" || name == "corpus" || name.starts_with('.')
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if !skipped_dir(&name) {
                collect_markdown(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// README.md and every `*.md` under docs/, examples/ and libs/.
fn markdown_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "examples", "libs"] {
        collect_markdown(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 10 && files.iter().all(|f| f.is_file()),
        "the walk found too few Markdown files: {files:?}"
    );
    files
}

/// The text of a line with its inline code spans blanked out (a code span is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let fence = "`".repeat(ticks);
        let after = &rest[start + ticks..];
        match after.find(fence.as_str()) {
            Some(end) => {
                out.push_str(&" ".repeat(ticks + end + ticks));
                rest = &after[end + ticks..];
            }
            None => {
                // An unmatched backtick is literal text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links `[text](target)` and images `![alt](target)` of a Markdown
/// file, with their line numbers; fenced code blocks and code spans are skipped. A target ends
/// at the parenthesis that balances the opening one, or at a blank before an optional title;
/// `<...>` targets lose their angle brackets.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut fence: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => {
                fence = Some(m);
                continue;
            }
            (Some(open), Some(m)) if open == m => {
                fence = None;
                continue;
            }
            (Some(_), _) => continue,
            (None, None) => {}
        }
        let line = without_code_spans(line);
        let mut search = 0;
        while let Some(found) = line[search..].find("](") {
            let open = search + found;
            let start = open + 2;
            search = start;
            if !line[..open].contains('[') {
                continue;
            }
            let mut depth = 1usize;
            let mut end = None;
            for (i, c) in line[start..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(start + i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                continue;
            };
            let raw = line[start..end].trim();
            let target = match raw.strip_prefix('<') {
                Some(inner) => inner.split('>').next().unwrap_or_default(),
                None => raw.split_whitespace().next().unwrap_or_default(),
            };
            if !target.is_empty() {
                links.push((index + 1, target.to_owned()));
            }
            search = end + 1;
        }
    }
    links
}

/// Whether a link target leaves the repository or stays inside the page.
fn is_external_or_anchor(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("mailto:")
        || lower.starts_with('#')
}

/// `%XX` escapes decoded (e.g. `%20` in a file name).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn the_link_parser_finds_links_and_only_links() {
    let text = "See [a](a.md#x), ![img](img/p.png \"title\") and [b](<b c.md>).\n\
                `[not](code.md)` [web](https://example.com) [here](#anchor) [p](f(1).md)\n\
                ```\n[fenced](fenced.md)\n```\n\
                arr[0](x) is code-like text too";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        [
            "a.md#x",
            "img/p.png",
            "b c.md",
            "https://example.com",
            "#anchor",
            "f(1).md",
            "x"
        ]
    );
    assert_eq!(percent_decoded("a%20b.md"), "a b.md");
}

#[test]
fn every_relative_link_in_the_docs_names_an_existing_file() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = fs::read_to_string(&file).expect("Markdown files are UTF-8");
        let dir = file.parent().expect("a file has a directory");
        for (line, target) in link_targets(&text) {
            if is_external_or_anchor(&target) {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            let path = percent_decoded(path.split('?').next().unwrap_or_default());
            if path.is_empty() {
                continue;
            }
            checked += 1;
            let resolved = if let Some(from_root) = path.strip_prefix('/') {
                workspace_root().join(from_root)
            } else {
                dir.join(&path)
            };
            if !resolved.exists() {
                broken.push(format!("{}:{line}: ({target})", relative(&file)));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken relative link(s) in the docs:\n{}",
        broken.len(),
        broken.join("\n")
    );
    assert!(
        checked > 0,
        "no relative links were found: the parser is broken"
    );
}

/// The private notes the project was written from. Users do not have them, so the docs state
/// the facts or cite public upstream sources instead.
const PRIVATE_REFERENCES: &[&str] = &[
    "shared/reference",
    "aosp-guest.md",
    "aosp-guest §",
    "disk-formats.md",
    "disk-formats §",
    "identity-formats.md",
    "identity-formats §",
    "binder-rpc.md",
    "avf-host-api.md",
    "qemu-boot.md",
    "anchors.md",
    "zipfuse-peers.md",
    "debug-protocols.md",
    "authfs.md",
    "DESIGN-NOTES",
];

#[test]
fn no_page_cites_the_private_reference_notes() {
    let mut found = Vec::new();
    for file in markdown_files() {
        let text = fs::read_to_string(&file).expect("Markdown files are UTF-8");
        for (index, line) in text.lines().enumerate() {
            for name in PRIVATE_REFERENCES {
                if line.contains(name) {
                    found.push(format!("{}:{}: {name}", relative(&file), index + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "{} citation(s) of private reference notes:\n{}",
        found.len(),
        found.join("\n")
    );
}
