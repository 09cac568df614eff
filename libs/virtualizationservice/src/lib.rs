//! AOSP's VirtualizationService host API (the 24Q4 AIDL of
//! `android.system.virtualizationservice`) over this project's RPC binder: the parcelables in
//! [`types`], and for each interface a descriptor, its transaction codes (declaration order), a
//! service trait with a `Bn*` stub that serves it, and a proxy that calls it.
//!
//! - `IVirtualizationService`: what `virtmgr` serves as its root object.
//! - `IVirtualMachine`: one VM; the VM lives while a client holds a reference.
//! - `IVirtualMachineCallback` (`oneway`): what the client registers to hear about its VM.
//!
//! See docs/api.md for how they fit together.

pub mod types;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rpcbinder::error::ParcelError;
use rpcbinder::session::{call, call_oneway};
use rpcbinder::{Binder, CallError, Parcel, ParcelReader, SpIBinder, Status, StatusCode};

pub use types::*;

/// `IVirtualizationService`'s descriptor.
pub const VIRTUALIZATION_SERVICE_DESCRIPTOR: &str =
    "android.system.virtualizationservice.IVirtualizationService";
/// `IVirtualMachine`'s descriptor.
pub const VIRTUAL_MACHINE_DESCRIPTOR: &str = "android.system.virtualizationservice.IVirtualMachine";
/// `IVirtualMachineCallback`'s descriptor.
pub const VIRTUAL_MACHINE_CALLBACK_DESCRIPTOR: &str =
    "android.system.virtualizationservice.IVirtualMachineCallback";

/// `IVirtualizationService.FEATURE_*` (strings, no transaction codes).
pub mod features {
    /// DICE changes (the instance secret from the DICE chain).
    pub const DICE_CHANGES: &str = "com.android.kvm.DICE_CHANGES";
    /// Instance ids and secretkeeper-backed rollback protection.
    pub const LLPVM_CHANGES: &str = "com.android.kvm.LLPVM_CHANGES";
    /// Extra APKs in one VM.
    pub const MULTI_TENANT: &str = "com.android.kvm.MULTI_TENANT";
    /// Guest networking.
    pub const NETWORK: &str = "com.android.kvm.NETWORK";
    /// Remote attestation.
    pub const REMOTE_ATTESTATION: &str = "com.android.kvm.REMOTE_ATTESTATION";
    /// Vendor modules in the guest.
    pub const VENDOR_MODULES: &str = "com.android.kvm.VENDOR_MODULES";
    /// The features this implementation has (`isFeatureEnabled`, `vm check-feature-enabled`):
    /// DICE-derived instance secrets, and extra APKs in one VM.
    pub const ENABLED: [&str; 2] = [DICE_CHANGES, MULTI_TENANT];
    /// Every feature name, in declaration order.
    pub const ALL: [&str; 6] = [
        DICE_CHANGES,
        LLPVM_CHANGES,
        MULTI_TENANT,
        NETWORK,
        REMOTE_ATTESTATION,
        VENDOR_MODULES,
    ];
}

/// Transaction codes of `IVirtualizationService` (24Q4).
pub mod service_codes {
    #![allow(missing_docs)]
    pub const CREATE_VM: u32 = 1;
    pub const ALLOCATE_INSTANCE_ID: u32 = 2;
    pub const INITIALIZE_WRITABLE_PARTITION: u32 = 3;
    pub const CREATE_OR_UPDATE_IDSIG_FILE: u32 = 4;
    pub const DEBUG_LIST_VMS: u32 = 5;
    pub const GET_ASSIGNABLE_DEVICES: u32 = 6;
    pub const GET_SUPPORTED_OS_LIST: u32 = 7;
    pub const IS_FEATURE_ENABLED: u32 = 8;
    pub const ENABLE_TEST_ATTESTATION: u32 = 9;
    pub const IS_REMOTE_ATTESTATION_SUPPORTED: u32 = 10;
    pub const IS_UPDATABLE_VM_SUPPORTED: u32 = 11;
    pub const REMOVE_VM_INSTANCE: u32 = 12;
    pub const CLAIM_VM_INSTANCE: u32 = 13;
}

/// Transaction codes of `IVirtualMachine` (24Q4).
pub mod vm_codes {
    #![allow(missing_docs)]
    pub const GET_CID: u32 = 1;
    pub const GET_STATE: u32 = 2;
    pub const REGISTER_CALLBACK: u32 = 3;
    pub const START: u32 = 4;
    pub const STOP: u32 = 5;
    pub const GET_MEMORY_BALLOON: u32 = 6;
    pub const SET_MEMORY_BALLOON: u32 = 7;
    pub const CONNECT_VSOCK: u32 = 8;
    pub const SET_HOST_CONSOLE_NAME: u32 = 9;
    pub const SUSPEND: u32 = 10;
    pub const RESUME: u32 = 11;
}

/// Transaction codes of `IVirtualMachineCallback` (all oneway).
pub mod callback_codes {
    #![allow(missing_docs)]
    pub const ON_PAYLOAD_STARTED: u32 = 1;
    pub const ON_PAYLOAD_READY: u32 = 2;
    pub const ON_PAYLOAD_FINISHED: u32 = 3;
    pub const ON_ERROR: u32 = 4;
    pub const ON_DIED: u32 = 5;
}

/// The result of a service method: a value or an AIDL exception.
pub type ServiceResult<T> = Result<T, Status>;

/// `EX_UNSUPPORTED_OPERATION` with a message.
pub fn unsupported(message: impl Into<String>) -> Status {
    Status::exception(rpcbinder::ExceptionCode::UNSUPPORTED_OPERATION, message)
}

/// `EX_ILLEGAL_ARGUMENT` with a message.
pub fn illegal_argument(message: impl Into<String>) -> Status {
    Status::exception(rpcbinder::ExceptionCode::ILLEGAL_ARGUMENT, message)
}

/// AOSP virtmgr's usual failure: `EX_SERVICE_SPECIFIC` −1 with the error chain as message.
pub fn service_error(message: impl Into<String>) -> Status {
    Status::service_specific(-1, message)
}

fn arg<T>(r: Result<T, ParcelError>) -> Result<T, StatusCode> {
    r.map_err(|e| e.status_code())
}

fn write_result<T>(
    reply: &mut Parcel,
    result: ServiceResult<T>,
    write: impl FnOnce(&mut Parcel, T),
) {
    match result {
        Ok(v) => {
            reply.write_status(&Status::ok());
            write(reply, v);
        }
        Err(status) => reply.write_status(&status),
    }
}

/// `IVirtualizationService`, as virtmgr implements it.
pub trait IVirtualizationService: Send + Sync {
    /// Code 1: a VM in state NOT_STARTED; its `IVirtualMachine`.
    fn create_vm(
        &self,
        config: VirtualMachineConfig,
        console_out: Option<OwnedFd>,
        console_in: Option<OwnedFd>,
        os_log: Option<OwnedFd>,
    ) -> ServiceResult<SpIBinder>;
    /// Code 2.
    fn allocate_instance_id(&self) -> ServiceResult<[u8; INSTANCE_ID_SIZE]>;
    /// Code 3.
    fn initialize_writable_partition(
        &self,
        image: OwnedFd,
        size_bytes: i64,
        partition_type: PartitionType,
    ) -> ServiceResult<()>;
    /// Code 4.
    fn create_or_update_idsig_file(&self, input: OwnedFd, idsig: OwnedFd) -> ServiceResult<()>;
    /// Code 5.
    fn debug_list_vms(&self) -> ServiceResult<Vec<VirtualMachineDebugInfo>>;
    /// Code 6.
    fn get_assignable_devices(&self) -> ServiceResult<Vec<AssignableDevice>>;
    /// Code 7.
    fn get_supported_os_list(&self) -> ServiceResult<Vec<String>>;
    /// Code 8.
    fn is_feature_enabled(&self, feature: &str) -> ServiceResult<bool>;
    /// Code 9.
    fn enable_test_attestation(&self) -> ServiceResult<()>;
    /// Code 10.
    fn is_remote_attestation_supported(&self) -> ServiceResult<bool>;
    /// Code 11.
    fn is_updatable_vm_supported(&self) -> ServiceResult<bool>;
    /// Code 12.
    fn remove_vm_instance(&self, instance_id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()>;
    /// Code 13.
    fn claim_vm_instance(&self, instance_id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()>;

    /// The root object's extension (`getExtension`), for interfaces beyond AOSP's.
    fn extension(&self) -> Option<SpIBinder> {
        None
    }
}

/// Serves an [`IVirtualizationService`] as a binder.
pub struct BnVirtualizationService<T>(pub T);

impl<T: IVirtualizationService + 'static> BnVirtualizationService<T> {
    /// The binder object for `service`.
    pub fn new_binder(service: T) -> SpIBinder {
        SpIBinder::local(Arc::new(BnVirtualizationService(service)))
    }
}

impl<T: IVirtualizationService> Binder for BnVirtualizationService<T> {
    fn descriptor(&self) -> &str {
        VIRTUALIZATION_SERVICE_DESCRIPTOR
    }

    fn extension(&self) -> Option<SpIBinder> {
        self.0.extension()
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        use service_codes::*;
        let s = &self.0;
        match code {
            CREATE_VM => {
                let config = arg(VirtualMachineConfig::read(data))?;
                let console_out = arg(data.read_pfd())?;
                let console_in = arg(data.read_pfd())?;
                let os_log = arg(data.read_pfd())?;
                let r = s.create_vm(config, console_out, console_in, os_log);
                write_result(reply, r, |p, b| p.write_binder(Some(&b)));
            }
            ALLOCATE_INSTANCE_ID => {
                write_result(reply, s.allocate_instance_id(), |p, id| {
                    p.write_byte_array(Some(&id))
                });
            }
            INITIALIZE_WRITABLE_PARTITION => {
                let image = arg(data.read_required_pfd())?;
                let size = arg(data.read_i64())?;
                let ty = PartitionType(arg(data.read_i32())?);
                write_result(
                    reply,
                    s.initialize_writable_partition(image, size, ty),
                    |_, ()| {},
                );
            }
            CREATE_OR_UPDATE_IDSIG_FILE => {
                let input = arg(data.read_required_pfd())?;
                let idsig = arg(data.read_required_pfd())?;
                write_result(
                    reply,
                    s.create_or_update_idsig_file(input, idsig),
                    |_, ()| {},
                );
            }
            DEBUG_LIST_VMS => write_result(reply, s.debug_list_vms(), |p, vms| {
                p.write_i32(i32::try_from(vms.len()).unwrap_or(i32::MAX));
                for vm in &vms {
                    vm.write(p);
                }
            }),
            GET_ASSIGNABLE_DEVICES => write_result(reply, s.get_assignable_devices(), |p, ds| {
                p.write_i32(i32::try_from(ds.len()).unwrap_or(i32::MAX));
                for d in &ds {
                    d.write(p);
                }
            }),
            GET_SUPPORTED_OS_LIST => write_result(reply, s.get_supported_os_list(), |p, l| {
                write_strings(p, &l)
            }),
            IS_FEATURE_ENABLED => {
                let feature = arg(data.read_string())?;
                write_result(reply, s.is_feature_enabled(&feature), |p, b| {
                    p.write_bool(b)
                });
            }
            ENABLE_TEST_ATTESTATION => write_result(reply, s.enable_test_attestation(), |_, ()| {}),
            IS_REMOTE_ATTESTATION_SUPPORTED => {
                write_result(reply, s.is_remote_attestation_supported(), |p, b| {
                    p.write_bool(b)
                })
            }
            IS_UPDATABLE_VM_SUPPORTED => {
                write_result(reply, s.is_updatable_vm_supported(), |p, b| p.write_bool(b))
            }
            REMOVE_VM_INSTANCE => {
                let id = arg(read_id(data))?;
                write_result(reply, s.remove_vm_instance(id), |_, ()| {});
            }
            CLAIM_VM_INSTANCE => {
                let id = arg(read_id(data))?;
                write_result(reply, s.claim_vm_instance(id), |_, ()| {});
            }
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

/// A proxy for a remote `IVirtualizationService`.
#[derive(Debug, Clone)]
pub struct VirtualizationServiceProxy(pub SpIBinder);

fn wire_error(e: ParcelError) -> CallError {
    CallError::Rpc(rpcbinder::Error::Parcel(e))
}

impl VirtualizationServiceProxy {
    /// Wraps `binder` after checking its descriptor (`INTERFACE_TRANSACTION`, as NDK clients).
    pub fn from_binder(binder: SpIBinder) -> Result<Self, CallError> {
        check_descriptor(&binder, VIRTUALIZATION_SERVICE_DESCRIPTOR)?;
        Ok(VirtualizationServiceProxy(binder))
    }

    fn call(
        &self,
        code: u32,
        args: impl FnOnce(&mut Parcel),
    ) -> Result<rpcbinder::session::AidlReply, CallError> {
        call(&self.0, VIRTUALIZATION_SERVICE_DESCRIPTOR, code, args)
    }

    /// `createVm`: the VM's proxy.
    pub fn create_vm(
        &self,
        config: &VirtualMachineConfig,
        console_out: Option<OwnedFd>,
        console_in: Option<OwnedFd>,
        os_log: Option<OwnedFd>,
    ) -> Result<VirtualMachineProxy, CallError> {
        let mut write_err = None;
        let reply = self.call(service_codes::CREATE_VM, |p| {
            write_err = config.write(p).err();
            p.write_pfd(console_out);
            p.write_pfd(console_in);
            p.write_pfd(os_log);
        });
        if let Some(e) = write_err {
            return Err(CallError::Rpc(rpcbinder::Error::Io(e.0)));
        }
        let binder = reply?.reader().read_required_binder().map_err(wire_error)?;
        VirtualMachineProxy::from_binder(binder)
    }

    /// `allocateInstanceId`.
    pub fn allocate_instance_id(&self) -> Result<[u8; INSTANCE_ID_SIZE], CallError> {
        let reply = self.call(service_codes::ALLOCATE_INSTANCE_ID, |_| {})?;
        let id = read_id(&mut reply.reader()).map_err(wire_error)?;
        Ok(id)
    }

    /// `initializeWritablePartition`.
    pub fn initialize_writable_partition(
        &self,
        image: OwnedFd,
        size_bytes: i64,
        partition_type: PartitionType,
    ) -> Result<(), CallError> {
        self.call(service_codes::INITIALIZE_WRITABLE_PARTITION, |p| {
            p.write_pfd(Some(image));
            p.write_i64(size_bytes);
            p.write_i32(partition_type.0);
        })
        .map(|_| ())
    }

    /// `createOrUpdateIdsigFile`.
    pub fn create_or_update_idsig_file(
        &self,
        input: OwnedFd,
        idsig: OwnedFd,
    ) -> Result<(), CallError> {
        self.call(service_codes::CREATE_OR_UPDATE_IDSIG_FILE, |p| {
            p.write_pfd(Some(input));
            p.write_pfd(Some(idsig));
        })
        .map(|_| ())
    }

    /// `debugListVms`.
    pub fn debug_list_vms(&self) -> Result<Vec<VirtualMachineDebugInfo>, CallError> {
        let reply = self.call(service_codes::DEBUG_LIST_VMS, |_| {})?;
        let vms = read_parcelable_array(&mut reply.reader(), VirtualMachineDebugInfo::read)
            .map_err(wire_error)?;
        Ok(vms)
    }

    /// `getAssignableDevices`.
    pub fn get_assignable_devices(&self) -> Result<Vec<AssignableDevice>, CallError> {
        let reply = self.call(service_codes::GET_ASSIGNABLE_DEVICES, |_| {})?;
        let devices = read_parcelable_array(&mut reply.reader(), AssignableDevice::read)
            .map_err(wire_error)?;
        Ok(devices)
    }

    /// `getSupportedOSList`.
    pub fn get_supported_os_list(&self) -> Result<Vec<String>, CallError> {
        let reply = self.call(service_codes::GET_SUPPORTED_OS_LIST, |_| {})?;
        let list = read_strings(&mut reply.reader()).map_err(wire_error)?;
        Ok(list)
    }

    /// `isFeatureEnabled`.
    pub fn is_feature_enabled(&self, feature: &str) -> Result<bool, CallError> {
        let reply = self.call(service_codes::IS_FEATURE_ENABLED, |p| p.write_str(feature))?;
        let enabled = reply.reader().read_bool().map_err(wire_error)?;
        Ok(enabled)
    }

    /// `isRemoteAttestationSupported`.
    pub fn is_remote_attestation_supported(&self) -> Result<bool, CallError> {
        let reply = self.call(service_codes::IS_REMOTE_ATTESTATION_SUPPORTED, |_| {})?;
        let b = reply.reader().read_bool().map_err(wire_error)?;
        Ok(b)
    }

    /// `isUpdatableVmSupported`.
    pub fn is_updatable_vm_supported(&self) -> Result<bool, CallError> {
        let reply = self.call(service_codes::IS_UPDATABLE_VM_SUPPORTED, |_| {})?;
        let b = reply.reader().read_bool().map_err(wire_error)?;
        Ok(b)
    }

    /// `enableTestAttestation` (virtmgr refuses it: no remote attestation here).
    pub fn enable_test_attestation(&self) -> Result<(), CallError> {
        self.call(service_codes::ENABLE_TEST_ATTESTATION, |_| {})
            .map(|_| ())
    }

    /// `removeVmInstance`: forget the instance `instance_id` names.
    pub fn remove_vm_instance(
        &self,
        instance_id: &[u8; INSTANCE_ID_SIZE],
    ) -> Result<(), CallError> {
        self.call(service_codes::REMOVE_VM_INSTANCE, |p| {
            p.write_byte_array(Some(instance_id))
        })
        .map(|_| ())
    }

    /// `claimVmInstance`: take over the instance `instance_id` names.
    pub fn claim_vm_instance(&self, instance_id: &[u8; INSTANCE_ID_SIZE]) -> Result<(), CallError> {
        self.call(service_codes::CLAIM_VM_INSTANCE, |p| {
            p.write_byte_array(Some(instance_id))
        })
        .map(|_| ())
    }

    /// The root object's extension (`getExtension`), where virtmgr serves the interfaces
    /// beyond AOSP's.
    pub fn extension(&self) -> Result<Option<SpIBinder>, CallError> {
        let proxy = self
            .0
            .as_remote()
            .ok_or(CallError::Rpc(rpcbinder::Error::UnexpectedTransaction(0)))?;
        Ok(proxy.get_extension()?)
    }
}

fn check_descriptor(binder: &SpIBinder, expected: &str) -> Result<(), CallError> {
    let proxy = binder
        .as_remote()
        .ok_or(CallError::Rpc(rpcbinder::Error::UnexpectedTransaction(0)))?;
    let actual = proxy.interface_descriptor()?;
    if actual != expected {
        return Err(CallError::Rpc(rpcbinder::Error::DescriptorMismatch {
            expected: expected.to_owned(),
            actual,
        }));
    }
    Ok(())
}

/// `IVirtualMachine`, as virtmgr implements it.
pub trait IVirtualMachine: Send + Sync {
    /// Code 1.
    fn get_cid(&self) -> ServiceResult<i32>;
    /// Code 2.
    fn get_state(&self) -> ServiceResult<VirtualMachineState>;
    /// Code 3: the callback (an `IVirtualMachineCallback` binder) is held until the VM dies.
    fn register_callback(&self, callback: SpIBinder) -> ServiceResult<()>;
    /// Code 4.
    fn start(&self) -> ServiceResult<()>;
    /// Code 5.
    fn stop(&self) -> ServiceResult<()>;
    /// Code 6.
    fn get_memory_balloon(&self) -> ServiceResult<i64>;
    /// Code 7.
    fn set_memory_balloon(&self, num_bytes: i64) -> ServiceResult<()>;
    /// Code 8: a connected stream to the guest's vsock `port`.
    fn connect_vsock(&self, port: i32) -> ServiceResult<OwnedFd>;
    /// Code 9.
    fn set_host_console_name(&self, pathname: &str) -> ServiceResult<()>;
    /// Code 10.
    fn suspend(&self) -> ServiceResult<()>;
    /// Code 11.
    fn resume(&self) -> ServiceResult<()>;
}

/// Serves an [`IVirtualMachine`] as a binder.
pub struct BnVirtualMachine<T>(pub T);

impl<T: IVirtualMachine> Binder for BnVirtualMachine<T> {
    fn descriptor(&self) -> &str {
        VIRTUAL_MACHINE_DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        use vm_codes::*;
        let vm = &self.0;
        match code {
            GET_CID => write_result(reply, vm.get_cid(), |p, c| p.write_i32(c)),
            GET_STATE => write_result(reply, vm.get_state(), |p, s| p.write_i32(s.0)),
            REGISTER_CALLBACK => {
                let cb = arg(data.read_required_binder())?;
                write_result(reply, vm.register_callback(cb), |_, ()| {});
            }
            START => write_result(reply, vm.start(), |_, ()| {}),
            STOP => write_result(reply, vm.stop(), |_, ()| {}),
            GET_MEMORY_BALLOON => {
                write_result(reply, vm.get_memory_balloon(), |p, v| p.write_i64(v))
            }
            SET_MEMORY_BALLOON => {
                let n = arg(data.read_i64())?;
                write_result(reply, vm.set_memory_balloon(n), |_, ()| {});
            }
            CONNECT_VSOCK => {
                let port = arg(data.read_i32())?;
                write_result(reply, vm.connect_vsock(port), |p, fd| p.write_pfd(Some(fd)));
            }
            SET_HOST_CONSOLE_NAME => {
                let name = arg(data.read_string())?;
                write_result(reply, vm.set_host_console_name(&name), |_, ()| {});
            }
            SUSPEND => write_result(reply, vm.suspend(), |_, ()| {}),
            RESUME => write_result(reply, vm.resume(), |_, ()| {}),
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

/// A proxy for a remote `IVirtualMachine`. Dropping the last clone releases the VM.
#[derive(Debug, Clone)]
pub struct VirtualMachineProxy(pub SpIBinder);

impl VirtualMachineProxy {
    /// Wraps `binder` after checking its descriptor.
    pub fn from_binder(binder: SpIBinder) -> Result<Self, CallError> {
        check_descriptor(&binder, VIRTUAL_MACHINE_DESCRIPTOR)?;
        Ok(VirtualMachineProxy(binder))
    }

    fn call(
        &self,
        code: u32,
        args: impl FnOnce(&mut Parcel),
    ) -> Result<rpcbinder::session::AidlReply, CallError> {
        call(&self.0, VIRTUAL_MACHINE_DESCRIPTOR, code, args)
    }

    /// `getCid`.
    pub fn get_cid(&self) -> Result<i32, CallError> {
        let reply = self.call(vm_codes::GET_CID, |_| {})?;
        let cid = reply.reader().read_i32().map_err(wire_error)?;
        Ok(cid)
    }

    /// `getState`.
    pub fn get_state(&self) -> Result<VirtualMachineState, CallError> {
        let reply = self.call(vm_codes::GET_STATE, |_| {})?;
        let s = reply.reader().read_i32().map_err(wire_error)?;
        Ok(VirtualMachineState(s))
    }

    /// `registerCallback`.
    pub fn register_callback(&self, callback: &SpIBinder) -> Result<(), CallError> {
        self.call(vm_codes::REGISTER_CALLBACK, |p| {
            p.write_binder(Some(callback))
        })
        .map(|_| ())
    }

    /// `start`.
    pub fn start(&self) -> Result<(), CallError> {
        self.call(vm_codes::START, |_| {}).map(|_| ())
    }

    /// `stop`.
    pub fn stop(&self) -> Result<(), CallError> {
        self.call(vm_codes::STOP, |_| {}).map(|_| ())
    }

    /// `getMemoryBalloon`: the balloon's size in bytes.
    pub fn get_memory_balloon(&self) -> Result<i64, CallError> {
        let reply = self.call(vm_codes::GET_MEMORY_BALLOON, |_| {})?;
        let bytes = reply.reader().read_i64().map_err(wire_error)?;
        Ok(bytes)
    }

    /// `setMemoryBalloon`: inflate or deflate the balloon to `num_bytes`.
    pub fn set_memory_balloon(&self, num_bytes: i64) -> Result<(), CallError> {
        self.call(vm_codes::SET_MEMORY_BALLOON, |p| p.write_i64(num_bytes))
            .map(|_| ())
    }

    /// `setHostConsoleName`: the name under which the host shows the VM's console.
    pub fn set_host_console_name(&self, pathname: &str) -> Result<(), CallError> {
        self.call(vm_codes::SET_HOST_CONSOLE_NAME, |p| p.write_str(pathname))
            .map(|_| ())
    }

    /// `suspend` (virtmgr refuses it: `EX_UNSUPPORTED_OPERATION`).
    pub fn suspend(&self) -> Result<(), CallError> {
        self.call(vm_codes::SUSPEND, |_| {}).map(|_| ())
    }

    /// `resume` (virtmgr refuses it: `EX_UNSUPPORTED_OPERATION`).
    pub fn resume(&self) -> Result<(), CallError> {
        self.call(vm_codes::RESUME, |_| {}).map(|_| ())
    }

    /// `connectVsock`: a connected stream to the guest's `port`.
    pub fn connect_vsock(&self, port: i32) -> Result<OwnedFd, CallError> {
        let reply = self.call(vm_codes::CONNECT_VSOCK, |p| p.write_i32(port))?;
        let fd = reply.reader().read_required_pfd().map_err(wire_error)?;
        Ok(fd)
    }

    /// Whether the session to virtmgr is still up.
    pub fn is_alive(&self) -> bool {
        self.0.as_remote().is_some_and(|p| p.is_alive())
    }
}

/// `IVirtualMachineCallback` (oneway), as a client implements it.
pub trait IVirtualMachineCallback: Send + Sync {
    /// Code 1.
    fn on_payload_started(&self, cid: i32);
    /// Code 2.
    fn on_payload_ready(&self, cid: i32);
    /// Code 3.
    fn on_payload_finished(&self, cid: i32, exit_code: i32);
    /// Code 4.
    fn on_error(&self, cid: i32, error_code: ErrorCode, message: &str);
    /// Code 5.
    fn on_died(&self, cid: i32, reason: DeathReason);
}

/// Serves an [`IVirtualMachineCallback`] as a binder.
pub struct BnVirtualMachineCallback<T>(pub T);

impl<T: IVirtualMachineCallback> Binder for BnVirtualMachineCallback<T> {
    fn descriptor(&self) -> &str {
        VIRTUAL_MACHINE_CALLBACK_DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        _reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        use callback_codes::*;
        let cb = &self.0;
        let cid = arg(data.read_i32())?;
        match code {
            ON_PAYLOAD_STARTED => cb.on_payload_started(cid),
            ON_PAYLOAD_READY => cb.on_payload_ready(cid),
            ON_PAYLOAD_FINISHED => cb.on_payload_finished(cid, arg(data.read_i32())?),
            ON_ERROR => {
                let code = ErrorCode(arg(data.read_i32())?);
                let message = arg(data.read_string())?;
                cb.on_error(cid, code, &message);
            }
            ON_DIED => cb.on_died(cid, DeathReason(arg(data.read_i32())?)),
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

/// A proxy for a client's `IVirtualMachineCallback`: every call is oneway.
#[derive(Debug, Clone)]
pub struct VirtualMachineCallbackProxy(pub SpIBinder);

impl VirtualMachineCallbackProxy {
    fn send(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<(), rpcbinder::Error> {
        call_oneway(&self.0, VIRTUAL_MACHINE_CALLBACK_DESCRIPTOR, code, args)
    }

    /// `onPayloadStarted`.
    pub fn on_payload_started(&self, cid: i32) -> Result<(), rpcbinder::Error> {
        self.send(callback_codes::ON_PAYLOAD_STARTED, |p| p.write_i32(cid))
    }

    /// `onPayloadReady`.
    pub fn on_payload_ready(&self, cid: i32) -> Result<(), rpcbinder::Error> {
        self.send(callback_codes::ON_PAYLOAD_READY, |p| p.write_i32(cid))
    }

    /// `onPayloadFinished`.
    pub fn on_payload_finished(&self, cid: i32, exit_code: i32) -> Result<(), rpcbinder::Error> {
        self.send(callback_codes::ON_PAYLOAD_FINISHED, |p| {
            p.write_i32(cid);
            p.write_i32(exit_code);
        })
    }

    /// `onError`.
    pub fn on_error(
        &self,
        cid: i32,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), rpcbinder::Error> {
        self.send(callback_codes::ON_ERROR, |p| {
            p.write_i32(cid);
            p.write_i32(code.0);
            p.write_str(message);
        })
    }

    /// `onDied`.
    pub fn on_died(&self, cid: i32, reason: DeathReason) -> Result<(), rpcbinder::Error> {
        self.send(callback_codes::ON_DIED, |p| {
            p.write_i32(cid);
            p.write_i32(reason.0);
        })
    }
}

/// Entry points for the fuzz targets in `fuzz/` and the bad-input tests: the parcel readers on
/// untrusted bytes, with fds standing in for any index the bytes name. Never panics.
#[doc(hidden)]
pub mod fuzzing {
    use std::os::fd::OwnedFd;

    use rpcbinder::error::ParcelError;
    use rpcbinder::parcel::ObjectResolver;
    use rpcbinder::wire::Address;
    use rpcbinder::{ParcelReader, SpIBinder};

    /// Hands out `/dev/null` for fd indices below 16; no binders.
    struct NullFds;

    impl ObjectResolver for NullFds {
        fn resolve_binder(&self, address: Address, _: i32) -> Result<SpIBinder, ParcelError> {
            Err(ParcelError::UnknownBinder(address.0))
        }
        fn take_fd(&self, index: i32) -> Result<OwnedFd, ParcelError> {
            if !(0..16).contains(&index) {
                return Err(ParcelError::BadFdIndex(index));
            }
            std::fs::File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|_| ParcelError::BadFdIndex(index))
        }
    }

    /// Byte 0 picks the reader (a config union, a debug-info list, strings); the rest is the
    /// parcel, whose object table lists every 4-byte offset (so any word may be an fd object).
    pub fn read(data: &[u8]) -> Result<(), ParcelError> {
        let Some((&which, parcel)) = data.split_first() else {
            return Ok(());
        };
        let objects: Vec<u32> = (0..parcel.len() as u32).step_by(4).collect();
        let mut r = ParcelReader::with_resolver(parcel, &objects, false, &NullFds);
        match which % 3 {
            0 => crate::VirtualMachineConfig::read(&mut r).map(|_| ()),
            1 => crate::read_parcelable_array(&mut r, crate::VirtualMachineDebugInfo::read)
                .map(|_| ()),
            _ => crate::read_strings(&mut r).map(|_| ()),
        }
    }
}
