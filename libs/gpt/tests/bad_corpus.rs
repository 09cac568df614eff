//! The bad-input corpus in `testdata/bad/` (the fuzz target's seeds): one assertion per file
//! of the specific error `read_partitions` gives. Regenerate with
//! `cargo test -p gpt_disk --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use gpt_disk::{read_partitions, GptError, GptLayout, PartitionSpec};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

/// A good disk's first 34 sectors: protective MBR, header at LBA 1, entries from LBA 2.
fn good() -> Vec<u8> {
    let guid = uuid::Uuid::from_u128(0x1234);
    GptLayout::new(guid, vec![PartitionSpec::new(guid, "payload", 8192)])
        .unwrap()
        .header()
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes the entry-array CRC, then the header CRC.
fn fix_crcs(b: &mut [u8]) {
    let entries = crc32fast::hash(&b[1024..1024 + 128 * 128]);
    set_u32(b, 512 + 88, entries);
    let size = u32::from_le_bytes(b[512 + 12..512 + 16].try_into().unwrap()) as usize;
    let mut header = b[512..512 + size.min(512)].to_vec();
    header[16..20].fill(0);
    let crc = crc32fast::hash(&header);
    set_u32(b, 512 + 16, crc);
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let g = good();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = g.clone();
        f(&mut b);
        b
    };
    vec![
        ("short.bin", g[..600].to_vec()),
        ("no_signature.bin", with(&|b| b[512..520].fill(0))),
        (
            "header_size.bin",
            with(&|b| {
                set_u32(b, 512 + 12, 1000);
            }),
        ),
        ("header_crc.bin", with(&|b| b[512 + 56] ^= 1)),
        (
            "entry_size.bin",
            with(&|b| {
                set_u32(b, 512 + 84, 64);
                fix_crcs(b);
            }),
        ),
        ("entries_past_end.bin", g[..1024 + 512].to_vec()),
        ("entries_crc.bin", with(&|b| b[1024 + 60] ^= 1)),
        (
            "entry_out_of_range.bin",
            with(&|b| {
                b[1024 + 40..1024 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
                fix_crcs(b);
            }),
        ),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn each_file_gets_its_error() {
    let err =
        |name: &str| read_partitions(&std::fs::read(dir().join(name)).unwrap()).expect_err(name);
    assert_eq!(
        err("short.bin"),
        GptError::NotGpt("shorter than two sectors")
    );
    assert_eq!(
        err("no_signature.bin"),
        GptError::NotGpt("no \"EFI PART\" signature at LBA 1")
    );
    assert_eq!(
        err("header_size.bin"),
        GptError::NotGpt("header size out of range")
    );
    assert!(matches!(
        err("header_crc.bin"),
        GptError::BadCrc { what: "header", .. }
    ));
    assert_eq!(
        err("entry_size.bin"),
        GptError::NotGpt("unsupported entry size or count")
    );
    assert_eq!(
        err("entries_past_end.bin"),
        GptError::NotGpt("entry array past the end of the data")
    );
    assert!(matches!(
        err("entries_crc.bin"),
        GptError::BadCrc {
            what: "entry array",
            ..
        }
    ));
    assert_eq!(
        err("entry_out_of_range.bin"),
        GptError::EntryOutOfRange { index: 0 }
    );
    // The generator's good disk reads back.
    assert_eq!(read_partitions(&good()).unwrap()[0].label, "payload");
}
