//! The parcelables, unions and enums of `android.system.virtualizationservice` (24Q4), in
//! AOSP's field order. File descriptors are `OwnedFd`s (`ParcelFileDescriptor`); writing dups
//! them, so a config can be sent more than once.
//!
//! Fields this host cannot honour (display, input devices, GPU, audio, USB) are still read, so
//! that a config from an AOSP client parses; the service refuses a config that sets them.

use std::os::fd::OwnedFd;

use rpcbinder::error::ParcelError;
use rpcbinder::{Parcel, ParcelReader};

/// Bytes of an instance id (`byte[64]`).
pub const INSTANCE_ID_SIZE: usize = 64;

/// Why writing a parcelable failed: an fd could not be duplicated.
#[derive(Debug, thiserror::Error)]
#[error("duplicating a file descriptor for the parcel: {0}")]
pub struct WriteError(#[from] pub std::io::Error);

fn dup(fd: &OwnedFd) -> Result<OwnedFd, WriteError> {
    Ok(fd.try_clone()?)
}

fn write_pfd(p: &mut Parcel, fd: Option<&OwnedFd>) -> Result<(), WriteError> {
    p.write_pfd(fd.map(dup).transpose()?);
    Ok(())
}

fn write_pfd_list(p: &mut Parcel, fds: &[OwnedFd]) -> Result<(), WriteError> {
    p.write_i32(i32::try_from(fds.len()).unwrap_or(i32::MAX));
    for fd in fds {
        write_pfd(p, Some(fd))?;
    }
    Ok(())
}

/// A count prefix, bounded by the bytes left (every element takes at least 4).
fn read_count(r: &mut ParcelReader<'_>) -> Result<usize, ParcelError> {
    let n = r.read_i32()?;
    let count = usize::try_from(n).map_err(|_| ParcelError::BadLength(n))?;
    if count > r.remaining() / 4 {
        return Err(ParcelError::BadLength(n));
    }
    Ok(count)
}

fn read_pfd_list(r: &mut ParcelReader<'_>) -> Result<Vec<OwnedFd>, ParcelError> {
    let n = read_count(r)?;
    (0..n).map(|_| r.read_required_pfd()).collect()
}

fn write_string_array(p: &mut Parcel, items: &[String]) {
    p.write_i32(i32::try_from(items.len()).unwrap_or(i32::MAX));
    for s in items {
        p.write_str(s);
    }
}

fn read_string_array(r: &mut ParcelReader<'_>) -> Result<Vec<String>, ParcelError> {
    let n = read_count(r)?;
    (0..n).map(|_| r.read_string()).collect()
}

fn read_instance_id(r: &mut ParcelReader<'_>) -> Result<[u8; INSTANCE_ID_SIZE], ParcelError> {
    let bytes = r.read_byte_array()?.ok_or(ParcelError::UnexpectedNull)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| ParcelError::BadValue(i32::try_from(len).unwrap_or(i32::MAX)))
}

/// A nullable parcelable: `i32 0`, or the parcelable.
fn read_nullable<'a, T>(
    r: &mut ParcelReader<'a>,
    f: impl FnOnce(&mut ParcelReader<'a>) -> Result<T, ParcelError>,
) -> Result<Option<T>, ParcelError> {
    let mut peek = r.clone();
    if peek.read_i32()? == 0 {
        *r = peek;
        return Ok(None);
    }
    r.read_parcelable(f).map(Some)
}

/// Reads a parcelable this host does not interpret, skipping its fields (the size header
/// bounds it): only its presence matters, and the service refuses it.
fn read_opaque(r: &mut ParcelReader<'_>) -> Result<Option<Unsupported>, ParcelError> {
    read_nullable(r, |_| Ok(Unsupported))
}

/// A parcelable this host reads but does not support (its presence is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

macro_rules! int_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub i32);
        impl $name {
            $($(#[$vm])* pub const $variant: $name = $name($value);)*
            /// AIDL name, when known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($variant)),)*
                    _ => None,
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

int_enum!(
    /// `DebugLevel` (byte-backed; i32 on the wire).
    DebugLevel { NONE = 0, FULL = 1 }
);
int_enum!(
    /// `CpuTopology` (byte-backed).
    CpuTopology { ONE_CPU = 0, MATCH_HOST = 1 }
);
int_enum!(
    /// `PartitionType`.
    PartitionType { RAW = 0, ANDROID_VM_INSTANCE = 1, ENCRYPTEDSTORE = 2 }
);
int_enum!(
    /// `VirtualMachineState` (5 is unused).
    VirtualMachineState {
        NOT_STARTED = 0,
        STARTING = 1,
        STARTED = 2,
        READY = 3,
        FINISHED = 4,
        DEAD = 6,
    }
);
int_enum!(
    /// `android.system.virtualizationcommon.ErrorCode`.
    ErrorCode {
        UNKNOWN = 0,
        PAYLOAD_VERIFICATION_FAILED = 1,
        PAYLOAD_CHANGED = 2,
        PAYLOAD_INVALID_CONFIG = 3,
    }
);

/// `android.system.virtualizationcommon.DeathReason` on the wire: an open enum (values unknown
/// to this build still travel). [`vm_status::DeathReason`] names the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeathReason(pub i32);

impl DeathReason {
    /// The known reason, if any.
    pub fn known(self) -> Option<vm_status::DeathReason> {
        vm_status::DeathReason::from_i32(self.0)
    }
}

impl From<vm_status::DeathReason> for DeathReason {
    fn from(r: vm_status::DeathReason) -> Self {
        DeathReason(r as i32)
    }
}

impl std::fmt::Display for DeathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.known() {
            Some(r) => f.write_str(r.name()),
            None => write!(f, "DeathReason({})", self.0),
        }
    }
}

/// `union VirtualMachineConfig`.
#[derive(Debug)]
pub enum VirtualMachineConfig {
    /// Tag 0.
    AppConfig(Box<VirtualMachineAppConfig>),
    /// Tag 1.
    RawConfig(Box<VirtualMachineRawConfig>),
}

impl VirtualMachineConfig {
    /// Writes the union (tag, then the member).
    pub fn write(&self, p: &mut Parcel) -> Result<(), WriteError> {
        match self {
            VirtualMachineConfig::AppConfig(c) => {
                p.write_i32(0);
                c.write(p)
            }
            VirtualMachineConfig::RawConfig(c) => {
                p.write_i32(1);
                c.write(p)
            }
        }
    }

    /// Reads the union.
    pub fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        match r.read_i32()? {
            0 => Ok(VirtualMachineConfig::AppConfig(Box::new(
                VirtualMachineAppConfig::read(r)?,
            ))),
            1 => Ok(VirtualMachineConfig::RawConfig(Box::new(
                VirtualMachineRawConfig::read(r)?,
            ))),
            tag => Err(ParcelError::BadValue(tag)),
        }
    }
}

/// `union VirtualMachineAppConfig.Payload`.
#[derive(Debug)]
pub enum Payload {
    /// Tag 0: the JSON config's path inside the APK.
    ConfigPath(String),
    /// Tag 1.
    PayloadConfig(VirtualMachinePayloadConfig),
}

/// `parcelable VirtualMachinePayloadConfig`.
#[derive(Debug, Default)]
pub struct VirtualMachinePayloadConfig {
    /// The payload binary in the APK's `lib/<abi>/`.
    pub payload_binary_name: String,
    /// Extra APKs (AOSP's `multi_tenant`).
    pub extra_apks: Vec<OwnedFd>,
}

/// `parcelable CustomConfig`.
#[derive(Debug, Default)]
pub struct CustomConfig {
    /// A kernel to boot instead of the OS's.
    pub custom_kernel_image: Option<OwnedFd>,
    /// QEMU/crosvm gdb stub port (0: none).
    pub gdb_port: i32,
    /// A vendor image (AOSP's `vendor_modules`).
    pub vendor_image: Option<OwnedFd>,
    /// Devices to assign (VFIO sysfs nodes).
    pub devices: Vec<String>,
    /// AOSP default true.
    pub want_updatable: bool,
    /// Networking.
    pub network_supported: bool,
    /// Extra kernel command line parameters.
    pub extra_kernel_cmdline_params: Vec<String>,
}

impl CustomConfig {
    fn write(&self, p: &mut Parcel) -> Result<(), WriteError> {
        let mut err = None;
        p.write_parcelable(|p| {
            let r = (|| {
                write_pfd(p, self.custom_kernel_image.as_ref())?;
                p.write_i32(self.gdb_port);
                write_pfd(p, self.vendor_image.as_ref())?;
                write_string_array(p, &self.devices);
                p.write_bool(self.want_updatable);
                p.write_bool(self.network_supported);
                write_string_array(p, &self.extra_kernel_cmdline_params);
                Ok(())
            })();
            err = r.err();
        });
        err.map_or(Ok(()), Err)
    }

    fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            Ok(CustomConfig {
                custom_kernel_image: r.read_pfd()?,
                gdb_port: r.read_i32()?,
                vendor_image: r.read_pfd()?,
                devices: read_string_array(r)?,
                want_updatable: r.read_bool()?,
                network_supported: r.read_bool()?,
                extra_kernel_cmdline_params: read_string_array(r)?,
            })
        })
    }
}

/// `parcelable VirtualMachineAppConfig` (24Q4 field order).
#[derive(Debug)]
pub struct VirtualMachineAppConfig {
    /// 1.
    pub name: String,
    /// 2.
    pub instance_id: [u8; INSTANCE_ID_SIZE],
    /// 3.
    pub apk: OwnedFd,
    /// 4.
    pub idsig: OwnedFd,
    /// 5: one per extra APK of the payload config.
    pub extra_idsigs: Vec<OwnedFd>,
    /// 6.
    pub instance_image: OwnedFd,
    /// 7.
    pub encrypted_storage_image: Option<OwnedFd>,
    /// 8.
    pub payload: Payload,
    /// 9: `"microdroid"`.
    pub os_name: String,
    /// 10.
    pub debug_level: DebugLevel,
    /// 11.
    pub protected_vm: bool,
    /// 12: ≤ 0 takes the OS's default.
    pub memory_mib: i32,
    /// 13.
    pub cpu_topology: CpuTopology,
    /// 14.
    pub custom_config: Option<CustomConfig>,
    /// 15.
    pub huge_pages: bool,
    /// 16.
    pub boost_uclamp: bool,
}

impl VirtualMachineAppConfig {
    /// Writes the parcelable.
    pub fn write(&self, p: &mut Parcel) -> Result<(), WriteError> {
        let mut err = None;
        p.write_parcelable(|p| {
            let r = (|| {
                p.write_str(&self.name);
                p.write_byte_array(Some(&self.instance_id));
                write_pfd(p, Some(&self.apk))?;
                write_pfd(p, Some(&self.idsig))?;
                write_pfd_list(p, &self.extra_idsigs)?;
                write_pfd(p, Some(&self.instance_image))?;
                write_pfd(p, self.encrypted_storage_image.as_ref())?;
                match &self.payload {
                    Payload::ConfigPath(path) => {
                        p.write_i32(0);
                        p.write_str(path);
                    }
                    Payload::PayloadConfig(c) => {
                        p.write_i32(1);
                        let mut inner = None;
                        p.write_parcelable(|p| {
                            p.write_str(&c.payload_binary_name);
                            inner = write_pfd_list(p, &c.extra_apks).err();
                        });
                        if let Some(e) = inner {
                            return Err(e);
                        }
                    }
                }
                p.write_str(&self.os_name);
                p.write_i32(self.debug_level.0);
                p.write_bool(self.protected_vm);
                p.write_i32(self.memory_mib);
                p.write_i32(self.cpu_topology.0);
                match &self.custom_config {
                    None => p.write_i32(0),
                    Some(c) => c.write(p)?,
                }
                p.write_bool(self.huge_pages);
                p.write_bool(self.boost_uclamp);
                Ok(())
            })();
            err = r.err();
        });
        err.map_or(Ok(()), Err)
    }

    /// Reads the parcelable.
    pub fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            let name = r.read_string()?;
            let instance_id = read_instance_id(r)?;
            let apk = r.read_required_pfd()?;
            let idsig = r.read_required_pfd()?;
            let extra_idsigs = read_pfd_list(r)?;
            let instance_image = r.read_required_pfd()?;
            let encrypted_storage_image = r.read_pfd()?;
            let payload = match r.read_i32()? {
                0 => Payload::ConfigPath(r.read_string()?),
                1 => Payload::PayloadConfig(r.read_parcelable(|r| {
                    Ok(VirtualMachinePayloadConfig {
                        payload_binary_name: r.read_string()?,
                        extra_apks: read_pfd_list(r)?,
                    })
                })?),
                tag => return Err(ParcelError::BadValue(tag)),
            };
            let os_name = r.read_string()?;
            let debug_level = DebugLevel(r.read_i32()?);
            let protected_vm = r.read_bool()?;
            let memory_mib = r.read_i32()?;
            let cpu_topology = CpuTopology(r.read_i32()?);
            let mut peek = r.clone();
            let custom_config = if peek.read_i32()? == 0 {
                *r = peek;
                None
            } else {
                Some(CustomConfig::read(r)?)
            };
            Ok(VirtualMachineAppConfig {
                name,
                instance_id,
                apk,
                idsig,
                extra_idsigs,
                instance_image,
                encrypted_storage_image,
                payload,
                os_name,
                debug_level,
                protected_vm,
                memory_mib,
                cpu_topology,
                custom_config,
                huge_pages: r.read_bool()?,
                boost_uclamp: r.read_bool()?,
            })
        })
    }
}

/// `parcelable Partition`.
#[derive(Debug)]
pub struct Partition {
    /// GPT partition name.
    pub label: String,
    /// Raw (or Android-sparse) image.
    pub image: OwnedFd,
    /// Whether the guest may write it.
    pub writable: bool,
    /// GPT partition GUID (24Q4).
    pub guid: Option<String>,
}

/// `parcelable DiskImage`: exactly one of `image` and `partitions`.
#[derive(Debug, Default)]
pub struct DiskImage {
    /// A whole-disk image.
    pub image: Option<OwnedFd>,
    /// Whether the guest may write it.
    pub writable: bool,
    /// Partitions assembled into a composite disk.
    pub partitions: Vec<Partition>,
}

impl DiskImage {
    fn write(&self, p: &mut Parcel) -> Result<(), WriteError> {
        let mut err = None;
        p.write_parcelable(|p| {
            let r = (|| {
                write_pfd(p, self.image.as_ref())?;
                p.write_bool(self.writable);
                p.write_i32(i32::try_from(self.partitions.len()).unwrap_or(i32::MAX));
                for part in &self.partitions {
                    let mut inner = None;
                    p.write_parcelable(|p| {
                        p.write_str(&part.label);
                        inner = write_pfd(p, Some(&part.image)).err();
                        p.write_bool(part.writable);
                        p.write_string16(part.guid.as_deref());
                    });
                    if let Some(e) = inner {
                        return Err(e);
                    }
                }
                Ok(())
            })();
            err = r.err();
        });
        err.map_or(Ok(()), Err)
    }

    fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            let image = r.read_pfd()?;
            let writable = r.read_bool()?;
            let n = read_count(r)?;
            let partitions = (0..n)
                .map(|_| {
                    r.read_parcelable(|r| {
                        Ok(Partition {
                            label: r.read_string()?,
                            image: r.read_required_pfd()?,
                            writable: r.read_bool()?,
                            guid: r.read_string16()?,
                        })
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(DiskImage {
                image,
                writable,
                partitions,
            })
        })
    }
}

/// `parcelable DisplayConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayConfig {
    /// Pixels.
    pub width: i32,
    /// Pixels.
    pub height: i32,
    /// Dots per inch.
    pub horizontal_dpi: i32,
    /// Dots per inch.
    pub vertical_dpi: i32,
    /// Hz.
    pub refresh_rate: i32,
}

/// `parcelable UsbConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbConfig {
    /// A USB controller for the guest.
    pub controller: bool,
}

/// `parcelable VirtualMachineRawConfig` (24Q4 field order).
#[derive(Debug)]
pub struct VirtualMachineRawConfig {
    /// 1.
    pub name: String,
    /// 2.
    pub instance_id: [u8; INSTANCE_ID_SIZE],
    /// 3.
    pub kernel: Option<OwnedFd>,
    /// 4.
    pub initrd: Option<OwnedFd>,
    /// 5: the kernel command line.
    pub params: Option<String>,
    /// 6: excludes kernel and initrd.
    pub bootloader: Option<OwnedFd>,
    /// 7.
    pub disks: Vec<DiskImage>,
    /// 8.
    pub protected_vm: bool,
    /// 9: ≤ 0 → 256 MiB.
    pub memory_mib: i32,
    /// 10.
    pub cpu_topology: CpuTopology,
    /// 11: a semver requirement that must match 1.0.0.
    pub platform_version: String,
    /// 12.
    pub gdb_port: i32,
    /// 13.
    pub huge_pages: bool,
    /// 14: VFIO devices.
    pub devices: Vec<String>,
    /// 15.
    pub display_config: Option<DisplayConfig>,
    /// 16: the union tag of each input device (their contents are not supported here).
    pub input_devices: Vec<i32>,
    /// 17.
    pub network_supported: bool,
    /// 18: `"hvc0"` (null) or `"ttyS0"`.
    pub console_input_device: Option<String>,
    /// 19.
    pub boost_uclamp: bool,
    /// 20.
    pub gpu_config: Option<Unsupported>,
    /// 21.
    pub audio_config: Option<Unsupported>,
    /// 22.
    pub no_balloon: bool,
    /// 23.
    pub usb_config: Option<UsbConfig>,
}

impl Default for VirtualMachineRawConfig {
    fn default() -> Self {
        VirtualMachineRawConfig {
            name: String::new(),
            instance_id: [0; INSTANCE_ID_SIZE],
            kernel: None,
            initrd: None,
            params: None,
            bootloader: None,
            disks: Vec::new(),
            protected_vm: false,
            memory_mib: 0,
            cpu_topology: CpuTopology::ONE_CPU,
            platform_version: String::new(),
            gdb_port: 0,
            huge_pages: false,
            devices: Vec::new(),
            display_config: None,
            input_devices: Vec::new(),
            network_supported: false,
            console_input_device: None,
            boost_uclamp: false,
            gpu_config: None,
            audio_config: None,
            no_balloon: false,
            usb_config: None,
        }
    }
}

impl Default for CpuTopology {
    fn default() -> Self {
        CpuTopology::ONE_CPU
    }
}

impl Default for DebugLevel {
    fn default() -> Self {
        DebugLevel::NONE
    }
}

impl VirtualMachineRawConfig {
    /// Writes the parcelable. Input devices, GPU and audio configs are not supported by this
    /// host and are written as empty/null.
    pub fn write(&self, p: &mut Parcel) -> Result<(), WriteError> {
        let mut err = None;
        p.write_parcelable(|p| {
            let r = (|| {
                p.write_str(&self.name);
                p.write_byte_array(Some(&self.instance_id));
                write_pfd(p, self.kernel.as_ref())?;
                write_pfd(p, self.initrd.as_ref())?;
                p.write_string16(self.params.as_deref());
                write_pfd(p, self.bootloader.as_ref())?;
                p.write_i32(i32::try_from(self.disks.len()).unwrap_or(i32::MAX));
                for d in &self.disks {
                    d.write(p)?;
                }
                p.write_bool(self.protected_vm);
                p.write_i32(self.memory_mib);
                p.write_i32(self.cpu_topology.0);
                p.write_str(&self.platform_version);
                p.write_i32(self.gdb_port);
                p.write_bool(self.huge_pages);
                write_string_array(p, &self.devices);
                match &self.display_config {
                    None => p.write_i32(0),
                    Some(d) => p.write_parcelable(|p| {
                        p.write_i32(d.width);
                        p.write_i32(d.height);
                        p.write_i32(d.horizontal_dpi);
                        p.write_i32(d.vertical_dpi);
                        p.write_i32(d.refresh_rate);
                    }),
                }
                p.write_i32(0); // inputDevices
                p.write_bool(self.network_supported);
                p.write_string16(self.console_input_device.as_deref());
                p.write_bool(self.boost_uclamp);
                p.write_i32(0); // gpuConfig
                p.write_i32(0); // audioConfig
                p.write_bool(self.no_balloon);
                match &self.usb_config {
                    None => p.write_i32(0),
                    Some(u) => p.write_parcelable(|p| p.write_bool(u.controller)),
                }
                Ok(())
            })();
            err = r.err();
        });
        err.map_or(Ok(()), Err)
    }

    /// Reads the parcelable. Fields after the last one sent by an older client keep their
    /// defaults (the size header ends the parcelable early).
    pub fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            let mut c = VirtualMachineRawConfig {
                name: r.read_string()?,
                instance_id: read_instance_id(r)?,
                kernel: r.read_pfd()?,
                initrd: r.read_pfd()?,
                params: r.read_string16()?,
                bootloader: r.read_pfd()?,
                ..Default::default()
            };
            let n = read_count(r)?;
            c.disks = (0..n)
                .map(|_| DiskImage::read(r))
                .collect::<Result<_, _>>()?;
            c.protected_vm = r.read_bool()?;
            c.memory_mib = r.read_i32()?;
            c.cpu_topology = CpuTopology(r.read_i32()?);
            c.platform_version = r.read_string()?;
            c.gdb_port = r.read_i32()?;
            c.huge_pages = r.read_bool()?;
            c.devices = read_string_array(r)?;
            c.display_config = read_nullable(r, |r| {
                Ok(DisplayConfig {
                    width: r.read_i32()?,
                    height: r.read_i32()?,
                    horizontal_dpi: r.read_i32()?,
                    vertical_dpi: r.read_i32()?,
                    refresh_rate: r.read_i32()?,
                })
            })?;
            let n = read_count(r)?;
            for _ in 0..n {
                // union InputDevice: tag, then a parcelable whose fields are skipped.
                let tag = r.read_i32()?;
                r.read_parcelable(|_| Ok(()))?;
                c.input_devices.push(tag);
            }
            if r.remaining() == 0 {
                return Ok(c);
            }
            c.network_supported = r.read_bool()?;
            c.console_input_device = r.read_string16()?;
            c.boost_uclamp = r.read_bool()?;
            c.gpu_config = read_opaque(r)?;
            if r.remaining() == 0 {
                return Ok(c);
            }
            c.audio_config = read_opaque(r)?;
            c.no_balloon = r.read_bool()?;
            c.usb_config = read_nullable(r, |r| {
                Ok(UsbConfig {
                    controller: r.read_bool()?,
                })
            })?;
            Ok(c)
        })
    }
}

/// `parcelable VirtualMachineDebugInfo` (24Q4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMachineDebugInfo {
    /// Guest CID.
    pub cid: i32,
    /// The VM's temporary directory on the host.
    pub temporary_directory: String,
    /// Uid of the client that created it.
    pub requester_uid: i32,
    /// Pid of the client that created it.
    pub requester_pid: i32,
    /// The host console's pty, if any.
    pub host_console_name: Option<String>,
}

impl VirtualMachineDebugInfo {
    /// Writes the parcelable.
    pub fn write(&self, p: &mut Parcel) {
        p.write_parcelable(|p| {
            p.write_i32(self.cid);
            p.write_str(&self.temporary_directory);
            p.write_i32(self.requester_uid);
            p.write_i32(self.requester_pid);
            p.write_string16(self.host_console_name.as_deref());
        });
    }

    /// Reads the parcelable.
    pub fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            Ok(VirtualMachineDebugInfo {
                cid: r.read_i32()?,
                temporary_directory: r.read_string()?,
                requester_uid: r.read_i32()?,
                requester_pid: r.read_i32()?,
                host_console_name: r.read_string16()?,
            })
        })
    }
}

/// `parcelable AssignableDevice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignableDevice {
    /// Sysfs node.
    pub node: String,
    /// Its device tree overlay label.
    pub dtbo_label: String,
}

impl AssignableDevice {
    /// Writes the parcelable.
    pub fn write(&self, p: &mut Parcel) {
        p.write_parcelable(|p| {
            p.write_str(&self.node);
            p.write_str(&self.dtbo_label);
        });
    }

    /// Reads the parcelable.
    pub fn read(r: &mut ParcelReader<'_>) -> Result<Self, ParcelError> {
        r.read_parcelable(|r| {
            Ok(AssignableDevice {
                node: r.read_string()?,
                dtbo_label: r.read_string()?,
            })
        })
    }
}

/// Reads a `T[]` of parcelables.
pub fn read_parcelable_array<'a, T>(
    r: &mut ParcelReader<'a>,
    f: impl Fn(&mut ParcelReader<'a>) -> Result<T, ParcelError>,
) -> Result<Vec<T>, ParcelError> {
    let n = read_count(r)?;
    (0..n).map(|_| f(r)).collect()
}

/// Reads a `String[]`.
pub fn read_strings(r: &mut ParcelReader<'_>) -> Result<Vec<String>, ParcelError> {
    read_string_array(r)
}

/// Writes a `String[]`.
pub fn write_strings(p: &mut Parcel, items: &[String]) {
    write_string_array(p, items)
}

/// Reads a `byte[64]` instance id.
pub fn read_id(r: &mut ParcelReader<'_>) -> Result<[u8; INSTANCE_ID_SIZE], ParcelError> {
    read_instance_id(r)
}
