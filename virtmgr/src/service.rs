//! `IVirtualizationService` as virtmgr serves it.

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use host_tools::registry::CidLease;
use host_tools::remote::{BnVmctlService, VmctlCallbackProxy, VmctlService};
use host_tools::vm::VmConfig;
use rpcbinder::{ExceptionCode, SpIBinder, Status};
use virtualizationservice::{
    features, illegal_argument, service_error, unsupported, AssignableDevice, BnVirtualMachine,
    BnVirtualizationService, IVirtualizationService, PartitionType, ServiceResult,
    VirtualMachineConfig, VirtualMachineDebugInfo, INSTANCE_ID_SIZE,
};

use crate::config::{resolve, MICRODROID_OS};
use crate::instance::{VirtualMachine, VmInstance};

/// The service of one virtmgr: its host settings and the VMs it created.
#[derive(Debug)]
pub struct VirtualizationService {
    /// What every VM starts from: the OS image, the VMM and vsock backend programs, the
    /// registry and logs directories, the device secret, the acceleration.
    base: VmConfig,
    vms: Mutex<Vec<Weak<VmInstance>>>,
}

impl VirtualizationService {
    /// A service whose VMs start from `base`.
    pub fn new(base: VmConfig) -> Arc<Self> {
        Arc::new(VirtualizationService {
            base,
            vms: Mutex::new(Vec::new()),
        })
    }

    /// The root binder object.
    pub fn binder(self: Arc<Self>) -> SpIBinder {
        BnVirtualizationService::new_binder(Handle(self))
    }

    /// Stops every VM this virtmgr created and waits for them (the client went away).
    pub fn stop_all(&self) {
        let vms: Vec<Arc<VmInstance>> = self
            .vms
            .lock()
            .map(|v| v.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        for vm in vms {
            vm.kill_and_wait();
        }
    }
}

/// The service as a binder: a newtype so the object can be shared with `stop_all`.
struct Handle(Arc<VirtualizationService>);

impl VirtualizationService {
    fn track(&self, vm: &Arc<VmInstance>) {
        if let Ok(mut vms) = self.vms.lock() {
            vms.retain(|w| w.strong_count() > 0);
            vms.push(Arc::downgrade(vm));
        }
    }
}

/// vmctl's extension: runs the engine's own config (vmctl's in-process forms) in virtmgr.
struct Vmctl(Arc<VirtualizationService>);

impl VmctlService for Vmctl {
    fn run_vm(&self, config: VmConfig, callback: SpIBinder) -> ServiceResult<SpIBinder> {
        let lease = match config.cid {
            Some(cid) => CidLease::claim(&config.runtime_dir, cid),
            None => CidLease::allocate(&config.runtime_dir),
        }
        .map_err(|e| service_error(format!("choosing the guest CID: {e}")))?;
        let vm = VmInstance::with_vmctl_callback(
            "vmctl".into(),
            config,
            lease,
            Vec::new(),
            Some(VmctlCallbackProxy(callback)),
        );
        self.0.track(&vm);
        vm.start()?;
        Ok(SpIBinder::local(Arc::new(BnVirtualMachine(
            VirtualMachine(vm),
        ))))
    }
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Status {
    service_error(format!("{what}: {e}"))
}

fn file_path(fd: &OwnedFd) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_raw_fd()).into()
}

impl IVirtualizationService for Handle {
    fn create_vm(
        &self,
        config: VirtualMachineConfig,
        console_out: Option<OwnedFd>,
        console_in: Option<OwnedFd>,
        os_log: Option<OwnedFd>,
    ) -> ServiceResult<SpIBinder> {
        let mut resolved = resolve(config, &self.0.base)?;
        // The guest's log port is written to the client's fd, which the VMM opens by its
        // /proc path; kept open for the VM's life with the others.
        if let Some(fd) = os_log {
            use std::os::fd::AsRawFd;
            resolved.config.log_file =
                Some(format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd()).into());
            resolved.fds.push(fd);
        }
        resolved.config.console_out = console_out.map(|fd| Arc::new(std::fs::File::from(fd)));
        resolved.config.console_in = console_in.map(|fd| Arc::new(std::fs::File::from(fd)));
        if !resolved.is_app {
            resolved.config.boot_timeout = None;
        }
        let lease = CidLease::allocate(&self.0.base.runtime_dir)
            .map_err(|e| service_error(format!("allocating a CID: {e}")))?;
        // Listed from creation, as AOSP lists every allocated VM context.
        let record = host_tools::registry::VmRecord {
            cid: lease.cid(),
            pid: std::process::id(),
            state: "not started".into(),
            payload_state: "-".into(),
            vmm: resolved.config.vmm.name().into(),
            debug: if resolved.config.debuggable {
                "full"
            } else {
                "none"
            }
            .into(),
            console_log: Default::default(),
            run_dir: Default::default(),
            started_at: host_tools::registry::unix_now(),
            name: resolved.name.clone(),
        };
        lease
            .publish(&record)
            .map_err(|e| service_error(format!("listing the VM: {e}")))?;
        let vm = VmInstance::new(resolved.name, resolved.config, lease, resolved.fds);
        self.0.track(&vm);
        Ok(SpIBinder::local(Arc::new(BnVirtualMachine(
            VirtualMachine(vm),
        ))))
    }

    fn allocate_instance_id(&self) -> ServiceResult<[u8; INSTANCE_ID_SIZE]> {
        let mut id = [0u8; INSTANCE_ID_SIZE];
        getrandom::getrandom(&mut id).map_err(|e| io_error("random instance id", e))?;
        Ok(id)
    }

    fn initialize_writable_partition(
        &self,
        image: OwnedFd,
        size_bytes: i64,
        partition_type: PartitionType,
    ) -> ServiceResult<()> {
        let size = u64::try_from(size_bytes)
            .map_err(|_| illegal_argument(format!("Invalid size: {size_bytes}")))?;
        let size = size
            .checked_next_multiple_of(4096)
            .ok_or_else(|| illegal_argument(format!("Invalid size: {size_bytes}")))?;
        let mut file = std::fs::File::from(image);
        file.set_len(0).map_err(|e| io_error("truncating", e))?;
        file.set_len(size).map_err(|e| io_error("resizing", e))?;
        let header: Vec<u8> = match partition_type {
            PartitionType::RAW => Vec::new(),
            PartitionType::ANDROID_VM_INSTANCE => {
                let mut h = instance::MAGIC.to_vec();
                h.extend_from_slice(&instance::VERSION.to_le_bytes());
                h
            }
            PartitionType::ENCRYPTEDSTORE => instance::STORAGE_MAGIC.to_vec(),
            other => {
                return Err(illegal_argument(format!(
                    "unknown PartitionType {}",
                    other.0
                )))
            }
        };
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .map_err(|e| io_error("writing the partition header", e))?;
        Ok(())
    }

    fn create_or_update_idsig_file(&self, input: OwnedFd, idsig: OwnedFd) -> ServiceResult<()> {
        let meta = std::fs::File::from(input.try_clone().map_err(|e| io_error("input", e))?)
            .metadata()
            .map_err(|e| io_error("input", e))?;
        if !meta.is_file() {
            return Err(service_error("input is not a regular file"));
        }
        let out = std::fs::File::from(idsig);
        out.set_len(0)
            .map_err(|e| io_error("truncating the idsig", e))?;
        host_tools::app::create_idsig(&file_path(&input), &file_path_of(&out))
            .map_err(|e| service_error(format!("{e:#}")))
    }

    fn debug_list_vms(&self) -> ServiceResult<Vec<VirtualMachineDebugInfo>> {
        let runtime = &self.0.base.runtime_dir;
        Ok(host_tools::registry::list(runtime)
            .into_iter()
            .map(|r| VirtualMachineDebugInfo {
                cid: r.cid as i32,
                temporary_directory: r.run_dir.display().to_string(),
                requester_uid: owner_uid(r.pid),
                requester_pid: r.pid as i32,
                host_console_name: None,
            })
            .collect())
    }

    fn get_assignable_devices(&self) -> ServiceResult<Vec<AssignableDevice>> {
        Ok(Vec::new())
    }

    fn get_supported_os_list(&self) -> ServiceResult<Vec<String>> {
        Ok(vec![MICRODROID_OS.to_owned()])
    }

    fn is_feature_enabled(&self, feature: &str) -> ServiceResult<bool> {
        Ok(features::ENABLED.contains(&feature))
    }

    fn enable_test_attestation(&self) -> ServiceResult<()> {
        Err(unsupported(
            "remote attestation is not supported on this host",
        ))
    }

    fn is_remote_attestation_supported(&self) -> ServiceResult<bool> {
        Ok(false)
    }

    fn is_updatable_vm_supported(&self) -> ServiceResult<bool> {
        // No Secretkeeper: rollback protection is the instance image's.
        Ok(false)
    }

    fn remove_vm_instance(&self, _id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()> {
        Err(Status::exception(
            ExceptionCode::UNSUPPORTED_OPERATION,
            "instance ids are tracked only with LLPVM_CHANGES (Secretkeeper), which this host does not have",
        ))
    }

    fn claim_vm_instance(&self, id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()> {
        self.remove_vm_instance(id)
    }

    fn extension(&self) -> Option<SpIBinder> {
        Some(BnVmctlService::new_binder(Vmctl(self.0.clone())))
    }
}

fn file_path_of(file: &std::fs::File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", file.as_raw_fd()).into()
}

/// The uid that owns a process (−1 if it is gone).
fn owner_uid(pid: u32) -> i32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new("/proc").join(pid.to_string()))
        .map(|m| m.uid() as i32)
        .unwrap_or(-1)
}
