//! The three ZIP sections an APK signature covers: entries, central directory, EOCD, found
//! with the project's zip reader (`ziparchive`).
//!
//! The EOCD is the last one whose comment reaches the last non-zero byte of the source: inside
//! the guest the APK is read through a dm-verity block device whose size is rounded up to 4 KiB
//! with zeros, so zero bytes may follow it (AOSP gets the same tolerance from the `zip` crate,
//! which scans the last 64 KiB + 22 bytes for the EOCD signature and ignores what follows). On
//! top of what the zip reader checks, an APK signature needs: no ZIP64 (as AOSP's apksig), the
//! central directory right before the EOCD, and every entry before the signing block.

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom};

use ziparchive::Source;

use crate::error::{Error, Result};

/// Size of an EOCD record without its comment.
pub const EOCD_MIN_SIZE: u64 = 22;
/// Offset of the central-directory-offset field inside the EOCD.
pub const EOCD_CD_OFFSET_FIELD: usize = 16;
/// Largest central directory read into memory (a CD record is at least 46 bytes, so this is
/// well over a million entries).
pub const MAX_CD_SIZE: u64 = 64 * 1024 * 1024;
/// Size of a local file header without its name and extra field.
const LOCAL_HEADER_SIZE: u64 = 30;

/// Where the sections of a ZIP archive are: the zip reader's end record (central directory
/// offset and size, the record's own offset and bytes).
pub type ZipSections = ziparchive::EndRecord;

/// A seekable reader as the zip reader's positioned-read source.
struct SeekSource<'a, R>(RefCell<&'a mut R>);

impl<R: Read + Seek> Source for SeekSource<'_, R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut src = self
            .0
            .try_borrow_mut()
            .map_err(|_| io::Error::other("reentrant read"))?;
        src.seek(SeekFrom::Start(offset))?;
        src.read(buf)
    }
}

/// Returns a copy of an EOCD record with its central-directory-offset field replaced.
pub fn eocd_with_cd_offset(eocd: &[u8], cd_offset: u32) -> Result<Vec<u8>> {
    let mut out = eocd.to_vec();
    let field = out
        .get_mut(EOCD_CD_OFFSET_FIELD..EOCD_CD_OFFSET_FIELD + 4)
        .ok_or(Error::Zip(ziparchive::ZipError::NoEndOfCentralDirectory))?;
    field.copy_from_slice(&cd_offset.to_le_bytes());
    Ok(out)
}

/// Finds the ZIP sections of `src`.
pub fn find_zip_sections<R: Read + Seek>(src: &mut R) -> Result<ZipSections> {
    let size = src.seek(SeekFrom::End(0))?;
    if size < EOCD_MIN_SIZE {
        return Err(Error::TooSmall(size));
    }
    let end = ziparchive::find_end_record(&SeekSource(RefCell::new(src)), size)?;
    if end.zip64 {
        return Err(Error::Zip64Unsupported);
    }
    if end.cd_offset.checked_add(end.cd_size) != Some(end.eocd_offset) {
        return Err(Error::CentralDirectoryNotBeforeEocd {
            cd_offset: end.cd_offset,
            cd_size: end.cd_size,
            eocd_offset: end.eocd_offset,
        });
    }
    Ok(end)
}

/// Reads the central directory into memory.
pub fn read_central_directory<R: Read + Seek>(src: &mut R, z: &ZipSections) -> Result<Vec<u8>> {
    if z.cd_size > MAX_CD_SIZE {
        return Err(Error::Zip(ziparchive::ZipError::CentralDirectoryTooLarge {
            size: z.cd_size,
        }));
    }
    let mut cd = vec![0u8; usize::try_from(z.cd_size).map_err(|_| Error::Overflow("cd size"))?];
    src.seek(SeekFrom::Start(z.cd_offset))?;
    src.read_exact(&mut cd)?;
    Ok(cd)
}

/// Checks the central directory records: `records` well-formed records (the zip reader's
/// checks) with every local file header starting before `limit` (the signing block, or the CD
/// when unsigned).
pub fn check_central_directory(cd: &[u8], records: u64, limit: u64) -> Result<()> {
    for entry in ziparchive::archive::parse_central_directory(cd, records)? {
        let local = entry.local_header_offset;
        if local.saturating_add(LOCAL_HEADER_SIZE) > limit {
            return Err(Error::EntryAfterSigningBlock {
                entry_offset: local,
                limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;
    use ziparchive::write::{build_zip, ZipEntry};

    /// A stored ZIP with the given (name, data) entries and no alignment padding.
    pub(crate) fn make_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let entries: Vec<ZipEntry> = files
            .iter()
            .map(|(name, data)| ZipEntry {
                align: Some(1),
                ..ZipEntry::new(*name, data.to_vec())
            })
            .collect();
        build_zip(&entries).unwrap()
    }

    #[test]
    fn finds_sections() {
        let zip = make_zip(&[("a.txt", b"hello"), ("b", b"")]);
        let z = find_zip_sections(&mut Cursor::new(&zip)).unwrap();
        assert_eq!(z.eocd_offset, zip.len() as u64 - 22);
        assert_eq!(z.entries, 2);
        assert_eq!(z.archive_end(), zip.len() as u64);
        let cd = read_central_directory(&mut Cursor::new(&zip), &z).unwrap();
        check_central_directory(&cd, z.entries, z.cd_offset).unwrap();
    }

    #[test]
    fn tolerates_zero_padding() {
        let mut zip = make_zip(&[("a.txt", b"hello")]);
        let n = zip.len();
        zip.resize(4096, 0);
        let z = find_zip_sections(&mut Cursor::new(&zip)).unwrap();
        assert_eq!(z.archive_end(), n as u64);
    }

    #[test]
    fn rejects_nonzero_trailer() {
        let mut zip = make_zip(&[("a.txt", b"hello")]);
        zip.push(1);
        assert!(matches!(
            find_zip_sections(&mut Cursor::new(&zip)),
            Err(Error::Zip(ziparchive::ZipError::NoEndOfCentralDirectory))
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
    fn rejects_zip64() {
        let mut b = ziparchive::testzip::ZipBuilder::new();
        b.stored("a.txt", b"hello");
        b.zip64_end = true;
        let zip = b.finish();
        assert!(ziparchive::parse(zip.as_slice(), zip.len() as u64).is_ok());
        assert!(matches!(
            find_zip_sections(&mut Cursor::new(&zip)),
            Err(Error::Zip64Unsupported)
        ));
    }

    #[test]
    fn records_must_fill_the_directory_and_precede_the_limit() {
        let zip = make_zip(&[("a.txt", b"hello"), ("b", b"")]);
        let z = find_zip_sections(&mut Cursor::new(&zip)).unwrap();
        let cd = read_central_directory(&mut Cursor::new(&zip), &z).unwrap();
        // The second local header starts at 40 (30 + "a.txt" + 5 bytes of data); its 30 fixed
        // bytes must end by the limit.
        check_central_directory(&cd, 2, 70).unwrap();
        assert!(matches!(
            check_central_directory(&cd, 2, 69),
            Err(Error::EntryAfterSigningBlock {
                entry_offset: 40,
                limit: 69
            })
        ));
        assert!(matches!(
            check_central_directory(&cd, 1, 70),
            Err(Error::Zip(ziparchive::ZipError::EntryCountMismatch { .. }))
        ));
    }

    #[test]
    fn an_empty_archive_and_the_directory_size_limit() {
        assert_eq!(MAX_CD_SIZE, 64 << 20);
        let empty = make_zip(&[]);
        assert_eq!(empty.len(), 22);
        let z = find_zip_sections(&mut Cursor::new(&empty)).unwrap();
        assert_eq!((z.entries, z.cd_size), (0, 0));
        let sized = |cd_size| ZipSections {
            cd_size,
            ..z.clone()
        };
        assert!(matches!(
            read_central_directory(&mut Cursor::new(&empty), &sized(MAX_CD_SIZE + 1)),
            Err(Error::Zip(
                ziparchive::ZipError::CentralDirectoryTooLarge { .. }
            ))
        ));
        // At the limit it is read (and this 22-byte file is too short for it).
        assert!(matches!(
            read_central_directory(&mut Cursor::new(&empty), &sized(MAX_CD_SIZE)),
            Err(Error::Io(_))
        ));
    }

    #[test]
    fn eocd_patch() {
        let zip = make_zip(&[]);
        let e = eocd_with_cd_offset(&zip, 0x01020304).unwrap();
        assert_eq!(&e[16..20], &[4, 3, 2, 1]);
    }
}
