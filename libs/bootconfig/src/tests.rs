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
