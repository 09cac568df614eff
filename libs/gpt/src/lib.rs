//! GUID partition tables (GPT) for the disks handed to a Microdroid VM.
//!
//! The layout is crosvm's `create_composite_disk` (`disk/src/composite.rs`, "new" footer
//! variant), so that a raw disk assembled here, a crosvm composite disk and a QEMU VMDK view of
//! the same partitions present byte-identical disks to the guest:
//!
//! ```text
//! 0       protective MBR | primary header | 128 entries x 128 B | 3584 zero bytes   (20480 B)
//! 20480   partition 1, its size rounded up to 4 KiB with zeros
//! ...     partition N
//! next    3584 zero bytes | 128 entries | backup header                            (20480 B)
//! ```
//!
//! The guest kernel reads the partition names into `PARTNAME`, from which PID 1 creates
//! `/dev/block/by-name/<label>`.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use thiserror::Error;
use uuid::Uuid;

pub const SECTOR_SIZE: u64 = 512;
/// Size of the GPT header proper.
const GPT_HEADER_SIZE: u32 = 92;
pub const GPT_NUM_PARTITIONS: u32 = 128;
const GPT_PARTITION_ENTRY_SIZE: u32 = 128;
const ENTRIES_SIZE: usize = (GPT_NUM_PARTITIONS * GPT_PARTITION_ENTRY_SIZE) as usize;
/// Bytes before the first partition: MBR, primary header, entries, padding to 4 KiB alignment.
pub const GPT_BEGINNING_SIZE: u64 = 40 * SECTOR_SIZE;
/// Backup entries plus backup header.
pub const GPT_END_SIZE: u64 = 33 * SECTOR_SIZE;
/// Every partition starts and ends on this boundary; the gap is zero-filled.
pub const PARTITION_ALIGNMENT: u64 = 4096;
/// Zeros in front of the backup table so that the footer file is 4 KiB aligned.
const FOOTER_PADDING: u64 = align_up_const(GPT_END_SIZE) - GPT_END_SIZE;
/// Longest label a GPT entry holds (UTF-16 code units).
pub const MAX_LABEL_UNITS: usize = 36;

/// Partition type "Linux filesystem", which AVF uses for every partition.
pub const LINUX_FILESYSTEM_GUID: Uuid = Uuid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4);

const fn align_up_const(value: u64) -> u64 {
    value.div_ceil(PARTITION_ALIGNMENT) * PARTITION_ALIGNMENT
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GptError {
    #[error("partition label {0:?} appears twice")]
    DuplicateLabel(String),
    #[error("partition label {0:?} is empty or longer than 36 UTF-16 code units")]
    BadLabel(String),
    #[error("{0} partitions do not fit in a 128-entry GPT")]
    TooManyPartitions(usize),
    #[error("the disk would be larger than 2 TiB, which the protective MBR cannot describe")]
    DiskTooLarge,
    #[error("not a GPT disk: {0}")]
    NotGpt(&'static str),
    #[error("GPT {what} CRC32 is {found:#010x}, expected {expected:#010x}")]
    BadCrc {
        what: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("partition entry {index} is out of the disk's usable range")]
    EntryOutOfRange { index: usize },
}

/// What the caller asks for: a named partition of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub label: String,
    pub size: u64,
    pub type_guid: Uuid,
    pub unique_guid: Uuid,
}

impl PartitionSpec {
    /// A Linux-filesystem partition whose unique GUID is derived from `disk_guid` and the label,
    /// so that the same inputs always give the same disk bytes.
    pub fn new(disk_guid: Uuid, label: &str, size: u64) -> Self {
        PartitionSpec {
            label: label.to_owned(),
            size,
            type_guid: LINUX_FILESYSTEM_GUID,
            unique_guid: Uuid::new_v5(&disk_guid, label.as_bytes()),
        }
    }
}

/// A partition placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    pub spec: PartitionSpec,
    /// Byte offset of the partition on the disk (4 KiB aligned).
    pub offset: u64,
    /// Bytes the partition occupies: its size rounded up to 4 KiB.
    pub aligned_size: u64,
}

impl PlacedPartition {
    pub fn first_lba(&self) -> u64 {
        self.offset / SECTOR_SIZE
    }
    pub fn last_lba(&self) -> u64 {
        (self.offset + self.aligned_size) / SECTOR_SIZE - 1
    }
    /// Zero bytes between the end of the partition's data and the next 4 KiB boundary.
    pub fn padding(&self) -> u64 {
        self.aligned_size - self.spec.size
    }
}

/// The complete layout of one disk: where each partition goes and the table bytes around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptLayout {
    disk_guid: Uuid,
    partitions: Vec<PlacedPartition>,
    /// Where the footer (padding, backup entries, backup header) starts.
    footer_offset: u64,
    disk_size: u64,
}

impl GptLayout {
    pub fn new(disk_guid: Uuid, specs: Vec<PartitionSpec>) -> Result<Self, GptError> {
        if specs.len() > GPT_NUM_PARTITIONS as usize {
            return Err(GptError::TooManyPartitions(specs.len()));
        }
        let mut partitions: Vec<PlacedPartition> = Vec::with_capacity(specs.len());
        let mut next = GPT_BEGINNING_SIZE;
        for spec in specs {
            let units = spec.label.encode_utf16().count();
            if units == 0 || units > MAX_LABEL_UNITS {
                return Err(GptError::BadLabel(spec.label));
            }
            if partitions.iter().any(|p| p.spec.label == spec.label) {
                return Err(GptError::DuplicateLabel(spec.label));
            }
            let aligned_size = spec
                .size
                .checked_next_multiple_of(PARTITION_ALIGNMENT)
                .ok_or(GptError::DiskTooLarge)?;
            let offset = next;
            next = next
                .checked_add(aligned_size)
                .ok_or(GptError::DiskTooLarge)?;
            partitions.push(PlacedPartition {
                spec,
                offset,
                aligned_size,
            });
        }
        let footer_offset = next;
        let disk_size = footer_offset
            .checked_add(FOOTER_PADDING + GPT_END_SIZE)
            .ok_or(GptError::DiskTooLarge)?;
        if disk_size / SECTOR_SIZE > u64::from(u32::MAX) {
            return Err(GptError::DiskTooLarge);
        }
        Ok(GptLayout {
            disk_guid,
            partitions,
            footer_offset,
            disk_size,
        })
    }

    pub fn disk_guid(&self) -> Uuid {
        self.disk_guid
    }
    pub fn partitions(&self) -> &[PlacedPartition] {
        &self.partitions
    }
    pub fn disk_size(&self) -> u64 {
        self.disk_size
    }
    pub fn footer_offset(&self) -> u64 {
        self.footer_offset
    }
    fn secondary_table_offset(&self) -> u64 {
        self.footer_offset + FOOTER_PADDING
    }
    fn backup_header_lba(&self) -> u64 {
        self.disk_size / SECTOR_SIZE - 1
    }

    fn entries(&self) -> Vec<u8> {
        let mut entries = vec![0u8; ENTRIES_SIZE];
        for (entry, part) in entries
            .chunks_exact_mut(GPT_PARTITION_ENTRY_SIZE as usize)
            .zip(&self.partitions)
        {
            entry[0..16].copy_from_slice(&part.spec.type_guid.to_bytes_le());
            entry[16..32].copy_from_slice(&part.spec.unique_guid.to_bytes_le());
            entry[32..40].copy_from_slice(&part.first_lba().to_le_bytes());
            entry[40..48].copy_from_slice(&part.last_lba().to_le_bytes());
            // Attributes (48..56) stay zero.
            for (i, unit) in part.spec.label.encode_utf16().enumerate() {
                entry[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
            }
        }
        entries
    }

    fn header_sector(&self, current_lba: u64, backup_lba: u64, entries_crc: u32) -> [u8; 512] {
        let mut sector = [0u8; 512];
        sector[0..8].copy_from_slice(b"EFI PART");
        sector[8..12].copy_from_slice(&[0, 0, 1, 0]);
        sector[12..16].copy_from_slice(&GPT_HEADER_SIZE.to_le_bytes());
        sector[24..32].copy_from_slice(&current_lba.to_le_bytes());
        sector[32..40].copy_from_slice(&backup_lba.to_le_bytes());
        sector[40..48].copy_from_slice(&(GPT_BEGINNING_SIZE / SECTOR_SIZE).to_le_bytes());
        let last_usable = self.secondary_table_offset() / SECTOR_SIZE - 1;
        sector[48..56].copy_from_slice(&last_usable.to_le_bytes());
        sector[56..72].copy_from_slice(&self.disk_guid.to_bytes_le());
        // Both headers point at the primary entry array, as crosvm writes them.
        sector[72..80].copy_from_slice(&2u64.to_le_bytes());
        sector[80..84].copy_from_slice(&GPT_NUM_PARTITIONS.to_le_bytes());
        sector[84..88].copy_from_slice(&GPT_PARTITION_ENTRY_SIZE.to_le_bytes());
        sector[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&sector[..GPT_HEADER_SIZE as usize]);
        sector[16..20].copy_from_slice(&crc.to_le_bytes());
        sector
    }

    /// The bytes in front of the first partition: protective MBR, primary header, entries, padding.
    pub fn header(&self) -> Vec<u8> {
        let entries = self.entries();
        let entries_crc = crc32fast::hash(&entries);
        let mut out = Vec::with_capacity(GPT_BEGINNING_SIZE as usize);
        out.extend_from_slice(&self.protective_mbr());
        out.extend_from_slice(&self.header_sector(1, self.backup_header_lba(), entries_crc));
        out.extend_from_slice(&entries);
        out.resize(GPT_BEGINNING_SIZE as usize, 0);
        out
    }

    /// The bytes after the last partition: padding, backup entries, backup header.
    pub fn footer(&self) -> Vec<u8> {
        let entries = self.entries();
        let entries_crc = crc32fast::hash(&entries);
        let mut out = vec![0u8; FOOTER_PADDING as usize];
        out.extend_from_slice(&entries);
        out.extend_from_slice(&self.header_sector(self.backup_header_lba(), 1, entries_crc));
        out
    }

    fn protective_mbr(&self) -> [u8; 512] {
        let mut mbr = [0u8; 512];
        let record = &mut mbr[446..462];
        record[4] = 0xEE;
        record[8..12].copy_from_slice(&1u32.to_le_bytes());
        // Checked in `new`: the sector count fits in u32. crosvm writes the whole disk's sector
        // count here (not count - 1); Linux accepts both.
        let sectors = u32::try_from(self.disk_size / SECTOR_SIZE).unwrap_or(u32::MAX);
        record[12..16].copy_from_slice(&sectors.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        mbr
    }

    /// Writes the whole disk into `out`: table, each partition's bytes from `sources` (one reader
    /// per partition, in order, each yielding exactly the partition's size), zero padding, footer.
    pub fn write_disk<W: Write>(
        &self,
        out: &mut W,
        sources: &mut [&mut dyn Read],
    ) -> io::Result<()> {
        if sources.len() != self.partitions.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} partitions but {} sources",
                    self.partitions.len(),
                    sources.len()
                ),
            ));
        }
        out.write_all(&self.header())?;
        let zeros = [0u8; PARTITION_ALIGNMENT as usize];
        for (part, source) in self.partitions.iter().zip(sources.iter_mut()) {
            let copied = io::copy(&mut source.take(part.spec.size), out)?;
            if copied != part.spec.size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "partition {:?}: {copied} of {} bytes",
                        part.spec.label, part.spec.size
                    ),
                ));
            }
            out.write_all(&zeros[..part.padding() as usize])?;
        }
        out.write_all(&self.footer())
    }
}

/// Assembles a raw GPT disk at `out` from `(label, image file)` pairs, copying each image.
pub fn write_raw_disk(
    out: &Path,
    disk_guid: Uuid,
    partitions: &[(&str, &Path)],
) -> io::Result<GptLayout> {
    let mut specs = Vec::with_capacity(partitions.len());
    let mut files = Vec::with_capacity(partitions.len());
    for (label, path) in partitions {
        let file = File::open(path).map_err(|e| annotate(e, path))?;
        let size = file.metadata().map_err(|e| annotate(e, path))?.len();
        specs.push(PartitionSpec::new(disk_guid, label, size));
        files.push(file);
    }
    let layout = GptLayout::new(disk_guid, specs)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut readers: Vec<&mut dyn Read> = files.iter_mut().map(|f| f as &mut dyn Read).collect();
    let mut writer =
        io::BufWriter::with_capacity(1 << 20, File::create(out).map_err(|e| annotate(e, out))?);
    layout.write_disk(&mut writer, &mut readers)?;
    writer.flush()?;
    Ok(layout)
}

fn annotate(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// A partition as read back from a disk's primary GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEntry {
    pub label: String,
    pub type_guid: Uuid,
    pub unique_guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
}

/// Reads the primary GPT from the first 34 sectors of a disk (`head` may be longer).
/// Checks the signature, header size, both CRCs and that every entry lies inside the usable range.
pub fn read_partitions(head: &[u8]) -> Result<Vec<PartitionEntry>, GptError> {
    let sector = |lba: usize| head.get(lba * 512..(lba + 1) * 512);
    let hdr = sector(1).ok_or(GptError::NotGpt("shorter than two sectors"))?;
    if &hdr[0..8] != b"EFI PART" {
        return Err(GptError::NotGpt("no \"EFI PART\" signature at LBA 1"));
    }
    let header_size = le_u32(&hdr[12..16]);
    if !(GPT_HEADER_SIZE..=512).contains(&header_size) {
        return Err(GptError::NotGpt("header size out of range"));
    }
    let mut copy = hdr[..header_size as usize].to_vec();
    copy[16..20].fill(0);
    let expected = le_u32(&hdr[16..20]);
    let found = crc32fast::hash(&copy);
    if found != expected {
        return Err(GptError::BadCrc {
            what: "header",
            found,
            expected,
        });
    }
    let first_usable = le_u64(&hdr[40..48]);
    let last_usable = le_u64(&hdr[48..56]);
    let entries_lba = le_u64(&hdr[72..80]);
    let num_entries = le_u32(&hdr[80..84]);
    let entry_size = le_u32(&hdr[84..88]);
    if entry_size != GPT_PARTITION_ENTRY_SIZE || num_entries > GPT_NUM_PARTITIONS {
        return Err(GptError::NotGpt("unsupported entry size or count"));
    }
    let start = usize::try_from(entries_lba)
        .ok()
        .and_then(|lba| lba.checked_mul(512))
        .ok_or(GptError::NotGpt("entry array offset out of range"))?;
    let len = (num_entries * entry_size) as usize;
    let entries = start
        .checked_add(len)
        .and_then(|end| head.get(start..end))
        .ok_or(GptError::NotGpt("entry array past the end of the data"))?;
    let expected = le_u32(&hdr[88..92]);
    let found = crc32fast::hash(entries);
    if found != expected {
        return Err(GptError::BadCrc {
            what: "entry array",
            found,
            expected,
        });
    }
    let mut out = Vec::new();
    for (index, entry) in entries.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = Uuid::from_bytes_le(entry[0..16].try_into().unwrap_or([0; 16]));
        if type_guid.is_nil() {
            continue;
        }
        let first_lba = le_u64(&entry[32..40]);
        let last_lba = le_u64(&entry[40..48]);
        if first_lba < first_usable || last_lba > last_usable || first_lba > last_lba {
            return Err(GptError::EntryOutOfRange { index });
        }
        let units: Vec<u16> = entry[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        out.push(PartitionEntry {
            label: String::from_utf16_lossy(&units),
            type_guid,
            unique_guid: Uuid::from_bytes_le(entry[16..32].try_into().unwrap_or([0; 16])),
            first_lba,
            last_lba,
        });
    }
    Ok(out)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn hex(data: &[u8]) -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Python's `random.seed(1)` stream is not reproducible here, so the known-answer check
    /// covers the header and footer files, which do not depend on partition contents.
    fn reference_layout() -> GptLayout {
        let disk = Uuid::parse_str("12345678-1234-5678-abcd-12345678abcd").unwrap();
        let p1 = PartitionSpec {
            label: "vbmeta_a".into(),
            size: 10000,
            type_guid: LINUX_FILESYSTEM_GUID,
            unique_guid: Uuid::from_u128(1),
        };
        let p2 = PartitionSpec {
            label: "super".into(),
            size: 8192,
            type_guid: LINUX_FILESYSTEM_GUID,
            unique_guid: Uuid::from_u128(2),
        };
        GptLayout::new(disk, vec![p1, p2]).unwrap()
    }

    #[test]
    fn known_answer_header_and_footer() {
        let layout = reference_layout();
        assert_eq!(layout.disk_size(), 61440);
        let header = layout.header();
        let footer = layout.footer();
        assert_eq!(header.len(), 20480);
        assert_eq!(footer.len(), 20480);
        assert_eq!(
            hex(&header),
            "50c50315db79d7f20fee9d178a3edab18fe6019134360689112e9975930b957c"
        );
        assert_eq!(
            hex(&footer),
            "f2ed9c903ac3ead71ae1d459ea164c89745107d1067f97309b30decfbde6281f"
        );
        let parts = layout.partitions();
        assert_eq!((parts[0].first_lba(), parts[0].last_lba()), (40, 63));
        assert_eq!((parts[1].first_lba(), parts[1].last_lba()), (64, 79));
        assert_eq!(parts[0].padding(), 2288);
    }

    #[test]
    fn round_trip_through_reader() {
        let layout = reference_layout();
        let entries = read_partitions(&layout.header()).unwrap();
        let labels: Vec<_> = entries.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["vbmeta_a", "super"]);
        assert_eq!(entries[1].unique_guid, Uuid::from_u128(2));
        assert_eq!((entries[1].first_lba, entries[1].last_lba), (64, 79));
    }

    #[test]
    fn rejects_duplicates_bad_labels_and_too_many() {
        let disk = Uuid::nil();
        let dup = vec![
            PartitionSpec::new(disk, "a", 1),
            PartitionSpec::new(disk, "a", 1),
        ];
        assert_eq!(
            GptLayout::new(disk, dup),
            Err(GptError::DuplicateLabel("a".into()))
        );
        let long = "x".repeat(37);
        assert_eq!(
            GptLayout::new(disk, vec![PartitionSpec::new(disk, &long, 1)]),
            Err(GptError::BadLabel(long))
        );
        let many = (0..129)
            .map(|i| PartitionSpec::new(disk, &format!("p{i}"), 1))
            .collect();
        assert_eq!(
            GptLayout::new(disk, many),
            Err(GptError::TooManyPartitions(129))
        );
        let huge = vec![PartitionSpec::new(disk, "big", 3 << 40)];
        assert_eq!(GptLayout::new(disk, huge), Err(GptError::DiskTooLarge));
    }

    /// Recomputes the entry array CRC, then the header CRC, of a primary GPT in `head`.
    fn reseal(head: &mut [u8]) {
        let count = le_u32(&head[512 + 80..512 + 84]) as usize;
        let entries_crc = crc32fast::hash(&head[1024..1024 + count * 128]);
        head[512 + 88..512 + 92].copy_from_slice(&entries_crc.to_le_bytes());
        let size = le_u32(&head[512 + 12..512 + 16]) as usize;
        head[512 + 16..512 + 20].fill(0);
        let header_crc = crc32fast::hash(&head[512..512 + size]);
        head[512 + 16..512 + 20].copy_from_slice(&header_crc.to_le_bytes());
    }

    /// The range checks are inclusive where GPT's are: a one-sector partition and one ending
    /// on the last usable sector are read; one sector past it, or more than 128 entries, is
    /// refused. The layout's accessors give what it was built with.
    #[test]
    fn reader_bounds_are_exact() {
        let layout = reference_layout();
        assert_eq!(
            layout.disk_guid(),
            Uuid::parse_str("12345678-1234-5678-abcd-12345678abcd").unwrap()
        );
        assert_eq!(layout.footer_offset(), layout.disk_size() - 20480);
        let mut head = layout.header();
        let last_usable = le_u64(&head[512 + 48..512 + 56]);
        let entry = |i: usize, field: usize| 1024 + i * 128 + field;
        // Entry 0: one sector; entry 1: ends on the last usable sector.
        let first0 = le_u64(&head[entry(0, 32)..entry(0, 40)]);
        head[entry(0, 40)..entry(0, 48)].copy_from_slice(&first0.to_le_bytes());
        head[entry(1, 40)..entry(1, 48)].copy_from_slice(&last_usable.to_le_bytes());
        reseal(&mut head);
        let parts = read_partitions(&head).unwrap();
        assert_eq!((parts[0].first_lba, parts[0].last_lba), (first0, first0));
        assert_eq!(parts[1].last_lba, last_usable);

        let mut past = head.clone();
        past[entry(1, 40)..entry(1, 48)].copy_from_slice(&(last_usable + 1).to_le_bytes());
        reseal(&mut past);
        assert_eq!(
            read_partitions(&past),
            Err(GptError::EntryOutOfRange { index: 1 })
        );
        let mut reversed = head.clone();
        head_set(&mut reversed, entry(0, 40), first0 - 1);
        reseal(&mut reversed);
        assert_eq!(
            read_partitions(&reversed),
            Err(GptError::EntryOutOfRange { index: 0 })
        );
        let mut too_many = head;
        too_many[512 + 80..512 + 84].copy_from_slice(&(GPT_NUM_PARTITIONS + 1).to_le_bytes());
        reseal(&mut too_many);
        assert_eq!(
            read_partitions(&too_many),
            Err(GptError::NotGpt("unsupported entry size or count"))
        );
    }

    fn head_set(head: &mut [u8], at: usize, value: u64) {
        head[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn reader_rejects_corruption() {
        let header = reference_layout().header();
        assert_eq!(
            read_partitions(&header[..1100]),
            Err(GptError::NotGpt("entry array past the end of the data"))
        );
        let mut bad_sig = header.clone();
        bad_sig[512] = b'X';
        assert!(matches!(
            read_partitions(&bad_sig),
            Err(GptError::NotGpt(_))
        ));
        let mut bad_entry = header.clone();
        bad_entry[1024 + 60] ^= 1;
        assert!(matches!(
            read_partitions(&bad_entry),
            Err(GptError::BadCrc {
                what: "entry array",
                ..
            })
        ));
        let mut bad_header = header;
        bad_header[512 + 40] ^= 1;
        assert!(matches!(
            read_partitions(&bad_header),
            Err(GptError::BadCrc { what: "header", .. })
        ));
    }

    #[test]
    fn raw_disk_is_accepted_by_sgdisk() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.img");
        let b = dir.path().join("b.img");
        std::fs::write(&a, vec![0xA5u8; 10000]).unwrap();
        std::fs::write(&b, vec![0x5Au8; 8192]).unwrap();
        let disk = dir.path().join("disk.img");
        let layout = write_raw_disk(
            &disk,
            Uuid::from_u128(7),
            &[("vbmeta_a", &a), ("super", &b)],
        )
        .unwrap();
        let bytes = std::fs::read(&disk).unwrap();
        assert_eq!(bytes.len() as u64, layout.disk_size());
        assert_eq!(&bytes[20480..30480], &vec![0xA5u8; 10000][..]);
        assert!(bytes[30480..32768].iter().all(|&b| b == 0));
        assert_eq!(&bytes[32768..40960], &vec![0x5Au8; 8192][..]);
        let out = std::process::Command::new("sgdisk")
            .arg("-v")
            .arg(&disk)
            .output();
        let out = out.expect("sgdisk (package gdisk, installed by `make setup`) must be available");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No problems found"), "sgdisk -v: {text}");
    }
}
