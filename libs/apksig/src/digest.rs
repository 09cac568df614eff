//! Chunked content digests (v2/v3 `digests` records and the v4 `apk_digest`).
//!
//! Each section is split into 1 MiB chunks (the last one shorter); chunks never span sections.
//! `chunk = H(0xa5 ‖ u32le(len) ‖ data)`, `top = H(0x5a ‖ u32le(count) ‖ chunk digests...)`.

use std::io::{Read, Seek, SeekFrom};

use sha2::{Digest, Sha256, Sha512};

use crate::algorithm::ContentDigestAlgorithm;
use crate::error::{Error, Result};
use crate::zip::{eocd_with_cd_offset, ZipSections};

/// Chunk size of the chunked digests.
pub const CHUNK_SIZE: u64 = 1024 * 1024;

/// One input section: a reader that yields exactly `len` bytes.
pub struct Section<'a> {
    /// Where the bytes come from.
    pub reader: &'a mut dyn Read,
    /// How many bytes to digest.
    pub len: u64,
}

fn chunked<D: Digest>(sections: &mut [Section<'_>]) -> Result<Vec<u8>> {
    let mut count: u64 = 0;
    for s in sections.iter() {
        count = count
            .checked_add(s.len.div_ceil(CHUNK_SIZE))
            .ok_or(Error::Overflow("chunk count"))?;
    }
    let count = u32::try_from(count).map_err(|_| Error::Overflow("chunk count"))?;
    let mut top = D::new();
    top.update([0x5a]);
    top.update(count.to_le_bytes());
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    for s in sections.iter_mut() {
        let mut left = s.len;
        while left > 0 {
            let n = left.min(CHUNK_SIZE) as usize;
            let chunk = &mut buf[..n];
            s.reader.read_exact(chunk)?;
            let mut h = D::new();
            h.update([0xa5]);
            h.update((n as u32).to_le_bytes());
            h.update(&chunk[..]);
            top.update(h.finalize());
            left -= n as u64;
        }
    }
    Ok(top.finalize().to_vec())
}

/// Computes a chunked digest over `sections` in order.
pub fn digest_sections(
    alg: ContentDigestAlgorithm,
    sections: &mut [Section<'_>],
) -> Result<Vec<u8>> {
    match alg {
        ContentDigestAlgorithm::ChunkedSha256 => chunked::<Sha256>(sections),
        ContentDigestAlgorithm::ChunkedSha512 => chunked::<Sha512>(sections),
        // Not reached: verity variants are filtered out as unsupported before digesting.
        ContentDigestAlgorithm::VerityChunkedSha256 => Err(Error::NoSupportedSignature),
    }
}

/// Computes the content digest of an APK read from `src`, whose ZIP entries end (and signing
/// block starts) at `entries_end`; `cd` is the central directory already in memory.
pub fn digest_apk<R: Read + Seek>(
    alg: ContentDigestAlgorithm,
    src: &mut R,
    entries_end: u64,
    cd: &[u8],
    z: &ZipSections,
) -> Result<Vec<u8>> {
    let cd_field = u32::try_from(entries_end).map_err(|_| Error::Zip64Unsupported)?;
    let eocd = eocd_with_cd_offset(&z.eocd, cd_field)?;
    src.seek(SeekFrom::Start(0))?;
    let mut entries = src.take(entries_end);
    let mut cd_reader = cd;
    let mut eocd_reader = eocd.as_slice();
    digest_sections(
        alg,
        &mut [
            Section {
                reader: &mut entries,
                len: entries_end,
            },
            Section {
                reader: &mut cd_reader,
                len: cd.len() as u64,
            },
            Section {
                reader: &mut eocd_reader,
                len: eocd.len() as u64,
            },
        ],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_chunking() {
        // Three empty sections: top = H(0x5a ‖ 0u32).
        let (mut a, mut b, mut c) = (&[][..], &[][..], &[][..]);
        let d = digest_sections(
            ContentDigestAlgorithm::ChunkedSha256,
            &mut [
                Section {
                    reader: &mut a,
                    len: 0,
                },
                Section {
                    reader: &mut b,
                    len: 0,
                },
                Section {
                    reader: &mut c,
                    len: 0,
                },
            ],
        )
        .unwrap();
        assert_eq!(d, Sha256::digest([0x5a, 0, 0, 0, 0]).to_vec());

        // A section of 1 MiB + 1 gives two chunks.
        let data = vec![7u8; CHUNK_SIZE as usize + 1];
        let mut r = data.as_slice();
        let d = digest_sections(
            ContentDigestAlgorithm::ChunkedSha512,
            &mut [Section {
                reader: &mut r,
                len: data.len() as u64,
            }],
        )
        .unwrap();
        let c1 = Sha512::new()
            .chain_update([0xa5])
            .chain_update((CHUNK_SIZE as u32).to_le_bytes())
            .chain_update(&data[..CHUNK_SIZE as usize])
            .finalize();
        let c2 = Sha512::new().chain_update([0xa5, 1, 0, 0, 0, 7]).finalize();
        let top = Sha512::new()
            .chain_update([0x5a, 2, 0, 0, 0])
            .chain_update(c1)
            .chain_update(c2)
            .finalize();
        assert_eq!(d, top.to_vec());
    }
}
