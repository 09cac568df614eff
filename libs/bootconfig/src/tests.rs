#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use super::*;

/// The vbmeta part of Microdroid's bootconfig (`microdroid/initrd/gen_vbmeta_bootconfig.py` in
/// AOSP packages/modules/Virtualization) plus bootconfig.common.
const MICRODROID: &str = r#"androidboot.first_stage_console = 1
androidboot.hardware = microdroid
kernel.8250.nr_uarts = 4
androidboot.vbmeta.size = 4608
androidboot.vbmeta.digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
androidboot.vbmeta.hash_alg = "sha256"
androidboot.vbmeta.avb_version = "1.0"
androidboot.veritymode = "enforcing"
androidboot.vbmeta.invalidate_on_error = "yes"
androidboot.vbmeta.device_state = "locked"
androidboot.vbmeta.device = "/dev/block/by-name/vbmeta_a"
androidboot.slot_suffix = "_a"
androidboot.force_normal_boot = "1"
androidboot.verifiedbootstate = "green"
"#;

#[test]
fn parses_microdroid_bootconfig() -> Result<()> {
    let bc = Bootconfig::parse(MICRODROID)?;
    assert_eq!(bc.len(), 14);
    assert_eq!(bc.get("androidboot.first_stage_console"), Some("1"));
    assert_eq!(
        bc.get("androidboot.vbmeta.device"),
        Some("/dev/block/by-name/vbmeta_a")
    );
    assert_eq!(bc.get("androidboot.vbmeta.size"), Some("4608"));
    assert_eq!(bc.get("androidboot.missing"), None);
    // Serialized form is /proc/bootconfig's: everything quoted.
    let text = bc.to_text()?;
    assert!(text.starts_with("androidboot.first_stage_console = \"1\"\n"));
    assert_eq!(Bootconfig::parse(&text)?, bc);
    Ok(())
}

#[test]
fn syntax_variants() -> Result<()> {
    let bc = Bootconfig::parse("# comment\n a.b = x ; c = 'it\"s' # trailing\nd = \"1\", \"2\",\n  '3'\ne\nd += 4\nf := 5\nf := 6\n")?;
    assert_eq!(bc.get("a.b"), Some("x"));
    assert_eq!(bc.get("c"), Some("it\"s"));
    assert_eq!(bc.get_all("d").unwrap(), ["1", "2", "3", "4"]);
    assert_eq!(bc.get_all("e").unwrap(), [] as [String; 0]);
    assert_eq!(bc.get("f"), Some("6"));
    let text = bc.to_text()?;
    assert_eq!(
        text,
        "a.b = \"x\"\nc = 'it\"s'\nd = \"1\", \"2\", \"3\", \"4\"\ne\nf = \"6\"\n"
    );
    assert_eq!(Bootconfig::parse(&text)?, bc);
    Ok(())
}

#[test]
fn syntax_errors() {
    assert!(matches!(
        Bootconfig::parse("a = \"x\na = 1"),
        Err(Error::Syntax { line: 2, .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a = 1\na = 2"),
        Err(Error::DuplicateKey { line: 2, .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a..b = 1"),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        Bootconfig::parse("= 1"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a { b = 1 }"),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a = 1 2"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a + 1"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Bootconfig::parse("a = x\u{1}"),
        Err(Error::Syntax { .. })
    ));
    assert!(matches!(
        Bootconfig::parse_bytes(b"a = \xff"),
        Err(Error::NotUtf8)
    ));
}

#[test]
fn set_and_values() -> Result<()> {
    let mut bc = Bootconfig::new();
    bc.set("k", "1")?;
    bc.set("j", "2")?;
    bc.set("k", "3")?;
    bc.append("j", "4")?;
    assert_eq!(bc.to_text()?, "k = \"3\"\nj = \"2\", \"4\"\n");
    assert!(matches!(
        bc.set("bad key", "x"),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        bc.set("k", "a\"b'c"),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        bc.set("k", "a\nb"),
        Err(Error::InvalidValue { .. })
    ));
    assert!(bc.remove("k"));
    assert!(!bc.remove("k"));
    Ok(())
}

#[test]
fn attach_matches_avf_layout() -> Result<()> {
    // initrd 5 bytes + bootconfig 6 bytes = 11 → 1 byte of padding; size = 7.
    let blob = attach(b"12345", b"a = 1\n")?;
    assert_eq!(blob.len(), 5 + 6 + 1 + 4 + 4 + 12);
    assert_eq!(&blob[..11], b"12345a = 1\n");
    assert_eq!(blob[11], 0);
    assert_eq!(&blob[12..16], &7u32.to_le_bytes());
    let sum: u32 = b"a = 1\n".iter().map(|&b| u32::from(b)).sum();
    assert_eq!(&blob[16..20], &sum.to_le_bytes());
    assert_eq!(&blob[20..], MAGIC);
    let (initrd, bc) = detach(&blob)?;
    assert_eq!(initrd, b"12345");
    assert_eq!(bc, b"a = 1\n\0");
    assert_eq!(read_attached(&blob)?.get("a"), Some("1"));
    // Already aligned: no padding.
    let blob = attach(b"1234", b"a=1\n")?;
    assert_eq!(&blob[8..12], &4u32.to_le_bytes());
    // Kernel tolerance: up to 3 bytes after the magic.
    let mut padded = blob.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(detach(&padded)?.0, b"1234");
    Ok(())
}

#[test]
fn detach_errors() -> Result<()> {
    let blob = attach(b"initrd", MICRODROID.as_bytes())?;
    assert!(matches!(detach(&blob[..10]), Err(Error::Truncated { .. })));
    let mut bad = blob.clone();
    *bad.last_mut().unwrap() = b'X';
    assert!(matches!(detach(&bad), Err(Error::BadMagic)));
    let mut bad = blob.clone();
    bad[10] ^= 1;
    assert!(matches!(detach(&bad), Err(Error::ChecksumMismatch { .. })));
    let n = blob.len();
    let mut bad = blob.clone();
    bad[n - 20..n - 16].copy_from_slice(&(n as u32).to_le_bytes());
    assert!(matches!(detach(&bad), Err(Error::SizeOutOfRange(_))));
    assert!(matches!(
        attach(b"", &vec![b'a'; 40000]),
        Err(Error::SizeOutOfRange(_))
    ));
    Ok(())
}

/// The editing API: set keeps a key's place, append adds values, remove says whether the key
/// was there, iter/len/is_empty see exactly the keys present.
#[test]
fn editing_keeps_order_and_reports_what_it_did() {
    let mut b = Bootconfig::new();
    assert!(b.is_empty());
    assert_eq!(b.len(), 0);
    assert_eq!(b.iter().count(), 0);
    b.set("a.x", "1").unwrap();
    b.set("b", "2").unwrap();
    b.append("a.x", "3").unwrap();
    b.set("b", "4").unwrap();
    assert!(!b.is_empty());
    assert_eq!(b.len(), 2);
    let entries: Vec<(String, Vec<String>)> =
        b.iter().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
    assert_eq!(
        entries,
        [
            ("a.x".to_owned(), vec!["1".to_owned(), "3".to_owned()]),
            ("b".to_owned(), vec!["4".to_owned()]),
        ]
    );
    assert!(b.remove("a.x"));
    assert!(!b.remove("a.x"));
    assert!(!b.remove("nope"));
    assert_eq!(b.len(), 1);
    assert_eq!(b.get("b"), Some("4"));
    assert!(b.remove("b"));
    assert!(b.is_empty());
}

/// Either brace starts a key tree, which is refused (not just `{`).
#[test]
fn a_closing_brace_alone_is_a_key_tree_too() {
    for text in ["a = 1\n}\n", "a = 1\n{\n"] {
        assert!(
            matches!(
                Bootconfig::parse(text),
                Err(Error::Unsupported {
                    line: 2,
                    what: "key trees ({ })"
                })
            ),
            "{text:?}"
        );
    }
}

/// The size limits of attach and detach are inclusive (`MAX_SIZE` bytes fit, one more does
/// not), and the smallest blob, a trailer alone, detaches into two empty parts.
#[test]
fn attach_and_detach_limits_are_exact() {
    let key_line = |len: usize| {
        let mut text = b"k = \"".to_vec();
        text.resize(len - 2, b'v');
        text.extend_from_slice(b"\"\n");
        text
    };
    // A 1-byte initrd: MAX_SIZE bytes of bootconfig then need no padding, so the size field
    // is exactly MAX_SIZE.
    let fits = key_line(MAX_SIZE);
    let blob = attach(&[7], &fits).unwrap();
    let (initrd, bc) = detach(&blob).unwrap();
    assert_eq!(initrd, [7]);
    assert_eq!(bc.len(), MAX_SIZE);
    assert!(matches!(
        attach(&[], &key_line(MAX_SIZE + 1)),
        Err(Error::SizeOutOfRange(_))
    ));
    // A trailer claiming one byte more than the limit, with that many bytes before it.
    let mut too_big = vec![b' '; MAX_SIZE + 1];
    too_big.extend_from_slice(&((MAX_SIZE + 1) as u32).to_le_bytes());
    too_big.extend_from_slice(&checksum(&vec![b' '; MAX_SIZE + 1]).to_le_bytes());
    too_big.extend_from_slice(MAGIC);
    assert!(matches!(detach(&too_big), Err(Error::SizeOutOfRange(_))));

    let trailer_only = attach(&[], &[]).unwrap();
    assert_eq!(trailer_only.len(), TRAILER_SIZE);
    let (initrd, bc) = detach(&trailer_only).unwrap();
    assert!(initrd.is_empty() && bc.is_empty());
    assert!(matches!(
        detach(&trailer_only[1..]),
        Err(Error::Truncated { .. })
    ));
}
