//! The worked example byte for byte, writer rules, and write → parse round trips (UTF-8 and
//! UTF-16 pools, ASCII and non-ASCII text).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use axml::{
    attr, parse_document, parse_manifest, write_document, write_manifest, Attribute, Element,
    Error, ManifestInfo, ManifestSpec, PoolEncoding, Value, ANDROID_NS,
};
use common::{int, sorted, worked_example, worked_example_spec};

#[test]
fn worked_example_parses() {
    let b = worked_example();
    let info = parse_manifest(&b).unwrap();
    assert_eq!(
        info,
        ManifestInfo {
            package: "com.example.vm".into(),
            version_code: 4_294_967_303,
        }
    );
    let root = parse_document(&b).unwrap();
    let mut expected = Element::new("manifest");
    expected.attributes = vec![
        Attribute::android("versionCode", attr::VERSION_CODE, int(7)),
        Attribute::string(
            Some(ANDROID_NS),
            "versionName",
            Some(attr::VERSION_NAME),
            "1.0",
        ),
        Attribute::android("versionCodeMajor", attr::VERSION_CODE_MAJOR, int(1)),
        Attribute::string(None, "package", None, "com.example.vm"),
    ];
    assert_eq!(root, expected);
}

#[test]
fn writer_reproduces_the_worked_example_byte_for_byte() {
    let ours = write_manifest(&worked_example_spec());
    let theirs = worked_example();
    if ours != theirs {
        let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        panic!(
            "differs at {at:?} (lengths {} / {})",
            ours.len(),
            theirs.len()
        );
    }
    assert_eq!(
        write_manifest(&worked_example_spec()),
        ours,
        "deterministic"
    );
}

#[test]
fn spec_new_splits_the_long_version_code() {
    let s = ManifestSpec::new("p", 0x0000_0002_0000_0003);
    assert_eq!((s.version_code, s.version_code_major), (3, Some(2)));
    assert_eq!(s.long_version_code(), 0x0000_0002_0000_0003);
    let s = ManifestSpec::new("p", 42);
    assert_eq!((s.version_code, s.version_code_major), (42, None));
    let s = ManifestSpec::new("p", u64::MAX);
    assert_eq!(
        (s.version_code, s.version_code_major),
        (u32::MAX, Some(u32::MAX))
    );
}

fn specs() -> Vec<ManifestSpec> {
    let full = |package: &str, code: u64, name: &str| {
        let mut s = ManifestSpec::new(package, code);
        s.version_name = Some(name.into());
        s.min_sdk_version = Some(33);
        s.target_sdk_version = Some(35);
        s.has_code = Some(true);
        s
    };
    let mut no_code = full("com.example.nocode", 1, "1");
    no_code.has_code = Some(false);
    no_code.target_sdk_version = None;
    let mut zero_major = ManifestSpec::new("com.example.zero", 5);
    zero_major.version_code_major = Some(0);
    vec![
        ManifestSpec::new("com.example.vm", 7),
        worked_example_spec(),
        full("com.example.app", u64::MAX, "2.0.1"),
        full("com.exämple.日本", 0x7_0000_0001, "1.0-β 🚀"),
        // Two-byte lengths in the UTF-8 pool (u16len 200, u8len 400).
        full(&"é".repeat(200), 9, &"x".repeat(0x90)),
        full("", 0, ""),
        no_code,
        zero_major,
    ]
}

#[test]
fn manifests_round_trip_in_both_encodings() {
    for spec in specs() {
        let utf8 = write_manifest(&spec);
        let utf16 = write_document(&spec.to_element(), PoolEncoding::Utf16);
        assert_eq!(utf8[8 + 17] & 1, 1, "UTF8_FLAG");
        assert_eq!(utf16[8 + 17] & 1, 0, "UTF-16 pool");
        for bytes in [&utf8, &utf16] {
            assert_eq!(bytes.len() % 4, 0);
            let info = parse_manifest(bytes).unwrap();
            assert_eq!(info.package, spec.package);
            assert_eq!(info.version_code, spec.long_version_code());
            let root = parse_document(bytes).unwrap();
            assert_eq!(root, sorted(spec.to_element()), "{spec:?}");
            assert!(axml::fuzz_entry(bytes));
        }
    }
}

/// (pool flags, strings) of a document, read straight from the bytes.
fn pool_strings(b: &[u8]) -> Vec<(usize, usize, Vec<u8>)> {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let count = u32_at(8 + 8);
    let start = 8 + u32_at(8 + 20);
    (0..count)
        .map(|i| {
            let mut p = start + u32_at(8 + 28 + 4 * i);
            let mut len = || {
                let first = b[p] as usize;
                p += 1;
                if first & 0x80 != 0 {
                    p += 1;
                    (first & 0x7f) << 8 | b[p - 1] as usize
                } else {
                    first
                }
            };
            let (u16len, u8len) = (len(), len());
            (u16len, u8len, b[p..p + u8len].to_vec())
        })
        .collect()
}

#[test]
fn utf8_pool_lengths_for_non_ascii_text() {
    let mut spec = ManifestSpec::new("com.exämple.日本", 1);
    spec.version_name = Some("🚀".into());
    let strings = pool_strings(&write_manifest(&spec));
    let find = |s: &str| {
        let f = strings.iter().find(|(_, _, b)| b == s.as_bytes()).unwrap();
        (f.0, f.1)
    };
    assert_eq!(find("com.exämple.日本"), (14, 19));
    assert_eq!(find("🚀"), (2, 4));
    let long = "é".repeat(200);
    let strings = pool_strings(&write_manifest(&ManifestSpec::new(&long, 1)));
    let f = strings.iter().find(|s| s.2 == long.as_bytes()).unwrap();
    assert_eq!((f.0, f.1), (200, 400));
}

#[test]
fn writer_rules() {
    let mut spec = worked_example_spec();
    spec.min_sdk_version = Some(33);
    spec.target_sdk_version = Some(34);
    spec.has_code = Some(true);
    let b = write_manifest(&spec);
    // Strings that carry resource IDs come first, in ID order, and the map covers exactly them.
    let strings = pool_strings(&b);
    let names: Vec<_> = strings[..6]
        .iter()
        .map(|s| String::from_utf8(s.2.clone()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "hasCode",
            "minSdkVersion",
            "versionCode",
            "versionName",
            "targetSdkVersion",
            "versionCodeMajor"
        ]
    );
    let map_at = 8 + u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    assert_eq!(&b[map_at..map_at + 8], &common::hex("8001 0800 20000000"));
    let ids: Vec<u32> = b[map_at + 8..map_at + 32]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            attr::HAS_CODE,
            attr::MIN_SDK_VERSION,
            attr::VERSION_CODE,
            attr::VERSION_NAME,
            attr::TARGET_SDK_VERSION,
            attr::VERSION_CODE_MAJOR
        ]
    );
    // Every attribute: Res_value.size 8, res0 0; strings have rawValue = data; true = 0xffffffff.
    let mut pos = map_at + 32;
    let mut seen_true = false;
    while pos < b.len() {
        let ty = u16::from_le_bytes([b[pos], b[pos + 1]]);
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if ty == 0x0102 {
            let count = u16::from_le_bytes([b[pos + 28], b[pos + 29]]) as usize;
            for i in 0..count {
                let a = &b[pos + 36 + 20 * i..pos + 56 + 20 * i];
                assert_eq!(&a[12..15], &[8, 0, 0]);
                let raw = &a[8..12];
                let data = &a[16..20];
                match a[15] {
                    0x03 => assert_eq!(raw, data),
                    0x10 => assert_eq!(raw, [0xff; 4]),
                    0x12 => {
                        assert_eq!(data, [0xff; 4]);
                        seen_true = true;
                    }
                    t => panic!("type {t:#x}"),
                }
            }
        }
        pos += size;
    }
    assert!(seen_true);
}

#[test]
fn version_codes_as_strings_follow_strtoul_base_0() {
    for (text, expected) in [
        ("7", Ok(7u32)),
        ("0x10", Ok(16)),
        (" 012", Ok(10)),
        ("4294967295", Ok(u32::MAX)),
        ("", Ok(0)),
        ("12abc", Err(())),
        ("4294967296", Err(())),
        ("-1", Err(())),
        ("0x", Err(())),
    ] {
        let r = parse_manifest(&common::string_version_code(text));
        match (r, expected) {
            (Ok(info), Ok(v)) => assert_eq!(info.version_code, u64::from(v), "{text:?}"),
            (Err(Error::BadVersionCode(s)), Err(())) => assert_eq!(s, text),
            (r, e) => panic!("{text:?}: {r:?}, expected {e:?}"),
        }
    }
}

#[test]
fn version_code_int_hex_and_defaults() {
    let mut root = Element::new("manifest");
    root.attributes.push(Attribute::android(
        "versionCode",
        attr::VERSION_CODE,
        Value::IntHex(0x10),
    ));
    root.attributes.push(Attribute::android(
        "versionCodeMajor",
        attr::VERSION_CODE_MAJOR,
        Value::IntHex(2),
    ));
    let info = parse_manifest(&write_document(&root, PoolEncoding::Utf8)).unwrap();
    assert_eq!(
        info,
        ManifestInfo {
            package: String::new(),
            version_code: 0x2_0000_0010
        }
    );
    // No attributes at all: "" and 0.
    let empty = write_document(&Element::new("manifest"), PoolEncoding::Utf16);
    assert_eq!(parse_manifest(&empty).unwrap(), ManifestInfo::default());
}

#[test]
fn manifest_reader_matches_names_and_namespaces_not_resource_ids() {
    let mut root = Element::new("manifest");
    // Right name, no resource ID: still read (libapkmanifest ignores the map).
    root.attributes.push(Attribute {
        resource_id: None,
        ..Attribute::android("versionCode", 0, int(3))
    });
    // Wrong namespace: ignored.
    root.attributes.push(Attribute {
        namespace: Some("urn:other".into()),
        ..Attribute::android("versionCodeMajor", attr::VERSION_CODE_MAJOR, int(9))
    });
    // `package` in the android namespace: ignored; the plain one wins.
    root.attributes.push(Attribute::string(
        Some(ANDROID_NS),
        "package",
        None,
        "wrong",
    ));
    root.attributes
        .push(Attribute::string(None, "package", None, "right"));
    let info = parse_manifest(&write_document(&root, PoolEncoding::Utf8)).unwrap();
    assert_eq!(
        info,
        ManifestInfo {
            package: "right".into(),
            version_code: 3
        }
    );
}

#[test]
fn unreadable_attribute_names_are_ignored_like_libandroidfw() {
    // Point versionCode's namespace at string 999: AOSP reads the namespace as "" and skips
    // the attribute; the tree reader reports the bad index.
    let mut b = worked_example();
    common::put32(&mut b, common::ATTR_VERSION_CODE, 999);
    assert_eq!(parse_manifest(&b).unwrap().version_code, 0x1_0000_0000);
    assert_eq!(parse_document(&b), Err(Error::StringIndex(999)));
}

#[test]
fn generic_documents_round_trip() {
    let mut root = Element::new("resources");
    let mut child = Element::new("item");
    child.namespace = Some("urn:x".into());
    child.attributes = vec![
        Attribute::android("name", attr::NAME, Value::String("n".into())),
        Attribute {
            raw_value: None,
            ..Attribute::string(None, "a", None, "v")
        },
        Attribute {
            value: Value::Null,
            ..Attribute::string(None, "b", None, "")
        },
        Attribute {
            value: Value::Reference(0x7f01_0000),
            ..Attribute::string(None, "c", None, "@x")
        },
        Attribute {
            value: Value::Other {
                data_type: 0x04,
                data: 0x3f80_0000,
            },
            ..Attribute::string(None, "d", None, "1.0")
        },
        Attribute::android("hasCode", attr::HAS_CODE, Value::Boolean(false)),
    ];
    child.children.push(Element::new("leaf"));
    root.children.push(child.clone());
    root.children.push(child);
    for enc in [PoolEncoding::Utf8, PoolEncoding::Utf16] {
        let b = write_document(&root, enc);
        assert_eq!(parse_document(&b).unwrap(), sorted(root.clone()));
        assert!(axml::fuzz_entry(&b));
        // Not a manifest.
        assert_eq!(
            parse_manifest(&b),
            Err(Error::NotManifest("resources".into()))
        );
    }
}

#[test]
fn trailing_bytes_after_the_xml_chunk_are_ignored() {
    let mut b = worked_example();
    b.extend([0xde, 0xad, 0xbe]);
    assert_eq!(parse_manifest(&b).unwrap().version_code, 4_294_967_303);
    assert!(parse_document(&b).is_ok());
}

#[test]
fn many_references_to_a_long_string_hit_the_budget() {
    // 3300 attributes x a 32 KiB string = 100 MiB of copies > MAX_STRING_BYTES.
    let long = "a".repeat(0x7fff);
    let mut root = Element::new("manifest");
    for i in 0..3300 {
        root.attributes
            .push(Attribute::string(None, &format!("a{i}"), None, &long));
    }
    let b = write_document(&root, PoolEncoding::Utf8);
    assert_eq!(parse_document(&b), Err(Error::TooLarge));
    assert!(parse_manifest(&b).is_ok());
    assert!(axml::fuzz_entry(&b));
}

#[test]
fn many_elements_are_refused() {
    let mut b = common::hex("0300 0800 00000000");
    b.extend(common::hex(
        "0100 1c00 2c000000 01000000 00000000 00010000 20000000 00000000 00000000",
    ));
    b.extend(b"\x08\x08manifest\x00\x00");
    b.extend(common::hex(
        "0201 1000 24000000 01000000 ffffffff ffffffff 00000000 1400 1400 0000 0000 0000 0000",
    ));
    for _ in 0..axml::MAX_ELEMENTS {
        b.extend(common::hex(
            "0201 1000 24000000 01000000 ffffffff ffffffff 00000000 1400 1400 0000 0000 0000 0000",
        ));
        b.extend(common::hex(
            "0301 1000 18000000 01000000 ffffffff ffffffff 00000000",
        ));
    }
    let b = common::fix_size(b);
    assert_eq!(parse_document(&b), Err(Error::TooManyElements));
    assert_eq!(parse_manifest(&b).unwrap(), ManifestInfo::default());
}

#[test]
fn attributes_are_found_through_attribute_start() {
    // Android 15's optional 8-byte ResXMLTreeFlagExt between attrExt and the attributes.
    let ex = worked_example();
    let mut b = ex[..common::ATTR_VERSION_CODE].to_vec();
    b.extend([0u8; 8]);
    b.extend(&ex[common::ATTR_VERSION_CODE..]);
    common::put32(&mut b, common::START_EL + 4, 116 + 8);
    common::put16(&mut b, common::ATTR_EXT + 8, 28);
    let b = common::fix_size(b);
    assert_eq!(parse_manifest(&b).unwrap().version_code, 4_294_967_303);
    assert_eq!(parse_document(&b).unwrap(), parse_document(&ex).unwrap());
}
