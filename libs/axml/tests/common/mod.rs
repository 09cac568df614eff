//! Shared by the tests: the worked example, the bad-input corpus, temp dirs and tools.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use axml::{Attribute, Element, ManifestSpec, PoolEncoding, Value, ANDROID_NS};

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The 428-byte example of docs/formats/axml.md, assembled from its
/// table: `package="com.example.vm" versionCode=7 versionCodeMajor=1 versionName="1.0"`.
pub fn worked_example() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(hex("0300 0800 ac010000"));
    b.extend(hex(
        "0100 1c00 d4000000 09000000 00000000 00010000 40000000 00000000",
    ));
    b.extend(hex(
        "00000000 0e000000 1c000000 2f000000 5c000000 66000000 71000000 7b000000 8c000000",
    ));
    for s in [
        "versionCode",
        "versionName",
        "versionCodeMajor",
        ANDROID_NS,
        "android",
        "manifest",
        "package",
        "com.example.vm",
        "1.0",
    ] {
        b.extend([s.len() as u8, s.len() as u8]);
        b.extend(s.as_bytes());
        b.push(0);
    }
    b.extend([0, 0]);
    assert_eq!(b.len(), 0xdc);
    b.extend(hex("8001 0800 14000000 1b020101 1c020101 76050101"));
    b.extend(hex(
        "0001 1000 18000000 01000000 ffffffff 04000000 03000000",
    ));
    b.extend(hex(
        "0201 1000 74000000 01000000 ffffffff ffffffff 05000000 1400 1400 0400 0000 0000 0000",
    ));
    b.extend(hex("03000000 00000000 ffffffff 0800 00 10 07000000"));
    b.extend(hex("03000000 01000000 08000000 0800 00 03 08000000"));
    b.extend(hex("03000000 02000000 ffffffff 0800 00 10 01000000"));
    b.extend(hex("ffffffff 06000000 07000000 0800 00 03 07000000"));
    b.extend(hex(
        "0301 1000 18000000 01000000 ffffffff ffffffff 05000000",
    ));
    b.extend(hex(
        "0101 1000 18000000 01000000 ffffffff 04000000 03000000",
    ));
    assert_eq!(b.len(), 428);
    b
}

/// The spec whose manifest is the worked example.
pub fn worked_example_spec() -> ManifestSpec {
    let mut spec = ManifestSpec::new("com.example.vm", (1 << 32) | 7);
    spec.version_name = Some("1.0".into());
    spec
}

// Offsets in the worked example.
pub const POOL: usize = 0x008;
pub const OFFSETS: usize = 0x024;
pub const STRINGS: usize = 0x048;
pub const STRING7: usize = STRINGS + 0x7b; // "com.example.vm": 0e 0e bytes 00
pub const START_NS: usize = 0x0f0;
pub const START_EL: usize = 0x108;
pub const ATTR_EXT: usize = START_EL + 16;
pub const ATTR_VERSION_CODE: usize = 0x12c;
pub const ATTR_PACKAGE: usize = 0x168;
pub const END_EL: usize = 0x17c;
pub const END_NS: usize = 0x194;

pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Sets the XML chunk's size to the buffer length.
pub fn fix_size(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() as u32;
    put32(&mut b, 4, n);
    b
}

/// A manifest whose `android:versionCode` is the string `code` (rawValue and value).
pub fn string_version_code(code: &str) -> Vec<u8> {
    let mut root = Element::new("manifest");
    root.attributes
        .push(Attribute::string(None, "package", None, "com.example.vm"));
    root.attributes.push(Attribute::string(
        Some(ANDROID_NS),
        "versionCode",
        Some(axml::attr::VERSION_CODE),
        code,
    ));
    axml::write_document(&root, PoolEncoding::Utf8)
}

/// `depth` nested elements (`manifest`, then `a`…), hand-assembled: the writer and `Drop` of so
/// deep a tree would recurse that deep.
pub fn deep_nesting(depth: usize) -> Vec<u8> {
    let mut b = hex("0300 0800 00000000");
    // Pool: "manifest", "a".
    b.extend(hex(
        "0100 1c00 34000000 02000000 00000000 00010000 24000000 00000000 00000000 0b000000",
    ));
    b.extend(b"\x08\x08manifest\x00\x01\x01a\x00\x00");
    assert_eq!(b.len(), 8 + 0x34);
    for i in 0..depth {
        let name = u32::from(i > 0);
        b.extend(hex("0201 1000 24000000 01000000 ffffffff ffffffff"));
        b.extend(name.to_le_bytes());
        b.extend(hex("1400 1400 0000 0000 0000 0000"));
    }
    for i in (0..depth).rev() {
        let name = u32::from(i > 0);
        b.extend(hex("0301 1000 18000000 01000000 ffffffff ffffffff"));
        b.extend(name.to_le_bytes());
    }
    fix_size(b)
}

/// The bad-input corpus `testdata/bad/` (see its README): (file name, bytes).
pub fn bad_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let ex = worked_example();
    let mut out = Vec::new();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = ex.clone();
        f(&mut b);
        b
    };

    out.push((
        "not-xml-zip.axml",
        edit(&|b| b[..4].copy_from_slice(b"PK\x03\x04")),
    ));
    out.push(("truncated-header.axml", ex[..6].to_vec()));
    out.push(("size-past-end.axml", ex[..420].to_vec()));
    out.push((
        "size-not-multiple-of-4.axml",
        edit(&|b| put16(b, START_EL + 2, 18)),
    ));
    out.push((
        "pool-header-too-small.axml",
        edit(&|b| put16(b, POOL + 2, 24)),
    ));
    out.push(("pool-last-unit-not-zero.axml", edit(&|b| b[0xdb] = b'x')));
    out.push((
        "pool-offset-out-of-range.axml",
        edit(&|b| put32(b, OFFSETS + 4 * 7, 0x1000)),
    ));
    out.push((
        "string-without-nul.axml",
        edit(&|b| b[STRING7 + 2 + 14] = b'x'),
    ));
    out.push(("utf8-u16len-wrong.axml", edit(&|b| b[STRING7] = 13)));
    out.push(("bad-utf8.axml", edit(&|b| b[STRING7 + 2] = 0xff)));
    out.push(("bad-utf16.axml", {
        let mut b = axml::write_document(&worked_example_spec().to_element(), PoolEncoding::Utf16);
        let needle: Vec<u8> = "com.example.vm"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let at = b.windows(needle.len()).position(|w| w == needle).unwrap();
        put16(&mut b, at, 0xd800);
        b
    }));
    out.push((
        "attribute-string-index.axml",
        edit(&|b| {
            put32(b, ATTR_PACKAGE + 8, 99);
            put32(b, ATTR_PACKAGE + 16, 99);
        }),
    ));
    out.push((
        "package-no-raw-value.axml",
        edit(&|b| put32(b, ATTR_PACKAGE + 8, 0xffff_ffff)),
    ));
    out.push((
        "attribute-start-past-node.axml",
        edit(&|b| put16(b, ATTR_EXT + 8, 0x30)),
    ));
    out.push((
        "attribute-size-too-small.axml",
        edit(&|b| put16(b, ATTR_EXT + 10, 8)),
    ));
    out.push((
        "node-smaller-than-extension.axml",
        edit(&|b| put32(b, START_NS + 4, 16)),
    ));
    out.push(("first-element-not-manifest.axml", {
        let mut root = worked_example_spec().to_element();
        root.name = "application".into();
        axml::write_document(&root, PoolEncoding::Utf8)
    }));
    out.push((
        "element-with-namespace.axml",
        edit(&|b| {
            put32(b, ATTR_EXT, 3);
            put32(b, END_EL + 16, 3);
        }),
    ));
    out.push((
        "unknown-root-node.axml",
        edit(&|b| put16(b, START_NS, 0x0150)),
    ));
    out.push(("text-before-manifest.axml", {
        let mut b = ex[..START_EL].to_vec();
        // CDATA: data "1.0" (#8), typed value TYPE_NULL.
        b.extend(hex(
            "0401 1000 1c000000 01000000 ffffffff 08000000 0800 00 00 00000000",
        ));
        b.extend(&ex[START_EL..]);
        fix_size(b)
    }));
    out.push(("version-code-12abc.axml", string_version_code("12abc")));
    out.push((
        "version-code-over-u32.axml",
        string_version_code("4294967296"),
    ));
    out.push((
        "version-code-float.axml",
        edit(&|b| b[ATTR_VERSION_CODE + 15] = 0x04),
    ));
    out.push(("end-tag-missing.axml", {
        let mut b = ex[..END_EL].to_vec();
        b.extend(&ex[END_NS..]);
        fix_size(b)
    }));
    out.push(("end-tag-mismatch.axml", edit(&|b| put32(b, END_EL + 20, 4))));
    out.push(("second-root-element.axml", {
        let mut b = ex[..END_NS].to_vec();
        b.extend(&ex[START_EL..END_NS]);
        b.extend(&ex[END_NS..]);
        fix_size(b)
    }));
    out.push(("nesting-10000-deep.axml", deep_nesting(10_000)));
    out.push(("no-root-element.axml", {
        let mut b = ex[..START_EL].to_vec();
        b.extend(&ex[END_NS..]);
        fix_size(b)
    }));
    out.push(("no-nodes.axml", fix_size(ex[..START_NS].to_vec())));
    out
}

/// A fresh, empty temp dir for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("axml-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a tool, panicking with a `make setup` hint when it cannot be started.
pub fn run(cmd: &mut Command, install: &str) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} ({e}): run `make setup` (it installs {install})",
            cmd.get_program()
        )
    });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `value` as the writer and aapt2 order attributes, for comparing trees.
pub fn sorted(mut e: Element) -> Element {
    e.attributes
        .sort_by(|a, b| match (a.resource_id, b.resource_id) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)),
        });
    e.children = e.children.into_iter().map(sorted).collect();
    e
}

pub fn int(v: u32) -> Value {
    Value::IntDec(v)
}
