//! Reading and validating metadata (`reader.cpp`), plus our stricter layout checks.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::format::Le;
use crate::*;

/// Parses one metadata copy: `buf` starts at the header (`ParseMetadata`). Checks magic,
/// version, header size for the version, header SHA-256, table bounds and entry sizes, tables
/// size within `metadata_max_size`, tables SHA-256, partition attributes / extent ranges /
/// group indices, extent block devices, presence of the super device, the metadata area not
/// overlapping the logical area, and then (beyond liblp) that every linear extent lies in its
/// device's logical area, that no two linear extents overlap, and that groups respect their
/// maximum size.
pub fn parse_metadata(geometry: &Geometry, buf: &[u8]) -> Result<Metadata> {
    let mut r = Le::new(buf, "metadata header");
    let magic = r.u32()?;
    let major_version = r.u16()?;
    let minor_version = r.u16()?;
    if magic != HEADER_MAGIC {
        return Err(Error::BadMagic {
            what: "metadata header",
        });
    }
    if major_version != MAJOR_VERSION || minor_version > MINOR_VERSION_MAX {
        return Err(Error::UnsupportedVersion {
            major: major_version,
            minor: minor_version,
        });
    }
    let header_size = r.u32()?;
    let expected = if minor_version >= VERSION_FOR_EXPANDED_HEADER {
        HEADER_V1_2_SIZE
    } else {
        HEADER_V1_0_SIZE
    };
    if header_size as usize != expected {
        return Err(Error::InvalidMetadata(
            "header size does not match the version",
        ));
    }
    let header_checksum = r.digest()?;
    let tables_size = r.u32()?;
    let tables_checksum = r.digest()?;
    let mut t = [TableDescriptor::default(); 4];
    for d in t.iter_mut() {
        *d = TableDescriptor {
            offset: r.u32()?,
            num_entries: r.u32()?,
            entry_size: r.u32()?,
        };
    }
    let flags = if header_size as usize >= HEADER_V1_2_SIZE {
        r.u32()?
    } else {
        0
    };
    let [partitions, extents, groups, block_devices] = t;
    let header = Header {
        major_version,
        minor_version,
        header_size,
        header_checksum,
        tables_size,
        tables_checksum,
        partitions,
        extents,
        groups,
        block_devices,
        flags,
    };
    let raw_header = buf.get(..header_size as usize).ok_or(Error::Truncated {
        what: "metadata header",
        needed: u64::from(header_size),
        available: buf.len() as u64,
    })?;
    let mut zeroed = raw_header.to_vec();
    if let Some(c) = zeroed.get_mut(12..44) {
        c.fill(0);
    }
    if <[u8; 32]>::from(Sha256::digest(&zeroed)) != header_checksum {
        return Err(Error::ChecksumMismatch {
            what: "metadata header",
        });
    }
    for (d, size) in [
        (partitions, PARTITION_ENTRY_SIZE),
        (extents, EXTENT_ENTRY_SIZE),
        (groups, GROUP_ENTRY_SIZE),
        (block_devices, BLOCK_DEVICE_ENTRY_SIZE),
    ] {
        let bytes = u64::from(d.num_entries) * u64::from(d.entry_size);
        if d.offset > tables_size || u64::from(tables_size - d.offset) < bytes {
            return Err(Error::InvalidMetadata("table extends past tables_size"));
        }
        if d.entry_size as usize != size {
            return Err(Error::InvalidMetadata("table entry size is wrong"));
        }
    }
    if u64::from(tables_size)
        > u64::from(geometry.metadata_max_size).saturating_sub(u64::from(header_size))
    {
        return Err(Error::SizeOutOfRange(
            "tables larger than metadata_max_size",
        ));
    }
    let tables_end = header_size as u64 + u64::from(tables_size);
    let tables = buf
        .get(header_size as usize..tables_end as usize)
        .ok_or(Error::Truncated {
            what: "metadata tables",
            needed: tables_end,
            available: buf.len() as u64,
        })?;
    if <[u8; 32]>::from(Sha256::digest(tables)) != tables_checksum {
        return Err(Error::ChecksumMismatch {
            what: "metadata tables",
        });
    }
    let table = |d: TableDescriptor| -> &[u8] {
        // Bounds were checked above.
        let start = d.offset as usize;
        tables
            .get(start..start + d.num_entries as usize * d.entry_size as usize)
            .unwrap_or_default()
    };
    let mut valid_attrs = PARTITION_ATTRIBUTE_MASK_V0;
    if minor_version >= VERSION_FOR_UPDATED_ATTR {
        valid_attrs |= PARTITION_ATTRIBUTE_MASK_V1;
    }
    let mut parts = Vec::new();
    let mut pr = Le::new(table(partitions), "partition table");
    for _ in 0..partitions.num_entries {
        let p = Partition {
            name: pr.name()?,
            attributes: pr.u32()?,
            first_extent_index: pr.u32()?,
            num_extents: pr.u32()?,
            group_index: pr.u32()?,
        };
        if p.attributes & !valid_attrs != 0 {
            return Err(Error::InvalidMetadata("partition has invalid attributes"));
        }
        let end = p
            .first_extent_index
            .checked_add(p.num_extents)
            .ok_or(Error::SizeOutOfRange("extent index overflow"))?;
        if end > extents.num_entries {
            return Err(Error::InvalidMetadata(
                "partition has an invalid extent list",
            ));
        }
        if p.group_index >= groups.num_entries {
            return Err(Error::InvalidMetadata(
                "partition has an invalid group index",
            ));
        }
        parts.push(p);
    }
    let mut exts = Vec::new();
    let mut er = Le::new(table(extents), "extent table");
    for _ in 0..extents.num_entries {
        let e = Extent {
            num_sectors: er.u64()?,
            target_type: er.u32()?,
            target_data: er.u64()?,
            target_source: er.u32()?,
        };
        match e.target_type {
            TARGET_TYPE_LINEAR if e.target_source >= block_devices.num_entries => {
                return Err(Error::InvalidMetadata("extent has an invalid block device"))
            }
            TARGET_TYPE_LINEAR | TARGET_TYPE_ZERO => {}
            _ => return Err(Error::InvalidMetadata("extent has an unknown target type")),
        }
        exts.push(e);
    }
    let mut grps = Vec::new();
    let mut gr = Le::new(table(groups), "group table");
    for _ in 0..groups.num_entries {
        grps.push(PartitionGroup {
            name: gr.name()?,
            flags: gr.u32()?,
            maximum_size: gr.u64()?,
        });
    }
    let mut devs = Vec::new();
    let mut dr = Le::new(table(block_devices), "block device table");
    for _ in 0..block_devices.num_entries {
        devs.push(BlockDevice {
            first_logical_sector: dr.u64()?,
            alignment: dr.u32()?,
            alignment_offset: dr.u32()?,
            size: dr.u64()?,
            partition_name: dr.name()?,
            flags: dr.u32()?,
        });
    }
    let super_dev = devs.first().ok_or(Error::InvalidMetadata(
        "metadata does not specify a super device",
    ))?;
    let metadata_region =
        total_metadata_size(geometry.metadata_max_size, geometry.metadata_slot_count);
    if metadata_region > super_dev.first_logical_sector.saturating_mul(SECTOR_SIZE) {
        return Err(Error::InvalidMetadata(
            "metadata overlaps the logical partition area",
        ));
    }
    let md = Metadata {
        geometry: *geometry,
        header,
        partitions: parts,
        extents: exts,
        groups: grps,
        block_devices: devs,
    };
    check_layout(&md)?;
    Ok(md)
}

/// Extents inside their device's logical area, no overlaps, group limits.
fn check_layout(md: &Metadata) -> Result<()> {
    // (device, start, end, extent index)
    let mut ranges: Vec<(u32, u64, u64, u32)> = Vec::new();
    for p in &md.partitions {
        for i in p.first_extent_index..p.first_extent_index.saturating_add(p.num_extents) {
            let e = md.extents.get(i as usize).ok_or(Error::InvalidMetadata(
                "partition has an invalid extent list",
            ))?;
            if e.target_type != TARGET_TYPE_LINEAR {
                continue;
            }
            let out_of_range = || Error::ExtentOutOfRange {
                partition: p.name.clone(),
                extent: i,
                device: e.target_source,
            };
            let dev = md
                .block_devices
                .get(e.target_source as usize)
                .ok_or_else(out_of_range)?;
            let end = e
                .target_data
                .checked_add(e.num_sectors)
                .ok_or_else(out_of_range)?;
            if e.target_data < dev.first_logical_sector || end > dev.size / SECTOR_SIZE {
                return Err(out_of_range());
            }
            ranges.push((e.target_source, e.target_data, end, i));
        }
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if let [a, b] = w {
            if a.0 == b.0 && b.1 < a.2 {
                return Err(Error::OverlappingExtents {
                    first: a.3.min(b.3),
                    second: a.3.max(b.3),
                });
            }
        }
    }
    for (gi, g) in md.groups.iter().enumerate() {
        if g.maximum_size == 0 {
            continue;
        }
        let used = md
            .partitions
            .iter()
            .filter(|p| p.group_index as usize == gi)
            .fold(0u64, |acc, p| acc.saturating_add(md.partition_size(p)));
        if used > g.maximum_size {
            return Err(Error::InvalidMetadata(
                "group partitions exceed the group's maximum size",
            ));
        }
    }
    Ok(())
}

/// Reads slot `slot` from a whole super image in memory: primary geometry (backup if the
/// primary is invalid), then the primary metadata copy (backup if it is invalid).
pub fn read_metadata_from_bytes(image: &[u8], slot: u32) -> Result<Metadata> {
    let at = |off: u64, len: u64, what: &'static str| -> Result<&[u8]> {
        let end = off.checked_add(len).ok_or(Error::SizeOutOfRange(what))?;
        image
            .get(off as usize..(end as usize).min(image.len()))
            .filter(|s| !s.is_empty())
            .ok_or(Error::Truncated {
                what,
                needed: end,
                available: image.len() as u64,
            })
    };
    let geometry = Geometry::parse(at(
        primary_geometry_offset(),
        GEOMETRY_SIZE as u64,
        "geometry",
    )?)
    .or_else(|e| {
        Geometry::parse(at(
            backup_geometry_offset(),
            GEOMETRY_SIZE as u64,
            "geometry",
        )?)
        .map_err(|_| e)
    })?;
    if slot >= geometry.metadata_slot_count {
        return Err(Error::InvalidArgument(format!(
            "slot {slot} >= slot count {}",
            geometry.metadata_slot_count
        )));
    }
    let m = u64::from(geometry.metadata_max_size);
    let primary = at(primary_metadata_offset(&geometry, slot), m, "metadata")
        .and_then(|b| parse_metadata(&geometry, b));
    primary.or_else(|e| {
        at(backup_metadata_offset(&geometry, slot), m, "metadata")
            .and_then(|b| parse_metadata(&geometry, b))
            .map_err(|_| e)
    })
}

/// Reads slot `slot` from a super partition (file or block device) with `pread`, with the same
/// primary → backup fallbacks as [`read_metadata_from_bytes`].
pub fn read_metadata(file: &File, slot: u32) -> Result<Metadata> {
    let read = |off: u64, len: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = file.read_at(
                buf.get_mut(filled..).unwrap_or_default(),
                off + filled as u64,
            )?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    };
    let pg = read(primary_geometry_offset(), GEOMETRY_SIZE)?;
    let geometry = Geometry::parse(&pg).or_else(|e| {
        let bg = read(backup_geometry_offset(), GEOMETRY_SIZE).map_err(|_| Error::Truncated {
            what: "geometry",
            needed: backup_geometry_offset() + GEOMETRY_SIZE as u64,
            available: 0,
        })?;
        Geometry::parse(&bg).map_err(|_| e)
    })?;
    if slot >= geometry.metadata_slot_count {
        return Err(Error::InvalidArgument(format!(
            "slot {slot} >= slot count {}",
            geometry.metadata_slot_count
        )));
    }
    let m = geometry.metadata_max_size as usize;
    let primary = read(primary_metadata_offset(&geometry, slot), m)
        .and_then(|b| parse_metadata(&geometry, &b));
    primary.or_else(|e| {
        read(backup_metadata_offset(&geometry, slot), m)
            .and_then(|b| parse_metadata(&geometry, &b))
            .map_err(|_| e)
    })
}

/// One dm table entry of a logical partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearTarget {
    /// Start in the logical partition, in sectors.
    pub start_sector: u64,
    /// Length in sectors.
    pub num_sectors: u64,
    /// `Some((device, physical start sector))` for `linear`, `None` for `zero`.
    pub source: Option<(String, u64)>,
}

impl LinearTarget {
    /// `linear` or `zero`.
    pub fn target_type(&self) -> &'static str {
        if self.source.is_some() {
            "linear"
        } else {
            "zero"
        }
    }

    /// The target parameters: `<device> <sector>` for linear, empty for zero.
    pub fn params(&self) -> String {
        match &self.source {
            Some((dev, sector)) => format!("{dev} {sector}"),
            None => String::new(),
        }
    }
}

impl std::fmt::Display for LinearTarget {
    /// A dmsetup table line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.start_sector,
            self.num_sectors,
            self.target_type()
        )?;
        if let Some((dev, sector)) = &self.source {
            write!(f, " {dev} {sector}")?;
        }
        Ok(())
    }
}

impl Metadata {
    /// The dm-linear table for partition `name`, with the super device (block device 0) at
    /// `super_device` (a path or `major:minor`).
    pub fn dm_linear_table(&self, name: &str, super_device: &str) -> Result<Vec<LinearTarget>> {
        let p = self
            .partition(name)
            .ok_or_else(|| Error::PartitionNotFound(name.to_owned()))?;
        let mut start = 0u64;
        let mut out = Vec::new();
        for e in self.extents_of(p) {
            let source = match e.target_type {
                TARGET_TYPE_LINEAR if e.target_source == 0 => {
                    Some((super_device.to_owned(), e.target_data))
                }
                TARGET_TYPE_LINEAR => {
                    return Err(Error::InvalidArgument(format!(
                        "{name}: extents on block devices other than super"
                    )))
                }
                _ => None,
            };
            out.push(LinearTarget {
                start_sector: start,
                num_sectors: e.num_sectors,
                source,
            });
            start = start
                .checked_add(e.num_sectors)
                .ok_or(Error::SizeOutOfRange("partition size"))?;
        }
        Ok(out)
    }
}
