//! A small safe wrapper over the Linux device-mapper ioctls (`linux/dm-ioctl.h`, interface
//! 4.x) through `/dev/mapper/control`: version, create a device with a table of one or more
//! targets (linear, verity, zero, ...), resume it, query status and table status (dm-verity
//! reports `V` or `C` for corruption), remove it.
//!
//! Every ioctl buffer is built and decoded as plain bytes (`struct dm_ioctl` is 312 bytes,
//! `struct dm_target_spec` 40), so the encoding is unit-tested without a kernel; the only
//! `unsafe` is the `ioctl(2)` call itself.
//!
//! ```no_run
//! # fn main() -> Result<(), devmapper::Error> {
//! let dm = devmapper::DeviceMapper::open()?;
//! // dm-linear over the super partition, then dm-verity on top of it
//! let lin = dm.create("system_a", None, &[devmapper::Target::linear(0, 200, "/dev/vda2", 2048)], true)?;
//! // The tree of the partition's data (here built in memory; in the guest it comes from a
//! // signed descriptor), stored on the same device after 25 data blocks.
//! let tree = verity::HashTree::build(&[0u8; 25 * 4096], &verity::Params::new(&[0x5a; 32]).map_err(|e| devmapper::Error::InvalidArgument(e.to_string()))?)
//!     .map_err(|e| devmapper::Error::InvalidArgument(e.to_string()))?;
//! let target = tree.dm_target(&lin.dev_string(), &lin.dev_string(), 25);
//! let ver = dm.create("system-verity", None, &[devmapper::Target::from(&target)], true)?;
//! println!("mount {}", ver.path().display());
//! # Ok(()) }
//! ```

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Path of the control device.
pub const CONTROL_PATH: &str = "/dev/mapper/control";
/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
pub const DM_TARGET_SPEC_SIZE: usize = 40;
/// `DM_NAME_LEN`.
pub const DM_NAME_LEN: usize = 128;
/// `DM_UUID_LEN`.
pub const DM_UUID_LEN: usize = 129;
/// `DM_MAX_TYPE_NAME`.
pub const DM_MAX_TYPE_NAME: usize = 16;
/// Interface version we speak (`DM_VERSION_MAJOR`.0.0).
pub const DM_VERSION: [u32; 3] = [4, 0, 0];

/// `DM_READONLY_FLAG`.
pub const DM_READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG`.
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
/// `DM_STATUS_TABLE_FLAG`: table status returns the table instead of the status.
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
/// `DM_ACTIVE_PRESENT_FLAG`.
pub const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
/// `DM_BUFFER_FULL_FLAG`.
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;

/// ioctl command numbers (`_IOWR(0xfd, nr, struct dm_ioctl)`).
pub mod cmd {
    const fn iowr(nr: u32) -> u32 {
        (3 << 30) | ((super::DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | nr
    }
    /// `DM_VERSION`.
    pub const VERSION: u32 = iowr(0);
    /// `DM_DEV_CREATE`.
    pub const DEV_CREATE: u32 = iowr(3);
    /// `DM_DEV_REMOVE`.
    pub const DEV_REMOVE: u32 = iowr(4);
    /// `DM_DEV_SUSPEND` (also resumes, without `DM_SUSPEND_FLAG`).
    pub const DEV_SUSPEND: u32 = iowr(6);
    /// `DM_DEV_STATUS`.
    pub const DEV_STATUS: u32 = iowr(7);
    /// `DM_TABLE_LOAD`.
    pub const TABLE_LOAD: u32 = iowr(9);
    /// `DM_TABLE_STATUS`.
    pub const TABLE_STATUS: u32 = iowr(12);
}

/// Errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `/dev/mapper/control` cannot be opened (no device-mapper in the kernel, or not root).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An ioctl failed.
    #[error("device-mapper {op} on {name:?} failed: {source}")]
    Ioctl {
        /// Which operation.
        op: &'static str,
        /// Device name.
        name: String,
        /// errno.
        source: std::io::Error,
    },
    /// A device name, UUID, target type or parameter string that does not fit or contains NUL.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A reply from the kernel that does not decode.
    #[error("malformed reply from the kernel: {0}")]
    BadReply(&'static str),
    /// The kernel's interface major version is not 4.
    #[error("unsupported device-mapper interface version {0}.{1}.{2}")]
    UnsupportedVersion(u32, u32, u32),
    /// Other I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One table entry: `<start> <length> <type> <params>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// First sector of the target in the device.
    pub start: u64,
    /// Length in 512-byte sectors.
    pub length: u64,
    /// Target type (`linear`, `verity`, `zero`, ...).
    pub target_type: String,
    /// Parameters.
    pub params: String,
}

impl Target {
    /// A generic target.
    pub fn new(start: u64, length: u64, target_type: &str, params: &str) -> Self {
        Self {
            start,
            length,
            target_type: target_type.to_owned(),
            params: params.to_owned(),
        }
    }

    /// `linear <device> <offset sector>`.
    pub fn linear(start: u64, length: u64, device: &str, offset: u64) -> Self {
        Self::new(start, length, "linear", &format!("{device} {offset}"))
    }

    /// `zero`.
    pub fn zero(start: u64, length: u64) -> Self {
        Self::new(start, length, "zero", "")
    }
}

impl From<&verity::DmVerityTarget> for Target {
    /// The verity target covering the whole data device.
    fn from(t: &verity::DmVerityTarget) -> Self {
        Self::new(
            0,
            t.length_sectors(),
            verity::DmVerityTarget::TARGET_TYPE,
            &t.params(),
        )
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.start, self.length, self.target_type, self.params
        )
    }
}

/// A created device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmDevice {
    /// Name.
    pub name: String,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// `major:minor` of a block device node, the form a table parameter takes without depending on
/// the node's path (`/dev/block/by-name/*` links, loop devices).
pub fn block_device_numbers(path: &Path) -> Result<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    if !meta.file_type().is_block_device() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a block device",
            path.display()
        )));
    }
    let (major, minor) = decode_dev(meta.rdev());
    Ok(format!("{major}:{minor}"))
}

impl DmDevice {
    /// Links `dir/<name>` to this device's node, as ueventd does for `/dev/block/mapper/<name>`
    /// (there is no udev in the guest). Replaces an existing link.
    pub fn link_by_name(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let link = dir.join(&self.name);
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        std::os::unix::fs::symlink(self.path(), &link)?;
        Ok(link)
    }

    /// `/dev/dm-<minor>` (devtmpfs creates it; see [`DmDevice::create_node`] otherwise).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/dm-{}", self.minor))
    }

    /// `major:minor`, usable as a device in another table without a device node.
    pub fn dev_string(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }

    /// The `dev_t`.
    pub fn dev_t(&self) -> libc::dev_t {
        libc::makedev(self.major, self.minor)
    }

    /// Creates a block device node for the device at `path` (mode 0600) if it does not exist.
    pub fn create_node(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::InvalidArgument("path contains NUL".into()))?;
        // SAFETY: `c` is a valid NUL-terminated path; mknod does not keep the pointer.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, self.dev_t()) };
        if r != 0 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// Device status (`DM_DEV_STATUS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Open count.
    pub open_count: i32,
    /// Number of targets in the active table.
    pub target_count: u32,
    /// `DM_*_FLAG`s (e.g. suspended, read-only, active table present).
    pub flags: u32,
    /// Event number.
    pub event_nr: u32,
}

/// A handle on `/dev/mapper/control`.
#[derive(Debug)]
pub struct DeviceMapper {
    control: File,
}

impl DeviceMapper {
    /// Opens `/dev/mapper/control` and checks the interface version is 4.x.
    pub fn open() -> Result<Self> {
        Self::open_path(Path::new(CONTROL_PATH))
    }

    /// Opens a control device at `path`.
    pub fn open_path(path: &Path) -> Result<Self> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        let dm = Self { control };
        let v = dm.version()?;
        if v[0] != DM_VERSION[0] {
            return Err(Error::UnsupportedVersion(v[0], v[1], v[2]));
        }
        Ok(dm)
    }

    /// The kernel's interface version.
    pub fn version(&self) -> Result<[u32; 3]> {
        let mut buf = IoctlBuf::new("", None, 0, &[], 0)?;
        self.ioctl(cmd::VERSION, "version", "", &mut buf)?;
        Ok(buf.version())
    }

    /// Creates device `name` with `table`, loads it (read-only if asked) and resumes it. If
    /// loading or resuming fails, the half-made device is removed again.
    pub fn create(
        &self,
        name: &str,
        uuid: Option<&str>,
        table: &[Target],
        read_only: bool,
    ) -> Result<DmDevice> {
        if table.is_empty() {
            return Err(Error::InvalidArgument("empty table".into()));
        }
        let mut buf = IoctlBuf::new(name, uuid, 0, &[], 0)?;
        self.ioctl(cmd::DEV_CREATE, "create", name, &mut buf)?;
        let result = self.load_and_resume(name, table, read_only);
        if let Err(e) = result {
            let _ = self.remove(name);
            return Err(e);
        }
        let st = self.status(name)?;
        Ok(DmDevice {
            name: name.to_owned(),
            major: st.major,
            minor: st.minor,
        })
    }

    fn load_and_resume(&self, name: &str, table: &[Target], read_only: bool) -> Result<()> {
        let specs = encode_targets(table)?;
        let flags = if read_only { DM_READONLY_FLAG } else { 0 };
        let count = u32::try_from(table.len())
            .map_err(|_| Error::InvalidArgument("too many targets".into()))?;
        let mut buf = IoctlBuf::new(name, None, flags, &specs, count)?;
        self.ioctl(cmd::TABLE_LOAD, "table load", name, &mut buf)?;
        let mut buf = IoctlBuf::new(name, None, 0, &[], 0)?;
        self.ioctl(cmd::DEV_SUSPEND, "resume", name, &mut buf)?;
        Ok(())
    }

    /// Removes device `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let mut buf = IoctlBuf::new(name, None, 0, &[], 0)?;
        self.ioctl(cmd::DEV_REMOVE, "remove", name, &mut buf)
    }

    /// Status of device `name`.
    pub fn status(&self, name: &str) -> Result<DeviceStatus> {
        let mut buf = IoctlBuf::new(name, None, 0, &[], 0)?;
        self.ioctl(cmd::DEV_STATUS, "status", name, &mut buf)?;
        Ok(buf.device_status())
    }

    /// The active table's per-target status (`dmsetup status`): for `verity`, `V` (verified
    /// so far) or `C` (corruption detected).
    pub fn table_status(&self, name: &str) -> Result<Vec<Target>> {
        self.table_query(name, 0)
    }

    /// The active table as loaded (`dmsetup table`).
    pub fn table(&self, name: &str) -> Result<Vec<Target>> {
        self.table_query(name, DM_STATUS_TABLE_FLAG)
    }

    fn table_query(&self, name: &str, flags: u32) -> Result<Vec<Target>> {
        let mut extra = 16 * 1024;
        loop {
            let mut buf = IoctlBuf::with_capacity(name, flags, extra)?;
            self.ioctl(cmd::TABLE_STATUS, "table status", name, &mut buf)?;
            if buf.flags() & DM_BUFFER_FULL_FLAG == 0 {
                return buf.decode_targets();
            }
            if extra >= 16 << 20 {
                return Err(Error::BadReply("table status larger than 16 MiB"));
            }
            extra *= 4;
        }
    }

    fn ioctl(&self, request: u32, op: &'static str, name: &str, buf: &mut IoctlBuf) -> Result<()> {
        // SAFETY: `buf.words` is a live, 8-byte aligned buffer of `data_size` bytes that starts
        // with a `struct dm_ioctl` whose `data_size` field equals the buffer length, so the
        // kernel reads and writes only inside it; the fd is open for the call's duration.
        let r = unsafe {
            libc::ioctl(
                self.control.as_raw_fd(),
                request as _,
                buf.words.as_mut_ptr(),
            )
        };
        if r < 0 {
            return Err(Error::Ioctl {
                op,
                name: name.to_owned(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// Encodes target specs for `DM_TABLE_LOAD`: each `struct dm_target_spec` (sector_start,
/// length, status, next, target_type[16]) followed by the NUL-terminated parameter string,
/// padded to 8 bytes; `next` is the offset from this spec to the next one.
pub fn encode_targets(table: &[Target]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for t in table {
        if t.target_type.is_empty()
            || t.target_type.len() >= DM_MAX_TYPE_NAME
            || t.target_type.contains('\0')
        {
            return Err(Error::InvalidArgument(format!(
                "target type {:?}",
                t.target_type
            )));
        }
        if t.params.contains('\0') {
            return Err(Error::InvalidArgument(
                "target parameters contain NUL".into(),
            ));
        }
        let len = (DM_TARGET_SPEC_SIZE + t.params.len() + 1).div_ceil(8) * 8;
        let next = u32::try_from(len)
            .map_err(|_| Error::InvalidArgument("target parameters too long".into()))?;
        let start = out.len();
        out.extend_from_slice(&t.start.to_ne_bytes());
        out.extend_from_slice(&t.length.to_ne_bytes());
        out.extend_from_slice(&0i32.to_ne_bytes());
        out.extend_from_slice(&next.to_ne_bytes());
        let mut ty = [0u8; DM_MAX_TYPE_NAME];
        ty.get_mut(..t.target_type.len())
            .unwrap_or_default()
            .copy_from_slice(t.target_type.as_bytes());
        out.extend_from_slice(&ty);
        out.extend_from_slice(t.params.as_bytes());
        out.resize(start + len, 0);
    }
    Ok(out)
}

/// An ioctl buffer: `struct dm_ioctl` followed by data, 8-byte aligned.
struct IoctlBuf {
    words: Vec<u64>,
}

// Field offsets in struct dm_ioctl.
const OFF_VERSION: usize = 0;
const OFF_DATA_SIZE: usize = 12;
const OFF_DATA_START: usize = 16;
const OFF_TARGET_COUNT: usize = 20;
const OFF_OPEN_COUNT: usize = 24;
const OFF_FLAGS: usize = 28;
const OFF_EVENT_NR: usize = 32;
const OFF_DEV: usize = 40;
const OFF_NAME: usize = 48;
const OFF_UUID: usize = OFF_NAME + DM_NAME_LEN;

impl IoctlBuf {
    fn new(
        name: &str,
        uuid: Option<&str>,
        flags: u32,
        data: &[u8],
        target_count: u32,
    ) -> Result<Self> {
        let bytes = encode_ioctl(name, uuid, flags, data, target_count, 0)?;
        Ok(Self::from_bytes(&bytes))
    }

    fn with_capacity(name: &str, flags: u32, extra: usize) -> Result<Self> {
        let bytes = encode_ioctl(name, None, flags, &[], 0, extra)?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b.get_mut(..chunk.len())
                .unwrap_or_default()
                .copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Self { words }
    }

    fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    fn u32_at(&self, off: usize) -> u32 {
        let b = self.bytes();
        let mut a = [0u8; 4];
        a.copy_from_slice(b.get(off..off + 4).unwrap_or(&[0; 4]));
        u32::from_ne_bytes(a)
    }

    fn version(&self) -> [u32; 3] {
        [
            self.u32_at(OFF_VERSION),
            self.u32_at(OFF_VERSION + 4),
            self.u32_at(OFF_VERSION + 8),
        ]
    }

    fn flags(&self) -> u32 {
        self.u32_at(OFF_FLAGS)
    }

    fn device_status(&self) -> DeviceStatus {
        let b = self.bytes();
        let mut d = [0u8; 8];
        d.copy_from_slice(b.get(OFF_DEV..OFF_DEV + 8).unwrap_or(&[0; 8]));
        let (major, minor) = decode_dev(u64::from_ne_bytes(d));
        DeviceStatus {
            major,
            minor,
            open_count: self.u32_at(OFF_OPEN_COUNT) as i32,
            target_count: self.u32_at(OFF_TARGET_COUNT),
            flags: self.flags(),
            event_nr: self.u32_at(OFF_EVENT_NR),
        }
    }

    fn decode_targets(&self) -> Result<Vec<Target>> {
        decode_targets(
            &self.bytes(),
            self.u32_at(OFF_DATA_START),
            self.u32_at(OFF_TARGET_COUNT),
        )
    }
}

/// Builds a `struct dm_ioctl` with `data` after it and `extra` spare bytes for the reply.
pub fn encode_ioctl(
    name: &str,
    uuid: Option<&str>,
    flags: u32,
    data: &[u8],
    target_count: u32,
    extra: usize,
) -> Result<Vec<u8>> {
    if name.len() >= DM_NAME_LEN || name.contains('\0') {
        return Err(Error::InvalidArgument(format!("device name {name:?}")));
    }
    let uuid = uuid.unwrap_or("");
    if uuid.len() >= DM_UUID_LEN || uuid.contains('\0') {
        return Err(Error::InvalidArgument(format!("uuid {uuid:?}")));
    }
    let total = (DM_IOCTL_SIZE + data.len() + extra).div_ceil(8) * 8;
    let total_u32 = u32::try_from(total)
        .map_err(|_| Error::InvalidArgument("ioctl buffer too large".into()))?;
    let mut b = vec![0u8; total];
    let mut put = |off: usize, v: &[u8]| {
        if let Some(d) = b.get_mut(off..off + v.len()) {
            d.copy_from_slice(v);
        }
    };
    for (i, v) in DM_VERSION.iter().enumerate() {
        put(OFF_VERSION + 4 * i, &v.to_ne_bytes());
    }
    put(OFF_DATA_SIZE, &total_u32.to_ne_bytes());
    put(OFF_DATA_START, &(DM_IOCTL_SIZE as u32).to_ne_bytes());
    put(OFF_TARGET_COUNT, &target_count.to_ne_bytes());
    put(OFF_FLAGS, &flags.to_ne_bytes());
    put(OFF_NAME, name.as_bytes());
    put(OFF_UUID, uuid.as_bytes());
    put(DM_IOCTL_SIZE, data);
    Ok(b)
}

/// Decodes the target specs the kernel returns from `DM_TABLE_STATUS` (`next` there is the
/// offset of the next spec from the start of the data area).
pub fn decode_targets(buf: &[u8], data_start: u32, count: u32) -> Result<Vec<Target>> {
    let base = data_start as usize;
    let mut off = base;
    let mut out = Vec::new();
    for _ in 0..count {
        let spec = buf
            .get(off..off + DM_TARGET_SPEC_SIZE)
            .ok_or(Error::BadReply("target spec past the buffer"))?;
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(spec.get(o..o + 8).unwrap_or(&[0; 8]));
            u64::from_ne_bytes(a)
        };
        let mut n = [0u8; 4];
        n.copy_from_slice(spec.get(20..24).unwrap_or(&[0; 4]));
        let next = u32::from_ne_bytes(n) as usize;
        let ty = cstr(spec.get(24..40).unwrap_or_default());
        let params_area = buf
            .get(off + DM_TARGET_SPEC_SIZE..)
            .ok_or(Error::BadReply("parameters past the buffer"))?;
        out.push(Target {
            start: u64_at(0),
            length: u64_at(8),
            target_type: ty,
            params: cstr(params_area),
        });
        let new_off = base
            .checked_add(next)
            .ok_or(Error::BadReply("next offset overflows"))?;
        if new_off <= off && out.len() < count as usize {
            return Err(Error::BadReply("next offset does not advance"));
        }
        off = new_off;
    }
    Ok(out)
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

/// Decodes the kernel's `huge_encode_dev` value: major = bits 8..20, minor = bits 0..8 and 20..32.
pub fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32 | (((dev >> 32) & !0xfff) as u32);
    let minor = (dev & 0xff) as u32 | (((dev >> 12) & !0xff) as u32);
    (major, minor)
}

#[cfg(test)]
mod tests;
