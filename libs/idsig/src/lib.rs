//! APK Signature Scheme v4 `.idsig` files (version 2): parse, create and verify.
//!
//! Layout (all integers little-endian; `LP` = u32 length + bytes):
//!
//! ```text
//! u32 version = 2
//! u32 size ‖ hashing_info { u32 hash_algorithm (1 = SHA-256) ‖ u8 log2_blocksize (12) ‖
//!                           LP salt ‖ LP raw_root_hash }
//! u32 size ‖ signing_info { LP apk_digest ‖ LP x509_certificate ‖ LP additional_data ‖
//!                           LP public_key ‖ u32 signature_algorithm_id ‖ LP signature }
//! u32 merkle_tree_size ‖ merkle tree (dm-verity hash type 1, SHA-256, 4 KiB, empty salt,
//!                                     levels top-down; built by the `verity` crate)
//! ```
//!
//! Bytes after the tree are ignored (the guest reads the idsig from a partition zero-padded
//! to 4 KiB).
//!
//! Guest (microdroid_manager / apkdmverity):
//! ```no_run
//! let mut f = std::fs::File::open("/dev/block/by-name/microdroid-apk-idsig")?;
//! let sig = idsig::V4Signature::read_from(&mut f)?;
//! let root_hash = &sig.hashing_info.raw_root_hash;        // dm-verity root digest
//! let (offset, size) = (sig.merkle_tree_offset, sig.merkle_tree_size); // loop device window
//! # let _ = (root_hash, offset, size); Ok::<(), idsig::Error>(())
//! ```
//!
//! Host (vmctl create-idsig):
//! ```no_run
//! let mut apk = std::fs::File::open("app.apk")?;
//! let (sig, tree) = idsig::create(&mut apk, idsig::DEFAULT_SDK, None)?;
//! std::fs::write("app.apk.idsig", sig.to_bytes(&tree)?)?;
//! # Ok::<(), idsig::Error>(())
//! ```

use std::io::{Read, Seek, SeekFrom};

use apksig::bytes::{put_lp, put_u32, ByteReader};
use apksig::keys::{PrivateKey, PublicKey};
use apksig::SignatureAlgorithm;

/// The only idsig version.
pub const VERSION: u32 = 2;
/// `hash_algorithm` value for SHA-256.
pub const HASH_ALGORITHM_SHA256: u32 = 1;
/// log2 of the 4096-byte block size.
pub const LOG2_BLOCK_SIZE: u8 = 12;
/// Largest salt (apksigner's limit).
pub const MAX_SALT_SIZE: usize = 32;
/// Largest header field accepted (certificates and signatures are a few KiB).
pub const MAX_FIELD_SIZE: u32 = 1024 * 1024;
/// SDK used by [`create`] callers that have no better value (Android 15).
pub const DEFAULT_SDK: u32 = 35;

/// Errors of parsing, creating and verifying idsig files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file ends inside a field.
    #[error("idsig truncated in {0}")]
    Truncated(&'static str),
    /// A field is larger than [`MAX_FIELD_SIZE`].
    #[error("idsig field {0} too large")]
    FieldTooLarge(&'static str),
    /// A sized block has bytes its fields do not account for.
    #[error("idsig {0} has trailing bytes")]
    TrailingBytes(&'static str),
    /// Version is not 2.
    #[error("unsupported idsig version {0}")]
    UnsupportedVersion(u32),
    /// Hash algorithm is not SHA-256.
    #[error("unsupported hash algorithm {0}")]
    UnsupportedHashAlgorithm(u32),
    /// Block size is not 4096.
    #[error("unsupported log2 block size {0}")]
    UnsupportedBlockSize(u8),
    /// Salt longer than 32 bytes.
    #[error("salt of {0} bytes is too long")]
    SaltTooLong(usize),
    /// Root hash is not 32 bytes.
    #[error("root hash has {0} bytes, expected 32")]
    InvalidRootHashLength(usize),
    /// The tree size field points past the end of the file.
    #[error("merkle tree of {declared} bytes but only {available} available")]
    TreeTruncated {
        /// Declared size.
        declared: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The APK's own signature failed (or it has none).
    #[error("APK signature: {0}")]
    Apk(#[from] apksig::Error),
    /// Building the tree failed.
    #[error("hash tree: {0}")]
    Verity(#[from] verity::Error),
    /// `apk_digest` differs from the APK's v3/v2 content digest.
    #[error("idsig apk_digest does not match the APK's signed content digest")]
    ApkDigestMismatch,
    /// `signature_algorithm_id` differs from the APK signer's strongest algorithm.
    #[error("idsig signature algorithm {idsig:#x} differs from the APK signer's {apk:#x}")]
    AlgorithmMismatch {
        /// In the idsig.
        idsig: u32,
        /// The APK signer's.
        apk: u32,
    },
    /// The root hash of the tree computed over the APK differs.
    #[error("merkle root hash mismatch")]
    RootHashMismatch,
    /// The tree bytes differ from the tree computed over the APK.
    #[error("merkle tree bytes mismatch")]
    TreeMismatch,
    /// The idsig certificate is not the APK signer's.
    #[error("idsig certificate differs from the APK signer's")]
    CertificateMismatch,
    /// The idsig public key is not the APK signer's.
    #[error("idsig public key differs from the APK signer's")]
    PublicKeyMismatch,
    /// The v4 signature does not verify.
    #[error("v4 signature does not verify")]
    SignatureInvalid,
    /// A signature was required but the idsig is unsigned (as AOSP's virtualizationservice
    /// writes them).
    #[error("idsig is not signed")]
    Unsigned,
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// `hashing_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashingInfo {
    /// 1 = SHA-256.
    pub hash_algorithm: u32,
    /// 12 for 4 KiB blocks.
    pub log2_blocksize: u8,
    /// Salt (empty for APKs).
    pub salt: Vec<u8>,
    /// Root hash of the Merkle tree.
    pub raw_root_hash: Vec<u8>,
}

/// `signing_info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigningInfo {
    /// The v3 (or v2) content digest of the APK for `signature_algorithm_id`.
    pub apk_digest: Vec<u8>,
    /// Signer certificate, DER (empty when unsigned).
    pub x509_certificate: Vec<u8>,
    /// Free-form data.
    pub additional_data: Vec<u8>,
    /// Signer public key, SubjectPublicKeyInfo DER (empty when unsigned).
    pub public_key: Vec<u8>,
    /// Signature algorithm ID (also selects the content digest of `apk_digest`).
    pub signature_algorithm_id: u32,
    /// Signature over [`V4Signature::signed_data`] (empty when unsigned).
    pub signature: Vec<u8>,
    /// Bytes after the known fields inside the signing_info block (kept for round trips).
    pub extra: Vec<u8>,
}

/// A parsed idsig header; the Merkle tree itself stays in the source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V4Signature {
    /// Always 2.
    pub version: u32,
    /// How the APK is hashed.
    pub hashing_info: HashingInfo,
    /// Who signed it.
    pub signing_info: SigningInfo,
    /// Size of the Merkle tree in bytes.
    pub merkle_tree_size: u32,
    /// Offset of the Merkle tree in the idsig file.
    pub merkle_tree_offset: u64,
}

fn sized_block<R: Read>(r: &mut R, what: &'static str) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| eof(e, what))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FIELD_SIZE {
        return Err(Error::FieldTooLarge(what));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).map_err(|e| eof(e, what))?;
    Ok(buf)
}

fn eof(e: std::io::Error, what: &'static str) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::Truncated(what)
    } else {
        Error::Io(e)
    }
}

impl HashingInfo {
    fn parse(b: &[u8]) -> Result<Self> {
        let mut r = ByteReader::new(b);
        let t = || Error::Truncated("hashing_info");
        let info = Self {
            hash_algorithm: r.u32().ok_or_else(t)?,
            log2_blocksize: r.u8().ok_or_else(t)?,
            salt: r.lp().ok_or_else(t)?.to_vec(),
            raw_root_hash: r.lp().ok_or_else(t)?.to_vec(),
        };
        if !r.is_empty() {
            return Err(Error::TrailingBytes("hashing_info"));
        }
        if info.hash_algorithm != HASH_ALGORITHM_SHA256 {
            return Err(Error::UnsupportedHashAlgorithm(info.hash_algorithm));
        }
        if info.log2_blocksize != LOG2_BLOCK_SIZE {
            return Err(Error::UnsupportedBlockSize(info.log2_blocksize));
        }
        if info.salt.len() > MAX_SALT_SIZE {
            return Err(Error::SaltTooLong(info.salt.len()));
        }
        if info.raw_root_hash.len() != 32 {
            return Err(Error::InvalidRootHashLength(info.raw_root_hash.len()));
        }
        Ok(info)
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let mut b = Vec::new();
        put_u32(&mut b, self.hash_algorithm);
        b.push(self.log2_blocksize);
        put_lp(&mut b, &self.salt)?;
        put_lp(&mut b, &self.raw_root_hash)?;
        Some(b)
    }
}

impl SigningInfo {
    fn parse(b: &[u8]) -> Result<Self> {
        let mut r = ByteReader::new(b);
        let t = || Error::Truncated("signing_info");
        Ok(Self {
            apk_digest: r.lp().ok_or_else(t)?.to_vec(),
            x509_certificate: r.lp().ok_or_else(t)?.to_vec(),
            additional_data: r.lp().ok_or_else(t)?.to_vec(),
            public_key: r.lp().ok_or_else(t)?.to_vec(),
            signature_algorithm_id: r.u32().ok_or_else(t)?,
            signature: r.lp().ok_or_else(t)?.to_vec(),
            extra: r.remaining().to_vec(),
        })
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let mut b = Vec::new();
        put_lp(&mut b, &self.apk_digest)?;
        put_lp(&mut b, &self.x509_certificate)?;
        put_lp(&mut b, &self.additional_data)?;
        put_lp(&mut b, &self.public_key)?;
        put_u32(&mut b, self.signature_algorithm_id);
        put_lp(&mut b, &self.signature)?;
        b.extend_from_slice(&self.extra);
        Some(b)
    }
}

impl V4Signature {
    /// Parses the header from `r` (positioned at the start of the idsig) and checks that the
    /// Merkle tree fits in the source; the tree is not read.
    pub fn read_from<R: Read + Seek>(r: &mut R) -> Result<Self> {
        let mut v = [0u8; 4];
        r.read_exact(&mut v).map_err(|e| eof(e, "version"))?;
        let version = u32::from_le_bytes(v);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let hashing_info = HashingInfo::parse(&sized_block(r, "hashing_info")?)?;
        let signing_info = SigningInfo::parse(&sized_block(r, "signing_info")?)?;
        let mut t = [0u8; 4];
        r.read_exact(&mut t)
            .map_err(|e| eof(e, "merkle_tree_size"))?;
        let merkle_tree_size = u32::from_le_bytes(t);
        let merkle_tree_offset = r.stream_position()?;
        let end = r.seek(SeekFrom::End(0))?;
        let available = end.saturating_sub(merkle_tree_offset);
        if u64::from(merkle_tree_size) > available {
            return Err(Error::TreeTruncated {
                declared: merkle_tree_size.into(),
                available,
            });
        }
        r.seek(SeekFrom::Start(merkle_tree_offset))?;
        Ok(Self {
            version,
            hashing_info,
            signing_info,
            merkle_tree_size,
            merkle_tree_offset,
        })
    }

    /// Parses an idsig held in memory; returns the header and the tree bytes.
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let sig = Self::read_from(&mut std::io::Cursor::new(bytes))?;
        let start =
            usize::try_from(sig.merkle_tree_offset).map_err(|_| Error::Truncated("tree"))?;
        let end = start
            .checked_add(sig.merkle_tree_size as usize)
            .ok_or(Error::Truncated("merkle tree"))?;
        let tree = bytes
            .get(start..end)
            .ok_or(Error::Truncated("merkle tree"))?;
        Ok((sig, tree))
    }

    /// Opens and parses an idsig file or partition.
    pub fn from_path<P: AsRef<std::path::Path>>(path: P) -> Result<Self> {
        Self::read_from(&mut std::fs::File::open(path)?)
    }

    /// Reads the Merkle tree from the source the header was parsed from.
    pub fn read_merkle_tree<R: Read + Seek>(&self, r: &mut R) -> Result<Vec<u8>> {
        let mut tree = vec![0u8; self.merkle_tree_size as usize];
        r.seek(SeekFrom::Start(self.merkle_tree_offset))?;
        r.read_exact(&mut tree).map_err(|e| eof(e, "merkle tree"))?;
        Ok(tree)
    }

    /// Root hash as a fixed array (checked at parse time to be 32 bytes).
    pub fn root_hash(&self) -> Result<[u8; 32]> {
        let len = self.hashing_info.raw_root_hash.len();
        self.hashing_info
            .raw_root_hash
            .as_slice()
            .try_into()
            .map_err(|_| Error::InvalidRootHashLength(len))
    }

    /// Serialises the header and `tree` (`merkle_tree_size` is taken from `tree`).
    pub fn to_bytes(&self, tree: &[u8]) -> Result<Vec<u8>> {
        let too_large = || Error::FieldTooLarge("encoding");
        let mut out = Vec::new();
        put_u32(&mut out, self.version);
        put_lp(&mut out, &self.hashing_info.encode().ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        put_lp(&mut out, &self.signing_info.encode().ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
        put_lp(&mut out, tree).ok_or_else(too_large)?;
        Ok(out)
    }

    /// The bytes the v4 signature covers (apksigner `V4Signature.getSignedData`):
    /// `u32 size ‖ u64 apk_size ‖ u32 hash_algorithm ‖ u8 log2_blocksize ‖ LP salt ‖
    /// LP raw_root_hash ‖ LP apk_digest ‖ LP x509_certificate ‖ LP additional_data`.
    pub fn signed_data(&self, apk_size: u64) -> Result<Vec<u8>> {
        let too_large = || Error::FieldTooLarge("signed data");
        let mut body = Vec::new();
        body.extend_from_slice(&apk_size.to_le_bytes());
        put_u32(&mut body, self.hashing_info.hash_algorithm);
        body.push(self.hashing_info.log2_blocksize);
        put_lp(&mut body, &self.hashing_info.salt).ok_or_else(too_large)?;
        put_lp(&mut body, &self.hashing_info.raw_root_hash).ok_or_else(too_large)?;
        put_lp(&mut body, &self.signing_info.apk_digest).ok_or_else(too_large)?;
        put_lp(&mut body, &self.signing_info.x509_certificate).ok_or_else(too_large)?;
        put_lp(&mut body, &self.signing_info.additional_data).ok_or_else(too_large)?;
        let size = u32::try_from(body.len() + 4).map_err(|_| too_large())?;
        let mut out = size.to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }
}

fn apk_size<R: Seek>(apk: &mut R) -> Result<u64> {
    Ok(apk.seek(SeekFrom::End(0))?)
}

fn tree_of<R: Read + Seek + Send>(apk: &mut R) -> Result<(verity::HashTree, u64)> {
    let size = apk_size(apk)?;
    apk.seek(SeekFrom::Start(0))?;
    let tree = verity::HashTree::build_from_reader(apk, size, &verity::Params::apk_v4())?;
    Ok((tree, size))
}

/// Creates the idsig of a v2/v3-signed APK: the Merkle tree over the whole file, and the
/// `apk_digest` of the signer for `sdk` (taken from the signature, as AOSP does; the APK is not
/// verified here). With `signer = Some((key, certificate DER))` the idsig is signed like
/// apksigner does (byte-identical for RSA keys); with `None` it is unsigned like the idsig
/// AOSP's virtualizationservice writes.
pub fn create<R: Read + Seek + Send>(
    apk: &mut R,
    sdk: u32,
    signer: Option<(&PrivateKey, &[u8])>,
) -> Result<(V4Signature, Vec<u8>)> {
    let (algorithm, apk_digest) = apksig::v4_apk_digest(apk, sdk, false)?;
    let (tree, size) = tree_of(apk)?;
    let mut sig = V4Signature {
        version: VERSION,
        hashing_info: HashingInfo {
            hash_algorithm: HASH_ALGORITHM_SHA256,
            log2_blocksize: LOG2_BLOCK_SIZE,
            salt: Vec::new(),
            raw_root_hash: tree.root_digest().to_vec(),
        },
        signing_info: SigningInfo {
            apk_digest,
            signature_algorithm_id: algorithm.id(),
            ..Default::default()
        },
        merkle_tree_size: u32::try_from(tree.tree().len())
            .map_err(|_| Error::FieldTooLarge("merkle tree"))?,
        merkle_tree_offset: 0,
    };
    if let Some((key, cert)) = signer {
        sig.signing_info.x509_certificate = cert.to_vec();
        sig.signing_info.public_key = key.public_key_der()?;
        sig.signing_info.signature = key.sign(algorithm, &sig.signed_data(size)?)?;
    }
    let bytes_before_tree = sig.to_bytes(&[])?.len() as u64;
    sig.merkle_tree_offset = bytes_before_tree;
    Ok((sig, tree.into_tree()))
}

/// What [`verify`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The APK signer (fully verified through apksig).
    pub apk_signer: apksig::SignerInfo,
    /// The idsig's root hash, equal to the one computed over the APK.
    pub root_hash: [u8; 32],
    /// Whether the idsig carried a v4 signature (it was then verified).
    pub signed: bool,
}

/// Verifies an idsig against its APK the way apksigner does: the APK's v3 (or v2) signature
/// is verified, `apk_digest` and algorithm must match that signer, the Merkle tree is recomputed
/// and must match byte for byte, and a present v4 signature must be by the same certificate
/// and key and verify over [`V4Signature::signed_data`]. With `require_signature`, unsigned
/// idsigs are rejected. (AOSP's guest does not check the v4 signature at all.)
pub fn verify<A: Read + Seek + Send>(
    idsig: &[u8],
    apk: &mut A,
    sdk: u32,
    require_signature: bool,
) -> Result<Verified> {
    let (sig, tree) = V4Signature::parse(idsig)?;
    let signer = apksig::verify(apk, sdk)?;
    if sig.signing_info.signature_algorithm_id != signer.algorithm.id() {
        return Err(Error::AlgorithmMismatch {
            idsig: sig.signing_info.signature_algorithm_id,
            apk: signer.algorithm.id(),
        });
    }
    if sig.signing_info.apk_digest != signer.content_digest {
        return Err(Error::ApkDigestMismatch);
    }
    let signed = !sig.signing_info.signature.is_empty();
    let (computed, size) = tree_of(apk)?;
    if signed {
        if sig.signing_info.x509_certificate.as_slice() != signer.first_certificate_der()? {
            return Err(Error::CertificateMismatch);
        }
        if sig.signing_info.public_key != signer.public_key_der {
            return Err(Error::PublicKeyMismatch);
        }
        let key = PublicKey::from_spki_der(&sig.signing_info.public_key)?;
        let alg = SignatureAlgorithm::from_id(sig.signing_info.signature_algorithm_id);
        key.verify(alg, &sig.signed_data(size)?, &sig.signing_info.signature)
            .map_err(|_| Error::SignatureInvalid)?;
    } else if require_signature {
        return Err(Error::Unsigned);
    }
    if computed.root_digest().as_slice() != sig.hashing_info.raw_root_hash.as_slice() {
        return Err(Error::RootHashMismatch);
    }
    if computed.tree() != tree {
        return Err(Error::TreeMismatch);
    }
    Ok(Verified {
        apk_signer: signer,
        root_hash: sig.root_hash()?,
        signed,
    })
}

/// Fuzzing / corpus entry point: parse, and re-encode what parses. Never panics.
pub fn fuzz_entry(data: &[u8]) -> bool {
    match V4Signature::parse(data) {
        Ok((sig, tree)) => match sig.to_bytes(tree) {
            Ok(b) => V4Signature::parse(&b)
                .map(|(s2, t2)| s2 == sig && t2 == tree)
                .unwrap_or(false),
            Err(_) => false,
        },
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> (V4Signature, Vec<u8>) {
        let mut s = V4Signature {
            version: 2,
            hashing_info: HashingInfo {
                hash_algorithm: 1,
                log2_blocksize: 12,
                salt: vec![],
                raw_root_hash: vec![7; 32],
            },
            signing_info: SigningInfo {
                apk_digest: vec![1; 32],
                signature_algorithm_id: 0x0103,
                ..Default::default()
            },
            merkle_tree_size: 4096,
            merkle_tree_offset: 0,
        };
        s.merkle_tree_offset = s.to_bytes(&[]).unwrap().len() as u64;
        (s, vec![9; 4096])
    }

    #[test]
    fn round_trip_with_padding() {
        let (s, tree) = sample();
        let mut b = s.to_bytes(&tree).unwrap();
        b.resize(b.len().div_ceil(4096) * 4096, 0);
        let (p, t) = V4Signature::parse(&b).unwrap();
        assert_eq!(p, s);
        assert_eq!(t, tree.as_slice());
        assert!(fuzz_entry(&b));
    }

    /// The size limits are inclusive: a field of exactly `MAX_FIELD_SIZE` bytes and a salt of
    /// exactly `MAX_SALT_SIZE` bytes are accepted, one byte more is refused.
    #[test]
    fn limits_are_inclusive() {
        let field = |len: u32| {
            let mut b = len.to_le_bytes().to_vec();
            b.resize(4 + len as usize, 0x5a);
            sized_block(&mut std::io::Cursor::new(b), "field")
        };
        assert_eq!(field(MAX_FIELD_SIZE).unwrap().len(), 1024 * 1024);
        assert!(matches!(
            field(MAX_FIELD_SIZE + 1),
            Err(Error::FieldTooLarge("field"))
        ));
        assert_eq!(field(0).unwrap().len(), 0);

        let (mut s, tree) = sample();
        s.hashing_info.salt = vec![1; MAX_SALT_SIZE];
        s.merkle_tree_offset = s.to_bytes(&[]).unwrap().len() as u64;
        let (parsed, _) = V4Signature::parse(&s.to_bytes(&tree).unwrap()).unwrap();
        assert_eq!(parsed.hashing_info.salt.len(), MAX_SALT_SIZE);
        s.hashing_info.salt.push(1);
        s.merkle_tree_offset = s.to_bytes(&[]).unwrap().len() as u64;
        assert!(matches!(
            V4Signature::parse(&s.to_bytes(&tree).unwrap()),
            Err(Error::SaltTooLong(33))
        ));
    }

    /// `from_path` reads what `read_from` reads.
    #[test]
    fn from_path_reads_the_file() {
        let (s, tree) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idsig");
        std::fs::write(&path, s.to_bytes(&tree).unwrap()).unwrap();
        assert_eq!(V4Signature::from_path(&path).unwrap(), s);
        assert!(V4Signature::from_path(dir.path().join("missing")).is_err());
    }

    #[test]
    fn rejects() {
        let (s, tree) = sample();
        let good = s.to_bytes(&tree).unwrap();
        let mut v = good.clone();
        v[0] = 3;
        assert!(matches!(
            V4Signature::parse(&v),
            Err(Error::UnsupportedVersion(3))
        ));
        assert!(matches!(
            V4Signature::parse(&good[..good.len() - 1]),
            Err(Error::TreeTruncated {
                declared: 4096,
                available: 4095
            })
        ));
        assert!(matches!(
            V4Signature::parse(&good[..10]),
            Err(Error::Truncated(_))
        ));
    }
}
