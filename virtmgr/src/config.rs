//! From an AIDL `VirtualMachineConfig` to the VM engine's `VmConfig`, with AOSP's checks and
//! errors. Files arrive as fds; the engine and the VMM open them as `/proc/<virtmgr>/fd/<n>`,
//! so the fds are kept open for the VM's life ([`Resolved::fds`]).
//!
//! What this host cannot do is refused with `EX_UNSUPPORTED_OPERATION` naming the field, never
//! accepted and dropped: protected VMs, vendor images, device assignment, networking,
//! displays, input devices, GPU, audio, USB, uclamp boosting, bootloaders.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use host_tools::app::{AppPayload, PayloadSpec};
use host_tools::vm::{RawDisk, RawPartition, RawVm, VmConfig};
use rpcbinder::{ExceptionCode, Status};
use virtualizationservice::{
    illegal_argument, unsupported, CpuTopology, DebugLevel, Payload, VirtualMachineAppConfig,
    VirtualMachineConfig, VirtualMachineRawConfig,
};

/// The memory of a VM whose config says ≤ 0 (AOSP: microdroid.json's 256, and virtmgr's).
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// The one OS this host runs app VMs on (`getSupportedOSList`).
pub const MICRODROID_OS: &str = "microdroid";
/// The platform version virtmgr implements; a raw config's requirement must match it.
pub const PLATFORM_VERSION: semver::Version = semver::Version::new(1, 0, 0);

/// A config ready for the engine, and the fds its paths name.
#[derive(Debug)]
pub struct Resolved {
    pub config: VmConfig,
    pub fds: Vec<OwnedFd>,
    /// The VM's name (logs).
    pub name: String,
    /// App VMs detect a payload that never starts (HANGUP); raw VMs do not.
    pub is_app: bool,
}

/// Collects fds and names each as a path the engine and its children can open.
struct FdPaths {
    pid: u32,
    fds: Vec<OwnedFd>,
}

impl FdPaths {
    fn path(&mut self, fd: OwnedFd) -> PathBuf {
        let path = PathBuf::from(format!("/proc/{}/fd/{}", self.pid, fd.as_raw_fd()));
        self.fds.push(fd);
        path
    }
}

fn cpus(topology: CpuTopology) -> Result<u32, Status> {
    match topology {
        CpuTopology::ONE_CPU => Ok(1),
        CpuTopology::MATCH_HOST => Ok(std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1)),
        other => Err(illegal_argument(format!("unknown cpuTopology {}", other.0))),
    }
}

fn gdb_port(port: i32) -> Result<u16, Status> {
    u16::try_from(port)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| illegal_argument(format!("gdbPort {port} is not a TCP port")))
}

fn memory(mib: i32) -> u32 {
    u32::try_from(mib)
        .ok()
        .filter(|&m| m > 0)
        .unwrap_or(DEFAULT_MEMORY_MIB)
}

/// Turns a config into the engine's, on top of `base` (this virtmgr's host settings).
pub fn resolve(config: VirtualMachineConfig, base: &VmConfig) -> Result<Resolved, Status> {
    let mut paths = FdPaths {
        pid: std::process::id(),
        fds: Vec::new(),
    };
    let (config, name, is_app) = match config {
        VirtualMachineConfig::AppConfig(app) => {
            let name = app.name.clone();
            (resolve_app(*app, base, &mut paths)?, name, true)
        }
        VirtualMachineConfig::RawConfig(raw) => {
            let name = raw.name.clone();
            (resolve_raw(*raw, base, &mut paths)?, name, false)
        }
    };
    let config = VmConfig {
        name: Some(name.clone()),
        ..config
    };
    Ok(Resolved {
        config,
        fds: paths.fds,
        name,
        is_app,
    })
}

fn resolve_app(
    app: VirtualMachineAppConfig,
    base: &VmConfig,
    paths: &mut FdPaths,
) -> Result<VmConfig, Status> {
    if app.protected_vm {
        return Err(unsupported(
            "protectedVm: this host has no protected-VM hypervisor (pKVM); only non-protected VMs run here",
        ));
    }
    if app.os_name != MICRODROID_OS {
        return Err(illegal_argument(format!(
            "osName {:?}: the supported OS list is [\"{MICRODROID_OS}\"]",
            app.os_name
        )));
    }
    let debuggable = match app.debug_level {
        DebugLevel::NONE => false,
        DebugLevel::FULL => true,
        other => return Err(illegal_argument(format!("unknown debugLevel {}", other.0))),
    };
    if app.boost_uclamp {
        return Err(unsupported("boostUclamp: vCPU uclamp boosting is a crosvm/Android scheduler feature this host does not have"));
    }
    let memory_mib = memory(app.memory_mib);
    host_tools::vm::check_memory(memory_mib).map_err(|e| illegal_argument(e.to_string()))?;
    let mut config = VmConfig {
        debuggable,
        memory_mib,
        cpus: cpus(app.cpu_topology)?,
        ..base.clone()
    };
    if let Some(custom) = app.custom_config {
        if custom.gdb_port != 0 {
            if !debuggable {
                return Err(Status::exception(
                    ExceptionCode::SECURITY,
                    "customConfig.gdbPort: gdb needs a debuggable VM (DebugLevel.FULL)",
                ));
            }
            config.gdb_port = Some(gdb_port(custom.gdb_port)?);
        }
        if custom.vendor_image.is_some() {
            return Err(unsupported(
                "customConfig.vendorImage: vendor modules are not supported",
            ));
        }
        if !custom.devices.is_empty() {
            return Err(unsupported(
                "customConfig.devices: device assignment (VFIO) is not supported",
            ));
        }
        if custom.network_supported {
            return Err(unsupported(
                "customConfig.networkSupported: guest networking is not supported",
            ));
        }
        if !custom.extra_kernel_cmdline_params.is_empty() {
            if !debuggable {
                return Err(Status::exception(
                    ExceptionCode::SECURITY,
                    "customConfig.extraKernelCmdlineParams: only for a debuggable VM",
                ));
            }
            config
                .extra_kernel_args
                .extend(custom.extra_kernel_cmdline_params);
        }
        if let Some(kernel) = custom.custom_kernel_image {
            config.kernel = Some(paths.path(kernel));
        }
    }
    let (payload, extra_apks) = match app.payload {
        Payload::ConfigPath(path) => (PayloadSpec::ConfigPath(path), Vec::new()),
        Payload::PayloadConfig(p) => {
            if p.payload_binary_name.is_empty() {
                return Err(illegal_argument("payloadConfig.payloadBinaryName is empty"));
            }
            let extra = p.extra_apks.into_iter().map(|fd| paths.path(fd)).collect();
            (PayloadSpec::BinaryName(p.payload_binary_name), extra)
        }
    };
    if app.extra_idsigs.len() != extra_apks.len() {
        return Err(illegal_argument(format!(
            "extraIdsigs: {} given for {} extra APKs",
            app.extra_idsigs.len(),
            extra_apks.len()
        )));
    }
    // The engine makes the extra APKs' idsigs itself; the client's are the same bytes
    // (`createOrUpdateIdsigFile`), so they are checked to exist and dropped here.
    drop(app.extra_idsigs);
    config.app = Some(AppPayload {
        apk: paths.path(app.apk),
        idsig: paths.path(app.idsig),
        payload,
        extra_apks,
        apexes: Vec::new(),
    });
    config.instance = Some(paths.path(app.instance_image));
    if let Some(storage) = app.encrypted_storage_image {
        let size = std::fs::File::from(storage.try_clone().map_err(io_status)?)
            .metadata()
            .map_err(io_status)?
            .len();
        config.storage = Some((paths.path(storage), size));
    }
    Ok(config)
}

fn io_status(e: std::io::Error) -> Status {
    Status::exception(
        ExceptionCode::BAD_PARCELABLE,
        format!("a file descriptor: {e}"),
    )
}

fn resolve_raw(
    raw: VirtualMachineRawConfig,
    base: &VmConfig,
    paths: &mut FdPaths,
) -> Result<VmConfig, Status> {
    if raw.protected_vm {
        return Err(unsupported(
            "protectedVm: this host has no protected-VM hypervisor (pKVM); only non-protected VMs run here",
        ));
    }
    let requirement = semver::VersionReq::parse(&raw.platform_version).map_err(|e| {
        Status::exception(
            ExceptionCode::BAD_PARCELABLE,
            format!("platformVersion {:?}: {e}", raw.platform_version),
        )
    })?;
    if !requirement.matches(&PLATFORM_VERSION) {
        return Err(illegal_argument(format!(
            "platformVersion {:?} does not match this host's {PLATFORM_VERSION}",
            raw.platform_version
        )));
    }
    let refuse = |field: &str, why: &str| Err(unsupported(format!("{field}: {why}")));
    if raw.bootloader.is_some() {
        return refuse(
            "bootloader",
            "this host boots a kernel directly (give kernel and initrd)",
        );
    }
    let gdb = match raw.gdb_port {
        0 => None,
        port => Some(gdb_port(port)?),
    };
    if !raw.devices.is_empty() {
        return refuse("devices", "device assignment (VFIO) is not supported");
    }
    if raw.display_config.is_some() {
        return refuse("displayConfig", "displays are not supported");
    }
    if !raw.input_devices.is_empty() {
        return refuse("inputDevices", "input devices are not supported");
    }
    if raw.network_supported {
        return refuse("networkSupported", "guest networking is not supported");
    }
    if raw.boost_uclamp {
        return refuse("boostUclamp", "vCPU uclamp boosting is not supported");
    }
    if raw.gpu_config.is_some() {
        return refuse("gpuConfig", "GPUs are not supported");
    }
    if raw.audio_config.is_some() {
        return refuse("audioConfig", "audio is not supported");
    }
    if raw.usb_config.is_some_and(|u| u.controller) {
        return refuse("usbConfig.controller", "USB controllers are not supported");
    }
    match raw.console_input_device.as_deref() {
        // This host's guests have one console, the serial port: input goes there.
        None | Some("hvc0") | Some("ttyS0") => {}
        Some(other) => {
            return Err(illegal_argument(format!(
                "consoleInputDevice {other:?}: expected \"hvc0\" or \"ttyS0\""
            )))
        }
    }
    let kernel = raw
        .kernel
        .map(|fd| paths.path(fd))
        .ok_or_else(|| illegal_argument("kernel: a raw VM needs a kernel"))?;
    let initrd = raw.initrd.map(|fd| paths.path(fd));
    let mut disks = Vec::new();
    for (i, disk) in raw.disks.into_iter().enumerate() {
        match (disk.image, disk.partitions.is_empty()) {
            (Some(image), true) => disks.push(RawDisk::Image {
                path: paths.path(image),
                writable: disk.writable,
            }),
            (None, false) => disks.push(RawDisk::Partitions(
                disk.partitions
                    .into_iter()
                    .map(|p| RawPartition {
                        label: p.label,
                        path: paths.path(p.image),
                        writable: p.writable,
                    })
                    .collect(),
            )),
            _ => {
                return Err(illegal_argument(format!(
                    "disks[{i}]: exactly one of image and partitions is required"
                )))
            }
        }
    }
    Ok(VmConfig {
        memory_mib: memory(raw.memory_mib),
        cpus: cpus(raw.cpu_topology)?,
        boot_timeout: None,
        gdb_port: gdb,
        raw: Some(RawVm {
            kernel,
            initrd,
            params: raw.params.unwrap_or_default(),
            disks,
        }),
        ..base.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtualizationservice::{CustomConfig, VirtualMachinePayloadConfig, INSTANCE_ID_SIZE};

    fn fd() -> OwnedFd {
        tempfile::tempfile().unwrap().into()
    }

    fn app(custom: Option<CustomConfig>, debug: DebugLevel) -> VirtualMachineConfig {
        VirtualMachineConfig::AppConfig(Box::new(VirtualMachineAppConfig {
            name: "t".into(),
            instance_id: [0; INSTANCE_ID_SIZE],
            apk: fd(),
            idsig: fd(),
            extra_idsigs: vec![],
            instance_image: fd(),
            encrypted_storage_image: None,
            payload: Payload::PayloadConfig(VirtualMachinePayloadConfig {
                payload_binary_name: "libp.so".into(),
                extra_apks: vec![],
            }),
            os_name: MICRODROID_OS.into(),
            debug_level: debug,
            protected_vm: false,
            memory_mib: 0,
            cpu_topology: CpuTopology::MATCH_HOST,
            custom_config: custom,
            huge_pages: false,
            boost_uclamp: false,
        }))
    }

    fn base() -> VmConfig {
        VmConfig::new(std::path::Path::new("/nonexistent/vm_os.json"))
    }

    #[test]
    fn app_configs_become_engine_configs() {
        let custom = CustomConfig {
            gdb_port: 1234,
            extra_kernel_cmdline_params: vec!["a=b".into()],
            ..CustomConfig::default()
        };
        let r = resolve(app(Some(custom), DebugLevel::FULL), &base()).unwrap();
        let c = &r.config;
        assert_eq!(c.gdb_port, Some(1234));
        assert_eq!(c.extra_kernel_args, ["a=b"]);
        assert_eq!(c.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(
            c.cpus,
            std::thread::available_parallelism().unwrap().get() as u32
        );
        assert!(c.debuggable && r.is_app);
        let payload = c.app.as_ref().unwrap();
        assert_eq!(payload.payload, PayloadSpec::BinaryName("libp.so".into()));
        // Paths name the fds kept open for the VM.
        assert_eq!(r.fds.len(), 3);
        assert!(payload
            .apk
            .starts_with(format!("/proc/{}/fd/", std::process::id())));
    }

    /// Fault matrix row 55: an app VM asking for less than the minimum is refused as an illegal
    /// argument naming the sizes; 0 (the default) and the minimum itself are accepted.
    #[test]
    fn too_little_memory_is_an_illegal_argument() {
        let with_memory = |mib: i32| {
            let VirtualMachineConfig::AppConfig(mut a) = app(None, DebugLevel::FULL) else {
                unreachable!()
            };
            a.memory_mib = mib;
            resolve(VirtualMachineConfig::AppConfig(a), &base())
        };
        for mib in [10, 40, host_tools::vm::MIN_MEMORY_MIB as i32 - 1] {
            let err = with_memory(mib).err().unwrap();
            assert_eq!(err.exception_code(), ExceptionCode::ILLEGAL_ARGUMENT);
            assert!(
                err.message().starts_with(&format!(
                    "{mib} MiB of guest memory is too little for Microdroid"
                )),
                "{}",
                err.message()
            );
        }
        assert!(with_memory(0).is_ok());
        assert!(with_memory(host_tools::vm::MIN_MEMORY_MIB as i32).is_ok());
    }

    #[test]
    fn what_this_host_cannot_do_is_refused_with_the_field_named() {
        let gdb = CustomConfig {
            gdb_port: 1234,
            ..CustomConfig::default()
        };
        let err = resolve(app(Some(gdb), DebugLevel::NONE), &base()).unwrap_err();
        assert_eq!(err.exception_code(), ExceptionCode::SECURITY);
        let network = CustomConfig {
            network_supported: true,
            ..CustomConfig::default()
        };
        let err = resolve(app(Some(network), DebugLevel::FULL), &base()).unwrap_err();
        assert_eq!(err.exception_code(), ExceptionCode::UNSUPPORTED_OPERATION);
        assert!(err.message().starts_with("customConfig.networkSupported"));
        let raw = |f: &dyn Fn(&mut VirtualMachineRawConfig)| {
            let mut c = VirtualMachineRawConfig {
                kernel: Some(fd()),
                platform_version: "~1.0".into(),
                ..VirtualMachineRawConfig::default()
            };
            f(&mut c);
            resolve(VirtualMachineConfig::RawConfig(Box::new(c)), &base())
        };
        assert!(raw(&|_| {}).is_ok());
        let err = raw(&|c| c.protected_vm = true).unwrap_err();
        assert!(err.message().starts_with("protectedVm"));
        let err = raw(&|c| c.platform_version = "~2.0".into()).unwrap_err();
        assert_eq!(err.exception_code(), ExceptionCode::ILLEGAL_ARGUMENT);
        let err = raw(&|c| c.console_input_device = Some("ttyS9".into())).unwrap_err();
        assert!(err.message().contains("ttyS9"));
        let err = raw(&|c| c.input_devices = vec![1]).unwrap_err();
        assert!(err.message().starts_with("inputDevices"));
        let err = raw(&|c| c.kernel = None).unwrap_err();
        assert!(err.message().starts_with("kernel"));
        let ok = raw(&|c| c.gdb_port = 4321).unwrap();
        assert_eq!(ok.config.gdb_port, Some(4321));
        assert!(!ok.is_app && ok.config.boot_timeout.is_none());
    }
}
