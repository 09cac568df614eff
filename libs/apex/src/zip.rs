//! The zip central directory, read just far enough to find the APEX's three entries and the
//! byte range of their data. Every offset and size comes from the file, so every sum is checked
//! and every range is checked against the file's size before it is read.

use std::collections::HashSet;

use crate::manifest::ApexManifest;
use crate::source::ReadAt;
use crate::{
    Error, Result, MANIFEST_ENTRY, MAX_MANIFEST_SIZE, MAX_PUBKEY_SIZE, PAYLOAD_ENTRY, PUBKEY_ENTRY,
};

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CD_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const EOCD_SIZE: u64 = 22;
const CD_HEADER_SIZE: u64 = 46;
const LOCAL_HEADER_SIZE: u64 = 30;
const MAX_COMMENT: u64 = 0xffff;
/// Bytes allowed after the end record's comment: a partition is zero-padded to 4 KiB by the
/// payload disk, so the guest sees the APEX followed by up to 4095 zeros.
const MAX_TRAILING: u64 = 4095;
/// Largest central directory read (an APEX has a handful of entries).
const MAX_CD_SIZE: u64 = 1024 * 1024;
const METHOD_STORED: u16 = 0;
const FLAG_ENCRYPTED: u16 = 1;

/// Where an entry's data lies in the APEX file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRange {
    /// Offset of the first data byte.
    pub offset: u64,
    /// Size of the data.
    pub size: u64,
}

/// An APEX parsed from its zip: the manifest, the bundled key, and where the payload image is.
#[derive(Clone, Debug, PartialEq)]
pub struct ApexFile {
    /// `apex_manifest.pb`.
    pub manifest: ApexManifest,
    /// `apex_pubkey`: an AVB public key blob.
    pub public_key: Vec<u8>,
    /// `apex_payload.img`'s bytes inside the APEX.
    pub payload: EntryRange,
}

fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn malformed(what: impl Into<String>) -> Error {
    Error::MalformedZip(what.into())
}

fn add(a: u64, b: u64, what: &str) -> Result<u64> {
    a.checked_add(b)
        .ok_or_else(|| malformed(format!("{what} overflows")))
}

fn read_vec(src: &(impl ReadAt + ?Sized), offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
    let size = src.size()?;
    let end = add(offset, len, what)?;
    if end > size {
        return Err(malformed(format!(
            "{what} ({offset}+{len}) extends past the end of the file ({size} bytes)"
        )));
    }
    let len = usize::try_from(len).map_err(|_| malformed(format!("{what} is too large")))?;
    let mut buf = vec![0u8; len];
    src.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

struct EndRecord {
    cd_offset: u64,
    cd_size: u64,
    entries: u16,
    /// Where the end record starts: the central directory must end here.
    position: u64,
}

fn find_end_record(src: &(impl ReadAt + ?Sized)) -> Result<EndRecord> {
    let size = src.size()?;
    if size < EOCD_SIZE {
        return Err(Error::NoEndOfCentralDirectory);
    }
    let window = (EOCD_SIZE + MAX_COMMENT + MAX_TRAILING).min(size);
    let start = size - window;
    let tail = read_vec(src, start, window, "end of file")?;
    // The last record whose comment fits in the file, scanning backwards: padding may follow it.
    let last = tail.len() - EOCD_SIZE as usize;
    for i in (0..=last).rev() {
        if le32(&tail, i) != EOCD_SIGNATURE {
            continue;
        }
        let comment = u64::from(le16(&tail, i + 20));
        let record_end = (i as u64) + EOCD_SIZE + comment;
        if record_end > tail.len() as u64 {
            continue;
        }
        if tail
            .get(record_end as usize..)
            .unwrap_or(&[])
            .iter()
            .any(|&b| b != 0)
        {
            // Something other than padding follows: not the real end record.
            continue;
        }
        let (disk, cd_disk) = (le16(&tail, i + 4), le16(&tail, i + 6));
        let (on_disk, total) = (le16(&tail, i + 8), le16(&tail, i + 10));
        let cd_size = le32(&tail, i + 12);
        let cd_offset = le32(&tail, i + 16);
        if disk != 0 || cd_disk != 0 || on_disk != total {
            return Err(Error::UnsupportedZip("multi-disk archive"));
        }
        if total == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
            return Err(Error::UnsupportedZip("ZIP64"));
        }
        return Ok(EndRecord {
            cd_offset: u64::from(cd_offset),
            cd_size: u64::from(cd_size),
            entries: total,
            position: start + i as u64,
        });
    }
    Err(Error::NoEndOfCentralDirectory)
}

/// One central directory record, as far as it matters here.
struct CdEntry {
    name: String,
    method: u16,
    flags: u16,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

fn parse_central_directory(cd: &[u8], count: u16) -> Result<Vec<CdEntry>> {
    let mut entries = Vec::with_capacity(usize::from(count));
    let mut at = 0usize;
    for index in 0..count {
        let header = cd
            .get(at..)
            .filter(|rest| rest.len() as u64 >= CD_HEADER_SIZE)
            .ok_or_else(|| malformed(format!("central directory record {index} is truncated")))?;
        if le32(header, 0) != CD_SIGNATURE {
            return Err(malformed(format!(
                "central directory record {index} has a bad signature"
            )));
        }
        let name_len = usize::from(le16(header, 28));
        let extra_len = usize::from(le16(header, 30));
        let comment_len = usize::from(le16(header, 32));
        let disk = le16(header, 34);
        let compressed = le32(header, 20);
        let uncompressed = le32(header, 24);
        let local_offset = le32(header, 42);
        if disk != 0 {
            return Err(Error::UnsupportedZip("multi-disk archive"));
        }
        if [compressed, uncompressed, local_offset].contains(&0xffff_ffff) {
            return Err(Error::UnsupportedZip("ZIP64"));
        }
        let name_start = CD_HEADER_SIZE as usize;
        let name = header
            .get(name_start..name_start + name_len)
            .ok_or_else(|| malformed(format!("central directory record {index} is truncated")))?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| malformed(format!("entry name of record {index} is not UTF-8")))?;
        let record_len = name_start + name_len + extra_len + comment_len;
        if record_len > header.len() {
            return Err(malformed(format!(
                "central directory record {index} is truncated"
            )));
        }
        entries.push(CdEntry {
            name,
            method: le16(header, 10),
            flags: le16(header, 8),
            compressed: u64::from(compressed),
            uncompressed: u64::from(uncompressed),
            local_offset: u64::from(local_offset),
        });
        at += record_len;
    }
    Ok(entries)
}

impl ApexFile {
    /// Parses the zip at `src`: finds `apex_manifest.pb`, `apex_pubkey` and `apex_payload.img`,
    /// checks they are stored and lie inside the file before the central directory, decodes the
    /// manifest and reads the key.
    pub fn parse(src: &(impl ReadAt + ?Sized)) -> Result<Self> {
        let end = find_end_record(src)?;
        let cd_end = add(end.cd_offset, end.cd_size, "central directory")?;
        if cd_end > end.position {
            return Err(malformed(
                "central directory overlaps the end of central directory record",
            ));
        }
        if end.cd_size > MAX_CD_SIZE {
            return Err(Error::UnsupportedZip("central directory larger than 1 MiB"));
        }
        let cd = read_vec(src, end.cd_offset, end.cd_size, "central directory")?;
        let entries = parse_central_directory(&cd, end.entries)?;
        let mut seen = HashSet::new();
        for entry in &entries {
            if !seen.insert(entry.name.as_str()) {
                return Err(Error::DuplicateEntry(entry.name.clone()));
            }
        }
        let locate = |name: &'static str| -> Result<EntryRange> {
            let entry = entries
                .iter()
                .find(|e| e.name == name)
                .ok_or(Error::MissingEntry(name))?;
            data_range(src, entry, name, end.cd_offset)
        };
        let manifest_range = locate(MANIFEST_ENTRY)?;
        let pubkey_range = locate(PUBKEY_ENTRY)?;
        let payload = locate(PAYLOAD_ENTRY)?;
        for (name, range, limit) in [
            (MANIFEST_ENTRY, manifest_range, MAX_MANIFEST_SIZE),
            (PUBKEY_ENTRY, pubkey_range, MAX_PUBKEY_SIZE),
        ] {
            if range.size > limit {
                return Err(Error::EntryTooLarge {
                    name,
                    size: range.size,
                    limit,
                });
            }
        }
        let manifest_bytes = read_vec(
            src,
            manifest_range.offset,
            manifest_range.size,
            MANIFEST_ENTRY,
        )?;
        let manifest = ApexManifest::decode_checked(&manifest_bytes)?;
        let public_key = read_vec(src, pubkey_range.offset, pubkey_range.size, PUBKEY_ENTRY)?;
        Ok(Self {
            manifest,
            public_key,
            payload,
        })
    }
}

/// The data range of a stored entry, from its local header; the data must end before the
/// central directory starts.
fn data_range(
    src: &(impl ReadAt + ?Sized),
    entry: &CdEntry,
    name: &'static str,
    cd_offset: u64,
) -> Result<EntryRange> {
    if entry.flags & FLAG_ENCRYPTED != 0 {
        return Err(Error::UnsupportedZip("encrypted entry"));
    }
    if entry.method != METHOD_STORED {
        return Err(Error::EntryNotStored(name, entry.method));
    }
    if entry.compressed != entry.uncompressed {
        return Err(malformed(format!(
            "stored entry {name} has compressed size {} but size {}",
            entry.compressed, entry.uncompressed
        )));
    }
    let local = read_vec(src, entry.local_offset, LOCAL_HEADER_SIZE, "local header")?;
    if le32(&local, 0) != LOCAL_SIGNATURE {
        return Err(malformed(format!(
            "local header of {name} has a bad signature"
        )));
    }
    let name_len = u64::from(le16(&local, 26));
    let extra_len = u64::from(le16(&local, 28));
    let local_name = read_vec(
        src,
        add(entry.local_offset, LOCAL_HEADER_SIZE, "local header")?,
        name_len,
        "local header name",
    )?;
    if local_name != name.as_bytes() {
        return Err(malformed(format!(
            "local header name of {name} differs from the central directory"
        )));
    }
    if le16(&local, 8) != METHOD_STORED {
        return Err(malformed(format!(
            "local header of {name} disagrees with the central directory on compression"
        )));
    }
    let offset = add(
        add(entry.local_offset, LOCAL_HEADER_SIZE, "local header")?,
        add(name_len, extra_len, "local header")?,
        "entry data offset",
    )?;
    let end = add(offset, entry.uncompressed, "entry data")?;
    if end > cd_offset {
        return Err(malformed(format!(
            "data of {name} ({offset}..{end}) runs into the central directory at {cd_offset}"
        )));
    }
    Ok(EntryRange {
        offset,
        size: entry.uncompressed,
    })
}
