//! An APEX's three entries, found with the project's zip reader (`ziparchive`, which checks the
//! end records, the central directory, every local header and the layout), and its two small
//! entries read into memory.

use std::collections::HashSet;
use std::io;

use ziparchive::{Entry, Method, Source};

use crate::manifest::ApexManifest;
use crate::source::ReadAt;
use crate::{
    Error, Result, MANIFEST_ENTRY, MAX_MANIFEST_SIZE, MAX_PUBKEY_SIZE, PAYLOAD_ENTRY, PUBKEY_ENTRY,
};

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

/// A [`ReadAt`] as the zip reader's [`Source`]: reads stop at the source's size.
struct ZipSource<'a, R: ?Sized> {
    src: &'a R,
    size: u64,
}

impl<R: ReadAt + Sync + ?Sized> Source for ZipSource<'_, R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let left = self.size.saturating_sub(offset);
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        if n == 0 {
            return Ok(0);
        }
        self.src.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }
}

impl ApexFile {
    /// Parses the zip at `src`: finds `apex_manifest.pb`, `apex_pubkey` and `apex_payload.img`
    /// (each once, each stored), decodes the manifest and reads the key.
    pub fn parse(src: &(impl ReadAt + Sync + ?Sized)) -> Result<Self> {
        let size = src.size()?;
        let archive = ziparchive::parse(&ZipSource { src, size }, size)?;
        let mut seen = HashSet::new();
        for entry in &archive.entries {
            if !seen.insert(entry.name.as_slice()) {
                return Err(Error::DuplicateEntry(entry.display_name()));
            }
        }
        let locate = |name: &'static str| -> Result<EntryRange> {
            let entry = archive
                .entries
                .iter()
                .find(|e| e.name == name.as_bytes())
                .ok_or(Error::MissingEntry(name))?;
            stored_range(entry, name)
        };
        let manifest_range = locate(MANIFEST_ENTRY)?;
        let pubkey_range = locate(PUBKEY_ENTRY)?;
        let payload = locate(PAYLOAD_ENTRY)?;
        let manifest_bytes = read_small(src, MANIFEST_ENTRY, manifest_range, MAX_MANIFEST_SIZE)?;
        let manifest = ApexManifest::decode_checked(&manifest_bytes)?;
        let public_key = read_small(src, PUBKEY_ENTRY, pubkey_range, MAX_PUBKEY_SIZE)?;
        Ok(Self {
            manifest,
            public_key,
            payload,
        })
    }
}

/// The data range of `entry`, which must be stored: the guest maps the payload image with a
/// loop device over these bytes, and reads the two small entries as they are.
fn stored_range(entry: &Entry, name: &'static str) -> Result<EntryRange> {
    if entry.method != Method::Stored {
        return Err(Error::EntryNotStored(name));
    }
    Ok(EntryRange {
        offset: entry.data_offset,
        size: entry.size,
    })
}

/// Reads a small entry whole, after checking its size against `limit`.
fn read_small(
    src: &(impl ReadAt + ?Sized),
    name: &'static str,
    range: EntryRange,
    limit: u64,
) -> Result<Vec<u8>> {
    if range.size > limit {
        return Err(Error::EntryTooLarge {
            name,
            size: range.size,
            limit,
        });
    }
    // The size is at most `limit` (64 KiB), so it fits a usize.
    let mut buf = vec![0u8; usize::try_from(range.size).unwrap_or(0)];
    src.read_exact_at(&mut buf, range.offset)?;
    Ok(buf)
}
