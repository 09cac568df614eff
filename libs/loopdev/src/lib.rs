//! Read-only loop devices over a byte range of a file or block device, as apkdmverity uses one
//! for the Merkle tree inside an idsig (which starts at an offset dm-verity cannot express).
//!
//! `LOOP_CTL_GET_FREE` on `/dev/loop-control` gives a free device number; `LOOP_CONFIGURE`
//! (Linux 5.8+) attaches the backing file, offset, size limit and flags in one call, so there is
//! no window in which the device is attached without its limits.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub const LOOP_CONTROL: &str = "/dev/loop-control";
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("offset {offset} + size {size} overflows")]
    Overflow { offset: u64, size: u64 },
}

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device. It is attached with `LO_FLAGS_AUTOCLEAR`, so the kernel detaches it
/// once nothing holds it open: this value holds it until it drops, and whoever else opened it
/// meanwhile (a device-mapper table) keeps it attached after that.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    _device: File,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Runs an ioctl whose argument is an integer or a pointer to `arg`.
fn ioctl_ptr<T>(
    file: &File,
    request: libc::c_ulong,
    arg: *const T,
) -> std::io::Result<libc::c_int> {
    // SAFETY: `file` is an open loop or loop-control device; `arg` is null or points to a live,
    // correctly laid out `#[repr(C)]` struct that outlives the call; the kernel only reads it.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), request, arg) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl LoopDevice {
    /// Attaches `backing` (bytes `offset .. offset + size`) read-only to a free loop device.
    /// The device detaches itself once nothing holds it open (`LO_FLAGS_AUTOCLEAR`).
    pub fn attach_read_only(backing: &Path, offset: u64, size: u64) -> Result<Self, Error> {
        offset
            .checked_add(size)
            .ok_or(Error::Overflow { offset, size })?;
        let control_path = Path::new(LOOP_CONTROL);
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open(control_path)
            .map_err(io_err("opening", control_path))?;
        let backing_file = File::open(backing).map_err(io_err("opening", backing))?;
        // A device handed out by GET_FREE can be taken by someone else before we configure it;
        // LOOP_CONFIGURE then fails with EBUSY, and we ask again.
        for _ in 0..16 {
            let number = ioctl_ptr::<u8>(&control, LOOP_CTL_GET_FREE, std::ptr::null())
                .map_err(io_err("LOOP_CTL_GET_FREE on", control_path))?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let device = OpenOptions::new()
                .read(true)
                .open(&path)
                .map_err(io_err("opening", &path))?;
            let mut info = LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: offset,
                lo_sizelimit: size,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; LO_NAME_SIZE],
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; LO_KEY_SIZE],
                lo_init: [0; 2],
            };
            let name = backing.as_os_str().as_encoded_bytes();
            let len = name.len().min(LO_NAME_SIZE - 1);
            info.lo_file_name[..len].copy_from_slice(&name[..len]);
            let config = LoopConfig {
                fd: u32::try_from(backing_file.as_raw_fd()).unwrap_or(u32::MAX),
                block_size: 0,
                info,
                reserved: [0; 8],
            };
            match ioctl_ptr(&device, LOOP_CONFIGURE, &config) {
                Ok(_) => {
                    return Ok(LoopDevice {
                        path,
                        _device: device,
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        what: "LOOP_CONFIGURE on",
                        path,
                        source: e,
                    })
                }
            }
        }
        Err(Error::Io {
            what: "finding a free loop device in",
            path: control_path.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Detaches the device now, whoever else holds it.
    pub fn detach(self) -> Result<(), Error> {
        ioctl_ptr::<u8>(&self._device, LOOP_CLR_FD, std::ptr::null())
            .map_err(io_err("LOOP_CLR_FD on", &self.path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn struct_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    /// Needs root and the loop driver (CI runs as root).
    #[test]
    fn exposes_exactly_the_requested_range() {
        if !Path::new(LOOP_CONTROL).exists() {
            let _ = std::process::Command::new("modprobe").arg("loop").status();
        }
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing");
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&backing, &data).unwrap();
        let dev = LoopDevice::attach_read_only(&backing, 100, 4096).unwrap();
        let mut read = Vec::new();
        File::open(dev.path())
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, &data[100..4196]);
        // Opening for writing may succeed (the kernel checks at write time); writing must not.
        let write = OpenOptions::new()
            .write(true)
            .open(dev.path())
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"));
        assert!(write.is_err(), "the device must be read-only");
        dev.detach().unwrap();
    }
}
