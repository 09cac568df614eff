//! A minimal, reproducible ZIP writer for building unsigned APKs: entries are **stored**
//! (uncompressed, as zipfuse and `lib/*.so` mmap need), timestamps are fixed (1980-01-01), and
//! each entry's data is aligned like `zipalign -p` does it (zero-padding the local header's extra
//! field): 4096 for `*.so`, 4 for everything else, unless told otherwise.

use crate::ZipError;

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CD_RECORD_SIGNATURE: u32 = 0x0201_4b50;
const EOCD_SIGNATURE: u32 = 0x0605_4b50;
/// DOS date of 1980-01-01 (day 1, month 1, year 0).
const DOS_DATE: u16 = 0x0021;

/// One file to store.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    /// Path inside the archive (`/`-separated, no leading `/`).
    pub name: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Alignment of the data offset; `None` = 4096 for `.so`, else 4.
    pub align: Option<u64>,
    /// Unix permission bits recorded in the central directory (a zipfuse mount shows them).
    pub mode: u32,
}

impl ZipEntry {
    /// An entry with default alignment.
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            align: None,
            mode: 0o644,
        }
    }

    /// The same entry with Unix permission bits `mode` (e.g. 0o755 for a payload executable).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o7777;
        self
    }
}

fn u16_of(n: usize, what: &'static str) -> Result<u16, ZipError> {
    u16::try_from(n).map_err(|_| ZipError::TooLargeToWrite(what))
}

fn u32_of(n: usize, what: &'static str) -> Result<u32, ZipError> {
    u32::try_from(n).map_err(|_| ZipError::TooLargeToWrite(what))
}

/// Builds a stored, aligned ZIP from `entries` in the given order.
pub fn build_zip(entries: &[ZipEntry]) -> Result<Vec<u8>, ZipError> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for e in entries {
        let name = e.name.as_bytes();
        let align = e
            .align
            .unwrap_or(if e.name.ends_with(".so") { 4096 } else { 4 })
            .max(1);
        let offset = u32_of(out.len(), "archive larger than 4 GiB")?;
        let data_start = out.len() as u64 + 30 + name.len() as u64;
        let pad = ((align - data_start % align) % align) as usize;
        let crc = crc32fast::hash(&e.data);
        let size = u32_of(e.data.len(), "entry larger than 4 GiB")?;
        let name_len = u16_of(name.len(), "name too long")?;
        out.extend_from_slice(&LOCAL_HEADER_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&10u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // method: stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&u16_of(pad, "alignment too large")?.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len() + pad, 0);
        out.extend_from_slice(&e.data);

        cd.extend_from_slice(&CD_RECORD_SIGNATURE.to_le_bytes());
        cd.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: Unix, 3.0
        cd.extend_from_slice(&10u16.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&DOS_DATE.to_le_bytes());
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&size.to_le_bytes());
        cd.extend_from_slice(&size.to_le_bytes());
        cd.extend_from_slice(&name_len.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes()); // extra
        cd.extend_from_slice(&0u16.to_le_bytes()); // comment
        cd.extend_from_slice(&0u16.to_le_bytes()); // disk
        cd.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        cd.extend_from_slice(&((0o100000 | (e.mode & 0o7777)) << 16).to_le_bytes()); // external: regular file + mode
        cd.extend_from_slice(&offset.to_le_bytes());
        cd.extend_from_slice(name);
    }
    let count = u16_of(entries.len(), "too many entries")?;
    let cd_offset = u32_of(out.len(), "archive larger than 4 GiB")?;
    let cd_size = u32_of(cd.len(), "central directory too large")?;
    out.extend_from_slice(&cd);
    out.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Method;

    #[test]
    fn aligned_and_parsable() {
        let zip = build_zip(&[
            ZipEntry::new("AndroidManifest.xml", b"x".to_vec()),
            ZipEntry::new("lib/x86_64/libpayload.so", vec![0x7f; 100]).with_mode(0o755),
            ZipEntry {
                align: Some(64),
                ..ZipEntry::new("assets/a", b"abc".to_vec())
            },
        ])
        .unwrap();
        let archive = crate::parse(zip.as_slice(), zip.len() as u64).unwrap();
        let e = &archive.entries;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, b"AndroidManifest.xml");
        assert_eq!(e[0].data_offset % 4, 0);
        assert_eq!((e[1].data_offset % 4096, e[1].size), (0, 100));
        assert_eq!(e[1].unix_mode, Some(0o100755));
        assert_eq!(e[0].unix_mode, Some(0o100644));
        assert_eq!(e[2].data_offset % 64, 0);
        assert!(e.iter().all(|e| e.method == Method::Stored));
        assert_eq!(e[2].crc32, crc32fast::hash(b"abc"));
        let data = &zip[e[2].data_offset as usize..][..3];
        assert_eq!(data, b"abc");
    }

    #[test]
    fn aligned_data_gets_no_padding() {
        let zip = build_zip(&[ZipEntry {
            align: Some(1),
            ..ZipEntry::new("a", b"xyz".to_vec())
        }])
        .unwrap();
        // Local header and name, data, central record and name, end record.
        assert_eq!(zip.len(), 30 + 1 + 3 + 46 + 1 + 22);
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let entries = [ZipEntry::new("a", b"1".to_vec())];
        assert_eq!(build_zip(&entries).unwrap(), build_zip(&entries).unwrap());
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let long = ZipEntry::new("n".repeat(70_000), Vec::new());
        assert!(matches!(
            build_zip(&[long]),
            Err(ZipError::TooLargeToWrite("name too long"))
        ));
        let pad = ZipEntry {
            align: Some(1 << 20),
            ..ZipEntry::new("a", Vec::new())
        };
        assert!(matches!(
            build_zip(&[pad]),
            Err(ZipError::TooLargeToWrite("alignment too large"))
        ));
    }
}
