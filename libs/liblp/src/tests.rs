#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use super::*;

fn microdroid_like() -> SuperBuilder {
    let mut b = SuperBuilder::new();
    let sys: Vec<u8> = (0..102400u32).map(|i| (i % 251) as u8).collect();
    let ven: Vec<u8> = (0..8192u32).map(|i| (i % 13) as u8 ^ 0x5a).collect();
    b.add_partition(
        "system_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Bytes(sys),
    )
    .unwrap();
    b.add_partition(
        "vendor_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Bytes(ven),
    )
    .unwrap();
    b
}

#[test]
fn kat_device_size_and_layout() -> Result<()> {
    // docs/formats/liblp.md: 102400-byte system_a + 8192-byte vendor_a, 64 KiB metadata, 2 slots,
    // auto size → 3256320 bytes.
    let (md, img) = microdroid_like().to_bytes()?;
    assert_eq!(img.len(), 3256320);
    assert_eq!(md.super_size(), Some(3256320));
    let dev = &md.block_devices[0];
    assert_eq!(
        (
            dev.first_logical_sector,
            dev.alignment,
            dev.partition_name.as_str()
        ),
        (2048, 1 << 20, "super")
    );
    let sys = md.partition("system_a").unwrap();
    assert_eq!(
        md.extents_of(sys),
        &[Extent {
            num_sectors: 200,
            target_type: 0,
            target_data: 2048,
            target_source: 0
        }]
    );
    let ven = md.partition("vendor_a").unwrap();
    assert_eq!(
        md.extents_of(ven),
        &[Extent {
            num_sectors: 16,
            target_type: 0,
            target_data: 4096,
            target_source: 0
        }]
    );
    assert_eq!(md.group_name(sys), Some("default"));
    assert_eq!(md.header.minor_version, 0);
    assert_eq!(md.header.header_size, 128);
    // Geometry magic "gDla" at 4096 and 8192, header magic "0PLA" at 12288.
    assert_eq!(&img[4096..4100], b"gDla");
    assert_eq!(&img[8192..8196], b"gDla");
    assert_eq!(&img[12288..12292], b"0PLA");
    assert!(img[..4096].iter().all(|&b| b == 0));
    // All four metadata copies are identical.
    let m = 65536;
    let slot = |off: usize| &img[off..off + m];
    assert_eq!(slot(12288), slot(12288 + m));
    assert_eq!(slot(12288), slot(12288 + 2 * m));
    assert_eq!(slot(12288), slot(12288 + 3 * m));
    // Data.
    assert_eq!(img[2048 * 512 + 1], 1);
    assert_eq!(&img[4096 * 512..4096 * 512 + 4], &[0x5a, 0x5b, 0x58, 0x59]);
    Ok(())
}

#[test]
fn read_back_every_slot_and_tables() -> Result<()> {
    let (md, img) = microdroid_like().to_bytes()?;
    for slot in 0..2 {
        assert_eq!(read_metadata_from_bytes(&img, slot)?, md);
    }
    assert!(matches!(
        read_metadata_from_bytes(&img, 2),
        Err(Error::InvalidArgument(_))
    ));
    let t = md.dm_linear_table("system_a", "/dev/vda2")?;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].to_string(), "0 200 linear /dev/vda2 2048");
    assert_eq!(t[0].params(), "/dev/vda2 2048");
    assert!(matches!(
        md.dm_linear_table("odm_a", "x"),
        Err(Error::PartitionNotFound(_))
    ));
    // Encoding is stable.
    let blob = md.encode()?;
    assert_eq!(&img[12288..12288 + blob.len()], &blob[..]);
    assert_eq!(blob.len(), 128 + 2 * 52 + 2 * 24 + 48 + 64);
    Ok(())
}

#[test]
fn falls_back_to_backups() -> Result<()> {
    let (md, img) = microdroid_like().to_bytes()?;
    // Primary geometry checksum broken → backup geometry.
    let mut bad = img.clone();
    bad[4096 + 20] ^= 1;
    assert_eq!(read_metadata_from_bytes(&bad, 0)?, md);
    // Primary metadata of slot 0 broken → backup slot 0.
    let mut bad = img.clone();
    bad[12288 + 200] ^= 1;
    assert_eq!(read_metadata_from_bytes(&bad, 0)?, md);
    // Both copies broken → the primary's error.
    bad[12288 + 2 * 65536 + 200] ^= 1;
    assert!(matches!(
        read_metadata_from_bytes(&bad, 0),
        Err(Error::ChecksumMismatch {
            what: "metadata tables"
        })
    ));
    // Slot 1 still fine.
    assert_eq!(read_metadata_from_bytes(&bad, 1)?, md);
    Ok(())
}

#[test]
fn file_writer_equals_memory_and_reads_with_pread() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("liblp-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sys: Vec<u8> = (0..(3 << 20) + 100u32).map(|i| (i >> 5) as u8).collect();
    std::fs::write(dir.join("system.img"), &sys)?;
    let mut b = SuperBuilder::new();
    b.add_group("microdroid", 8 << 20)?;
    b.add_partition(
        "system_a",
        "microdroid",
        PARTITION_ATTR_READONLY,
        ImageSource::file(dir.join("system.img"))?,
    )?;
    b.add_partition(
        "vendor_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Empty,
    )?;
    b.add_partition_with_size("odm_a", "default", 0, 5000, ImageSource::Bytes(vec![1; 10]))?;
    let out = dir.join("super.img");
    let md = b.write(&out)?;
    let (md2, bytes) = b.to_bytes()?;
    assert_eq!(md, md2);
    assert_eq!(std::fs::read(&out)?, bytes);
    let f = std::fs::File::open(&out)?;
    assert_eq!(read_metadata(&f, 1)?, md);
    let sys_p = md.partition("system_a").unwrap();
    assert_eq!(md.partition_size(sys_p), ((3 << 20) + 4096) as u64);
    assert_eq!(md.group_name(sys_p), Some("microdroid"));
    assert_eq!(md.extents_of(md.partition("vendor_a").unwrap()), &[]);
    let odm = md.extents_of(md.partition("odm_a").unwrap())[0];
    assert_eq!(odm.num_sectors, 16); // 5000 → 8192 bytes
    assert_eq!(odm.target_data % 2048, 0);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn builder_rejects_bad_input() {
    let mut b = SuperBuilder::new();
    assert!(b
        .add_partition("x".repeat(37).as_str(), "default", 0, ImageSource::Empty)
        .is_err());
    assert!(b
        .add_partition("a", "nogroup", 0, ImageSource::Empty)
        .is_err());
    assert!(b
        .add_partition("a", "default", 1 << 7, ImageSource::Empty)
        .is_err());
    assert!(b
        .add_partition_with_size("a", "default", 0, 10, ImageSource::Bytes(vec![0; 11]))
        .is_err());
    b.add_partition("a", "default", 0, ImageSource::Empty)
        .unwrap();
    assert!(b
        .add_partition("a", "default", 0, ImageSource::Empty)
        .is_err());
    // Fixed device too small.
    let mut b = microdroid_like();
    b.device_size = Some(2 << 20);
    assert!(matches!(b.build_metadata(), Err(Error::InvalidArgument(_))));
    // Group limit exceeded.
    let mut b = SuperBuilder::new();
    b.add_group("small", 4096).unwrap();
    b.add_partition("a", "small", 0, ImageSource::Bytes(vec![0; 8192]))
        .unwrap();
    assert!(matches!(b.build_metadata(), Err(Error::InvalidMetadata(_))));
}

#[test]
fn updated_attribute_bumps_minor_version() -> Result<()> {
    let mut b = SuperBuilder::new();
    b.add_partition(
        "a",
        "default",
        PARTITION_ATTR_UPDATED,
        ImageSource::Bytes(vec![0; 4096]),
    )?;
    let md = b.build_metadata()?;
    assert_eq!(md.header.minor_version, 1);
    Ok(())
}

#[test]
fn helpers() {
    assert_eq!(slot_suffix(0), "_a");
    assert_eq!(slot_suffix(1), "_b");
    assert_eq!(total_metadata_size(65536, 2), 4096 + (4096 + 131072) * 2);
}

/// `SuperBuilder::new()` with `f` applied.
fn with_builder(f: impl FnOnce(&mut SuperBuilder)) -> SuperBuilder {
    let mut b = SuperBuilder::new();
    f(&mut b);
    b
}

/// Attribute and flag bits as AOSP's liblp defines them (metadata_format.h).
#[test]
fn attribute_bits_are_aosps() {
    assert_eq!(
        [
            PARTITION_ATTR_READONLY,
            PARTITION_ATTR_SLOT_SUFFIXED,
            PARTITION_ATTR_UPDATED,
            PARTITION_ATTR_DISABLED,
            GROUP_SLOT_SUFFIXED,
            BLOCK_DEVICE_SLOT_SUFFIXED
        ],
        [1, 2, 4, 8, 1, 1]
    );
    assert!(ImageSource::Bytes(Vec::new()).is_empty());
    assert!(!ImageSource::Bytes(vec![0]).is_empty());
}

#[test]
fn builder_arguments_are_checked() {
    let refused = |b: SuperBuilder, why: &str| matches!(b.build_metadata(), Err(Error::InvalidArgument(m)) if m.contains(why));
    for slots in [0, 65] {
        assert!(refused(
            with_builder(|b| {
                b.metadata_slots = slots;
            }),
            "metadata slots must be 1..=64"
        ));
    }
    let mut most_slots = with_builder(|b| {
        b.metadata_slots = 64;
    });
    most_slots
        .add_partition("a", "default", 0, ImageSource::Bytes(vec![1; 4096]))
        .unwrap();
    most_slots.build_metadata().unwrap();
    for block_size in [0, 4097] {
        assert!(refused(
            with_builder(|b| {
                b.block_size = block_size;
            }),
            "block size must be a multiple of 512"
        ));
    }
    assert!(refused(
        with_builder(|b| {
            b.alignment = 100;
        }),
        "alignment must be a multiple of 512"
    ));
    assert!(refused(
        with_builder(|b| {
            b.metadata_max_size = 0;
        }),
        "metadata size too small"
    ));
}

/// liblp's AlignTo(base, alignment, offset) with an alignment offset: the metadata region
/// (4096 + 2 × (4096 + 2 × 65536) = 274432 bytes) ends before 294912 = 4 × 64 KiB + 32 KiB, so
/// the first partition starts at sector 576; the second, after 8 KiB, cannot go back a step and
/// starts at 360448 (sector 704).
#[test]
fn alignment_with_an_offset_as_liblp() -> Result<()> {
    let mut b = with_builder(|b| {
        b.alignment = 65536;
        b.alignment_offset = 32768;
        b.device_size = Some(1 << 20);
    });
    b.add_partition("a", "default", 0, ImageSource::Bytes(vec![1; 8192]))?;
    b.add_partition("b", "default", 0, ImageSource::Bytes(vec![2; 4096]))?;
    let md = b.build_metadata()?;
    let starts: Vec<(u64, u64)> = md
        .extents
        .iter()
        .map(|e| (e.target_data, e.num_sectors))
        .collect();
    assert_eq!(starts, [(576, 16), (704, 8)]);
    Ok(())
}

#[test]
fn device_size_limits() -> Result<()> {
    let with = |size: u64, partition: bool| {
        let mut b = with_builder(|b| {
            b.alignment = 65536;
            b.alignment_offset = 32768;
            b.device_size = Some(size);
        });
        if partition {
            b.add_partition("a", "default", 0, ImageSource::Bytes(vec![1; 8192]))
                .unwrap();
        }
        b.build_metadata()
    };
    // The metadata (up to sector 576) and one block.
    with(294912 + 4096, false)?;
    assert!(matches!(
        with(294912 + 4096 - 512, false),
        Err(Error::InvalidArgument(_))
    ));
    // A partition may end exactly at the end of the device.
    with(294912 + 8192, true)?;
    assert!(matches!(
        with(294912 + 8192 - 512, true),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

/// The metadata may fill its slot exactly: empty partitions are added until the encoded
/// metadata is a whole number of sectors, which is then the slot size.
#[test]
fn metadata_may_fill_its_slot_exactly() -> Result<()> {
    let mut b = SuperBuilder::new();
    b.add_partition("data", "default", 0, ImageSource::Bytes(vec![1; 4096]))?;
    let mut i = 0;
    let size = loop {
        let len = b.build_metadata()?.encode()?.len();
        if len % 512 == 0 {
            break len;
        }
        b.add_partition(&format!("p{i}"), "default", 0, ImageSource::Empty)?;
        i += 1;
        assert!(i < 200);
    };
    b.metadata_max_size = u32::try_from(size).unwrap();
    b.build_metadata()?;
    b.metadata_max_size -= 512;
    assert!(matches!(b.build_metadata(), Err(Error::InvalidArgument(_))));
    Ok(())
}

#[test]
fn names_are_at_most_36_bytes() {
    format::check_name(&"n".repeat(36)).unwrap();
    assert!(format::check_name(&"n".repeat(37)).is_err());
    assert!(format::check_name("").is_err());
}

/// The geometry's limits, each at its boundary (the checksum is recomputed for each value).
#[test]
fn geometry_limits() {
    let parse = |metadata_max_size: u32, metadata_slot_count: u32, logical_block_size: u32| {
        let g = Geometry {
            metadata_max_size,
            metadata_slot_count,
            logical_block_size,
        };
        Geometry::parse(&g.encode())
    };
    parse(65536, 64, 4096).unwrap();
    assert!(parse(65536, 65, 4096).is_err());
    assert!(parse(65536, 0, 4096).is_err());
    parse(format::METADATA_MAX_SIZE_LIMIT, 2, 4096).unwrap();
    assert!(parse(format::METADATA_MAX_SIZE_LIMIT + 512, 2, 4096).is_err());
    assert!(parse(0, 2, 4096).is_err());
    assert!(parse(65536 + 256, 2, 4096).is_err());
    for block_size in [0, 4097] {
        assert!(parse(65536, 2, block_size).is_err(), "{block_size}");
    }
}

/// What the builder lays out right at a limit reads back: metadata ending exactly where the
/// partitions start, an extent ending at the end of the device, a group exactly full.
#[test]
fn layouts_at_their_limits_read_back() -> Result<()> {
    let mut b = with_builder(|b| {
        b.alignment = 4096;
        b.device_size = Some(274432 + 8192);
    });
    b.add_group("g", 8192)?;
    b.add_partition("a", "g", 0, ImageSource::Bytes(vec![1; 8192]))?;
    let (md, bytes) = b.to_bytes()?;
    // 4096 + 2 × (4096 + 2 × 65536) bytes of metadata, then the partition up to the end.
    assert_eq!(md.block_devices[0].first_logical_sector * 512, 274432);
    assert_eq!(
        md.extents[0].target_data + md.extents[0].num_sectors,
        (274432 + 8192) / 512
    );
    assert_eq!(read_metadata_from_bytes(&bytes, 0)?, md);
    // The same through a file, as the guest reads the super partition; and from the backup
    // geometry when the primary one is damaged.
    let mut file = tempfile::tempfile()?;
    std::io::Write::write_all(&mut file, &bytes)?;
    assert_eq!(read_metadata(&file, 0)?, md);
    assert_eq!(read_metadata(&file, 1)?, md);
    assert!(read_metadata(&file, 2).is_err());
    let mut damaged = bytes.clone();
    damaged[4096 + 100] ^= 1;
    let mut file = tempfile::tempfile()?;
    std::io::Write::write_all(&mut file, &damaged)?;
    assert_eq!(read_metadata(&file, 0)?, md);
    Ok(())
}

#[test]
fn dm_linear_tables_map_super_and_zero_extents() -> Result<()> {
    let (mut md, _) = microdroid_like().to_bytes()?;
    let table = md.dm_linear_table("system_a", "/dev/vda2")?;
    assert_eq!(table.len(), 1);
    assert_eq!(
        table[0].source,
        Some(("/dev/vda2".to_owned(), md.extents[0].target_data))
    );
    assert_eq!(table[0].num_sectors, md.extents[0].num_sectors);
    md.extents[0].target_type = TARGET_TYPE_ZERO;
    assert_eq!(md.dm_linear_table("system_a", "/dev/vda2")?[0].source, None);
    md.extents[0].target_type = TARGET_TYPE_LINEAR;
    md.extents[0].target_source = 1;
    assert!(matches!(
        md.dm_linear_table("system_a", "/dev/vda2"),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

/// Without an alignment, partitions (and the end of the metadata) align to the block size; an
/// empty partition gets no extent.
#[test]
fn block_alignment_and_empty_partitions() -> Result<()> {
    // 4096 + 2 × (4096 + 2 × 1536) = 18432 bytes of metadata: 40 sectors once aligned to 4 KiB.
    let mut b = with_builder(|b| {
        b.alignment = 0;
        b.metadata_max_size = 1536;
        b.device_size = Some(1 << 20);
    });
    b.add_partition("empty", "default", 0, ImageSource::Empty)?;
    b.add_partition("a", "default", 0, ImageSource::Bytes(vec![1; 1000]))?;
    let md = b.build_metadata()?;
    assert_eq!(md.block_devices[0].first_logical_sector, 40);
    assert_eq!(md.partitions[0].num_extents, 0);
    assert_eq!(md.extents.len(), 1);
    assert_eq!(
        (md.extents[0].target_data, md.extents[0].num_sectors),
        (40, 8)
    );
    Ok(())
}
