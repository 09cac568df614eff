//! The bad-input corpus in `testdata/bad/`: one test per file asserting the specific error.
//! Regenerate with `cargo test -p liblp --test bad_corpus -- --ignored regenerate`.
//!
//! Every file is the metadata area of a small super image (4 KiB metadata, 2 slots: 28672
//! bytes; partitions `system_a` 3 blocks and `vendor_a` 1 block in group `default`) with one
//! defect applied to *all* copies (primary and backup geometry, every primary and backup
//! slot), so the reader's fallbacks cannot hide it.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use liblp::{Error, ImageSource, Metadata, SuperBuilder, PARTITION_ATTR_READONLY};
use sha2::{Digest, Sha256};

const M: usize = 4096; // metadata_max_size
const SLOTS: usize = 2;
const META_START: usize = 12288;
const TOTAL: usize = 4096 + (4096 + M * SLOTS) * 2;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn good() -> (Metadata, Vec<u8>) {
    let mut b = SuperBuilder::new();
    b.metadata_max_size = M as u32;
    b.add_partition(
        "system_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Bytes(vec![0x11; 3 * 4096]),
    )
    .unwrap();
    b.add_partition(
        "vendor_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Bytes(vec![0x22; 4096]),
    )
    .unwrap();
    let (md, mut img) = b.to_bytes().unwrap();
    img.truncate(TOTAL);
    (md, img)
}

fn slot_offsets() -> Vec<usize> {
    (0..2 * SLOTS).map(|i| META_START + i * M).collect()
}

/// Writes `blob` (padded) into every metadata copy.
fn with_blob(blob: &[u8]) -> Vec<u8> {
    let (_, mut img) = good();
    let mut padded = blob.to_vec();
    padded.resize(M, 0);
    for off in slot_offsets() {
        img[off..off + M].copy_from_slice(&padded);
    }
    img
}

/// Re-encodes a modified metadata struct (checksums valid) into every copy.
fn with_metadata(f: &dyn Fn(&mut Metadata)) -> Vec<u8> {
    let (mut md, _) = good();
    f(&mut md);
    with_blob(&md.encode().unwrap())
}

/// Patches the encoded header bytes, then recomputes the header checksum.
fn with_header_patch(f: &dyn Fn(&mut Vec<u8>)) -> Vec<u8> {
    let (md, _) = good();
    let mut blob = md.encode().unwrap();
    f(&mut blob);
    let hs = u32::from_le_bytes(blob[8..12].try_into().unwrap()) as usize;
    let hs = hs.min(blob.len());
    let mut h = blob[..hs].to_vec();
    h[12..44].fill(0);
    let sum = Sha256::digest(&h);
    blob[12..44].copy_from_slice(&sum);
    with_blob(&blob)
}

/// Patches the encoded tables, then recomputes the tables and header checksums.
fn with_tables_patch(f: &dyn Fn(&mut [u8])) -> Vec<u8> {
    with_header_patch(&|b| {
        let ts = u32::from_le_bytes(b[44..48].try_into().unwrap()) as usize;
        f(&mut b[128..128 + ts]);
        let sum = Sha256::digest(&b[128..128 + ts]);
        b[48..80].copy_from_slice(&sum);
    })
}

/// Patches every metadata copy in place (no checksum fix-up).
fn with_raw_patch(f: &dyn Fn(&mut [u8])) -> Vec<u8> {
    let (_, mut img) = good();
    for off in slot_offsets() {
        f(&mut img[off..off + M]);
    }
    img
}

/// Patches both geometry copies; `fix` recomputes the geometry checksum.
fn with_geometry(fix: bool, f: &dyn Fn(&mut [u8])) -> Vec<u8> {
    let (_, mut img) = good();
    for off in [4096usize, 8192] {
        let g = &mut img[off..off + 4096];
        f(g);
        if fix {
            let mut s = g[..52].to_vec();
            s[8..40].fill(0);
            let sum = Sha256::digest(&s);
            g[8..40].copy_from_slice(&sum);
        }
    }
    img
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let (_, base) = good();
    vec![
        ("empty.bin", vec![]),
        ("truncated_geometry.bin", base[..4096 + 30].to_vec()),
        ("truncated_metadata.bin", base[..META_START + 100].to_vec()),
        (
            "geometry_wrong_magic.bin",
            with_geometry(false, &|g| g[0] = b'X'),
        ),
        (
            "geometry_checksum.bin",
            with_geometry(false, &|g| g[44] ^= 1),
        ),
        (
            "geometry_zero_slots.bin",
            with_geometry(true, &|g| put32(g, 44, 0)),
        ),
        (
            "geometry_huge_metadata_size.bin",
            with_geometry(true, &|g| put32(g, 40, 1 << 30)),
        ),
        (
            "geometry_unaligned_metadata_size.bin",
            with_geometry(true, &|g| put32(g, 40, 4100)),
        ),
        (
            "geometry_struct_size.bin",
            with_geometry(true, &|g| put32(g, 4, 60)),
        ),
        ("header_wrong_magic.bin", with_raw_patch(&|m| m[0] = b'X')),
        ("header_major_11.bin", with_header_patch(&|b| b[4] = 11)),
        ("header_minor_9.bin", with_header_patch(&|b| b[6] = 9)),
        (
            "header_size_wrong.bin",
            with_header_patch(&|b| put32(b, 8, 256)),
        ),
        ("header_checksum.bin", with_raw_patch(&|m| m[100] ^= 1)),
        ("tables_checksum.bin", with_raw_patch(&|m| m[128 + 5] ^= 1)),
        // partitions descriptor at 80: offset, num_entries, entry_size
        (
            "table_past_end.bin",
            with_header_patch(&|b| put32(b, 84, 40)),
        ),
        (
            "huge_extent_count.bin",
            with_header_patch(&|b| put32(b, 96, u32::MAX)),
        ),
        (
            "wrong_entry_size.bin",
            with_header_patch(&|b| put32(b, 88, 56)),
        ),
        (
            "tables_larger_than_max.bin",
            with_header_patch(&|b| put32(b, 44, 100_000)),
        ),
        (
            "partition_bad_attributes.bin",
            with_metadata(&|md| md.partitions[0].attributes = 0x10),
        ),
        (
            "partition_bad_extent_index.bin",
            with_metadata(&|md| md.partitions[1].first_extent_index = 2),
        ),
        (
            "partition_bad_group.bin",
            with_metadata(&|md| md.partitions[0].group_index = 3),
        ),
        (
            "extent_bad_block_device.bin",
            with_metadata(&|md| md.extents[0].target_source = 5),
        ),
        (
            "extent_unknown_type.bin",
            with_metadata(&|md| md.extents[0].target_type = 7),
        ),
        (
            "extent_past_device.bin",
            with_metadata(&|md| md.extents[1].target_data = md.block_devices[0].size / 512),
        ),
        (
            "extent_in_metadata_area.bin",
            with_metadata(&|md| md.extents[0].target_data = 8),
        ),
        (
            "extent_length_overflow.bin",
            with_metadata(&|md| md.extents[0].num_sectors = u64::MAX - 1),
        ),
        (
            "overlapping_extents.bin",
            with_metadata(&|md| md.extents[1].target_data = md.extents[0].target_data + 8),
        ),
        (
            "no_block_devices.bin",
            with_metadata(&|md| md.block_devices.clear()),
        ),
        (
            "metadata_overlaps_logical_area.bin",
            with_metadata(&|md| md.block_devices[0].first_logical_sector = 1),
        ),
        (
            "group_over_limit.bin",
            with_metadata(&|md| md.groups[0].maximum_size = 4096),
        ),
        ("name_not_utf8.bin", with_tables_patch(&|t| t[0] = 0xff)),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn base_image_is_valid() {
    let (md, img) = good();
    assert_eq!(liblp::read_metadata_from_bytes(&img, 0).unwrap(), md);
    assert_eq!(liblp::read_metadata_from_bytes(&img, 1).unwrap(), md);
}

#[test]
fn fuzz_entry_point_survives_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        liblp::fuzzing::metadata(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    liblp::fuzzing::metadata(&good().1);
}

fn err(name: &str) -> Error {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    liblp::read_metadata_from_bytes(&bytes, 0).expect_err(name)
}

macro_rules! bad {
    ($test:ident, $file:literal, $pat:pat) => {
        #[test]
        fn $test() {
            let e = err($file);
            assert!(matches!(e, $pat), "{}: got {e:?}", $file);
        }
    };
}

bad!(
    empty,
    "empty.bin",
    Error::Truncated {
        what: "geometry",
        ..
    }
);
bad!(
    truncated_geometry,
    "truncated_geometry.bin",
    Error::Truncated {
        what: "geometry",
        ..
    }
);
bad!(
    truncated_metadata,
    "truncated_metadata.bin",
    Error::Truncated { .. }
);
bad!(
    geometry_wrong_magic,
    "geometry_wrong_magic.bin",
    Error::BadMagic { what: "geometry" }
);
bad!(
    geometry_checksum,
    "geometry_checksum.bin",
    Error::ChecksumMismatch { what: "geometry" }
);
bad!(
    geometry_zero_slots,
    "geometry_zero_slots.bin",
    Error::InvalidGeometry(_)
);
bad!(
    geometry_huge_metadata_size,
    "geometry_huge_metadata_size.bin",
    Error::InvalidGeometry(_)
);
bad!(
    geometry_unaligned_metadata_size,
    "geometry_unaligned_metadata_size.bin",
    Error::InvalidGeometry(_)
);
bad!(
    geometry_struct_size,
    "geometry_struct_size.bin",
    Error::InvalidGeometry(_)
);
bad!(
    header_wrong_magic,
    "header_wrong_magic.bin",
    Error::BadMagic {
        what: "metadata header"
    }
);
bad!(
    header_major_11,
    "header_major_11.bin",
    Error::UnsupportedVersion { major: 11, .. }
);
bad!(
    header_minor_9,
    "header_minor_9.bin",
    Error::UnsupportedVersion { minor: 9, .. }
);
bad!(
    header_size_wrong,
    "header_size_wrong.bin",
    Error::InvalidMetadata(_)
);
bad!(
    header_checksum,
    "header_checksum.bin",
    Error::ChecksumMismatch {
        what: "metadata header"
    }
);
bad!(
    tables_checksum,
    "tables_checksum.bin",
    Error::ChecksumMismatch {
        what: "metadata tables"
    }
);
bad!(
    table_past_end,
    "table_past_end.bin",
    Error::InvalidMetadata(_)
);
bad!(
    huge_extent_count,
    "huge_extent_count.bin",
    Error::InvalidMetadata(_)
);
bad!(
    wrong_entry_size,
    "wrong_entry_size.bin",
    Error::InvalidMetadata(_)
);
bad!(
    tables_larger_than_max,
    "tables_larger_than_max.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    partition_bad_attributes,
    "partition_bad_attributes.bin",
    Error::InvalidMetadata(_)
);
bad!(
    partition_bad_extent_index,
    "partition_bad_extent_index.bin",
    Error::InvalidMetadata(_)
);
bad!(
    partition_bad_group,
    "partition_bad_group.bin",
    Error::InvalidMetadata(_)
);
bad!(
    extent_bad_block_device,
    "extent_bad_block_device.bin",
    Error::InvalidMetadata(_)
);
bad!(
    extent_unknown_type,
    "extent_unknown_type.bin",
    Error::InvalidMetadata(_)
);
bad!(
    extent_past_device,
    "extent_past_device.bin",
    Error::ExtentOutOfRange { extent: 1, .. }
);
bad!(
    extent_in_metadata_area,
    "extent_in_metadata_area.bin",
    Error::ExtentOutOfRange { extent: 0, .. }
);
bad!(
    extent_length_overflow,
    "extent_length_overflow.bin",
    Error::ExtentOutOfRange { extent: 0, .. }
);
bad!(
    overlapping_extents,
    "overlapping_extents.bin",
    Error::OverlappingExtents {
        first: 0,
        second: 1
    }
);
bad!(
    no_block_devices,
    "no_block_devices.bin",
    Error::InvalidMetadata(_)
);
bad!(
    metadata_overlaps_logical_area,
    "metadata_overlaps_logical_area.bin",
    Error::InvalidMetadata(_)
);
bad!(
    group_over_limit,
    "group_over_limit.bin",
    Error::InvalidMetadata(_)
);
bad!(
    name_not_utf8,
    "name_not_utf8.bin",
    Error::InvalidMetadata("name is not UTF-8")
);

/// The highest minor version liblp knows (with its expanded header) is read.
#[test]
fn minor_version_at_its_maximum_is_read() {
    let img = with_metadata(&|md| md.header.minor_version = liblp::MINOR_VERSION_MAX);
    let md = liblp::read_metadata_from_bytes(&img, 0).unwrap();
    assert_eq!(md.header.minor_version, liblp::MINOR_VERSION_MAX);
    assert_eq!(md.header.header_size, 256);
}

/// Tables may fill a metadata copy exactly; one byte less room is refused.
#[test]
fn tables_may_fill_metadata_max_size_exactly() {
    let (md, _) = good();
    let blob = md.encode().unwrap();
    let header_size = u32::from_le_bytes(blob[8..12].try_into().unwrap());
    let tables_size = u32::from_le_bytes(blob[44..48].try_into().unwrap());
    let mut geometry = md.geometry;
    geometry.metadata_max_size = header_size + tables_size;
    let parsed = liblp::parse_metadata(&geometry, &blob).unwrap();
    assert_eq!(
        (parsed.partitions, parsed.extents),
        (md.partitions, md.extents)
    );
    geometry.metadata_max_size -= 1;
    assert!(matches!(
        liblp::parse_metadata(&geometry, &blob),
        Err(Error::SizeOutOfRange(_))
    ));
}

/// An empty table may sit at the very end of the tables; one byte past it is refused.
#[test]
fn an_empty_table_may_end_exactly_at_tables_size() {
    let (mut md, _) = good();
    md.extents.clear();
    for p in &mut md.partitions {
        p.first_extent_index = 0;
        p.num_extents = 0;
    }
    let blob = md.encode().unwrap();
    let patched = |extents_offset: u32| {
        let mut b = blob.clone();
        put32(&mut b, 92, extents_offset);
        b[12..44].fill(0);
        let sum = Sha256::digest(&b[..128]);
        b[12..44].copy_from_slice(&sum);
        b
    };
    let tables_size = u32::from_le_bytes(blob[44..48].try_into().unwrap());
    let parsed = liblp::parse_metadata(&md.geometry, &patched(tables_size)).unwrap();
    assert!(parsed.extents.is_empty());
    assert!(matches!(
        liblp::parse_metadata(&md.geometry, &patched(tables_size + 1)),
        Err(Error::InvalidMetadata("table extends past tables_size"))
    ));

    // A table that starts inside the tables but runs past their end (two extents, one entry
    // of room).
    let (full, _) = good();
    let mut b = full.encode().unwrap();
    let tables_size = u32::from_le_bytes(b[44..48].try_into().unwrap());
    put32(&mut b, 92, tables_size - 24);
    b[12..44].fill(0);
    let sum = Sha256::digest(&b[..128]);
    b[12..44].copy_from_slice(&sum);
    assert!(matches!(
        liblp::parse_metadata(&full.geometry, &b),
        Err(Error::InvalidMetadata("table extends past tables_size"))
    ));
}
