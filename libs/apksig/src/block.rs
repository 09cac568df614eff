//! The APK Signing Block: `u64 size ‖ (u64 len ‖ u32 id ‖ value)* ‖ u64 size ‖ magic`.

use std::io::{Read, Seek, SeekFrom};

use crate::bytes::{put_u32, put_u64, ByteReader};
use crate::error::{Error, Result};
use crate::zip::ZipSections;

/// "APK Sig Block 42".
pub const MAGIC: &[u8; 16] = b"APK Sig Block 42";
/// ID of the APK Signature Scheme v2 block.
pub const V2_BLOCK_ID: u32 = 0x7109_871a;
/// ID of the APK Signature Scheme v3 block.
pub const V3_BLOCK_ID: u32 = 0xf053_68c0;
/// ID of the APK Signature Scheme v3.1 block (recognised, not verified).
pub const V31_BLOCK_ID: u32 = 0x1b93_ad61;
/// ID of the verity padding pair apksigner adds to 4 KiB-align the block.
pub const VERITY_PADDING_BLOCK_ID: u32 = 0x4272_6577;
/// Smallest block: two size fields and the magic.
pub const MIN_BLOCK_SIZE: u64 = 32;
/// Largest signing block read into memory. Real blocks are a few KiB.
pub const MAX_BLOCK_SIZE: u64 = 16 * 1024 * 1024;

/// A parsed APK Signing Block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningBlock {
    /// File offset of the block (the end of the signed ZIP entries section).
    pub offset: u64,
    /// Total size of the block in bytes (including both size fields and the magic).
    pub total_size: u64,
    /// ID-value pairs in file order.
    pub pairs: Vec<(u32, Vec<u8>)>,
}

impl SigningBlock {
    /// The value of the first pair with `id`.
    pub fn find(&self, id: u32) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_slice())
    }
}

/// Reads the signing block that must sit right before the central directory.
pub fn read_signing_block<R: Read + Seek>(src: &mut R, z: &ZipSections) -> Result<SigningBlock> {
    if z.cd_offset < MIN_BLOCK_SIZE {
        return Err(Error::NoSigningBlock);
    }
    let mut footer = [0u8; 24];
    src.seek(SeekFrom::Start(z.cd_offset - 24))?;
    src.read_exact(&mut footer)?;
    if &footer[8..] != MAGIC {
        return Err(Error::NoSigningBlock);
    }
    let mut size_bytes = [0u8; 8];
    size_bytes.copy_from_slice(&footer[..8]);
    let footer_size = u64::from_le_bytes(size_bytes);
    // The size excludes the leading u64 field.
    let total = footer_size
        .checked_add(8)
        .ok_or(Error::InvalidSigningBlockSize(footer_size))?;
    if footer_size < 24 || total > z.cd_offset || total > MAX_BLOCK_SIZE {
        return Err(Error::InvalidSigningBlockSize(footer_size));
    }
    let offset = z.cd_offset - total;
    let mut block = vec![0u8; total as usize];
    src.seek(SeekFrom::Start(offset))?;
    src.read_exact(&mut block)?;
    parse_signing_block(&block, offset)
}

/// Parses a complete signing block (`block` starts with the leading size field).
pub fn parse_signing_block(block: &[u8], offset: u64) -> Result<SigningBlock> {
    let total = block.len();
    // At least 32 bytes, so the footer (size, magic) and the header do not overlap.
    if (total as u64) < MIN_BLOCK_SIZE {
        return Err(Error::InvalidSigningBlockSize(total as u64));
    }
    if &block[total - 16..] != MAGIC {
        return Err(Error::NoSigningBlock);
    }
    let mut r = ByteReader::new(block);
    let header = r
        .u64()
        .ok_or(Error::MalformedSigningBlock("truncated header"))?;
    let mut f = ByteReader::new(&block[total - 24..]);
    let footer = f
        .u64()
        .ok_or(Error::MalformedSigningBlock("truncated footer"))?;
    if header != footer {
        return Err(Error::SigningBlockSizeMismatch { header, footer });
    }
    if header.checked_add(8) != Some(total as u64) {
        return Err(Error::InvalidSigningBlockSize(header));
    }
    let mut pairs_reader = ByteReader::new(&block[8..total - 24]);
    let mut pairs = Vec::new();
    while !pairs_reader.is_empty() {
        let len = pairs_reader
            .u64()
            .ok_or(Error::MalformedSigningBlock("truncated pair length"))?;
        if len < 4 || len > pairs_reader.remaining().len() as u64 {
            return Err(Error::MalformedSigningBlock("pair length out of range"));
        }
        let id = pairs_reader
            .u32()
            .ok_or(Error::MalformedSigningBlock("truncated pair id"))?;
        let value = pairs_reader
            .take((len - 4) as usize)
            .ok_or(Error::MalformedSigningBlock("truncated pair value"))?;
        pairs.push((id, value.to_vec()));
    }
    Ok(SigningBlock {
        offset,
        total_size: total as u64,
        pairs,
    })
}

/// Page alignment apksigner pads the block to.
pub const BLOCK_ALIGNMENT: u64 = 4096;

/// Serialises a signing block from its pairs, adding apksigner's verity padding pair so that the
/// block size is a multiple of 4096 (`ApkSigningBlockUtils.generateApkSigningBlock`).
pub fn build_signing_block(pairs: &[(u32, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut pairs_size: u64 = 0;
    for (_, v) in pairs {
        pairs_size = pairs_size
            .checked_add(12)
            .and_then(|s| s.checked_add(v.len() as u64))
            .ok_or(Error::Overflow("signing block"))?;
    }
    let mut result_size = pairs_size
        .checked_add(32)
        .ok_or(Error::Overflow("signing block"))?;
    let mut padding = 0u64;
    if result_size % BLOCK_ALIGNMENT != 0 {
        padding = BLOCK_ALIGNMENT - result_size % BLOCK_ALIGNMENT;
        if padding < 12 {
            padding += BLOCK_ALIGNMENT;
        }
        result_size += padding;
    }
    let mut out = Vec::with_capacity(result_size as usize);
    put_u64(&mut out, result_size - 8);
    for (id, v) in pairs {
        put_u64(&mut out, v.len() as u64 + 4);
        put_u32(&mut out, *id);
        out.extend_from_slice(v);
    }
    if padding > 0 {
        put_u64(&mut out, padding - 8);
        put_u32(&mut out, VERITY_PADDING_BLOCK_ID);
        out.resize(out.len() + (padding - 12) as usize, 0);
    }
    put_u64(&mut out, result_size - 8);
    out.extend_from_slice(MAGIC);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse() {
        let block = build_signing_block(&[(V3_BLOCK_ID, vec![1, 2, 3])]).unwrap();
        assert_eq!(block.len(), 4096);
        let b = parse_signing_block(&block, 100).unwrap();
        assert_eq!(b.find(V3_BLOCK_ID), Some(&[1u8, 2, 3][..]));
        assert_eq!(b.pairs.len(), 2);
        assert_eq!(b.pairs[1].0, VERITY_PADDING_BLOCK_ID);
        assert_eq!(b.total_size, 4096);
    }

    #[test]
    fn small_padding_gets_a_page_more() {
        // pairs + 32 = 4096 - 5 → padding 5 < 12 → 5 + 4096.
        let v = vec![0u8; 4096 - 5 - 32 - 12];
        let block = build_signing_block(&[(1, v)]).unwrap();
        assert_eq!(block.len(), 8192);
        parse_signing_block(&block, 0).unwrap();
    }

    #[test]
    fn size_mismatch() {
        let mut block = build_signing_block(&[(1, vec![0; 10])]).unwrap();
        block[0] ^= 1;
        assert!(matches!(
            parse_signing_block(&block, 0),
            Err(Error::SigningBlockSizeMismatch { .. })
        ));
    }

    #[test]
    fn bad_pair_length() {
        let mut block = build_signing_block(&[(1, vec![0; 10])]).unwrap();
        block[8] = 0xff;
        assert!(matches!(
            parse_signing_block(&block, 0),
            Err(Error::MalformedSigningBlock(_))
        ));
    }

    /// The smallest block: its two size fields and the magic, no pairs.
    fn minimal_block() -> Vec<u8> {
        let mut b = 24u64.to_le_bytes().to_vec();
        b.extend_from_slice(&24u64.to_le_bytes());
        b.extend_from_slice(MAGIC);
        b
    }

    /// An archive with no entries whose signing block is `block`.
    fn empty_apk_with(block: &[u8]) -> Vec<u8> {
        let zip = ziparchive::write::build_zip(&[]).unwrap();
        let eocd = crate::zip::eocd_with_cd_offset(&zip, block.len() as u32).unwrap();
        [block, &eocd[..]].concat()
    }

    fn read(apk: &[u8]) -> Result<SigningBlock> {
        let mut c = std::io::Cursor::new(apk);
        let z = crate::zip::find_zip_sections(&mut c)?;
        read_signing_block(&mut c, &z)
    }

    #[test]
    fn the_smallest_block_at_the_start_of_the_file() {
        let apk = empty_apk_with(&minimal_block());
        let b = read(&apk).unwrap();
        assert_eq!((b.offset, b.total_size), (0, 32));
        assert!(b.pairs.is_empty());
        assert_eq!(parse_signing_block(&minimal_block(), 0).unwrap().pairs, []);
        // Shorter than the smallest block.
        let mut short = minimal_block();
        short.drain(..4);
        assert!(matches!(
            parse_signing_block(&short, 0),
            Err(Error::InvalidSigningBlockSize(28))
        ));
    }

    #[test]
    fn blocks_up_to_16_mib() {
        // One pair filling the block exactly: 32 bytes of framing, 12 of pair header.
        let pair = |total: u64| vec![(1u32, vec![0u8; (total - 32 - 12) as usize])];
        let largest = build_signing_block(&pair(MAX_BLOCK_SIZE)).unwrap();
        assert_eq!(largest.len() as u64, MAX_BLOCK_SIZE);
        assert_eq!(
            read(&empty_apk_with(&largest)).unwrap().total_size,
            MAX_BLOCK_SIZE
        );
        let larger = build_signing_block(&pair(MAX_BLOCK_SIZE + 4096)).unwrap();
        assert!(matches!(
            read(&empty_apk_with(&larger)),
            Err(Error::InvalidSigningBlockSize(_))
        ));
    }

    #[test]
    fn pairs_may_be_empty_and_padding_is_exact() {
        // An empty value: a pair length of 4 (just the id).
        let block = build_signing_block(&[(7, Vec::new())]).unwrap();
        assert_eq!(
            parse_signing_block(&block, 0).unwrap().find(7),
            Some(&[][..])
        );
        // Pairs that fill the block to a page: no padding pair.
        let exact = build_signing_block(&[(1, vec![0; 4096 - 32 - 12])]).unwrap();
        assert_eq!(exact.len(), 4096);
        assert_eq!(parse_signing_block(&exact, 0).unwrap().pairs.len(), 1);
        // 12 bytes short of a page: a padding pair with an empty value.
        let twelve = build_signing_block(&[(1, vec![0; 4096 - 32 - 12 - 12])]).unwrap();
        assert_eq!(twelve.len(), 4096);
        let pairs = parse_signing_block(&twelve, 0).unwrap().pairs;
        assert_eq!(pairs[1], (VERITY_PADDING_BLOCK_ID, Vec::new()));
        // Any other size is padded to a page.
        for n in [1, 100, 5000] {
            let b = build_signing_block(&[(1, vec![0; n])]).unwrap();
            assert_eq!(b.len() % 4096, 0, "{n}");
        }
    }
}
