//! APEX files as AOSP's apexd reads them (system/apex `apexd/apex_file.cpp`; docs/formats/apex.md).
//!
//! An APEX is a zip whose entries include
//! - `apex_manifest.pb`: protobuf `apex.proto.ApexManifest` (`name` = 1, `version` = 2, ...);
//! - `apex_pubkey`: the AVB public key blob the payload is signed with;
//! - `apex_payload.img`: a file system image (erofs here) with an AVB hashtree footer.
//!
//! The three entries must be stored (not deflated): the guest maps the payload image in place
//! with a loop device over its byte range. [`ApexFile::parse`] finds them with checked
//! arithmetic; [`ApexFile::verify`] checks the payload's vbmeta is signed by `apex_pubkey` (and,
//! if the payload metadata names them, the expected key and root digest), and returns the
//! hashtree descriptor from which the guest builds its dm-verity table. The data blocks are not
//! hashed here: dm-verity checks each one when it is read, as in AOSP.
//!
//! [`write`] builds APEXes on the host (mkfs.erofs, `avb::add_hashtree_footer`, a stored zip).

// `is_multiple_of` needs Rust 1.87; the workspace declares rust-version 1.80.
#![allow(clippy::manual_is_multiple_of)]

mod manifest;
mod source;
mod verify;
pub mod write;
mod zip;

pub use manifest::ApexManifest;
pub use source::ReadAt;
pub use verify::{Expectations, FsType, VerifiedApex};
pub use zip::{ApexFile, EntryRange};

/// The manifest entry.
pub const MANIFEST_ENTRY: &str = "apex_manifest.pb";
/// The bundled AVB public key entry.
pub const PUBKEY_ENTRY: &str = "apex_pubkey";
/// The payload image entry.
pub const PAYLOAD_ENTRY: &str = "apex_payload.img";
/// Largest `apex_manifest.pb` read (real ones are under 1 KiB).
pub const MAX_MANIFEST_SIZE: u64 = 64 * 1024;
/// Largest `apex_pubkey` read (an RSA-8192 AVB key is 2056 bytes).
pub const MAX_PUBKEY_SIZE: u64 = 4096;
/// Longest APEX name accepted: it names a dm device (`<name>@<version>`, DM_NAME_LEN 128) and
/// a directory under /apex.
pub const MAX_NAME_LEN: usize = 100;

/// Errors of reading, verifying or writing an APEX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The zip reader refused the file (no end record, a malformed or inconsistent central
    /// directory or local header, an encrypted entry, entries overlapping or past their region).
    #[error("invalid zip: {0}")]
    Zip(#[from] ziparchive::ZipError),
    /// A required entry is missing.
    #[error("missing entry {0}")]
    MissingEntry(&'static str),
    /// An entry name occurs twice.
    #[error("duplicate entry {0}")]
    DuplicateEntry(String),
    /// A required entry is compressed; it must be stored.
    #[error("entry {0} is compressed; APEX entries must be stored")]
    EntryNotStored(&'static str),
    /// An entry is larger than this reader accepts.
    #[error("entry {name} is {size} bytes, more than the limit of {limit}")]
    EntryTooLarge {
        /// Entry name.
        name: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `apex_manifest.pb` does not decode.
    #[error("invalid apex_manifest.pb: {0}")]
    Manifest(#[from] prost::DecodeError),
    /// The manifest's name cannot name an APEX (empty, too long, or with characters that are
    /// not allowed in a path component or a dm device name).
    #[error("invalid APEX name {0:?}")]
    InvalidName(String),
    /// The manifest's version is negative.
    #[error("invalid APEX version {0}")]
    InvalidVersion(i64),
    /// The payload image's footer or vbmeta is malformed.
    #[error("apex_payload.img: {0}")]
    PayloadAvb(#[source] avb::Error),
    /// The payload's vbmeta is not signed by the bundled `apex_pubkey` (or fails its signature
    /// check): AOSP's `VerifyApexVerity`.
    #[error("apex_payload.img is not validly signed by apex_pubkey: {0}")]
    SignatureRejected(#[source] avb::Error),
    /// The payload's vbmeta has no hashtree descriptor.
    #[error("apex_payload.img's vbmeta has no hashtree descriptor")]
    NoHashtree,
    /// The hashtree descriptor is inconsistent with the payload image.
    #[error("apex_payload.img's hashtree descriptor: {0}")]
    BadHashtree(#[source] avb::Error),
    /// `apex_pubkey` differs from the key the payload metadata names.
    #[error("public key doesn't match the one in the payload metadata")]
    PublicKeyMismatch,
    /// The root digest differs from the one the payload metadata names.
    #[error("root digest ({actual}) mismatches with the one ({expected}) specified in config")]
    RootDigestMismatch {
        /// From the payload metadata (hex).
        expected: String,
        /// From the hashtree descriptor (hex).
        actual: String,
    },
    /// The manifest name differs from the one the payload metadata names.
    #[error("manifest name {actual:?} doesn't match {expected:?} in the payload metadata")]
    NameMismatch {
        /// From the payload metadata.
        expected: String,
        /// From the manifest.
        actual: String,
    },
    /// The manifest version differs from the one the payload metadata names.
    #[error("manifest version {actual} doesn't match {expected} in the payload metadata")]
    VersionMismatch {
        /// From the payload metadata.
        expected: i64,
        /// From the manifest.
        actual: i64,
    },
    /// The payload image is not a file system apexd can mount.
    #[error("apex_payload.img has no erofs or ext4 superblock")]
    UnknownFilesystem,
    /// Building an APEX failed (host side).
    #[error("building the APEX: {0}")]
    Build(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;

/// Entry point shared by the `cargo fuzz` target (`libs/apex/fuzz`) and the unit test that runs
/// it over the bad-input corpus. It must never panic, whatever the input.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `data` as an APEX and, if that works, verifies it with and without expectations;
    /// whether it parsed and verified without them.
    pub fn apex(data: &[u8]) -> bool {
        let Ok(apex) = crate::ApexFile::parse(data) else {
            return false;
        };
        let verified = apex.verify(data, &crate::Expectations::default()).is_ok();
        {
            let _ = apex.verify(
                data,
                &crate::Expectations {
                    public_key: Some(&[1, 2, 3]),
                    root_digest: Some(&[0; 32]),
                    name: Some("x"),
                    version: Some(1),
                },
            );
        }
        verified
    }
}
