//! AOSP's `ApexFile::VerifyApexVerity` plus the block-APEX checks of `AddBlockApex`
//! (system/apex `apexd/apex_file.cpp`, `apexd/apexd.cpp`): the payload image's footer vbmeta
//! must be signed by the bundled `apex_pubkey`, verification must not be disabled, and what
//! the payload metadata pins (key, root digest, name, version) must match.

use avb::{Footer, HashtreeDescriptor, FOOTER_SIZE};

use crate::source::ReadAt;
use crate::zip::ApexFile;
use crate::{Error, Result};

/// Offset of a file system superblock in the image.
const SUPERBLOCK_OFFSET: u64 = 1024;
const EROFS_MAGIC: [u8; 4] = [0xe2, 0xe1, 0xf5, 0xe0];
const EXT4_MAGIC_OFFSET: u64 = 0x38;
const EXT4_MAGIC: [u8; 2] = [0x53, 0xef];

/// What the payload metadata says about an APEX; `None` (or empty in the protobuf) is "not
/// pinned".
#[derive(Clone, Copy, Debug, Default)]
pub struct Expectations<'a> {
    /// `ApexPayload.public_key`: must equal `apex_pubkey`.
    pub public_key: Option<&'a [u8]>,
    /// `ApexPayload.root_digest`: must equal the hashtree's root digest.
    pub root_digest: Option<&'a [u8]>,
    /// `ApexPayload.manifest_name`.
    pub name: Option<&'a str>,
    /// `ApexPayload.manifest_version`.
    pub version: Option<i64>,
}

/// The file system in the payload image, by its superblock magic (AOSP's `RetrieveFsType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    /// erofs.
    Erofs,
    /// ext4.
    Ext4,
}

impl FsType {
    /// The name mount(2) takes.
    pub fn name(self) -> &'static str {
        match self {
            FsType::Erofs => "erofs",
            FsType::Ext4 => "ext4",
        }
    }
}

/// A verified APEX: mount its payload range through dm-verity with `hashtree`.
#[derive(Clone, Debug)]
pub struct VerifiedApex {
    /// The hashtree descriptor from the signed vbmeta (offsets relative to the payload image).
    pub hashtree: HashtreeDescriptor,
    /// The payload's file system.
    pub fs_type: FsType,
}

impl ApexFile {
    /// Verifies the payload image of this APEX, read from `src` (the same file it was parsed
    /// from), against its bundled key and `expected`.
    pub fn verify(
        &self,
        src: &(impl ReadAt + ?Sized),
        expected: &Expectations<'_>,
    ) -> Result<VerifiedApex> {
        if let Some(name) = expected.name.filter(|n| !n.is_empty()) {
            if name != self.manifest.name {
                return Err(Error::NameMismatch {
                    expected: name.to_owned(),
                    actual: self.manifest.name.clone(),
                });
            }
        }
        if let Some(version) = expected.version.filter(|v| *v != 0) {
            if version != self.manifest.version {
                return Err(Error::VersionMismatch {
                    expected: version,
                    actual: self.manifest.version,
                });
            }
        }
        if let Some(key) = expected.public_key.filter(|k| !k.is_empty()) {
            if key != self.public_key.as_slice() {
                return Err(Error::PublicKeyMismatch);
            }
        }
        let payload_size = self.payload.size;
        let footer_pos = payload_size
            .checked_sub(FOOTER_SIZE as u64)
            .ok_or(Error::PayloadAvb(avb::Error::Truncated {
                what: "footer",
                needed: FOOTER_SIZE as u64,
                available: payload_size,
            }))?;
        let mut footer_bytes = [0u8; FOOTER_SIZE];
        src.read_exact_at(&mut footer_bytes, self.at(footer_pos)?)?;
        let footer = Footer::parse(&footer_bytes).map_err(Error::PayloadAvb)?;
        footer
            .check_bounds(payload_size)
            .map_err(Error::PayloadAvb)?;
        // `check_bounds` also refused a vbmeta over 64 KiB (avbtool's limit): this allocation
        // is bounded.
        let mut vbmeta = vec![0u8; footer.vbmeta_size as usize];
        src.read_exact_at(&mut vbmeta, self.at(footer.vbmeta_offset)?)?;
        let image = avb::verify_vbmeta(&vbmeta, &self.public_key, None)
            .map_err(Error::SignatureRejected)?;
        let hashtree = image.hashtrees().next().cloned().ok_or(Error::NoHashtree)?;
        // The tree must end before the vbmeta, which `check_bounds` put inside the payload.
        hashtree
            .check(Some(footer.vbmeta_offset))
            .map_err(Error::BadHashtree)?;
        if let Some(digest) = expected.root_digest.filter(|d| !d.is_empty()) {
            if digest != hashtree.root_digest.as_slice() {
                return Err(Error::RootDigestMismatch {
                    expected: verity::to_hex(digest),
                    actual: verity::to_hex(&hashtree.root_digest),
                });
            }
        }
        let fs_type = self.fs_type(src)?;
        Ok(VerifiedApex { hashtree, fs_type })
    }

    /// The absolute offset of `offset` inside the payload image.
    fn at(&self, offset: u64) -> Result<u64> {
        self.payload
            .offset
            .checked_add(offset)
            .ok_or(Error::PayloadAvb(avb::Error::SizeOutOfRange(
                "payload offset",
            )))
    }

    /// The file system type by its magic. The bytes are not verified yet; they only choose
    /// which file system the verified device is mounted as.
    pub(crate) fn fs_type(&self, src: &(impl ReadAt + ?Sized)) -> Result<FsType> {
        let mut magic = [0u8; 4];
        if self.payload.size < SUPERBLOCK_OFFSET + 0x40 {
            return Err(Error::UnknownFilesystem);
        }
        src.read_exact_at(&mut magic, self.at(SUPERBLOCK_OFFSET)?)?;
        if magic == EROFS_MAGIC {
            return Ok(FsType::Erofs);
        }
        let mut ext4 = [0u8; 2];
        src.read_exact_at(&mut ext4, self.at(SUPERBLOCK_OFFSET + EXT4_MAGIC_OFFSET)?)?;
        if ext4 == EXT4_MAGIC {
            return Ok(FsType::Ext4);
        }
        Err(Error::UnknownFilesystem)
    }
}
