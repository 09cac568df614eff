//! vmctl's own forms (`run`, `run-app --apk ...`) run their VM in virtmgr too, through an
//! extension of `IVirtualizationService`: the binder that `getExtension()` returns on virtmgr's
//! root object (libbinder's way to extend an interface without changing it), so AOSP's
//! interfaces stay exactly AOSP's.
//!
//! ```text
//! interface IVmctlService {            // org.microdroid.vmctl.IVmctlService
//!     // 1: creates and starts a VM from the engine's config (JSON of vm::VmConfig); the VM
//!     //    lives while the returned IVirtualMachine is held, as any other.
//!     IVirtualMachine runVm(String configJson, IVmctlCallback callback);
//! }
//! oneway interface IVmctlCallback {     // org.microdroid.vmctl.IVmctlCallback
//!     void onStarted(String recordJson);             // 1: the VMM runs (registry record)
//!     void onEvent(String line, String eventJson);   // 2: a guest notification, with host times
//!     void onEnded(String summaryJson);              // 3: how it ended (RunSummary)
//!     void onFailed(String message);                 // 4: it could not run
//! }
//! ```
//!
//! What vmctl prints and its exit statuses come from these, so its output is the same as when
//! it ran the engine itself; the VM, its children and its CID belong to virtmgr.

use std::path::PathBuf;
use std::sync::Arc;

use rpcbinder::session::{call, call_oneway};
use rpcbinder::{Binder, CallError, Parcel, ParcelReader, SpIBinder, Status, StatusCode};
use serde::{Deserialize, Serialize};
use virtualizationservice::{ServiceResult, VirtualMachineProxy};

use crate::registry::VmRecord;
use crate::stages::BootStages;
use crate::vm::{VmConfig, VmResult};

/// The extension's descriptor.
pub const VMCTL_SERVICE_DESCRIPTOR: &str = "org.microdroid.vmctl.IVmctlService";
/// The callback's descriptor.
pub const VMCTL_CALLBACK_DESCRIPTOR: &str = "org.microdroid.vmctl.IVmctlCallback";

mod codes {
    pub const RUN_VM: u32 = 1;
    pub const ON_STARTED: u32 = 1;
    pub const ON_EVENT: u32 = 2;
    pub const ON_ENDED: u32 = 3;
    pub const ON_FAILED: u32 = 4;
}

/// How a VM ended, as vmctl reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub cid: u32,
    /// `VmOutcome`'s text, e.g. "payload exited with status 0".
    pub outcome: String,
    pub exit_status: u8,
    pub death_reason: String,
    /// The payload's own exit code, when it finished.
    pub payload_exit_code: Option<i32>,
    pub console_log: PathBuf,
    pub wall_time_s: f64,
    pub stages: Option<BootStages>,
    /// Tombstones the guest sent.
    #[serde(default)]
    pub tombstones: Vec<PathBuf>,
}

impl RunSummary {
    pub fn from_result(result: &VmResult) -> RunSummary {
        RunSummary {
            cid: result.cid,
            outcome: result.outcome.to_string(),
            exit_status: result.outcome.exit_status(),
            death_reason: result.outcome.death_reason().name().to_owned(),
            payload_exit_code: match result.outcome {
                crate::outcome::VmOutcome::PayloadFinished(code) => Some(code),
                _ => None,
            },
            console_log: result.console_log.clone(),
            wall_time_s: result.wall_time.as_secs_f64(),
            stages: result.stages,
            tombstones: result.tombstones.clone(),
        }
    }
}

fn json_arg<T: for<'de> Deserialize<'de>>(data: &mut ParcelReader<'_>) -> Result<T, StatusCode> {
    let text = data.read_string().map_err(|e| e.status_code())?;
    serde_json::from_str(&text).map_err(|_| StatusCode::BAD_VALUE)
}

/// The service side (virtmgr).
pub trait VmctlService: Send + Sync {
    fn run_vm(&self, config: VmConfig, callback: SpIBinder) -> ServiceResult<SpIBinder>;
}

/// Serves a [`VmctlService`].
pub struct BnVmctlService<T>(pub T);

impl<T: VmctlService + 'static> BnVmctlService<T> {
    pub fn new_binder(service: T) -> SpIBinder {
        SpIBinder::local(Arc::new(BnVmctlService(service)))
    }
}

impl<T: VmctlService> Binder for BnVmctlService<T> {
    fn descriptor(&self) -> &str {
        VMCTL_SERVICE_DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            codes::RUN_VM => {
                let config: VmConfig = json_arg(data)?;
                let callback = data.read_required_binder().map_err(|e| e.status_code())?;
                match self.0.run_vm(config, callback) {
                    Ok(vm) => {
                        reply.write_status(&Status::ok());
                        reply.write_binder(Some(&vm));
                    }
                    Err(status) => reply.write_status(&status),
                }
                Ok(())
            }
            _ => Err(StatusCode::UNKNOWN_TRANSACTION),
        }
    }
}

/// The client side (vmctl).
#[derive(Debug, Clone)]
pub struct VmctlServiceProxy(pub SpIBinder);

impl VmctlServiceProxy {
    /// The extension of virtmgr's root object.
    pub fn of(service: &vmclient::VirtualizationService) -> Result<Self, CallError> {
        let root = service
            .proxy()
            .0
            .as_remote()
            .ok_or(CallError::Rpc(rpcbinder::Error::NoRootObject))?;
        let ext = root
            .get_extension()?
            .ok_or(CallError::Rpc(rpcbinder::Error::NoRootObject))?;
        Ok(VmctlServiceProxy(ext))
    }

    pub fn run_vm(
        &self,
        config: &VmConfig,
        callback: &SpIBinder,
    ) -> Result<VirtualMachineProxy, CallError> {
        let json = serde_json::to_string(config)
            .map_err(|e| CallError::Rpc(rpcbinder::Error::Io(std::io::Error::other(e))))?;
        let reply = call(&self.0, VMCTL_SERVICE_DESCRIPTOR, codes::RUN_VM, |p| {
            p.write_str(&json);
            p.write_binder(Some(callback));
        })?;
        let vm = reply
            .reader()
            .read_required_binder()
            .map_err(|e| CallError::Rpc(rpcbinder::Error::Parcel(e)))?;
        VirtualMachineProxy::from_binder(vm)
    }
}

/// What the client hears.
pub trait VmctlCallback: Send + Sync {
    fn on_started(&self, record: VmRecord);
    fn on_event(&self, line: String, json: serde_json::Value);
    fn on_ended(&self, summary: RunSummary);
    fn on_failed(&self, message: String);
}

/// Serves a [`VmctlCallback`].
pub struct BnVmctlCallback<T>(pub T);

impl<T: VmctlCallback> Binder for BnVmctlCallback<T> {
    fn descriptor(&self) -> &str {
        VMCTL_CALLBACK_DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        _reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            codes::ON_STARTED => self.0.on_started(json_arg(data)?),
            codes::ON_EVENT => {
                let line = data.read_string().map_err(|e| e.status_code())?;
                self.0.on_event(line, json_arg(data)?);
            }
            codes::ON_ENDED => self.0.on_ended(json_arg(data)?),
            codes::ON_FAILED => {
                let message = data.read_string().map_err(|e| e.status_code())?;
                self.0.on_failed(message);
            }
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

/// virtmgr's proxy for a client's [`VmctlCallback`] (oneway calls).
#[derive(Debug, Clone)]
pub struct VmctlCallbackProxy(pub SpIBinder);

impl VmctlCallbackProxy {
    fn send(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<(), rpcbinder::Error> {
        call_oneway(&self.0, VMCTL_CALLBACK_DESCRIPTOR, code, args)
    }

    fn send_json(&self, code: u32, value: &impl Serialize) -> Result<(), rpcbinder::Error> {
        let json = serde_json::to_string(value)
            .map_err(|e| rpcbinder::Error::Io(std::io::Error::other(e)))?;
        self.send(code, |p| p.write_str(&json))
    }

    pub fn on_started(&self, record: &VmRecord) -> Result<(), rpcbinder::Error> {
        self.send_json(codes::ON_STARTED, record)
    }

    pub fn on_event(&self, event: &crate::vm::TimedEvent) -> Result<(), rpcbinder::Error> {
        let json = serde_json::to_string(&event.to_json())
            .map_err(|e| rpcbinder::Error::Io(std::io::Error::other(e)))?;
        let line = event.describe();
        self.send(codes::ON_EVENT, |p| {
            p.write_str(&line);
            p.write_str(&json);
        })
    }

    pub fn on_ended(&self, summary: &RunSummary) -> Result<(), rpcbinder::Error> {
        self.send_json(codes::ON_ENDED, summary)
    }

    pub fn on_failed(&self, message: &str) -> Result<(), rpcbinder::Error> {
        self.send(codes::ON_FAILED, |p| p.write_str(message))
    }
}
