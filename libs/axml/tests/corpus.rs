//! Bad inputs (`testdata/bad/`, see its README): one test per file, asserting what
//! `parse_manifest` (AOSP libapkmanifest's rules) and `parse_document` (the whole tree) return.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use axml::{Error, ANDROID_NS};

fn read(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(common::manifest_dir().join("testdata/bad").join(name)).unwrap();
    assert!(axml::fuzz_entry(&bytes), "{name}: fuzz_entry");
    bytes
}

macro_rules! bad {
    ($test:ident, $file:expr,
     manifest: $m:pat $(if $mg:expr)?,
     document: $d:pat $(if $dg:expr)?) => {
        #[test]
        fn $test() {
            let bytes = read($file);
            match axml::parse_manifest(&bytes) {
                $m $(if $mg)? => {}
                other => panic!("{}: parse_manifest gave {:?}", $file, other),
            }
            match axml::parse_document(&bytes) {
                $d $(if $dg)? => {}
                other => panic!("{}: parse_document gave {:?}", $file, other),
            }
        }
    };
    ($test:ident, $file:expr, $both:pat $(if $g:expr)?) => {
        bad!($test, $file, manifest: $both $(if $g)?, document: $both $(if $g)?);
    };
}

bad!(not_xml, "not-xml-zip.axml", Err(Error::NotXml(0x4b50)));
bad!(
    truncated_header,
    "truncated-header.axml",
    Err(Error::Truncated {
        offset: 0,
        needed: 8,
        available: 6
    })
);
bad!(
    size_past_end,
    "size-past-end.axml",
    Err(Error::Truncated {
        offset: 0,
        needed: 428,
        available: 420
    })
);
bad!(
    size_not_multiple_of_4,
    "size-not-multiple-of-4.axml",
    Err(Error::Misaligned { offset: 0x108 })
);
bad!(
    pool_header_too_small,
    "pool-header-too-small.axml",
    Err(Error::BadChunk { offset: 8, .. })
);
bad!(
    pool_last_unit_not_zero,
    "pool-last-unit-not-zero.axml",
    Err(Error::BadStringPool(ref m)) if m.contains("last string")
);
bad!(
    pool_offset_out_of_range,
    "pool-offset-out-of-range.axml",
    Err(Error::BadStringPool(ref m)) if m.contains("string 7 starts past")
);
bad!(
    string_without_nul,
    "string-without-nul.axml",
    Err(Error::BadStringPool(ref m)) if m.contains("string 7 is not NUL-terminated")
);
bad!(
    utf8_u16len_wrong,
    "utf8-u16len-wrong.axml",
    Err(Error::BadStringPool(ref m)) if m.contains("declares 13 UTF-16 units but has 14")
);
bad!(bad_utf8, "bad-utf8.axml", Err(Error::BadUtf8(7)));
bad!(bad_utf16, "bad-utf16.axml", Err(Error::BadUtf16(7)));
bad!(
    attribute_string_index,
    "attribute-string-index.axml",
    Err(Error::StringIndex(99))
);
bad!(
    package_no_raw_value,
    "package-no-raw-value.axml",
    manifest: Err(Error::MissingStringValue(ref n)) if n == "package",
    document: Ok(ref e) if e.attribute(None, "package").unwrap().raw_value.is_none()
);
bad!(
    attribute_start_past_node,
    "attribute-start-past-node.axml",
    Err(Error::BadChunk {
        offset: 0x108,
        reason: "attributes run past the node"
    })
);
bad!(
    attribute_size_too_small,
    "attribute-size-too-small.axml",
    Err(Error::BadChunk {
        offset: 0x108,
        reason: "attributeSize smaller than 20"
    })
);
bad!(
    node_smaller_than_extension,
    "node-smaller-than-extension.axml",
    Err(Error::BadChunk {
        offset: 0xf0,
        reason: "node smaller than its extension"
    })
);
bad!(
    first_element_not_manifest,
    "first-element-not-manifest.axml",
    manifest: Err(Error::NotManifest(ref n)) if n == "application",
    document: Ok(ref e) if e.name == "application"
);
bad!(
    element_with_namespace,
    "element-with-namespace.axml",
    manifest: Err(Error::NotManifest(ref n))
        if *n == format!("{{{ANDROID_NS}}}manifest"),
    document: Ok(ref e) if e.namespace.as_deref() == Some(ANDROID_NS)
);
bad!(
    unknown_root_node,
    "unknown-root-node.axml",
    manifest: Err(Error::UnexpectedEvent(_)),
    document: Ok(_)
);
bad!(
    text_before_manifest,
    "text-before-manifest.axml",
    manifest: Err(Error::UnexpectedEvent("text before <manifest>")),
    document: Ok(_)
);
bad!(
    version_code_12abc,
    "version-code-12abc.axml",
    manifest: Err(Error::BadVersionCode(ref s)) if s == "12abc",
    document: Ok(_)
);
bad!(
    version_code_over_u32,
    "version-code-over-u32.axml",
    manifest: Err(Error::BadVersionCode(ref s)) if s == "4294967296",
    document: Ok(_)
);
bad!(
    version_code_float,
    "version-code-float.axml",
    manifest: Err(Error::BadVersionCode(ref s)) if s == "data type 0x04",
    document: Ok(_)
);
bad!(
    end_tag_missing,
    "end-tag-missing.axml",
    manifest: Ok(ref m) if m.version_code == 0x1_0000_0007,
    document: Err(Error::Unbalanced)
);
bad!(
    end_tag_mismatch,
    "end-tag-mismatch.axml",
    manifest: Ok(_),
    document: Err(Error::Unbalanced)
);
bad!(
    second_root_element,
    "second-root-element.axml",
    manifest: Ok(_),
    document: Err(Error::UnexpectedEvent("second root element"))
);
bad!(
    nesting_10000_deep,
    "nesting-10000-deep.axml",
    manifest: Ok(ref m) if *m == axml::ManifestInfo::default(),
    document: Err(Error::TooDeep)
);
bad!(
    no_root_element,
    "no-root-element.axml",
    Err(Error::NoRootElement)
);
bad!(no_nodes, "no-nodes.axml", Err(Error::NoRootElement));

#[test]
fn corpus_is_up_to_date_and_complete() {
    let dir = common::manifest_dir().join("testdata/bad");
    let here = include_str!("corpus.rs");
    let readme = std::fs::read_to_string(dir.join("../README.md")).unwrap();
    let expected = common::bad_corpus();
    for (name, bytes) in &expected {
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; run `cargo test -p axml -- --ignored`"));
        assert!(
            on_disk == *bytes,
            "stale: {name}; run `cargo test -p axml -- --ignored`"
        );
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} not in the README"
        );
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".axml") {
            assert!(
                here.contains(&format!("\"{name}\"")),
                "no test for bad/{name}"
            );
            assert!(
                expected.iter().any(|(n, _)| *n == name),
                "no generator for bad/{name}"
            );
        }
    }
}

/// Writes `testdata/bad/` from `common::bad_corpus`:
/// `cargo test -p axml --test corpus -- --ignored regenerate`.
#[test]
#[ignore]
fn regenerate_bad_corpus() {
    let dir = common::manifest_dir().join("testdata/bad");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in common::bad_corpus() {
        std::fs::write(dir.join(name), bytes).unwrap();
        println!("wrote testdata/bad/{name}");
    }
}

/// The fuzz entry point over the committed fuzz seeds.
#[test]
fn fuzz_entry_over_seeds() {
    let dir = common::manifest_dir().join("fuzz/seeds/axml");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(axml::fuzz_entry(&bytes));
        n += 1;
    }
    assert!(n >= 2);
}
