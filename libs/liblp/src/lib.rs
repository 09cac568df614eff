//! Android logical partitions: the metadata of a `super` partition (liblp metadata format
//! 10.0–10.2), as AOSP `fs_mgr/liblp` reads it and `lpmake` writes it. All integers are
//! little-endian. See `docs/formats/liblp.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), liblp::Error> {
//! // Build super.img (non-sparse) like Soong's lpmake call for Microdroid.
//! let mut b = liblp::SuperBuilder::new();
//! b.add_partition("system_a", "default", liblp::PARTITION_ATTR_READONLY, liblp::ImageSource::file("system.img")?)?;
//! b.add_partition("vendor_a", "default", liblp::PARTITION_ATTR_READONLY, liblp::ImageSource::file("vendor.img")?)?;
//! b.write("super.img")?;
//! // init: read slot 0 of the super device and map system_a.
//! let md = liblp::read_metadata(&std::fs::File::open("/dev/vda2")?, 0)?;
//! let table = md.dm_linear_table("system_a", "/dev/vda2")?;
//! # let _ = table; Ok(()) }
//! ```

// `is_multiple_of` needs Rust 1.87; the workspace declares rust-version 1.80.
#![allow(clippy::manual_is_multiple_of)]

mod builder;
mod format;
mod reader;

pub use builder::{ImageSource, SuperBuilder};
pub use format::{
    BlockDevice, Extent, Geometry, Header, Metadata, Partition, PartitionGroup, TableDescriptor,
};
pub use reader::{parse_metadata, read_metadata, read_metadata_from_bytes, LinearTarget};

/// Geometry magic (`"gDla"` on disk).
pub const GEOMETRY_MAGIC: u32 = 0x616c_4467;
/// Geometry block size on disk.
pub const GEOMETRY_SIZE: usize = 4096;
/// Size of `LpMetadataGeometry`.
pub const GEOMETRY_STRUCT_SIZE: usize = 52;
/// Header magic (`"0PLA"` on disk).
pub const HEADER_MAGIC: u32 = 0x414c_5030;
/// Metadata major version.
pub const MAJOR_VERSION: u16 = 10;
/// Highest metadata minor version we read.
pub const MINOR_VERSION_MAX: u16 = 2;
/// Minor version that allows the UPDATED and DISABLED attributes.
pub const VERSION_FOR_UPDATED_ATTR: u16 = 1;
/// Minor version with the 256-byte header.
pub const VERSION_FOR_EXPANDED_HEADER: u16 = 2;
/// `sizeof(LpMetadataHeaderV1_0)`.
pub const HEADER_V1_0_SIZE: usize = 128;
/// `sizeof(LpMetadataHeaderV1_2)`.
pub const HEADER_V1_2_SIZE: usize = 256;
/// Sector size.
pub const SECTOR_SIZE: u64 = 512;
/// Bytes reserved at the start of the super partition.
pub const PARTITION_RESERVED_BYTES: u64 = 4096;
/// `sizeof(LpMetadataPartition)`.
pub const PARTITION_ENTRY_SIZE: usize = 52;
/// `sizeof(LpMetadataExtent)`.
pub const EXTENT_ENTRY_SIZE: usize = 24;
/// `sizeof(LpMetadataPartitionGroup)`.
pub const GROUP_ENTRY_SIZE: usize = 48;
/// `sizeof(LpMetadataBlockDevice)`.
pub const BLOCK_DEVICE_ENTRY_SIZE: usize = 64;
/// Name field size (partitions, groups, block devices).
pub const NAME_SIZE: usize = 36;

/// Partition attribute: read-only.
pub const PARTITION_ATTR_READONLY: u32 = 1 << 0;
/// Partition attribute: the name gets the slot suffix.
pub const PARTITION_ATTR_SLOT_SUFFIXED: u32 = 1 << 1;
/// Partition attribute: updated (metadata ≥ 10.1).
pub const PARTITION_ATTR_UPDATED: u32 = 1 << 2;
/// Partition attribute: disabled (metadata ≥ 10.1).
pub const PARTITION_ATTR_DISABLED: u32 = 1 << 3;
/// Attributes allowed in metadata 10.0.
pub const PARTITION_ATTRIBUTE_MASK_V0: u32 = PARTITION_ATTR_READONLY | PARTITION_ATTR_SLOT_SUFFIXED;
/// Attributes added in metadata 10.1.
pub const PARTITION_ATTRIBUTE_MASK_V1: u32 = PARTITION_ATTR_UPDATED | PARTITION_ATTR_DISABLED;
/// Group flag: slot suffixed.
pub const GROUP_SLOT_SUFFIXED: u32 = 1 << 0;
/// Block device flag: slot suffixed.
pub const BLOCK_DEVICE_SLOT_SUFFIXED: u32 = 1 << 0;
/// Header flag (10.2): virtual A/B device.
pub const HEADER_FLAG_VIRTUAL_AB_DEVICE: u32 = 0x1;
/// Extent target: linear.
pub const TARGET_TYPE_LINEAR: u32 = 0;
/// Extent target: zero.
pub const TARGET_TYPE_ZERO: u32 = 1;

/// Errors from reading, validating or building super metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wrong magic.
    #[error("bad magic in {what}")]
    BadMagic {
        /// Which structure.
        what: &'static str,
    },
    /// A metadata version we do not read.
    #[error("unsupported metadata version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The input ends before a structure does.
    #[error("{what} truncated: needs {needed} bytes, have {available}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A size or offset out of range, or an overflow.
    #[error("size out of range: {0}")]
    SizeOutOfRange(&'static str),
    /// A SHA-256 checksum does not match.
    #[error("{what} checksum mismatch")]
    ChecksumMismatch {
        /// Which checksum.
        what: &'static str,
    },
    /// Geometry fields liblp rejects.
    #[error("invalid geometry: {0}")]
    InvalidGeometry(&'static str),
    /// Header or table fields liblp rejects.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(&'static str),
    /// An extent outside its block device or the logical area.
    #[error("partition {partition:?}: extent {extent} is outside block device {device}")]
    ExtentOutOfRange {
        /// Partition name.
        partition: String,
        /// Extent index (global).
        extent: u32,
        /// Block device index.
        device: u32,
    },
    /// Two linear extents share sectors.
    #[error("extents {first} and {second} overlap")]
    OverlappingExtents {
        /// First extent index.
        first: u32,
        /// Second extent index.
        second: u32,
    },
    /// No partition with that name.
    #[error("no partition named {0:?}")]
    PartitionNotFound(String),
    /// A caller error (names, sizes, groups).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Offset of the primary geometry.
pub const fn primary_geometry_offset() -> u64 {
    PARTITION_RESERVED_BYTES
}

/// Offset of the backup geometry.
pub const fn backup_geometry_offset() -> u64 {
    PARTITION_RESERVED_BYTES + GEOMETRY_SIZE as u64
}

/// `GetPrimaryMetadataOffset`.
pub fn primary_metadata_offset(g: &Geometry, slot: u32) -> u64 {
    PARTITION_RESERVED_BYTES
        + 2 * GEOMETRY_SIZE as u64
        + u64::from(g.metadata_max_size) * u64::from(slot)
}

/// `GetBackupMetadataOffset`.
pub fn backup_metadata_offset(g: &Geometry, slot: u32) -> u64 {
    let m = u64::from(g.metadata_max_size);
    PARTITION_RESERVED_BYTES
        + 2 * GEOMETRY_SIZE as u64
        + m * u64::from(g.metadata_slot_count)
        + m * u64::from(slot)
}

/// `GetTotalMetadataSize`: reserved bytes + 2 × (geometry + all slots).
pub fn total_metadata_size(metadata_max_size: u32, slots: u32) -> u64 {
    PARTITION_RESERVED_BYTES
        + (GEOMETRY_SIZE as u64 + u64::from(metadata_max_size) * u64::from(slots)) * 2
}

/// `_a`, `_b`, ... for slot 0, 1, ...
pub fn slot_suffix(slot: u32) -> String {
    let c = char::from_u32(u32::from(b'a') + slot.min(25)).unwrap_or('a');
    format!("_{c}")
}

#[cfg(test)]
mod tests;

/// Entry points shared by the `cargo fuzz` target (`libs/liblp/fuzz`) and the corpus tests.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `data` as a super image (both slots) and as a bare metadata blob; whatever parses
    /// must re-encode and produce dm tables without panicking.
    pub fn metadata(data: &[u8]) {
        for slot in 0..2 {
            if let Ok(md) = crate::read_metadata_from_bytes(data, slot) {
                let blob = md.encode();
                if let Ok(blob) = blob {
                    let again = crate::parse_metadata(&md.geometry, &blob);
                    assert!(again.is_ok(), "re-encoded metadata must parse");
                }
                for p in &md.partitions {
                    let _ = md.dm_linear_table(&p.name, "/dev/null");
                }
            }
        }
        if let Ok(g) = crate::Geometry::parse(data) {
            let _ = crate::parse_metadata(&g, data.get(crate::GEOMETRY_SIZE..).unwrap_or_default());
        }
    }
}
