//! AVF's `instance.img` and the encrypted-storage disk, byte for byte as AOSP writes them.
//!
//! Layout (all integers little-endian; details and the crash-safety argument in
//! `docs/formats/instance-image.md`):
//!
//! ```text
//! 0        disk header block (512): "Android-VM-instance" ‖ u16 version = 1 ‖ zeros
//! 512      entry header block (512): uuid (16, RFC-4122 order) ‖ u64 payload_size ‖ zeros
//! 1024     payload (payload_size bytes), zero-padded to a 512 multiple
//! ...      next entry header, ...; a header with the nil UUID ends the chain
//! 1 MiB    update journal (ours; invisible to AOSP readers, which stop at the nil header)
//! ```
//!
//! Entries: the microdroid_manager entry ([`MICRODROID_UUID`], AES-256-GCM over
//! `serde_cbor(MicrodroidData)`, key [`microdroid_key`]) and pvmfw's ([`PVMFW_UUID`], a sealed
//! 193-byte [`PvmfwEntry`], key [`pvmfw_key`]).
//!
//! Host (vmctl, like virtualizationmanager's `initializeWritablePartition`):
//! ```no_run
//! use std::path::Path;
//! instance::create_instance_file(Path::new("instance.img"), instance::DEFAULT_INSTANCE_SIZE)?;
//! instance::create_storage_file(Path::new("storage.img"), 64 << 20)?;
//! # Ok::<(), instance::Error>(())
//! ```
//!
//! Guest (microdroid_manager):
//! ```
//! # use instance::*;
//! # let cdi_seal = [7u8; 32];
//! # let extracted = MicrodroidData::default();
//! # let mut bytes = vec![0u8; MIN_INSTANCE_SIZE as usize];
//! # bytes[..19].copy_from_slice(MAGIC);
//! # bytes[19..21].copy_from_slice(&VERSION.to_le_bytes());
//! # let disk = std::io::Cursor::new(bytes);
//! // let disk = std::fs::OpenOptions::new().read(true).write(true)
//! //     .open("/dev/block/by-name/vm-instance")?;
//! let mut image = InstanceImage::open(disk)?;
//! let key = microdroid_key(&cdi_seal);
//! match image.read_microdroid_data(&key)? {
//!     Some(saved) => assert_eq!(saved, extracted), // later boots: compare with the payload
//!     None => image.write_microdroid_data(&key, &extracted)?, // first boot
//! }
//! # assert_eq!(image.read_microdroid_data(&key)?, Some(extracted));
//! # Ok::<(), instance::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::{Sha256, Sha512};

mod image;
mod record;

pub use image::{Disk, InstanceImage};
pub use record::{ApexData, ApkData, MicrodroidData, PvmfwEntry};

/// Magic at offset 0 of an instance image (19 bytes, no NUL).
pub const MAGIC: &[u8; 19] = b"Android-VM-instance";
/// The only instance image version (u16 LE at offset 19).
pub const VERSION: u16 = 1;
/// Size of the disk header block, of each entry header block, and the payload padding unit.
pub const BLOCK_SIZE: u64 = 512;
/// microdroid_manager's entry: `cf9afe9a-0662-11ec-a329-c32663a09d75`, RFC-4122 byte order.
pub const MICRODROID_UUID: [u8; 16] = [
    0xcf, 0x9a, 0xfe, 0x9a, 0x06, 0x62, 0x11, 0xec, 0xa3, 0x29, 0xc3, 0x26, 0x63, 0xa0, 0x9d, 0x75,
];
/// pvmfw's entry: `90d2174a-038a-4bc6-adf3-824848fc5825`, RFC-4122 byte order.
pub const PVMFW_UUID: [u8; 16] = [
    0x90, 0xd2, 0x17, 0x4a, 0x03, 0x8a, 0x4b, 0xc6, 0xad, 0xf3, 0x82, 0x48, 0x48, 0xfc, 0x58, 0x25,
];
/// The update journal's entry (ours, not AOSP's): `6a1f3c2e-9b47-4d0e-8c55-1e7d2b9a4f60`.
pub const JOURNAL_UUID: [u8; 16] = [
    0x6a, 0x1f, 0x3c, 0x2e, 0x9b, 0x47, 0x4d, 0x0e, 0x8c, 0x55, 0x1e, 0x7d, 0x2b, 0x9a, 0x4f, 0x60,
];
/// Size of the instance file the Java API creates (`INSTANCE_FILE_SIZE`).
pub const DEFAULT_INSTANCE_SIZE: u64 = 10 * 1024 * 1024;
/// Magic at offset 0 of a fresh encrypted-storage disk; encryptedstore formats it when found.
pub const STORAGE_MAGIC: &[u8; 19] = b"UNFORMATTED-STORAGE";
/// Largest entry payload read or written (AOSP's records are a few hundred bytes).
pub const MAX_ENTRY_PAYLOAD: u64 = 64 * 1024;
/// Fixed offset of the update journal; every entry and its terminator must end below it.
pub const JOURNAL_OFFSET: u64 = 1024 * 1024;
/// Smallest instance image: room for the journal of a largest entry, rounded up to 4 KiB.
pub const MIN_INSTANCE_SIZE: u64 = round_up_const(
    JOURNAL_OFFSET + 2 * BLOCK_SIZE + MAX_ENTRY_PAYLOAD,
    FILE_ALIGNMENT,
);
/// Smallest encrypted-storage disk (ext4 needs a few hundred KiB of metadata).
pub const MIN_STORAGE_SIZE: u64 = 1024 * 1024;
/// Host files are created with their size rounded up to this.
pub const FILE_ALIGNMENT: u64 = 4096;
/// HKDF info of the microdroid_manager key (`INSTANCE_KEY_IDENTIFIER`).
pub const MICRODROID_KEY_INFO: &[u8] = b"microdroid_manager_key";
/// HKDF info of pvmfw's instance key.
pub const PVMFW_KEY_INFO: &[u8] = b"vm-instance";

const fn round_up_const(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Errors of creating, reading and writing instance images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing or flushing the disk failed.
    #[error("instance image I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `create_*_file` refuses to replace a file (it would lose the VM's data).
    #[error("{0} already exists; remove it first to create a new one (the old VM data is lost)")]
    Exists(PathBuf),
    /// The requested or actual disk size is too small.
    #[error("size of {size} bytes is too small: at least {min} bytes are needed")]
    TooSmall {
        /// The size given, or the disk's size.
        size: u64,
        /// The smallest size that works.
        min: u64,
    },
    /// A structure runs past the end of the disk.
    #[error(
        "instance image truncated: {what} at offset {offset} needs {len} bytes, \
         but the disk has only {disk_size}"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The disk's size.
        disk_size: u64,
    },
    /// No `Android-VM-instance` magic at offset 0.
    #[error("not an instance image: no \"Android-VM-instance\" magic at offset 0")]
    BadMagic,
    /// Version 0.
    #[error("invalid instance image version 0")]
    InvalidVersion,
    /// A version above 1.
    #[error("unsupported instance image version {0} (this reader supports version 1)")]
    UnsupportedVersion(u16),
    /// An entry payload (or record) larger than [`MAX_ENTRY_PAYLOAD`].
    #[error("instance entry of {size} bytes is larger than the limit of {max} bytes")]
    EntryTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Entry sizes make the next offset overflow u64 (a corrupt chain).
    #[error("instance entry chain is corrupt: entry offsets overflow")]
    Overflow,
    /// The entry (and its terminator) would not end below [`JOURNAL_OFFSET`].
    #[error("no room for the entry below the update journal at offset {JOURNAL_OFFSET}")]
    NoFreeSlot,
    /// AES-GCM authentication failed.
    #[error(
        "instance data does not decrypt: sealed under another key (another VM identity, \
         kernel, firmware or debug level) or modified"
    )]
    Decrypt,
    /// A decrypted or given record is not a valid CBOR `MicrodroidData`.
    #[error("invalid instance record: {0}")]
    Cbor(String),
    /// pvmfw's entry can only be the first entry of an empty image.
    #[error("the pvmfw entry can only be written as the first entry of an image without entries")]
    PvmfwEntryNotFirst,
    /// A pvmfw payload (221 bytes sealed) or body (193 bytes) of another size.
    #[error(
        "pvmfw entry of {0} bytes: expected a 221-byte sealed payload holding a 193-byte body"
    )]
    BadPvmfwEntrySize(usize),
    /// A size change of the microdroid entry while another entry follows it.
    #[error(
        "can't change the microdroid entry's size from {old} to {new} bytes: \
         another entry follows it"
    )]
    SizeChangeNotLast {
        /// Current payload size.
        old: u64,
        /// Requested payload size.
        new: u64,
    },
    /// The microdroid entry does not decrypt and the update journal next to it is malformed.
    #[error(
        "instance image corrupt: the microdroid entry does not decrypt and the update journal \
         at offset {JOURNAL_OFFSET} is malformed ({0})"
    )]
    JournalCorrupt(&'static str),
}

/// microdroid_manager's instance key: HKDF-SHA256(IKM = CDI_Seal, salt = empty,
/// info = `"microdroid_manager_key"`), 32 bytes.
pub fn microdroid_key(cdi_seal: &[u8; 32]) -> [u8; 32] {
    let mut key = [0u8; 32];
    // A 32-byte output is always within HKDF's 255 × HashLen limit.
    let _ = Hkdf::<Sha256>::new(None, cdi_seal).expand(MICRODROID_KEY_INFO, &mut key);
    key
}

/// pvmfw's instance key: HKDF-SHA512(IKM = CDI_Seal, salt = empty, info = `"vm-instance"`),
/// 32 bytes.
pub fn pvmfw_key(cdi_seal: &[u8; 32]) -> [u8; 32] {
    let mut key = [0u8; 32];
    let _ = Hkdf::<Sha512>::new(None, cdi_seal).expand(PVMFW_KEY_INFO, &mut key);
    key
}

fn rounded_file_size(size: u64, min: u64) -> Result<u64, Error> {
    if size < min {
        return Err(Error::TooSmall { size, min });
    }
    size.checked_next_multiple_of(FILE_ALIGNMENT)
        .ok_or(Error::Overflow)
}

/// Creates a file of `round_up(size, 4096)` bytes (sparse) with `magic` at offset 0.
fn create_with_header(path: &Path, size: u64, header: &[u8]) -> Result<(), Error> {
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(path.to_path_buf()))
        }
        Err(e) => return Err(e.into()),
    };
    let result = (|| -> std::io::Result<()> {
        file.set_len(size)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(header)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// Creates a new instance image like virtualizationmanager's
/// `initializeWritablePartition(ANDROID_VM_INSTANCE)`: refuses an existing file, sets the
/// length to `round_up(size, 4096)` (sparse, zero-filled) and writes the magic and version
/// at 0. Sizes below [`MIN_INSTANCE_SIZE`] are refused (no room for the update journal).
pub fn create_instance_file(path: &Path, size: u64) -> Result<(), Error> {
    let len = rounded_file_size(size, MIN_INSTANCE_SIZE)?;
    let mut header = [0u8; 21];
    header[..19].copy_from_slice(MAGIC);
    header[19..].copy_from_slice(&VERSION.to_le_bytes());
    create_with_header(path, len, &header)
}

/// Creates a new encrypted-storage disk like `initializeWritablePartition(ENCRYPTEDSTORE)`:
/// refuses an existing file, `round_up(size, 4096)` bytes (sparse), `"UNFORMATTED-STORAGE"`
/// at 0. Sizes below [`MIN_STORAGE_SIZE`] are refused.
pub fn create_storage_file(path: &Path, size: u64) -> Result<(), Error> {
    let len = rounded_file_size(size, MIN_STORAGE_SIZE)?;
    create_with_header(path, len, STORAGE_MAGIC)
}

/// Fuzz entry point: [`InstanceImage::open`] on an in-memory copy of `data`, both entries read
/// with a fixed key (and, when there is no microdroid entry, a first write that must read
/// back), and [`MicrodroidData::from_cbor`] on `data` (a decoded record must re-encode and
/// decode to itself). Returns false when one of those invariants breaks; never panics.
pub fn fuzz_entry(data: &[u8]) -> bool {
    const KEY: [u8; 32] = [0x5a; 32];
    let mut ok = true;
    if let Ok(mut image) = InstanceImage::open(std::io::Cursor::new(data.to_vec())) {
        let saved = image.read_microdroid_data(&KEY);
        let _ = image.read_pvmfw_entry(&KEY);
        if let Ok(None) = saved {
            let sample = MicrodroidData {
                salt: vec![0; 64],
                ..MicrodroidData::default()
            };
            if image.write_microdroid_data(&KEY, &sample).is_ok() {
                ok &= matches!(image.read_microdroid_data(&KEY), Ok(Some(d)) if d == sample);
            }
        }
    }
    if let Ok(record) = MicrodroidData::from_cbor(data) {
        let again = record
            .to_cbor()
            .and_then(|bytes| MicrodroidData::from_cbor(&bytes));
        ok &= matches!(again, Ok(r) if r == record);
    }
    ok
}

#[cfg(test)]
mod tests;
