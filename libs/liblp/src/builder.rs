//! Building a non-sparse `super.img` the way `lpmake` (`MetadataBuilder` + `ImageBuilder`) does.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::format::check_name;
use crate::*;

/// Where a partition's contents come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// No image: the partition is left zero.
    Empty,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// A file (its size when added).
    File {
        /// Path.
        path: PathBuf,
        /// Size in bytes.
        size: u64,
    },
}

impl ImageSource {
    /// A file image; records its current size.
    pub fn file(path: impl AsRef<Path>) -> Result<Self> {
        let size = std::fs::metadata(path.as_ref())?.len();
        Ok(Self::File {
            path: path.as_ref().to_owned(),
            size,
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Bytes(b) => b.len() as u64,
            Self::File { size, .. } => *size,
        }
    }

    /// True for an empty image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug)]
struct Spec {
    name: String,
    group: String,
    attributes: u32,
    size: u64,
    image: ImageSource,
}

/// Builds super metadata and a non-sparse super image like
/// `lpmake --metadata-size 65536 --metadata-slots 2 --device-size auto
/// --partition <name>:readonly:<size>:<group> --image <name>=<file>` (Soong's call for
/// Microdroid, without `--sparse`).
#[derive(Clone, Debug)]
pub struct SuperBuilder {
    /// `--metadata-size` (rounded up to 512).
    pub metadata_max_size: u32,
    /// `--metadata-slots`.
    pub metadata_slots: u32,
    /// `--block-size` (logical block size).
    pub block_size: u32,
    /// `--alignment`.
    pub alignment: u32,
    /// `--alignment-offset`.
    pub alignment_offset: u32,
    /// `--device-size`; `None` = `auto`.
    pub device_size: Option<u64>,
    /// `--super-name`.
    pub super_name: String,
    groups: Vec<PartitionGroup>,
    partitions: Vec<Spec>,
}

impl Default for SuperBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SuperBuilder {
    /// lpmake's defaults with Microdroid's metadata size and slots: 64 KiB metadata, 2 slots,
    /// 4096-byte blocks, 1 MiB alignment, automatic device size, `super`, group `default`.
    pub fn new() -> Self {
        Self {
            metadata_max_size: 65536,
            metadata_slots: 2,
            block_size: 4096,
            alignment: 1 << 20,
            alignment_offset: 0,
            device_size: None,
            super_name: "super".to_owned(),
            groups: vec![PartitionGroup {
                name: "default".to_owned(),
                flags: 0,
                maximum_size: 0,
            }],
            partitions: Vec::new(),
        }
    }

    /// `--group <name>:<maximum_size>` (0 = unlimited).
    pub fn add_group(&mut self, name: &str, maximum_size: u64) -> Result<()> {
        check_name(name)?;
        if self.groups.iter().any(|g| g.name == name) {
            return Err(Error::InvalidArgument(format!(
                "group {name:?} already exists"
            )));
        }
        self.groups.push(PartitionGroup {
            name: name.to_owned(),
            flags: 0,
            maximum_size,
        });
        Ok(())
    }

    /// `--partition <name>:<attrs>:<image size>:<group> --image <name>=<image>`: the partition
    /// is as large as its image (rounded up to the block size).
    pub fn add_partition(
        &mut self,
        name: &str,
        group: &str,
        attributes: u32,
        image: ImageSource,
    ) -> Result<()> {
        let size = image.len();
        self.add_partition_with_size(name, group, attributes, size, image)
    }

    /// A partition of `size` bytes (rounded up to the block size) holding `image` (at most
    /// `size` bytes; the rest is zero).
    pub fn add_partition_with_size(
        &mut self,
        name: &str,
        group: &str,
        attributes: u32,
        size: u64,
        image: ImageSource,
    ) -> Result<()> {
        check_name(name)?;
        if self.partitions.iter().any(|p| p.name == name) {
            return Err(Error::InvalidArgument(format!(
                "partition {name:?} already exists"
            )));
        }
        if !self.groups.iter().any(|g| g.name == group) {
            return Err(Error::InvalidArgument(format!(
                "partition {name:?}: no group {group:?}"
            )));
        }
        if attributes & !(PARTITION_ATTRIBUTE_MASK_V0 | PARTITION_ATTRIBUTE_MASK_V1) != 0 {
            return Err(Error::InvalidArgument(format!(
                "partition {name:?}: unknown attributes {attributes:#x}"
            )));
        }
        if image.len() > size {
            return Err(Error::InvalidArgument(format!(
                "partition {name:?}: image larger than the partition"
            )));
        }
        self.partitions.push(Spec {
            name: name.to_owned(),
            group: group.to_owned(),
            attributes,
            size,
            image,
        });
        Ok(())
    }

    fn metadata_max_size_rounded(&self) -> Result<u32> {
        let m = u64::from(self.metadata_max_size).div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        let m = u32::try_from(m)
            .map_err(|_| Error::InvalidArgument("metadata size too large".into()))?;
        if (m as usize) < HEADER_V1_2_SIZE {
            return Err(Error::InvalidArgument("metadata size too small".into()));
        }
        Ok(m)
    }

    /// The device size: the given one, or lpmake's `auto`: the metadata area rounded up to the
    /// alignment (a full alignment more when already aligned), plus one alignment and the size
    /// of each partition.
    pub fn computed_device_size(&self) -> Result<u64> {
        if let Some(s) = self.device_size {
            return Ok(s);
        }
        let meta = total_metadata_size(self.metadata_max_size_rounded()?, self.metadata_slots);
        let a = u64::from(self.alignment.max(1));
        let mut size = (meta / a + 1) * a;
        for p in &self.partitions {
            size = size
                .checked_add(a)
                .and_then(|s| s.checked_add(p.size))
                .ok_or(Error::SizeOutOfRange("device size"))?;
        }
        Ok(size)
    }

    /// Lays out the metadata: super block device, groups, partitions with one extent each,
    /// allocated in order from the first free aligned sector.
    pub fn build_metadata(&self) -> Result<Metadata> {
        if self.metadata_slots == 0 || self.metadata_slots > crate::format::METADATA_SLOT_LIMIT {
            return Err(Error::InvalidArgument(
                "metadata slots must be 1..=64".into(),
            ));
        }
        if self.block_size == 0 || u64::from(self.block_size) % SECTOR_SIZE != 0 {
            return Err(Error::InvalidArgument(
                "block size must be a multiple of 512".into(),
            ));
        }
        if self.alignment != 0 && u64::from(self.alignment) % SECTOR_SIZE != 0 {
            return Err(Error::InvalidArgument(
                "alignment must be a multiple of 512".into(),
            ));
        }
        check_name(&self.super_name)?;
        let metadata_max_size = self.metadata_max_size_rounded()?;
        let geometry = Geometry {
            metadata_max_size,
            metadata_slot_count: self.metadata_slots,
            logical_block_size: self.block_size,
        };
        let device_size = self.computed_device_size()?;
        let reserved = total_metadata_size(metadata_max_size, self.metadata_slots);
        let align_to = |x: u64| -> Result<u64> {
            let (a, off) = if self.alignment != 0 || self.alignment_offset != 0 {
                (
                    u64::from(self.alignment.max(1)),
                    u64::from(self.alignment_offset),
                )
            } else {
                (u64::from(self.block_size), 0)
            };
            // liblp AlignTo(base, alignment, offset)
            let mut aligned = x
                .checked_add(a - 1)
                .ok_or(Error::SizeOutOfRange("alignment"))?
                / a
                * a;
            aligned = aligned
                .checked_add(off)
                .ok_or(Error::SizeOutOfRange("alignment"))?;
            if aligned >= a && aligned - a >= x {
                aligned -= a;
            }
            Ok(aligned)
        };
        let first_logical_sector = align_to(reserved)? / SECTOR_SIZE;
        if device_size < first_logical_sector * SECTOR_SIZE + u64::from(self.block_size) {
            return Err(Error::InvalidArgument(format!(
                "device size {device_size} too small for the metadata"
            )));
        }
        let device_sectors = device_size / SECTOR_SIZE;
        let mut partitions = Vec::new();
        let mut extents = Vec::new();
        let mut next_free = first_logical_sector;
        let mut minor = 0u16;
        for p in &self.partitions {
            let aligned = u64::from(self.block_size);
            let bytes = p
                .size
                .div_ceil(aligned)
                .checked_mul(aligned)
                .ok_or(Error::SizeOutOfRange("partition size"))?;
            let sectors = bytes / SECTOR_SIZE;
            let first_extent_index =
                u32::try_from(extents.len()).map_err(|_| Error::SizeOutOfRange("extents"))?;
            if sectors > 0 {
                let start = align_to(next_free * SECTOR_SIZE)?.div_ceil(SECTOR_SIZE);
                let end = start
                    .checked_add(sectors)
                    .ok_or(Error::SizeOutOfRange("partition size"))?;
                if end > device_sectors {
                    return Err(Error::InvalidArgument(format!(
                        "not enough space on device for partition {:?} ({} bytes)",
                        p.name, bytes
                    )));
                }
                extents.push(Extent {
                    num_sectors: sectors,
                    target_type: TARGET_TYPE_LINEAR,
                    target_data: start,
                    target_source: 0,
                });
                next_free = end;
            }
            if p.attributes & PARTITION_ATTRIBUTE_MASK_V1 != 0 {
                minor = minor.max(VERSION_FOR_UPDATED_ATTR);
            }
            let group_index = self
                .groups
                .iter()
                .position(|g| g.name == p.group)
                .unwrap_or(0);
            partitions.push(Partition {
                name: p.name.clone(),
                attributes: p.attributes,
                first_extent_index,
                num_extents: u32::from(sectors > 0),
                group_index: u32::try_from(group_index)
                    .map_err(|_| Error::SizeOutOfRange("groups"))?,
            });
        }
        let md = Metadata {
            geometry,
            header: Header {
                major_version: MAJOR_VERSION,
                minor_version: minor,
                header_size: HEADER_V1_0_SIZE as u32,
                header_checksum: [0; 32],
                tables_size: 0,
                tables_checksum: [0; 32],
                partitions: TableDescriptor::default(),
                extents: TableDescriptor::default(),
                groups: TableDescriptor::default(),
                block_devices: TableDescriptor::default(),
                flags: 0,
            },
            partitions,
            extents,
            groups: self.groups.clone(),
            block_devices: vec![BlockDevice {
                first_logical_sector,
                alignment: self.alignment,
                alignment_offset: self.alignment_offset,
                size: device_size,
                partition_name: self.super_name.clone(),
                flags: 0,
            }],
        };
        // Round trip through the encoder so the returned header carries the real checksums,
        // and so the layout passes our own reader's checks.
        let blob = md.encode()?;
        if blob.len() > metadata_max_size as usize {
            return Err(Error::InvalidArgument(format!(
                "metadata is {} bytes, more than {metadata_max_size}",
                blob.len()
            )));
        }
        parse_metadata(&geometry, &blob)
    }

    /// Writes a non-sparse super image to `path` (created or truncated) and returns the metadata.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<Metadata> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        self.write_to(&mut f)
    }

    /// Writes the image into `file` (which is truncated to the device size first): 4096 zero
    /// bytes, primary and backup geometry, the same metadata blob in every primary and backup
    /// slot, then each partition's image at its extent (unwritten areas stay zero/holes).
    pub fn write_to(&self, file: &mut File) -> Result<Metadata> {
        let md = self.build_metadata()?;
        let device_size = md
            .super_size()
            .ok_or(Error::InvalidMetadata("no super device"))?;
        file.set_len(0)?;
        file.set_len(device_size)?;
        for (off, bytes) in self.layout_chunks(&md)? {
            file.seek(SeekFrom::Start(off))?;
            file.write_all(&bytes)?;
        }
        for (p, spec) in md.partitions.iter().zip(&self.partitions) {
            let Some(e) = md.extents_of(p).first() else {
                continue;
            };
            let off = e.target_data * SECTOR_SIZE;
            match &spec.image {
                ImageSource::Empty => {}
                ImageSource::Bytes(b) => {
                    file.seek(SeekFrom::Start(off))?;
                    file.write_all(b)?;
                }
                ImageSource::File { path, size } => {
                    let mut src = File::open(path)?.take(*size);
                    file.seek(SeekFrom::Start(off))?;
                    let copied = std::io::copy(&mut src, file)?;
                    if copied != *size {
                        return Err(Error::InvalidArgument(format!(
                            "{}: file shrank while copying",
                            path.display()
                        )));
                    }
                }
            }
        }
        file.flush()?;
        Ok(md)
    }

    /// The whole image in memory (for tests and small images).
    pub fn to_bytes(&self) -> Result<(Metadata, Vec<u8>)> {
        let md = self.build_metadata()?;
        let size = usize::try_from(md.super_size().unwrap_or(0))
            .map_err(|_| Error::SizeOutOfRange("device size"))?;
        let mut out = vec![0u8; size];
        let mut put = |off: u64, bytes: &[u8]| -> Result<()> {
            let off = usize::try_from(off).map_err(|_| Error::SizeOutOfRange("offset"))?;
            out.get_mut(off..off + bytes.len())
                .ok_or(Error::SizeOutOfRange("offset"))?
                .copy_from_slice(bytes);
            Ok(())
        };
        for (off, bytes) in self.layout_chunks(&md)? {
            put(off, &bytes)?;
        }
        for (p, spec) in md.partitions.iter().zip(&self.partitions) {
            let Some(e) = md.extents_of(p).first() else {
                continue;
            };
            match &spec.image {
                ImageSource::Empty => {}
                ImageSource::Bytes(b) => put(e.target_data * SECTOR_SIZE, b)?,
                ImageSource::File { path, .. } => {
                    put(e.target_data * SECTOR_SIZE, &std::fs::read(path)?)?
                }
            }
        }
        Ok((md, out))
    }

    /// Geometry copies and metadata slots with their offsets.
    fn layout_chunks(&self, md: &Metadata) -> Result<Vec<(u64, Vec<u8>)>> {
        let g = &md.geometry;
        let geometry = g.encode();
        let mut blob = md.encode()?;
        blob.resize(g.metadata_max_size as usize, 0);
        let mut chunks = vec![
            (primary_geometry_offset(), geometry.clone()),
            (backup_geometry_offset(), geometry),
        ];
        for slot in 0..g.metadata_slot_count {
            chunks.push((primary_metadata_offset(g, slot), blob.clone()));
            chunks.push((backup_metadata_offset(g, slot), blob.clone()));
        }
        Ok(chunks)
    }
}
