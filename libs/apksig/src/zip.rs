//! The three ZIP sections an APK signature covers: entries, central directory, EOCD.
//!
//! The EOCD is found by scanning backwards from the end of the source. Unlike a plain ZIP
//! reader this tolerates **trailing zero bytes** after the EOCD (and its comment): inside the
//! guest the APK is read through a dm-verity block device whose size is rounded up to 4 KiB with
//! zeros. AOSP gets the same tolerance from the `zip` crate, which scans the last 64 KiB + 22
//! bytes for the EOCD signature and ignores what follows. Here only zero bytes may follow, and at
//! most [`MAX_TRAILING_PADDING`] of them.

use std::io::{Read, Seek, SeekFrom};

use crate::bytes::ByteReader;
use crate::error::{Error, Result};

/// Size of an EOCD record without its comment.
pub const EOCD_MIN_SIZE: u64 = 22;
/// EOCD signature "PK\x05\x06".
pub const EOCD_SIGNATURE: u32 = 0x0605_4b50;
/// Central directory file header signature "PK\x01\x02".
pub const CD_RECORD_SIGNATURE: u32 = 0x0201_4b50;
/// Offset of the central-directory-offset field inside the EOCD.
pub const EOCD_CD_OFFSET_FIELD: usize = 16;
/// Largest ZIP comment.
pub const MAX_COMMENT: u64 = 0xffff;
/// Largest number of zero bytes accepted after the EOCD record (a block device rounds the APK
/// up to its block size; 64 KiB covers every block size in use).
pub const MAX_TRAILING_PADDING: u64 = 64 * 1024;
/// Largest central directory read into memory (a CD record is at least 46 bytes, so this is
/// well over a million entries).
pub const MAX_CD_SIZE: u64 = 64 * 1024 * 1024;

/// Where the sections of a ZIP archive are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSections {
    /// Offset of the central directory (from the EOCD).
    pub cd_offset: u64,
    /// Size of the central directory (from the EOCD).
    pub cd_size: u64,
    /// Number of central directory records (from the EOCD).
    pub cd_records: u16,
    /// Offset of the EOCD record.
    pub eocd_offset: u64,
    /// The EOCD record including its comment.
    pub eocd: Vec<u8>,
    /// Size of the source, including any zero padding after the archive.
    pub source_size: u64,
}

impl ZipSections {
    /// End of the archive proper (the end of the EOCD comment); zero padding may follow.
    pub fn archive_end(&self) -> u64 {
        self.eocd_offset.saturating_add(self.eocd.len() as u64)
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Returns a copy of an EOCD record with its central-directory-offset field replaced.
pub fn eocd_with_cd_offset(eocd: &[u8], cd_offset: u32) -> Result<Vec<u8>> {
    let mut out = eocd.to_vec();
    let field = out
        .get_mut(EOCD_CD_OFFSET_FIELD..EOCD_CD_OFFSET_FIELD + 4)
        .ok_or(Error::NoEocd)?;
    field.copy_from_slice(&cd_offset.to_le_bytes());
    Ok(out)
}

/// Finds the ZIP sections of `src`.
pub fn find_zip_sections<R: Read + Seek>(src: &mut R) -> Result<ZipSections> {
    let size = src.seek(SeekFrom::End(0))?;
    if size < EOCD_MIN_SIZE {
        return Err(Error::TooSmall(size));
    }
    // Window that can contain an EOCD: comment (≤ 64 KiB) plus padding (≤ 64 KiB).
    let window = size.min(EOCD_MIN_SIZE + MAX_COMMENT + MAX_TRAILING_PADDING);
    let start = size - window;
    let mut tail = vec![0u8; usize::try_from(window).map_err(|_| Error::Overflow("window"))?];
    src.seek(SeekFrom::Start(start))?;
    src.read_exact(&mut tail)?;

    // First pass: an EOCD whose comment ends exactly at the end (the normal case, and what
    // apksig does). Second pass: followed only by zero padding.
    for allow_padding in [false, true] {
        let mut pos = tail.len() - EOCD_MIN_SIZE as usize;
        loop {
            if le_u32(&tail, pos) == Some(EOCD_SIGNATURE) {
                let comment = le_u16(&tail, pos + 20).map(u64::from).unwrap_or(u64::MAX);
                let end = (pos as u64)
                    .saturating_add(EOCD_MIN_SIZE)
                    .saturating_add(comment);
                let ok = if allow_padding {
                    end <= window
                        && window - end <= MAX_TRAILING_PADDING
                        && tail[end as usize..].iter().all(|&b| b == 0)
                } else {
                    end == window
                };
                if ok {
                    let eocd = tail[pos..end as usize].to_vec();
                    return parse_eocd(eocd, start + pos as u64, size);
                }
            }
            if pos == 0 {
                break;
            }
            pos -= 1;
        }
    }
    Err(Error::NoEocd)
}

fn parse_eocd(eocd: Vec<u8>, eocd_offset: u64, source_size: u64) -> Result<ZipSections> {
    let disk = le_u16(&eocd, 4).ok_or(Error::NoEocd)?;
    let cd_disk = le_u16(&eocd, 6).ok_or(Error::NoEocd)?;
    let records_here = le_u16(&eocd, 8).ok_or(Error::NoEocd)?;
    let records = le_u16(&eocd, 10).ok_or(Error::NoEocd)?;
    let cd_size = le_u32(&eocd, 12).ok_or(Error::NoEocd)?;
    let cd_offset = le_u32(&eocd, 16).ok_or(Error::NoEocd)?;
    if disk != 0
        || cd_disk != 0
        || records_here != records
        || records == 0xffff
        || cd_size == u32::MAX
        || cd_offset == u32::MAX
    {
        return Err(Error::Zip64Unsupported);
    }
    let (cd_offset, cd_size) = (u64::from(cd_offset), u64::from(cd_size));
    if cd_offset.checked_add(cd_size) != Some(eocd_offset) {
        return Err(Error::CentralDirectoryNotBeforeEocd {
            cd_offset,
            cd_size,
            eocd_offset,
        });
    }
    Ok(ZipSections {
        cd_offset,
        cd_size,
        cd_records: records,
        eocd_offset,
        eocd,
        source_size,
    })
}

/// Reads the central directory into memory.
pub fn read_central_directory<R: Read + Seek>(src: &mut R, z: &ZipSections) -> Result<Vec<u8>> {
    if z.cd_size > MAX_CD_SIZE {
        return Err(Error::MalformedCentralDirectory(
            "central directory too large",
        ));
    }
    let mut cd = vec![0u8; z.cd_size as usize];
    src.seek(SeekFrom::Start(z.cd_offset))?;
    src.read_exact(&mut cd)?;
    Ok(cd)
}

/// Checks the central directory records: `records` well-formed records, none of them ZIP64, and
/// every local file header starting before `limit` (the signing block, or the CD when unsigned).
pub fn check_central_directory(cd: &[u8], records: u16, limit: u64) -> Result<()> {
    let mut r = ByteReader::new(cd);
    for _ in 0..records {
        let fixed = r
            .take(46)
            .ok_or(Error::MalformedCentralDirectory("truncated record"))?;
        if le_u32(fixed, 0) != Some(CD_RECORD_SIGNATURE) {
            return Err(Error::MalformedCentralDirectory("bad record signature"));
        }
        let field = |at| le_u16(fixed, at).map(usize::from).unwrap_or(0);
        let (name, extra, comment) = (field(28), field(30), field(32));
        let compressed = le_u32(fixed, 20).unwrap_or(0);
        let uncompressed = le_u32(fixed, 24).unwrap_or(0);
        let local = le_u32(fixed, 42).unwrap_or(0);
        if compressed == u32::MAX || uncompressed == u32::MAX || local == u32::MAX {
            return Err(Error::Zip64Unsupported);
        }
        // A local header is 30 bytes; it must fit before the limit.
        if u64::from(local).saturating_add(30) > limit {
            return Err(Error::EntryAfterSigningBlock {
                entry_offset: u64::from(local),
                limit,
            });
        }
        r.take(name + extra + comment)
            .ok_or(Error::MalformedCentralDirectory("truncated record"))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal stored ZIP with the given (name, data) entries, built by hand.
    pub(crate) fn make_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in files {
            let off = out.len() as u32;
            let crc = crc32(data);
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            cd.extend_from_slice(&CD_RECORD_SIGNATURE.to_le_bytes());
            cd.extend_from_slice(&[20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
            cd.extend_from_slice(&crc.to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 8]);
            cd.extend_from_slice(&0o100644u32.wrapping_shl(16).to_le_bytes());
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn finds_sections() {
        let zip = make_zip(&[("a.txt", b"hello"), ("b", b"")]);
        let z = find_zip_sections(&mut Cursor::new(&zip)).unwrap();
        assert_eq!(z.eocd_offset, zip.len() as u64 - 22);
        assert_eq!(z.cd_records, 2);
        assert_eq!(z.archive_end(), zip.len() as u64);
        let cd = read_central_directory(&mut Cursor::new(&zip), &z).unwrap();
        check_central_directory(&cd, z.cd_records, z.cd_offset).unwrap();
    }

    #[test]
    fn tolerates_zero_padding() {
        let mut zip = make_zip(&[("a.txt", b"hello")]);
        let n = zip.len();
        zip.resize(4096, 0);
        let z = find_zip_sections(&mut Cursor::new(&zip)).unwrap();
        assert_eq!(z.archive_end(), n as u64);
        assert_eq!(z.source_size, 4096);
    }

    #[test]
    fn rejects_nonzero_trailer() {
        let mut zip = make_zip(&[("a.txt", b"hello")]);
        zip.push(1);
        assert!(matches!(
            find_zip_sections(&mut Cursor::new(&zip)),
            Err(Error::NoEocd)
        ));
        assert!(matches!(
            find_zip_sections(&mut Cursor::new(&[0u8; 5][..])),
            Err(Error::TooSmall(5))
        ));
    }

    #[test]
    fn rejects_gap_between_cd_and_eocd() {
        let zip = make_zip(&[("a.txt", b"hello")]);
        let (pre, eocd) = zip.split_at(zip.len() - 22);
        let bad = [pre, b"x", eocd].concat();
        assert!(matches!(
            find_zip_sections(&mut Cursor::new(&bad)),
            Err(Error::CentralDirectoryNotBeforeEocd { .. })
        ));
    }

    #[test]
    fn eocd_patch() {
        let zip = make_zip(&[]);
        let e = eocd_with_cd_offset(&zip, 0x01020304).unwrap();
        assert_eq!(&e[16..20], &[4, 3, 2, 1]);
    }
}
