//! The reader's refusals and limits, each at its boundary, through the public API (the unit
//! tests beside `archive.rs` cover the well-formed archives). Offsets are APPNOTE.TXT's: end
//! record fields at +4 disk, +6 central directory disk, +8 entries here, +10 entries, +12
//! directory size, +16 directory offset, +20 comment length.

use std::io;

use crate::archive::{
    parse_central_directory, MAX_CENTRAL_DIRECTORY, MAX_DEFLATE_RATIO, MAX_ENTRIES,
    MAX_TRAILING_PADDING, RATIO_SLACK,
};
use crate::testzip::{zip_crate_archive, ZipBuilder};
use crate::{find_end_record, parse, read_central_directory, EndRecord, Source, ZipError};

fn parse_bytes(zip: &[u8]) -> Result<crate::Archive, ZipError> {
    parse(zip, zip.len() as u64)
}

fn two_entries() -> Vec<u8> {
    let mut b = ZipBuilder::new();
    b.stored("a.txt", b"hello");
    b.deflated("b.txt", &b"some text ".repeat(100));
    b.finish()
}

/// `zip` with the 16-bit little-endian field at `at` (from the end record's start) set.
fn patch_eocd16(zip: &[u8], at: usize, value: u16) -> Vec<u8> {
    let mut z = zip.to_vec();
    let eocd = z.len() - 22;
    z[eocd + at..eocd + at + 2].copy_from_slice(&value.to_le_bytes());
    z
}

fn patch_eocd32(zip: &[u8], at: usize, value: u32) -> Vec<u8> {
    let mut z = zip.to_vec();
    let eocd = z.len() - 22;
    z[eocd + at..eocd + at + 4].copy_from_slice(&value.to_le_bytes());
    z
}

/// Reads in pieces of at most 7 bytes, failing every other call with `Interrupted`.
struct Stuttering<'a> {
    data: &'a [u8],
    calls: std::cell::Cell<u64>,
}

impl Source for Stuttering<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get().is_multiple_of(2) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(7);
        self.data.read_at(&mut buf[..n], offset)
    }
}

/// Fails every read with EIO.
struct Failing;

impl Source for Failing {
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
        Err(io::Error::other("EIO"))
    }
}

#[test]
fn every_source_reads_the_same_archive() {
    let zip = two_entries();
    let from_slice = parse_bytes(&zip).unwrap();
    let from_vec = parse(&zip, zip.len() as u64).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    io::Write::write_all(&mut file, &zip).unwrap();
    let from_file = parse(&file, zip.len() as u64).unwrap();
    let stuttering = Stuttering {
        data: &zip,
        calls: std::cell::Cell::new(0),
    };
    let from_stuttering = parse(&stuttering, zip.len() as u64).unwrap();
    for other in [&from_vec, &from_file, &from_stuttering] {
        assert_eq!(other.entries, from_slice.entries);
    }
    assert!(matches!(
        parse(&Failing, zip.len() as u64),
        Err(ZipError::Io { .. })
    ));
}

#[test]
fn entries_know_directories_and_print_their_names() {
    let zip = zip_crate_archive(
        &[("dir/", vec![], false), ("dir/f", b"x".to_vec(), false)],
        false,
    );
    let a = parse_bytes(&zip).unwrap();
    assert!(a.entries[0].is_dir());
    assert!(!a.entries[1].is_dir());
    assert_eq!(a.entries[1].display_name(), "dir/f");
    let mut b = ZipBuilder::new();
    b.stored("caf\u{e9}", b"x").name = b"caf\xe9".to_vec();
    b.entries[0].local_name = Some(b"caf\xe9".to_vec());
    let a = parse_bytes(&b.finish()).unwrap();
    assert_eq!(a.entries[0].display_name(), "caf\u{fffd}");
}

#[test]
fn the_end_record_with_a_comment_and_padding() {
    let zip = two_entries();
    let mut with_comment = patch_eocd16(&zip, 20, 5);
    with_comment.extend_from_slice(b"hello");
    let end = find_end_record(with_comment.as_slice(), with_comment.len() as u64).unwrap();
    assert_eq!(end.archive_end(), with_comment.len() as u64);
    assert_eq!(end.eocd.len(), 27);
    assert_eq!(end.eocd_offset, zip.len() as u64 - 22);
    assert!(!end.zip64);
    // Zero padding after it, up to the limit.
    let mut padded = with_comment.clone();
    padded.resize(padded.len() + MAX_TRAILING_PADDING as usize, 0);
    let end = find_end_record(padded.as_slice(), padded.len() as u64).unwrap();
    assert_eq!(end.archive_end(), with_comment.len() as u64);
    padded.push(0);
    assert!(matches!(
        find_end_record(padded.as_slice(), padded.len() as u64),
        Err(ZipError::NoEndOfCentralDirectory)
    ));
    // One byte that is not padding after the record.
    let mut trailing = zip.clone();
    trailing.push(1);
    assert!(matches!(
        parse_bytes(&trailing),
        Err(ZipError::NoEndOfCentralDirectory)
    ));
    // A comment length running past the end of the file.
    let overrun = patch_eocd16(&zip, 20, 100);
    assert!(matches!(
        parse_bytes(&overrun),
        Err(ZipError::NoEndOfCentralDirectory)
    ));
}

#[test]
fn a_large_archive_is_found_from_its_end() {
    let mut b = ZipBuilder::new();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    b.stored("big.bin", &data);
    let zip = b.finish();
    let a = parse_bytes(&zip).unwrap();
    assert_eq!(a.entries[0].size, 300_000);
}

#[test]
fn saturated_end_record_fields_need_zip64_records() {
    let zip = two_entries();
    for (at, wide) in [
        (4, false),
        (6, false),
        (8, false),
        (10, false),
        (12, true),
        (16, true),
    ] {
        let bad = if wide {
            patch_eocd32(&zip, at, u32::MAX)
        } else {
            patch_eocd16(&zip, at, u16::MAX)
        };
        assert!(
            matches!(
                parse_bytes(&bad),
                Err(ZipError::BadZip64(
                    "EOCD fields are saturated but there is no zip64 locator"
                ))
            ),
            "field at {at}"
        );
    }
    for (at, value) in [(4, 1), (6, 1), (8, 1)] {
        assert!(
            matches!(
                parse_bytes(&patch_eocd16(&zip, at, value)),
                Err(ZipError::MultiDisk)
            ),
            "field at {at}"
        );
    }
}

fn zip64_archive() -> Vec<u8> {
    let mut b = ZipBuilder::new();
    b.stored("a.txt", b"hello");
    b.zip64_end = true;
    b.finish()
}

/// The zip64 end record (56 bytes) and its locator (20) sit right before the end record.
fn patch_zip64(zip: &[u8], at_from_end: usize, bytes: &[u8]) -> Vec<u8> {
    let mut z = zip.to_vec();
    let at = z.len() - at_from_end;
    z[at..at + bytes.len()].copy_from_slice(bytes);
    z
}

#[test]
fn zip64_end_records() {
    let zip = zip64_archive();
    let a = parse_bytes(&zip).unwrap();
    assert_eq!(a.entries[0].name, b"a.txt");
    let end = find_end_record(zip.as_slice(), zip.len() as u64).unwrap();
    assert!(end.zip64);
    assert_eq!(end.cd_end_limit, zip.len() as u64 - 22 - 20 - 56);
    assert_eq!(end.eocd_offset, zip.len() as u64 - 22);
    // Locator (22 + 20 bytes from the end): disk of the zip64 record at +4, its offset at +8,
    // the number of disks at +16.
    let locator = 22 + 20;
    let bad_disk = patch_zip64(&zip, locator - 4, &1u32.to_le_bytes());
    assert!(matches!(parse_bytes(&bad_disk), Err(ZipError::MultiDisk)));
    let two_disks = patch_zip64(&zip, locator - 16, &2u32.to_le_bytes());
    assert!(matches!(parse_bytes(&two_disks), Err(ZipError::MultiDisk)));
    let after = (zip.len() - 22 - 20 - 55) as u64;
    let overlapping = patch_zip64(&zip, locator - 8, &after.to_le_bytes());
    assert!(matches!(
        parse_bytes(&overlapping),
        Err(ZipError::BadZip64(
            "zip64 end record is not before its locator"
        ))
    ));
    // The zip64 end record (22 + 20 + 56 bytes from the end): signature, then disk at +16,
    // directory disk at +20, entries here at +24, entries at +32.
    let record = 22 + 20 + 56;
    let bad_sig = patch_zip64(&zip, record, &0u32.to_le_bytes());
    assert!(matches!(
        parse_bytes(&bad_sig),
        Err(ZipError::BadZip64("zip64 end record signature"))
    ));
    for (at, bytes) in [
        (16, &1u32.to_le_bytes()[..]),
        (20, &1u32.to_le_bytes()[..]),
        (24, &2u64.to_le_bytes()[..]),
    ] {
        let bad = patch_zip64(&zip, record - at, bytes);
        assert!(
            matches!(parse_bytes(&bad), Err(ZipError::MultiDisk)),
            "field at {at}"
        );
    }
}

#[test]
fn entry_counts_and_directory_sizes_at_their_limits() {
    for (count, too_many) in [(MAX_ENTRIES, false), (MAX_ENTRIES + 1, true)] {
        let mut b = ZipBuilder::new();
        b.stored("a", b"a");
        b.zip64_end = true;
        b.count_override = Some(count);
        let zip = b.finish();
        let err = parse_bytes(&zip).unwrap_err();
        assert_eq!(
            matches!(err, ZipError::TooManyEntries { .. }),
            too_many,
            "{count}: {err:?}"
        );
        assert_eq!(
            matches!(
                parse_central_directory(&[], count),
                Err(ZipError::TooManyEntries { .. })
            ),
            too_many
        );
    }
    // A directory larger than its region.
    let mut b = ZipBuilder::new();
    b.stored("a", b"a");
    let real = b.finish();
    let cd_size = u32::from_le_bytes(real[real.len() - 10..real.len() - 6].try_into().unwrap());
    let grown = patch_eocd32(&real, 12, cd_size + 1);
    assert!(matches!(
        parse_bytes(&grown),
        Err(ZipError::CentralDirectoryOutOfBounds { .. })
    ));
    // The size limit, before anything is read.
    let end = |size: u64| EndRecord {
        entries: 1,
        cd_size: size,
        cd_offset: 0,
        cd_end_limit: u64::MAX,
        eocd_offset: u64::MAX,
        eocd: Vec::new(),
        zip64: true,
    };
    assert!(matches!(
        read_central_directory(&[0u8; 64][..], &end(MAX_CENTRAL_DIRECTORY + 1)),
        Err(ZipError::CentralDirectoryTooLarge { .. })
    ));
    assert!(matches!(
        read_central_directory(&[0u8; 64][..], &end(MAX_CENTRAL_DIRECTORY)),
        Err(ZipError::Io { .. })
    ));
    // Bytes left over after the declared records.
    let start = u32::from_le_bytes(real[real.len() - 6..real.len() - 2].try_into().unwrap());
    let mut cd = real[start as usize..real.len() - 22].to_vec();
    cd.extend_from_slice(&[0; 5]);
    assert!(matches!(
        parse_central_directory(&cd, 1),
        Err(ZipError::EntryCountMismatch {
            declared: 1,
            trailing: 5
        })
    ));
}

/// One central record, by hand: `csize`, `size`, `lho` and `disk` as written, `made_by` and the
/// external attributes, and `extra`.
fn central_record(
    fields: (u32, u32, u32, u16),
    made_by: u16,
    external: u32,
    extra: &[u8],
) -> Vec<u8> {
    let (csize, size, lho, disk) = fields;
    let mut r = Vec::new();
    r.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    r.extend_from_slice(&made_by.to_le_bytes());
    r.extend_from_slice(&20u16.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // flags
    r.extend_from_slice(&0u16.to_le_bytes()); // stored
    r.extend_from_slice(&[0; 4]); // time, date
    r.extend_from_slice(&0u32.to_le_bytes()); // crc
    r.extend_from_slice(&csize.to_le_bytes());
    r.extend_from_slice(&size.to_le_bytes());
    r.extend_from_slice(&1u16.to_le_bytes()); // name length
    r.extend_from_slice(&(extra.len() as u16).to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // comment
    r.extend_from_slice(&disk.to_le_bytes());
    r.extend_from_slice(&0u16.to_le_bytes()); // internal
    r.extend_from_slice(&external.to_le_bytes());
    r.extend_from_slice(&lho.to_le_bytes());
    r.push(b'a');
    r.extend_from_slice(extra);
    r
}

#[test]
fn central_records_zip64_fields_and_modes() {
    let max = u32::MAX;
    for fields in [
        (max, 0, 0, 0),
        (0, max, 0, 0),
        (0, 0, max, 0),
        (0, 0, 0, 0xffff),
    ] {
        let record = central_record(fields, 0x0314, 0, &[]);
        assert!(
            matches!(
                parse_central_directory(&record, 1),
                Err(ZipError::BadZip64(
                    "saturated entry field without a zip64 extra"
                ))
            ),
            "{fields:?}"
        );
    }
    // The zip64 extra after another extra field; it holds the saturated fields in order.
    let mut extra = vec![0x55, 0x54, 5, 0, 1, 2, 3, 4, 5];
    extra.extend_from_slice(&[1, 0, 16, 0]);
    extra.extend_from_slice(&7u64.to_le_bytes());
    extra.extend_from_slice(&9u64.to_le_bytes());
    let record = central_record((max, 3, 0, 0), 0x0314, 0o100644 << 16, &extra);
    let e = &parse_central_directory(&record, 1).unwrap()[0];
    assert_eq!((e.compressed_size, e.size), (7, 3));
    assert_eq!(e.unix_mode, Some(0o100644));
    // A mode only counts when the entry was made on Unix (host 3).
    let record = central_record((0, 0, 0, 0), 0x0014, 0o100644 << 16, &[]);
    assert_eq!(
        parse_central_directory(&record, 1).unwrap()[0].unix_mode,
        None
    );
    let record = central_record((0, 0, 0, 0), 0x0314, 0, &[]);
    assert_eq!(
        parse_central_directory(&record, 1).unwrap()[0].unix_mode,
        None
    );
}

#[test]
fn local_headers_are_checked_against_the_directory() {
    // A long name: the first read of the header must cover it.
    let mut b = ZipBuilder::new();
    let long = "n".repeat(200);
    b.stored(&long, b"data");
    let a = parse_bytes(&b.finish()).unwrap();
    assert_eq!(a.entries[0].data_offset, 30 + 200);
    // Encrypted in the local header only (flags at +6 of the first local header).
    let mut zip = two_entries();
    zip[6] = 1;
    assert!(matches!(
        parse_bytes(&zip),
        Err(ZipError::LocalHeaderMismatch {
            field: "encryption flag",
            ..
        })
    ));
    // A local CRC that differs.
    let mut b = ZipBuilder::new();
    b.stored("a", b"data").local_crc = Some(7);
    assert!(matches!(
        parse_bytes(&b.finish()),
        Err(ZipError::LocalHeaderMismatch { field: "crc32", .. })
    ));
    // With a data descriptor (flag bit 3) the local CRC and sizes may be zero.
    let mut b = ZipBuilder::new();
    b.stored("a", b"data");
    let mut zip = b.finish();
    zip[6] = 8;
    zip[14..26].fill(0);
    let a = parse_bytes(&zip).unwrap();
    assert_eq!(a.entries[0].size, 4);
    // zip64 sizes in the local header, only the uncompressed one saturated (at +22; the
    // compressed one at +18 written as it is).
    let mut b = ZipBuilder::new();
    b.stored("a", b"data").zip64 = true;
    let mut zip = b.finish();
    zip[18..22].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(parse_bytes(&zip).unwrap().entries[0].compressed_size, 4);
    // A local extra field longer than the first read: the data starts after it.
    let zip =
        crate::write::build_zip(&[crate::write::ZipEntry::new("lib.so", b"elf".to_vec())]).unwrap();
    let a = parse_bytes(&zip).unwrap();
    assert_eq!(a.entries[0].data_offset, 4096);
}

#[test]
fn layout_sizes_and_ratios() {
    // Stored entries whose sizes differ.
    let mut b = ZipBuilder::new();
    b.stored("a", b"data").size = 5;
    assert!(matches!(
        parse_bytes(&b.finish()),
        Err(ZipError::StoredSizeMismatch { .. })
    ));
    // Deflate's ratio limit, at the boundary.
    for (extra, refused) in [(0, false), (1, true)] {
        let mut b = ZipBuilder::new();
        let e = b.deflated("d", &[0u8; 4096]);
        e.size = e.csize * MAX_DEFLATE_RATIO + RATIO_SLACK + extra;
        e.zip64 = true;
        let err = parse_bytes(&b.finish()).err();
        assert_eq!(
            matches!(err, Some(ZipError::AbsurdCompressionRatio { .. })),
            refused,
            "{err:?}"
        );
    }
    // Data running into the central directory.
    let mut b = ZipBuilder::new();
    b.stored("a", b"data");
    let mut zip = b.finish();
    let cd = zip.len() - 22 - 47;
    // Central csize and size (+20, +24 of the record) and local ones (+18, +22) say 5.
    for at in [cd + 20, cd + 24, 18, 22] {
        zip[at..at + 4].copy_from_slice(&5u32.to_le_bytes());
    }
    assert!(matches!(
        parse_bytes(&zip),
        Err(ZipError::EntryOutOfBounds { .. })
    ));
    // Adjacent entries are fine; one starting inside another is not.
    assert_eq!(parse_bytes(&two_entries()).unwrap().entries.len(), 2);
    let (_, overlapping, _) = crate::testzip::bad_corpus()
        .into_iter()
        .find(|(name, _, _)| *name == "overlapping_entries.zip")
        .unwrap();
    assert!(matches!(
        parse_bytes(&overlapping),
        Err(ZipError::OverlappingEntries { .. })
    ));
}

/// Fails reads that start inside `bad`, serves the rest from `data`.
struct FailingAt<'a> {
    data: &'a [u8],
    bad: std::ops::Range<u64>,
}

impl Source for FailingAt<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.bad.contains(&offset) {
            return Err(io::Error::other("EIO"));
        }
        self.data.read_at(buf, offset)
    }
}

#[test]
fn a_local_header_that_cannot_be_read_fails_the_parse() {
    // Large enough that the end of the archive is read without touching its start.
    let mut b = ZipBuilder::new();
    b.stored("big", &vec![1u8; 1_200_000]);
    let zip = b.finish();
    let src = FailingAt {
        data: &zip,
        bad: 0..30,
    };
    assert!(matches!(
        parse(&src, zip.len() as u64),
        Err(ZipError::Io {
            what: "reading a local header",
            ..
        })
    ));
}

/// A local header whose name ends exactly at the end of the file (here: inside the end record's
/// comment) is whole; its data then lies past the central directory.
#[test]
fn a_local_header_ending_at_the_end_of_the_file() {
    let mut b = ZipBuilder::new();
    b.stored("a", b"");
    let zip = b.finish();
    let mut local = zip[..31].to_vec();
    assert_eq!(&local[..4], b"PK\x03\x04");
    local.truncate(31);
    let comment_at = zip.len() as u32;
    let mut z = patch_eocd16(&zip, 20, 31);
    z.extend_from_slice(&local);
    // The central record's local header offset (+42) now names the comment.
    let cd = zip.len() - 22 - 47;
    z[cd + 42..cd + 46].copy_from_slice(&comment_at.to_le_bytes());
    assert!(matches!(
        parse_bytes(&z),
        Err(ZipError::EntryOutOfBounds { .. })
    ));
}

/// zip64 sizes in a local extra field longer than the first read of the header: the rest of
/// the field is read from where it is.
#[test]
fn zip64_sizes_in_a_long_local_extra_field() {
    let mut b = ZipBuilder::new();
    let e = b.stored("a", b"data");
    e.zip64 = true;
    let mut pad = vec![0xfe, 0xca, 96, 0];
    pad.extend_from_slice(&[0u8; 96]);
    e.local_extra = pad;
    let a = parse_bytes(&b.finish()).unwrap();
    assert_eq!(a.entries[0].size, 4);
    assert_eq!(a.entries[0].data_offset, 30 + 1 + 20 + 100);
}
