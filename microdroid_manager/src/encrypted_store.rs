//! The payload's encrypted storage (AOSP's `encryptedstore`, `encryptedstore/src/main.rs` in
//! packages/modules/Virtualization):
//! partition `encryptedstore` of the instance disk, dm-crypt with a key derived from the VM
//! secret, ext4 made on first use, mounted nosuid,nodev,noexec at /mnt/encryptedstore and owned
//! by the payload.
//!
//! Cipher: AOSP uses `aes-hctr2-plain64` with a 32-byte key. The Debian kernel this guest boots
//! is built without HCTR2 (`# CONFIG_CRYPTO_HCTR2 is not set`), so the store uses the closest
//! mode it has, `aes-xts-plain64` (AES-256-XTS, a 64-byte key), with AOSP's other table options
//! (4 KiB sectors, large IVs). The key is 64 bytes of the same HKDF whose first 32 bytes are
//! AOSP's key. Like AOSP's, it is not authenticated encryption: it keeps the contents secret
//! from the host, and a host that changes ciphertext gets garbage, not chosen plaintext, per
//! 16-byte block (XTS) rather than per 4 KiB sector (HCTR2).
//!
//! mke2fs is Debian's, carried on the system partition with its shared libraries (in
//! `/system/private/lib64`, out of the payload's reach) and run through the dynamic loader in
//! `/system/lib64`, so the guest needs no loader at /lib64.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::payload::{PRIVATE_LIB_DIR, SYSTEM_LIB_DIR, SYSTEM_LOADER};
use anyhow::{bail, ensure, Context, Result};
use devmapper::{DeviceMapper, Target};
use nix::mount::{mount, MsFlags};
use zeroize::Zeroizing;

pub const STORAGE_PARTITION: &str = "encryptedstore";
pub const MOUNT_POINT: &str = vm_payload_service::ENCRYPTEDSTORE_MOUNTPOINT;
/// The dm-crypt device's name (AOSP's `cryptdev`).
pub const DM_NAME: &str = "cryptdev";
/// The dm-crypt cipher: AES-256-XTS, whose key is the 64 bytes `open` takes.
pub const CIPHER: &str = "aes-xts-plain64";
/// What the host writes at the start of a storage file that was never formatted.
pub const UNFORMATTED_MAGIC: &[u8; 19] = instance::STORAGE_MAGIC;
/// mke2fs on the system partition (its libraries are private: `PRIVATE_LIB_DIR`).
pub const MKE2FS: &str = "/system/bin/mke2fs";
/// Smaller than this, ext4 with a journal does not fit usefully.
pub const MIN_SIZE: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// The mounted store; [`EncryptedStore::sync`] flushes it when the payload ends.
pub struct EncryptedStore {
    pub mount_point: PathBuf,
    pub formatted_now: bool,
}

impl EncryptedStore {
    /// `syncfs` on the store, as AOSP does when the payload exits.
    pub fn sync(&self) -> Result<()> {
        let dir = File::open(&self.mount_point)
            .with_context(|| format!("opening {}", self.mount_point.display()))?;
        nix::unistd::syncfs(dir.as_raw_fd()).context("syncfs on the encrypted store")?;
        Ok(())
    }
}

/// AOSP's `needs_formatting`: a device that starts with the host's magic has never been
/// formatted; the magic is wiped (so that a crash after this still formats next time: mke2fs
/// rewrites the start) and `true` returned.
pub fn needs_formatting(device: &Path) -> Result<bool> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .with_context(|| format!("opening {}", device.display()))?;
    let mut head = [0u8; UNFORMATTED_MAGIC.len()];
    file.read_exact(&mut head)
        .with_context(|| format!("reading {}", device.display()))?;
    if &head != UNFORMATTED_MAGIC {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&[0u8; UNFORMATTED_MAGIC.len()])?;
    file.sync_all()?;
    Ok(true)
}

/// Whether the raw device's first 4 KiB are all zero: a store whose magic was erased for its
/// first format and that nothing has been written to since (a formatted store is ciphertext).
pub fn raw_first_block_is_blank(device: &Path) -> Result<bool> {
    let mut block = [0u8; 4096];
    File::open(device)
        .and_then(|mut f| f.read_exact(&mut block))
        .with_context(|| format!("reading {}", device.display()))?;
    Ok(block.iter().all(|&b| b == 0))
}

/// Whether the decrypted bytes where ext4 keeps its superblock (1024..2048) are all zero: mke2fs
/// zeroes them first and writes the superblock when it is done, so a format cut short looks like
/// this; a store under another key decrypts to noise.
pub fn superblock_area_is_blank(decrypted: &Path) -> Result<bool> {
    let mut area = [0u8; 1024];
    File::open(decrypted)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(1024))?;
            f.read_exact(&mut area)
        })
        .with_context(|| format!("reading {}", decrypted.display()))?;
    Ok(area.iter().all(|&b| b == 0))
}

fn device_size(device: &Path) -> Result<u64> {
    let mut file = File::open(device).with_context(|| format!("opening {}", device.display()))?;
    Ok(file.seek(SeekFrom::End(0))?)
}

/// The dm-crypt table of the store, over `device_numbers` (`major:minor`).
pub fn crypt_target(size: u64, device_numbers: &str, key: &[u8; 64]) -> Target {
    let hex_key: Zeroizing<String> =
        Zeroizing::new(key.iter().map(|b| format!("{b:02x}")).collect());
    Target::new(
        0,
        size / SECTOR,
        "crypt",
        &format!(
            "{CIPHER} {} 0 {device_numbers} 0 2 sector_size:4096 iv_large_sectors",
            *hex_key
        ),
    )
}

/// Opens the store on `device`, formats it if it was never formatted, and mounts it at
/// `mount_point` for the payload (`uid`:`gid` own its root, mode 0700).
pub fn open(
    device: &Path,
    mount_point: &Path,
    key: &[u8; 64],
    uid: u32,
    gid: u32,
) -> Result<EncryptedStore> {
    let size = device_size(device)?;
    ensure!(
        size >= MIN_SIZE,
        "the storage partition is {size} bytes; it must be at least {MIN_SIZE} (vmctl run-app --storage-size)"
    );
    ensure!(
        size % 4096 == 0,
        "the storage partition is {size} bytes, not a multiple of 4096"
    );
    let mut format = needs_formatting(device)?;
    // A first format that was interrupted (the VM killed while mke2fs ran) must not leave the
    // store unusable forever: its raw first block is still the host's zeros, or, once mke2fs has
    // begun, its superblock area decrypts to the zeros mke2fs wrote first (the superblock itself
    // is written last). Another VM's store decrypts to noise instead, and stays refused.
    if !format && raw_first_block_is_blank(device)? {
        crate::log("encrypted storage: its first format never started writing; formatting it");
        format = true;
    }
    let target = crypt_target(size, &devmapper::block_device_numbers(device)?, key);
    let dm = DeviceMapper::open().context("opening /dev/mapper/control")?;
    let crypt = dm
        .create(DM_NAME, None, &[target], false)
        .context("creating the dm-crypt device (modules dm-crypt and xts)")?;
    let crypt_path = crypt.link_by_name(Path::new(crate::apk::MAPPER_DIR))?;
    if !format && superblock_area_is_blank(&crypt_path)? {
        crate::log("encrypted storage: its first format did not finish; formatting it again");
        format = true;
    }
    if format {
        mke2fs(&crypt_path, uid, gid)?;
    }
    std::fs::create_dir_all(mount_point)
        .with_context(|| format!("creating {}", mount_point.display()))?;
    mount(
        Some(&crypt_path),
        mount_point,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        // Under SELinux the whole store is the payload's `encryptedstore_file`.
        selinux::is_enforcing()
            .map(|_| format!("context={}", selinux::contexts::ENCRYPTEDSTORE_FILE))
            .as_deref(),
    )
    .with_context(|| {
        format!(
            "mounting the encrypted store on {} (a storage file written under another VM secret \
             does not decrypt to a file system)",
            mount_point.display()
        )
    })?;
    if format {
        std::fs::set_permissions(
            mount_point,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
    }
    Ok(EncryptedStore {
        mount_point: mount_point.to_owned(),
        formatted_now: format,
    })
}

/// AOSP's mke2fs options, with the payload owning the root directory.
pub fn mke2fs(device: &Path, uid: u32, gid: u32) -> Result<()> {
    let mut command = Command::new(SYSTEM_LOADER);
    crate::privileges::limit(&mut command, caps::CapSet::EMPTY);
    let output = command
        .args([
            "--library-path",
            &format!("{SYSTEM_LIB_DIR}:{PRIVATE_LIB_DIR}"),
            MKE2FS,
        ])
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-j",
            "-O",
            "metadata_csum,extents,64bit",
            "-b",
            "4096",
        ])
        .args(["-E", &format!("root_owner={uid}:{gid}")])
        .arg(device)
        .stdin(Stdio::null())
        .env_clear()
        .output()
        .with_context(|| format!("running {MKE2FS}"))?;
    if !output.status.success() {
        bail!(
            "mke2fs on {} failed ({}): {}",
            device.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_first_format_is_told_apart_from_another_vms_store() {
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank");
        std::fs::write(&blank, vec![0u8; 8192]).unwrap();
        assert!(raw_first_block_is_blank(&blank).unwrap());
        assert!(superblock_area_is_blank(&blank).unwrap());
        // Ciphertext, or a real superblock: not blank.
        let noise: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let other = dir.path().join("other");
        std::fs::write(&other, &noise).unwrap();
        assert!(!raw_first_block_is_blank(&other).unwrap());
        assert!(!superblock_area_is_blank(&other).unwrap());
        let mut formatted = vec![0u8; 8192];
        formatted[1024 + 56..1024 + 58].copy_from_slice(&0xef53u16.to_le_bytes());
        let ext4 = dir.path().join("ext4");
        std::fs::write(&ext4, &formatted).unwrap();
        assert!(!superblock_area_is_blank(&ext4).unwrap());
    }

    #[test]
    fn table_is_aosps_with_xts() {
        let t = crypt_target(8 << 20, "254:3", &[0xab; 64]);
        assert_eq!(
            (t.start, t.length, t.target_type.as_str()),
            (0, 16384, "crypt")
        );
        assert_eq!(
            t.params,
            format!(
                "aes-xts-plain64 {} 0 254:3 0 2 sector_size:4096 iv_large_sectors",
                "ab".repeat(64)
            )
        );
    }

    #[test]
    fn magic_is_wiped_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.img");
        instance::create_storage_file(&path, 4 << 20).unwrap();
        assert!(needs_formatting(&path).unwrap());
        assert!(!needs_formatting(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap()[..19], [0u8; 19]);
    }
}
