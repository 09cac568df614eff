//! Android Verified Boot 2.0 formats, byte for byte as avbtool 1.3 / libavb:
//! vbmeta images (header, authentication and auxiliary blocks), descriptors (property,
//! hashtree, hash, kernel cmdline, chain partition), `AvbFooter`, the AVB RSA public key
//! encoding, SHA256/SHA512 × RSA-2048/4096/8192 PKCS#1 v1.5 signing and verification (pure
//! Rust: RustCrypto `rsa` + `sha2`). All integers are big-endian. See `docs/formats/avb.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), avb::Error> {
//! let key = avb::SigningKey::from_pem_file("libs/avb/testkeys/testkey_rsa4096.pem")?;
//! // system.img: data ‖ tree ‖ vbmeta ‖ footer
//! let info = avb::add_hashtree_footer("system.img", &avb::HashtreeFooterOptions::new("system", &[0x5a; 32], Some(&key)))?;
//! // vbmeta.img with the hashtree descriptor, signed
//! let vbmeta = avb::build_vbmeta(&avb::VbmetaOptions::default(), &[avb::Descriptor::Hashtree(info.descriptor)], Some(&key))?;
//! // init: check against the trusted key and the bootconfig digest
//! let trusted = key.public_key()?.to_avb_bytes();
//! let image = avb::verify_vbmeta(&vbmeta, &trusted, Some(&avb::vbmeta_digest(&[&vbmeta])))?;
//! let target = image.hashtree("system").ok_or(avb::Error::InvalidArgument("no system"))?.dm_target("/dev/dm-0")?;
//! # let _ = target; Ok(()) }
//! ```

// `is_multiple_of` needs Rust 1.87; the workspace declares rust-version 1.80.
#![allow(clippy::manual_is_multiple_of)]

mod descriptor;
mod footer;
mod key;
mod util;
mod vbmeta;

pub use descriptor::{
    encode_descriptors, merge_included_descriptors, parse_descriptors, tag,
    ChainPartitionDescriptor, Descriptor, HashDescriptor, HashtreeDescriptor,
    KernelCmdlineDescriptor, PropertyDescriptor, CHAIN_PARTITION_FIXED_SIZE,
    CMDLINE_FLAG_USE_ONLY_IF_HASHTREE_DISABLED, CMDLINE_FLAG_USE_ONLY_IF_HASHTREE_NOT_DISABLED,
    HASHTREE_FIXED_SIZE, HASHTREE_FLAG_CHECK_AT_MOST_ONCE, HASHTREE_FLAG_DO_NOT_USE_AB,
    HASH_FIXED_SIZE, KERNEL_CMDLINE_FIXED_SIZE, PROPERTY_FIXED_SIZE,
};
pub use footer::{
    add_hashtree_footer, add_hashtree_footer_to_vec, max_image_size_for_hashtree, read_file,
    read_vbmeta_from_file, vbmeta_from_image, Footer, HashtreeFooterInfo, HashtreeFooterOptions,
    FOOTER_MAGIC, FOOTER_SIZE,
};
pub use key::{Algorithm, PublicKey, SigningKey};
pub use vbmeta::{
    build_vbmeta, vbmeta_digest, verify_vbmeta, VbmetaHeader, VbmetaImage, VbmetaOptions,
    DEFAULT_RELEASE_STRING, FLAG_HASHTREE_DISABLED, FLAG_VERIFICATION_DISABLED, HEADER_SIZE,
    VBMETA_MAGIC, VBMETA_MAX_SIZE,
};

/// Errors from parsing, building or verifying AVB data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wrong magic (`AVB0` for vbmeta, `AVBf` for the footer).
    #[error("bad magic in {what}")]
    BadMagic {
        /// Which structure.
        what: &'static str,
    },
    /// A version we do not implement.
    #[error("unsupported {what} version {major}.{minor}")]
    UnsupportedVersion {
        /// Which structure.
        what: &'static str,
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// The input ends before a structure does.
    #[error("{what} truncated: needs {needed} bytes, have {available}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A size or offset points outside its container or overflows.
    #[error("size out of range: {0}")]
    SizeOutOfRange(&'static str),
    /// A header field that libavb rejects.
    #[error("invalid vbmeta header: {0}")]
    InvalidHeader(&'static str),
    /// An `algorithm_type` we do not know.
    #[error("unsupported algorithm type {0}")]
    UnsupportedAlgorithm(u32),
    /// A malformed descriptor.
    #[error("invalid descriptor: {0}")]
    DescriptorInvalid(&'static str),
    /// The hash in the authentication block is not the hash of header ‖ aux: the image was
    /// modified after signing.
    #[error("vbmeta hash mismatch: the image was modified after signing")]
    HashMismatch,
    /// The RSA signature does not verify.
    #[error("vbmeta signature is invalid")]
    SignatureInvalid,
    /// Algorithm NONE where a signature is required.
    #[error("vbmeta is not signed")]
    Unsigned,
    /// A malformed AVB public key.
    #[error("invalid public key: {0}")]
    PublicKeyInvalid(&'static str),
    /// Signed by a key other than the trusted one.
    #[error("vbmeta is signed by an untrusted key")]
    PublicKeyMismatch,
    /// The vbmeta digest differs from the expected one (`androidboot.vbmeta.digest`).
    #[error("vbmeta digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Expected digest (hex).
        expected: String,
        /// Actual digest (hex).
        actual: String,
    },
    /// The header disables verification or dm-verity.
    #[error("vbmeta flags {flags:#x} disable verification")]
    VerificationDisabled {
        /// The header flags.
        flags: u32,
    },
    /// A caller error.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Key parsing or RSA failure.
    #[error("key error: {0}")]
    Key(String),
    /// Hash tree error.
    #[error(transparent)]
    Verity(#[from] verity::Error),
    /// I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;

/// Entry points shared by the `cargo fuzz` targets (`libs/avb/fuzz`) and the unit tests that
/// run them over the bad-input corpus. They must never panic, whatever the input.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `data` as a vbmeta image, re-encodes what parsed, and runs the verifier with a
    /// fixed trusted key.
    pub fn vbmeta(data: &[u8]) {
        if let Ok(img) = crate::VbmetaImage::parse(data) {
            let _ = img.header.encode();
            for d in &img.descriptors {
                if let Ok(enc) = d.encode() {
                    // Whatever parsed re-encodes to something that parses to the same value.
                    if let Ok((back, _)) = crate::Descriptor::parse(&enc) {
                        assert_eq!(&back, d, "descriptor round trip");
                    }
                }
                if let crate::Descriptor::Hashtree(h) = d {
                    let _ = h.dm_target("/dev/null");
                }
            }
            let _ = img.verify_signature();
            let _ = crate::PublicKey::from_avb_bytes(&img.public_key);
        }
        let _ = crate::verify_vbmeta(data, &[0u8; 8], None);
        let _ = crate::parse_descriptors(data);
    }

    /// Parses `data` as a partition image ending in an AVB footer.
    pub fn footer(data: &[u8]) {
        if let Ok(f) = crate::Footer::from_image_end(data) {
            assert_eq!(
                crate::Footer::parse(&f.encode()).ok(),
                Some(f),
                "footer round trip"
            );
        }
        let _ = crate::vbmeta_from_image(data);
    }
}
