//! One VM of virtmgr: created with a CID, started on its own thread (the engine,
//! `host_tools::vm::run_controlled`), reporting to its registered callbacks, and stopped when
//! asked or when the client's last reference to its `IVirtualMachine` goes away.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use host_tools::registry::CidLease;
use host_tools::remote::{RunSummary, VmctlCallbackProxy};
use host_tools::vm::{Notice, VmConfig, VmControl, VmStopper};
use rpcbinder::SpIBinder;
use virtualizationservice::{
    service_error, DeathReason, ErrorCode, IVirtualMachine, ServiceResult,
    VirtualMachineCallbackProxy, VirtualMachineState,
};
use vm_service::VmEventKind;

/// Ports below this are the guest system's (AOSP's `connectVsock` refuses them).
pub const MIN_CLIENT_VSOCK_PORT: u32 = 1024;
/// How long `connectVsock` waits for the guest to accept.
pub const CONNECT_VSOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The payload's progress, which only moves forward (AOSP's `PayloadState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayloadProgress {
    Starting,
    Started,
    Ready,
    Finished,
}

#[derive(Debug)]
enum Lifecycle {
    NotStarted {
        config: Box<VmConfig>,
        lease: CidLease,
    },
    Running {
        stopper: VmStopper,
        run_dir: Option<PathBuf>,
    },
    Dead(DeathReason),
}

#[derive(Debug)]
struct Shared {
    lifecycle: Lifecycle,
    payload: PayloadProgress,
    callbacks: Vec<VirtualMachineCallbackProxy>,
}

/// A VM and everything it needs while it lives.
#[derive(Debug)]
pub struct VmInstance {
    cid: u32,
    name: String,
    shared: Mutex<Shared>,
    changed: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// vmctl's extension callback, for VMs it runs through `IVmctlService.runVm`.
    vmctl: Option<VmctlCallbackProxy>,
    /// The files the config's paths name (`/proc/<pid>/fd/<n>`), open while the VM may run.
    _fds: Vec<OwnedFd>,
}

impl VmInstance {
    /// A VM that has not started, holding `lease`'s CID.
    pub fn new(name: String, config: VmConfig, lease: CidLease, fds: Vec<OwnedFd>) -> Arc<Self> {
        Self::with_vmctl_callback(name, config, lease, fds, None)
    }

    /// As [`Self::new`], reporting to vmctl's extension callback as well.
    pub fn with_vmctl_callback(
        name: String,
        config: VmConfig,
        lease: CidLease,
        fds: Vec<OwnedFd>,
        vmctl: Option<VmctlCallbackProxy>,
    ) -> Arc<Self> {
        Arc::new(VmInstance {
            cid: lease.cid(),
            name,
            shared: Mutex::new(Shared {
                lifecycle: Lifecycle::NotStarted {
                    config: Box::new(config),
                    lease,
                },
                payload: PayloadProgress::Starting,
                callbacks: Vec::new(),
            }),
            changed: Condvar::new(),
            thread: Mutex::new(None),
            vmctl,
            _fds: fds,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CID.
    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// AOSP's `getState` mapping.
    pub fn state(&self) -> VirtualMachineState {
        let s = self.lock();
        match (&s.lifecycle, s.payload) {
            (Lifecycle::NotStarted { .. }, _) => VirtualMachineState::NOT_STARTED,
            (Lifecycle::Dead(_), _) => VirtualMachineState::DEAD,
            (Lifecycle::Running { .. }, PayloadProgress::Starting) => VirtualMachineState::STARTING,
            (Lifecycle::Running { .. }, PayloadProgress::Started) => VirtualMachineState::STARTED,
            (Lifecycle::Running { .. }, PayloadProgress::Ready) => VirtualMachineState::READY,
            (Lifecycle::Running { .. }, PayloadProgress::Finished) => VirtualMachineState::FINISHED,
        }
    }

    /// Whether the VM has ended (or never will run).
    pub fn is_dead(&self) -> bool {
        matches!(self.lock().lifecycle, Lifecycle::Dead(_))
    }

    fn each_callback(
        &self,
        f: impl Fn(&VirtualMachineCallbackProxy) -> Result<(), rpcbinder::Error>,
    ) {
        let callbacks = self.lock().callbacks.clone();
        for cb in &callbacks {
            match f(cb) {
                // The client is gone (its session ended): nobody to tell.
                Ok(()) | Err(rpcbinder::Error::Shutdown) => {}
                Err(e) => eprintln!("virtmgr: VM {}: a callback failed: {e}", self.cid),
            }
        }
    }

    /// Starts the VM on its own thread.
    pub fn start(self: &Arc<Self>) -> ServiceResult<()> {
        let (control, stopper) = VmControl::new();
        let (config, lease) = {
            let mut s = self.lock();
            let Lifecycle::NotStarted { .. } = s.lifecycle else {
                return Err(service_error("VM already started or failed"));
            };
            let previous = std::mem::replace(
                &mut s.lifecycle,
                Lifecycle::Running {
                    stopper,
                    run_dir: None,
                },
            );
            match previous {
                Lifecycle::NotStarted { config, lease } => (config, lease),
                _ => return Err(service_error("VM already started or failed")),
            }
        };
        let vm = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vm-{}", self.cid))
            .spawn(move || vm.run(*config, lease, control))
            .map_err(|e| service_error(format!("starting the VM's thread: {e}")))?;
        if let Ok(mut t) = self.thread.lock() {
            *t = Some(thread);
        }
        Ok(())
    }

    fn run(self: Arc<Self>, config: VmConfig, lease: CidLease, control: VmControl) {
        let vm = self.clone();
        let mut observer = |notice: Notice<'_>| match notice {
            Notice::Started(record) => {
                if let Some(cb) = &vm.vmctl {
                    let _ = cb.on_started(record);
                }
                let mut s = vm.lock();
                if let Lifecycle::Running { run_dir, .. } = &mut s.lifecycle {
                    *run_dir = Some(record.run_dir.clone());
                }
                drop(s);
                vm.changed.notify_all();
            }
            Notice::Event(event) => {
                if let Some(cb) = &vm.vmctl {
                    let _ = cb.on_event(event);
                }
                vm.on_event(&event.kind)
            }
        };
        let result = host_tools::vm::run_controlled(&config, Some(lease), control, &mut observer);
        if let Some(cb) = &self.vmctl {
            let _ = match &result {
                Ok(r) => cb.on_ended(&RunSummary::from_result(r)),
                Err(e) => cb.on_failed(&format!("{e:#}")),
            };
        }
        let reason: DeathReason = match &result {
            Ok(r) => {
                if crate::VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
                    eprintln!(
                        "virtmgr: VM {} ({}) ended: {} [{}]",
                        self.cid,
                        self.name,
                        r.outcome,
                        r.outcome.death_reason()
                    );
                }
                r.outcome.death_reason().into()
            }
            Err(e) => {
                eprintln!(
                    "virtmgr: VM {} ({}) failed to run: {e:#}",
                    self.cid, self.name
                );
                vm_status::DeathReason::InfrastructureError.into()
            }
        };
        self.lock().lifecycle = Lifecycle::Dead(reason);
        self.changed.notify_all();
        let cid = self.cid as i32;
        self.each_callback(|cb| cb.on_died(cid, reason));
        // The callbacks are not needed any more; their references go back to the client.
        self.lock().callbacks.clear();
    }

    fn on_event(&self, kind: &VmEventKind) {
        let cid = self.cid as i32;
        let advance = |to: PayloadProgress| {
            let mut s = self.lock();
            if s.payload < to {
                s.payload = to;
            }
        };
        match kind {
            VmEventKind::PayloadStarted => {
                advance(PayloadProgress::Started);
                self.each_callback(|cb| cb.on_payload_started(cid));
            }
            VmEventKind::PayloadReady => {
                advance(PayloadProgress::Ready);
                self.each_callback(|cb| cb.on_payload_ready(cid));
            }
            VmEventKind::PayloadFinished(code) => {
                advance(PayloadProgress::Finished);
                self.each_callback(|cb| cb.on_payload_finished(cid, *code));
            }
            VmEventKind::Error { code, message } => {
                advance(PayloadProgress::Finished);
                self.each_callback(|cb| cb.on_error(cid, ErrorCode(code.0), message));
            }
            // Misbehaving: the engine stops the VM; its death callback says why.
            VmEventKind::Rejected { .. }
            | VmEventKind::Disconnected { .. }
            | VmEventKind::Misbehaving { .. } => {}
        }
        self.changed.notify_all();
    }

    /// Asks a running VM to stop; the death callbacks follow from its thread.
    pub fn stop(&self) -> ServiceResult<()> {
        let s = self.lock();
        match &s.lifecycle {
            Lifecycle::Running { stopper, .. } => {
                stopper.stop();
                Ok(())
            }
            _ => Err(service_error("VM is not running")),
        }
    }

    /// Stops the VM however it is (a VM never started just ends) and waits for its thread.
    pub fn kill_and_wait(&self) {
        {
            let mut s = self.lock();
            match &s.lifecycle {
                Lifecycle::Running { stopper, .. } => stopper.stop(),
                Lifecycle::NotStarted { .. } => {
                    s.lifecycle = Lifecycle::Dead(vm_status::DeathReason::Killed.into())
                }
                Lifecycle::Dead(_) => {}
            }
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Asks the VM to stop without waiting (the drop of the last client reference).
    pub fn kill(&self) {
        let mut s = self.lock();
        match &s.lifecycle {
            Lifecycle::Running { stopper, .. } => stopper.stop(),
            Lifecycle::NotStarted { .. } => {
                s.lifecycle = Lifecycle::Dead(vm_status::DeathReason::Killed.into())
            }
            Lifecycle::Dead(_) => {}
        }
    }

    /// A stream to the guest's vsock `port`, through the VM's vsock backend.
    pub fn connect_vsock(&self, port: i32) -> ServiceResult<OwnedFd> {
        let port = port as u32; // AOSP reads the int back as u32
        let run_dir = {
            let s = self.lock();
            match &s.lifecycle {
                Lifecycle::Running {
                    run_dir: Some(dir), ..
                } => dir.clone(),
                _ => return Err(service_error("VM is not running")),
            }
        };
        if port < MIN_CLIENT_VSOCK_PORT {
            return Err(service_error(format!(
                "Can't connect to privileged port {port}"
            )));
        }
        let uds = host_tools::vsock::guest_vsock_socket(&run_dir);
        let stream =
            host_tools::vsock::connect(&uds, port, CONNECT_VSOCK_TIMEOUT).map_err(|e| {
                service_error(format!(
                    "Failed to connect to port {port} of VM {}: {e}",
                    self.cid
                ))
            })?;
        Ok(stream.into())
    }

    fn register_callback(&self, callback: SpIBinder) {
        let mut s = self.lock();
        if let Lifecycle::Dead(reason) = s.lifecycle {
            // AOSP keeps it without error; a dead VM's callback hears its death at once.
            drop(s);
            let _ = VirtualMachineCallbackProxy(callback).on_died(self.cid as i32, reason);
            return;
        }
        s.callbacks.push(VirtualMachineCallbackProxy(callback));
    }
}

/// The binder object a client holds: the VM lives while the client holds it.
#[derive(Debug)]
pub struct VirtualMachine(pub Arc<VmInstance>);

impl Drop for VirtualMachine {
    fn drop(&mut self) {
        // AOSP's `Drop for VirtualMachine`: the last reference went, the VM goes.
        self.0.kill();
    }
}

impl IVirtualMachine for VirtualMachine {
    fn get_cid(&self) -> ServiceResult<i32> {
        Ok(self.0.cid() as i32)
    }

    fn get_state(&self) -> ServiceResult<VirtualMachineState> {
        Ok(self.0.state())
    }

    fn register_callback(&self, callback: SpIBinder) -> ServiceResult<()> {
        self.0.register_callback(callback);
        Ok(())
    }

    fn start(&self) -> ServiceResult<()> {
        self.0.start()
    }

    fn stop(&self) -> ServiceResult<()> {
        self.0.stop()
    }

    fn get_memory_balloon(&self) -> ServiceResult<i64> {
        // AOSP answers 0 where the balloon is not supported (ENOTSUP).
        Ok(0)
    }

    fn set_memory_balloon(&self, _num_bytes: i64) -> ServiceResult<()> {
        Err(virtualizationservice::unsupported(
            "setMemoryBalloon: this host's VMs have no memory balloon",
        ))
    }

    fn connect_vsock(&self, port: i32) -> ServiceResult<OwnedFd> {
        self.0.connect_vsock(port)
    }

    fn set_host_console_name(&self, _pathname: &str) -> ServiceResult<()> {
        Err(virtualizationservice::unsupported(
            "setHostConsoleName: the console is the client's consoleOutFd here, not a pty",
        ))
    }

    fn suspend(&self) -> ServiceResult<()> {
        Err(virtualizationservice::unsupported(
            "suspend is not supported",
        ))
    }

    fn resume(&self) -> ServiceResult<()> {
        Err(virtualizationservice::unsupported(
            "resume is not supported",
        ))
    }
}
