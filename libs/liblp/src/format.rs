//! On-disk structures (little-endian, packed) and their encoding.

use sha2::{Digest, Sha256};

use crate::*;

/// Upper bound we accept for `metadata_max_size` when reading (AOSP uses 64 KiB; this keeps
/// a corrupted geometry from making us allocate gigabytes).
pub const METADATA_MAX_SIZE_LIMIT: u32 = 16 << 20;
/// Upper bound we accept for `metadata_slot_count` (AOSP uses 2 or 3).
pub const METADATA_SLOT_LIMIT: u32 = 64;

/// Bounds-checked little-endian cursor.
pub(crate) struct Le<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Le<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Error::SizeOutOfRange(self.what))?;
        let b = self.buf.get(self.pos..end).ok_or(Error::Truncated {
            what: self.what,
            needed: end as u64,
            available: self.buf.len() as u64,
        })?;
        self.pos = end;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn digest(&mut self) -> Result<[u8; 32]> {
        self.array()
    }
    pub(crate) fn name(&mut self) -> Result<String> {
        let raw = self.bytes(NAME_SIZE)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_SIZE);
        let s = raw.get(..end).unwrap_or_default();
        String::from_utf8(s.to_vec()).map_err(|_| Error::InvalidMetadata("name is not UTF-8"))
    }
}

pub(crate) fn put_name(out: &mut Vec<u8>, name: &str) -> Result<()> {
    check_name(name)?;
    let mut field = [0u8; NAME_SIZE];
    field
        .get_mut(..name.len())
        .ok_or_else(|| Error::InvalidArgument(format!("name {name:?} too long")))?
        .copy_from_slice(name.as_bytes());
    out.extend_from_slice(&field);
    Ok(())
}

/// Names are at most 36 bytes, without NUL.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_SIZE || name.as_bytes().contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "name {name:?} must be 1..=36 bytes without NUL"
        )));
    }
    Ok(())
}

/// `LpMetadataGeometry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Maximum size of one metadata copy (multiple of 512).
    pub metadata_max_size: u32,
    /// Number of metadata slots.
    pub metadata_slot_count: u32,
    /// Logical block size (4096).
    pub logical_block_size: u32,
}

impl Geometry {
    /// Parses and checks a geometry block (`ParseGeometry`): magic, struct size, SHA-256,
    /// slot count, sector alignment.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut r = Le::new(buf, "geometry");
        let magic = r.u32()?;
        let struct_size = r.u32()?;
        let checksum = r.digest()?;
        let metadata_max_size = r.u32()?;
        let metadata_slot_count = r.u32()?;
        let logical_block_size = r.u32()?;
        if magic != GEOMETRY_MAGIC {
            return Err(Error::BadMagic { what: "geometry" });
        }
        if struct_size as usize != GEOMETRY_STRUCT_SIZE {
            return Err(Error::InvalidGeometry("struct size is not 52"));
        }
        let g = Self {
            metadata_max_size,
            metadata_slot_count,
            logical_block_size,
        };
        if g.checksum() != checksum {
            return Err(Error::ChecksumMismatch { what: "geometry" });
        }
        if metadata_slot_count == 0 || metadata_slot_count > METADATA_SLOT_LIMIT {
            return Err(Error::InvalidGeometry(
                "metadata slot count is 0 or too large",
            ));
        }
        if metadata_max_size as u64 % SECTOR_SIZE != 0
            || metadata_max_size < HEADER_V1_2_SIZE as u32
        {
            return Err(Error::InvalidGeometry(
                "metadata max size is not sector-aligned",
            ));
        }
        if metadata_max_size > METADATA_MAX_SIZE_LIMIT {
            return Err(Error::InvalidGeometry("metadata max size is too large"));
        }
        if logical_block_size == 0 || logical_block_size as u64 % SECTOR_SIZE != 0 {
            return Err(Error::InvalidGeometry(
                "logical block size is not a sector multiple",
            ));
        }
        Ok(g)
    }

    fn struct_bytes(&self, checksum: &[u8; 32]) -> Vec<u8> {
        let mut v = Vec::with_capacity(GEOMETRY_STRUCT_SIZE);
        v.extend_from_slice(&GEOMETRY_MAGIC.to_le_bytes());
        v.extend_from_slice(&(GEOMETRY_STRUCT_SIZE as u32).to_le_bytes());
        v.extend_from_slice(checksum);
        v.extend_from_slice(&self.metadata_max_size.to_le_bytes());
        v.extend_from_slice(&self.metadata_slot_count.to_le_bytes());
        v.extend_from_slice(&self.logical_block_size.to_le_bytes());
        v
    }

    /// SHA-256 of the 52-byte struct with the checksum field zeroed.
    pub fn checksum(&self) -> [u8; 32] {
        Sha256::digest(self.struct_bytes(&[0; 32])).into()
    }

    /// The 4096-byte geometry block.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.struct_bytes(&self.checksum());
        v.resize(GEOMETRY_SIZE, 0);
        v
    }
}

/// `LpMetadataTableDescriptor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableDescriptor {
    /// Offset from the end of the header.
    pub offset: u32,
    /// Number of entries.
    pub num_entries: u32,
    /// Entry size.
    pub entry_size: u32,
}

/// `LpMetadataHeader` (v1.0: 128 bytes, v1.2: 256 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Major version (10).
    pub major_version: u16,
    /// Minor version (0..=2).
    pub minor_version: u16,
    /// 128 or 256.
    pub header_size: u32,
    /// SHA-256 of the header with this field zeroed.
    pub header_checksum: [u8; 32],
    /// Size of all tables.
    pub tables_size: u32,
    /// SHA-256 of the tables.
    pub tables_checksum: [u8; 32],
    /// Partition table.
    pub partitions: TableDescriptor,
    /// Extent table.
    pub extents: TableDescriptor,
    /// Group table.
    pub groups: TableDescriptor,
    /// Block device table.
    pub block_devices: TableDescriptor,
    /// Flags (v1.2 only).
    pub flags: u32,
}

impl Header {
    pub(crate) fn encode(&self, with_checksum: bool) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.header_size as usize);
        v.extend_from_slice(&HEADER_MAGIC.to_le_bytes());
        v.extend_from_slice(&self.major_version.to_le_bytes());
        v.extend_from_slice(&self.minor_version.to_le_bytes());
        v.extend_from_slice(&self.header_size.to_le_bytes());
        v.extend_from_slice(if with_checksum {
            &self.header_checksum
        } else {
            &[0u8; 32]
        });
        v.extend_from_slice(&self.tables_size.to_le_bytes());
        v.extend_from_slice(&self.tables_checksum);
        for t in [
            self.partitions,
            self.extents,
            self.groups,
            self.block_devices,
        ] {
            v.extend_from_slice(&t.offset.to_le_bytes());
            v.extend_from_slice(&t.num_entries.to_le_bytes());
            v.extend_from_slice(&t.entry_size.to_le_bytes());
        }
        if self.header_size as usize >= HEADER_V1_2_SIZE {
            v.extend_from_slice(&self.flags.to_le_bytes());
        }
        v.resize(self.header_size as usize, 0);
        v
    }
}

/// `LpMetadataPartition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Name (e.g. `system_a`).
    pub name: String,
    /// `PARTITION_ATTR_*`.
    pub attributes: u32,
    /// First extent index.
    pub first_extent_index: u32,
    /// Number of extents.
    pub num_extents: u32,
    /// Group index.
    pub group_index: u32,
}

/// `LpMetadataExtent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Length in 512-byte sectors.
    pub num_sectors: u64,
    /// `TARGET_TYPE_LINEAR` or `TARGET_TYPE_ZERO`.
    pub target_type: u32,
    /// First physical sector (linear).
    pub target_data: u64,
    /// Block device index (linear).
    pub target_source: u32,
}

/// `LpMetadataPartitionGroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionGroup {
    /// Name (`default` is always group 0).
    pub name: String,
    /// `GROUP_SLOT_SUFFIXED`.
    pub flags: u32,
    /// Maximum total size of the group's partitions (0 = unlimited).
    pub maximum_size: u64,
}

/// `LpMetadataBlockDevice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// First sector usable by logical partitions.
    pub first_logical_sector: u64,
    /// Alignment in bytes.
    pub alignment: u32,
    /// Alignment offset in bytes.
    pub alignment_offset: u32,
    /// Device size in bytes.
    pub size: u64,
    /// Partition name of the device (`super`).
    pub partition_name: String,
    /// `BLOCK_DEVICE_SLOT_SUFFIXED`.
    pub flags: u32,
}

/// One metadata slot: geometry, header and tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The geometry it was read with / will be written with.
    pub geometry: Geometry,
    /// The header as read (checksums and table descriptors are recomputed by [`Metadata::encode`]).
    pub header: Header,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Extents.
    pub extents: Vec<Extent>,
    /// Groups.
    pub groups: Vec<PartitionGroup>,
    /// Block devices (index 0 is the super device).
    pub block_devices: Vec<BlockDevice>,
}

impl Metadata {
    /// Serializes like `SerializeMetadata`: tables (partitions, extents, groups, block
    /// devices), their SHA-256, then the header with its SHA-256. Returns header ‖ tables.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut tables = Vec::new();
        for p in &self.partitions {
            put_name(&mut tables, &p.name)?;
            tables.extend_from_slice(&p.attributes.to_le_bytes());
            tables.extend_from_slice(&p.first_extent_index.to_le_bytes());
            tables.extend_from_slice(&p.num_extents.to_le_bytes());
            tables.extend_from_slice(&p.group_index.to_le_bytes());
        }
        let extents_off = tables.len();
        for e in &self.extents {
            tables.extend_from_slice(&e.num_sectors.to_le_bytes());
            tables.extend_from_slice(&e.target_type.to_le_bytes());
            tables.extend_from_slice(&e.target_data.to_le_bytes());
            tables.extend_from_slice(&e.target_source.to_le_bytes());
        }
        let groups_off = tables.len();
        for g in &self.groups {
            put_name(&mut tables, &g.name)?;
            tables.extend_from_slice(&g.flags.to_le_bytes());
            tables.extend_from_slice(&g.maximum_size.to_le_bytes());
        }
        let devices_off = tables.len();
        for d in &self.block_devices {
            tables.extend_from_slice(&d.first_logical_sector.to_le_bytes());
            tables.extend_from_slice(&d.alignment.to_le_bytes());
            tables.extend_from_slice(&d.alignment_offset.to_le_bytes());
            tables.extend_from_slice(&d.size.to_le_bytes());
            put_name(&mut tables, &d.partition_name)?;
            tables.extend_from_slice(&d.flags.to_le_bytes());
        }
        let n = |len: usize| u32::try_from(len).map_err(|_| Error::SizeOutOfRange("table"));
        let mut h = self.header.clone();
        h.major_version = MAJOR_VERSION;
        h.header_size = if h.minor_version >= VERSION_FOR_EXPANDED_HEADER {
            HEADER_V1_2_SIZE
        } else {
            HEADER_V1_0_SIZE
        } as u32;
        h.tables_size = n(tables.len())?;
        h.tables_checksum = Sha256::digest(&tables).into();
        h.partitions = TableDescriptor {
            offset: 0,
            num_entries: n(self.partitions.len())?,
            entry_size: PARTITION_ENTRY_SIZE as u32,
        };
        h.extents = TableDescriptor {
            offset: n(extents_off)?,
            num_entries: n(self.extents.len())?,
            entry_size: EXTENT_ENTRY_SIZE as u32,
        };
        h.groups = TableDescriptor {
            offset: n(groups_off)?,
            num_entries: n(self.groups.len())?,
            entry_size: GROUP_ENTRY_SIZE as u32,
        };
        h.block_devices = TableDescriptor {
            offset: n(devices_off)?,
            num_entries: n(self.block_devices.len())?,
            entry_size: BLOCK_DEVICE_ENTRY_SIZE as u32,
        };
        h.header_checksum = Sha256::digest(h.encode(false)).into();
        let mut out = h.encode(true);
        out.extend_from_slice(&tables);
        Ok(out)
    }

    /// The partition named `name`.
    pub fn partition(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// The extents of `partition` (validated ranges; empty if out of range).
    pub fn extents_of(&self, partition: &Partition) -> &[Extent] {
        let start = partition.first_extent_index as usize;
        let end = start.saturating_add(partition.num_extents as usize);
        self.extents.get(start..end).unwrap_or_default()
    }

    /// Size of `partition` in bytes (sum of its extents).
    pub fn partition_size(&self, partition: &Partition) -> u64 {
        self.extents_of(partition).iter().fold(0u64, |acc, e| {
            acc.saturating_add(e.num_sectors.saturating_mul(SECTOR_SIZE))
        })
    }

    /// The group name of `partition`.
    pub fn group_name(&self, partition: &Partition) -> Option<&str> {
        self.groups
            .get(partition.group_index as usize)
            .map(|g| g.name.as_str())
    }

    /// The super device's size in bytes (block device 0).
    pub fn super_size(&self) -> Option<u64> {
        self.block_devices.first().map(|d| d.size)
    }
}
