//! Error type of the crate.

use crate::algorithm::SignatureAlgorithm;

/// Everything that can go wrong while parsing, verifying or signing an APK.
///
/// Each variant names one specific failure so that callers (and the bad-APK corpus tests) can
/// tell them apart. None of them carries untrusted data longer than a few integers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the APK failed (for example EIO from a dm-verity device).
    #[error("I/O error reading APK: {0}")]
    Io(#[from] std::io::Error),

    /// The file is shorter than an End of Central Directory record.
    #[error("APK too small: {0} bytes")]
    TooSmall(u64),

    /// The zip structure is refused by the zip reader (no end record, a malformed or
    /// inconsistent central directory record, multi-disk, ...).
    #[error("APK is not a valid zip: {0}")]
    Zip(#[from] ziparchive::ZipError),

    /// The archive uses ZIP64 or multiple disks, which APKs do not.
    #[error("ZIP64 / multi-disk archives are not supported")]
    Zip64Unsupported,

    /// The central directory does not end exactly where the EOCD starts.
    #[error(
        "central directory [{cd_offset}, +{cd_size}) does not end at the EOCD offset {eocd_offset}"
    )]
    CentralDirectoryNotBeforeEocd {
        /// CD offset from the EOCD.
        cd_offset: u64,
        /// CD size from the EOCD.
        cd_size: u64,
        /// Where the EOCD was found.
        eocd_offset: u64,
    },

    /// The central directory names a local file header at or after the APK Signing Block (or
    /// after the central directory in an unsigned archive): those bytes are not covered by the
    /// content digest.
    #[error("ZIP entry at offset {entry_offset} is not before the signing block at {limit}")]
    EntryAfterSigningBlock {
        /// Local header offset of the offending entry.
        entry_offset: u64,
        /// Start of the APK Signing Block (or of the central directory).
        limit: u64,
    },

    /// There is no "APK Sig Block 42" right before the central directory.
    #[error("no APK Signing Block before the central directory")]
    NoSigningBlock,

    /// The two size fields of the signing block differ.
    #[error("APK Signing Block sizes in header ({header}) and footer ({footer}) do not match")]
    SigningBlockSizeMismatch {
        /// Size at the start of the block.
        header: u64,
        /// Size in the footer (before the magic).
        footer: u64,
    },

    /// The signing block size is impossible (too small, too large or beyond the file start).
    #[error("invalid APK Signing Block size {0}")]
    InvalidSigningBlockSize(u64),

    /// An ID-value pair of the signing block is truncated or has a bad length.
    #[error("malformed APK Signing Block: {0}")]
    MalformedSigningBlock(&'static str),

    /// Neither a v3 nor a v2 signature scheme block is present.
    #[error("no APK Signature Scheme v3 or v2 block in the APK Signing Block")]
    NoSignatureSchemeBlock,

    /// A length-prefixed field inside a v2/v3 block is truncated or malformed.
    #[error("malformed signature scheme block: {0}")]
    Malformed(&'static str),

    /// The scheme block lists no signers.
    #[error("no signers")]
    NoSigners,

    /// Not exactly one v3 signer covers the platform SDK version.
    #[error("expected exactly one signer for SDK {sdk}, found {count}")]
    SignerCountForSdk {
        /// The SDK version asked for.
        sdk: u32,
        /// How many signers matched.
        count: usize,
    },

    /// A v2-only APK with several signers (Microdroid needs a single identity).
    #[error("v2 block has {0} signers; only one is supported")]
    MultipleV2Signers(usize),

    /// The v2 block says a v3 signature was made, but there is no v3 block.
    #[error("v3 signature stripped: the v2 signature requires a v3 block")]
    V3Stripped,

    /// No signature uses an algorithm this crate supports.
    #[error("no supported APK signatures found (DSA and verity variants are not supported)")]
    NoSupportedSignature,

    /// The signature over signed data does not verify.
    #[error("signature does not verify ({0:?})")]
    SignatureInvalid(SignatureAlgorithm),

    /// The signed min/max SDK differ from the unsigned ones of the v3 signer.
    #[error("SDK versions mismatch between signed and unsigned v3 signer data")]
    SdkVersionMismatch,

    /// The algorithm lists of `digests` and `signatures` differ.
    #[error("signature algorithms don't match between digests and signatures records")]
    AlgorithmListMismatch,

    /// The signed data has no digest for the algorithm of the chosen signature.
    #[error("no digest for algorithm {0:?}")]
    DigestNotFound(SignatureAlgorithm),

    /// The content digest computed over the APK differs from the signed one.
    #[error("content digest mismatch ({0:?})")]
    DigestMismatch(SignatureAlgorithm),

    /// The signed data lists no certificate.
    #[error("no certificates listed")]
    NoCertificates,

    /// A certificate is not valid DER X.509.
    #[error("invalid X.509 certificate")]
    InvalidCertificate,

    /// The public key of the first certificate differs from the signer's public key.
    #[error("public key mismatch between certificate and signature record")]
    PublicKeyMismatch,

    /// The public key cannot be decoded or its type does not fit the algorithm.
    #[error("invalid or unsupported public key")]
    InvalidPublicKey,

    /// The private key cannot be decoded or is of an unsupported type.
    #[error("invalid or unsupported private key")]
    InvalidPrivateKey,

    /// The key cannot be used with the requested signature algorithm.
    #[error("key does not support algorithm {0:?}")]
    KeyAlgorithmMismatch(SignatureAlgorithm),

    /// Creating a signature failed.
    #[error("signing failed")]
    SigningFailed,

    /// A size does not fit the format (e.g. more than 2^32 - 1 chunks).
    #[error("size overflow: {0}")]
    Overflow(&'static str),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;
