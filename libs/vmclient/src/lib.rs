//! The client side of the VirtualizationService, as AOSP's `libvmclient`:
//!
//! - [`VirtualizationService::new`] spawns this process's own `virtmgr` over a socketpair
//!   (`--rpc-server-fd`, `--ready-fd`), waits for its readiness byte and opens an RPC binder
//!   session on the bootstrap socket, offering two callback connections.
//! - [`VmInstance::create`] creates a VM and registers a callback before it starts; the VM lives
//!   while the `VmInstance` does: dropping it, or this process dying, ends the session's
//!   reference and virtmgr stops the VM.
//! - [`VmInstance::wait_for_death`], [`VmInstance::wait_until_ready`] and friends wait on what
//!   the callbacks report; [`VmInstance::connect_service`] opens an RPC session to a vsock
//!   server of the payload through `IVirtualMachine.connectVsock`.
//!
//! See docs/api.md for a complete example.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rpcbinder::session::bootstrap_connector;
use rpcbinder::{CallError, RpcSession, SessionConfig, SpIBinder};
use virtualizationservice::{
    BnVirtualMachineCallback, ErrorCode, IVirtualMachineCallback, VirtualMachineConfig,
    VirtualMachineProxy, VirtualMachineState, VirtualizationServiceProxy,
};

pub use virtualizationservice as aidl;

/// Callback connections offered to virtmgr (AOSP's `VIRTMGR_THREADS`).
pub const VIRTMGR_THREADS: u32 = 2;
/// The environment variable naming the virtmgr binary to spawn.
pub const VIRTMGR_ENV: &str = "VIRTMGR";

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// virtmgr could not be found or started.
    #[error("starting virtmgr ({program}): {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// virtmgr ended before it was ready.
    #[error("virtmgr exited before it was ready ({status})")]
    NotReady { status: String },
    /// The RPC session to virtmgr or to a payload could not be set up (the message carries
    /// the cause, which is not repeated as a source).
    #[error("RPC session: {0}")]
    Session(rpcbinder::Error),
    /// A call failed (transport, or an exception from the service).
    #[error(transparent)]
    Call(#[from] CallError),
    /// An I/O error of the client itself.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How a VM ended, as the client sees it: AOSP's reason, or virtmgr itself died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    /// virtmgr reported it (`onDied`).
    Reported(aidl::DeathReason),
    /// The session to virtmgr ended without an `onDied` (libvmclient's
    /// `VirtualizationServiceDied`).
    VirtualizationServiceDied,
}

impl std::fmt::Display for DeathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeathReason::Reported(r) => write!(f, "{r}"),
            DeathReason::VirtualizationServiceDied => f.write_str("VirtualizationServiceDied"),
        }
    }
}

/// Why [`VmInstance::wait_until_ready`] returned without the payload being ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmWaitError {
    #[error("timed out waiting for the payload to be ready")]
    TimedOut,
    #[error("the VM died before its payload was ready: {reason}")]
    Died { reason: DeathReason },
    #[error("the payload finished (or reported an error) before it was ready")]
    Finished,
}

/// What a client hears about its VM; every method defaults to nothing.
pub trait VmCallback: Send + Sync {
    fn on_payload_started(&self, _cid: i32) {}
    fn on_payload_ready(&self, _cid: i32) {}
    fn on_payload_finished(&self, _cid: i32, _exit_code: i32) {}
    fn on_error(&self, _cid: i32, _error_code: ErrorCode, _message: &str) {}
    fn on_died(&self, _cid: i32, _reason: DeathReason) {}
}

/// How to spawn virtmgr.
#[derive(Debug, Clone, Default)]
pub struct VirtmgrOptions {
    /// The binary; default: `$VIRTMGR`, else `virtmgr` next to this program (or one directory
    /// up, for test binaries in `deps/`), else `virtmgr` on `PATH`.
    pub program: Option<PathBuf>,
    /// Host settings flags for virtmgr (`--os`, `--accel`, `--qemu`, ...).
    pub args: Vec<OsString>,
}

impl From<rpcbinder::Error> for Error {
    fn from(e: rpcbinder::Error) -> Self {
        Error::Session(e)
    }
}

fn default_program() -> PathBuf {
    if let Some(p) = std::env::var_os(VIRTMGR_ENV) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("virtmgr");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("virtmgr")
}

struct ServiceInner {
    session: RpcSession,
    proxy: VirtualizationServiceProxy,
    child: Mutex<Child>,
    bootstrap: Mutex<Option<Arc<OwnedFd>>>,
}

impl Drop for ServiceInner {
    fn drop(&mut self) {
        // Closing the bootstrap socket ends virtmgr's accept loop; it stops its VMs and exits.
        self.session.shutdown();
        if let Ok(mut b) = self.bootstrap.lock() {
            b.take();
        }
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// This process's virtmgr and the session to it.
#[derive(Clone)]
pub struct VirtualizationService {
    inner: Arc<ServiceInner>,
}

impl std::fmt::Debug for VirtualizationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualizationService")
            .field("virtmgr_pid", &self.virtmgr_pid())
            .finish()
    }
}

impl VirtualizationService {
    /// Spawns virtmgr with the default options.
    pub fn new() -> Result<Self, Error> {
        Self::new_with(&VirtmgrOptions::default())
    }

    /// Spawns virtmgr and connects to it.
    pub fn new_with(options: &VirtmgrOptions) -> Result<Self, Error> {
        let program = options.program.clone().unwrap_or_else(default_program);
        let (client_fd, server_fd) = std::os::unix::net::UnixStream::pair()?;
        let (wait_fd, ready_fd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let server_raw = server_fd.as_raw_fd();
        let ready_raw = ready_fd.as_raw_fd();
        let mut command = Command::new(&program);
        command
            .arg("--rpc-server-fd")
            .arg(server_raw.to_string())
            .arg("--ready-fd")
            .arg(ready_raw.to_string())
            .args(&options.args);
        // SAFETY: between fork and exec the closure only calls fcntl(2), which is
        // async-signal-safe, on two fds this process owns.
        unsafe {
            command.pre_exec(move || {
                for fd in [server_raw, ready_raw] {
                    if libc_clear_cloexec(fd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        // Only virtmgr keeps these; its readiness is the one byte on the pipe.
        drop(server_fd);
        drop(ready_fd);
        let mut byte = [0u8; 1];
        let ready = File::from(wait_fd).read(&mut byte);
        if !matches!(ready, Ok(1)) {
            let _ = child.kill();
            let status = child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(Error::NotReady { status });
        }
        let bootstrap = Arc::new(OwnedFd::from(client_fd));
        let config = SessionConfig {
            unix_fds: true,
            threads: VIRTMGR_THREADS,
            ..SessionConfig::default()
        };
        let session = RpcSession::connect(config, bootstrap_connector(bootstrap.clone()))?;
        let root = session.root()?;
        let proxy = VirtualizationServiceProxy::from_binder(root)?;
        Ok(VirtualizationService {
            inner: Arc::new(ServiceInner {
                session,
                proxy,
                child: Mutex::new(child),
                bootstrap: Mutex::new(Some(bootstrap)),
            }),
        })
    }

    /// The `IVirtualizationService` proxy, for the calls not wrapped here.
    pub fn proxy(&self) -> &VirtualizationServiceProxy {
        &self.inner.proxy
    }

    /// virtmgr's process id.
    pub fn virtmgr_pid(&self) -> Option<u32> {
        self.inner.child.lock().ok().map(|c| c.id())
    }
}

fn libc_clear_cloexec(fd: i32) -> i32 {
    match nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    ) {
        Ok(_) => 0,
        Err(_) => -1,
    }
}

#[derive(Debug, Default)]
struct MonitorState {
    state: Option<VirtualMachineState>,
    death: Option<DeathReason>,
}

/// What the internal callback saw, for the waits.
#[derive(Default)]
struct Monitor {
    state: Mutex<MonitorState>,
    changed: Condvar,
}

impl Monitor {
    fn update(&self, f: impl FnOnce(&mut MonitorState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
        self.changed.notify_all();
    }

    fn died(&self, reason: DeathReason) {
        // The first reason wins, as in libvmclient.
        self.update(|s| {
            if s.death.is_none() {
                s.death = Some(reason);
            }
        });
    }
}

struct InternalCallback {
    monitor: Arc<Monitor>,
    user: Option<Box<dyn VmCallback>>,
}

// The user's callback runs first, so that a waiter woken by the monitor sees its effects.
impl IVirtualMachineCallback for InternalCallback {
    fn on_payload_started(&self, cid: i32) {
        if let Some(u) = &self.user {
            u.on_payload_started(cid);
        }
        self.monitor
            .update(|s| s.state = Some(VirtualMachineState::STARTED));
    }

    fn on_payload_ready(&self, cid: i32) {
        if let Some(u) = &self.user {
            u.on_payload_ready(cid);
        }
        self.monitor
            .update(|s| s.state = Some(VirtualMachineState::READY));
    }

    fn on_payload_finished(&self, cid: i32, exit_code: i32) {
        if let Some(u) = &self.user {
            u.on_payload_finished(cid, exit_code);
        }
        self.monitor
            .update(|s| s.state = Some(VirtualMachineState::FINISHED));
    }

    fn on_error(&self, cid: i32, error_code: ErrorCode, message: &str) {
        if let Some(u) = &self.user {
            u.on_error(cid, error_code, message);
        }
        self.monitor
            .update(|s| s.state = Some(VirtualMachineState::FINISHED));
    }

    fn on_died(&self, cid: i32, reason: aidl::DeathReason) {
        if let Some(u) = &self.user {
            u.on_died(cid, DeathReason::Reported(reason));
        }
        self.monitor.died(DeathReason::Reported(reason));
    }
}

/// A VM this client created. Dropping it stops the VM.
pub struct VmInstance {
    vm: VirtualMachineProxy,
    cid: i32,
    monitor: Arc<Monitor>,
    _service: VirtualizationService,
}

impl std::fmt::Debug for VmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmInstance")
            .field("cid", &self.cid)
            .finish()
    }
}

impl VmInstance {
    /// Creates a VM (not started) and registers `callback` before it can start.
    pub fn create(
        service: &VirtualizationService,
        config: &VirtualMachineConfig,
        console_out: Option<File>,
        console_in: Option<File>,
        log: Option<File>,
        callback: Option<Box<dyn VmCallback>>,
    ) -> Result<Self, Error> {
        let vm = service.proxy().create_vm(
            config,
            console_out.map(OwnedFd::from),
            console_in.map(OwnedFd::from),
            log.map(OwnedFd::from),
        )?;
        let cid = vm.get_cid()?;
        let monitor = Arc::new(Monitor::default());
        let internal = InternalCallback {
            monitor: monitor.clone(),
            user: callback,
        };
        let binder = SpIBinder::local(Arc::new(BnVirtualMachineCallback(internal)));
        vm.register_callback(&binder)?;
        if let Some(proxy) = vm.0.as_remote() {
            let m = monitor.clone();
            proxy.link_to_death(move || m.died(DeathReason::VirtualizationServiceDied));
        }
        Ok(VmInstance {
            vm,
            cid,
            monitor,
            _service: service.clone(),
        })
    }

    /// Starts the VM.
    pub fn start(&self) -> Result<(), Error> {
        Ok(self.vm.start()?)
    }

    /// Stops the VM (its death is reported as usual).
    pub fn stop(&self) -> Result<(), Error> {
        Ok(self.vm.stop()?)
    }

    /// The guest CID.
    pub fn cid(&self) -> i32 {
        self.cid
    }

    /// `getState`.
    pub fn state(&self) -> Result<VirtualMachineState, Error> {
        Ok(self.vm.get_state()?)
    }

    /// The `IVirtualMachine` proxy.
    pub fn vm(&self) -> &VirtualMachineProxy {
        &self.vm
    }

    /// Blocks until the VM dies.
    pub fn wait_for_death(&self) -> DeathReason {
        loop {
            if let Some(r) = self.wait_for_death_with_timeout(Duration::from_secs(3600)) {
                return r;
            }
        }
    }

    /// Blocks until the VM dies or `timeout` passes (`None`).
    pub fn wait_for_death_with_timeout(&self, timeout: Duration) -> Option<DeathReason> {
        let deadline = Instant::now() + timeout;
        let mut s = self.monitor.state.lock().ok()?;
        loop {
            if let Some(r) = s.death {
                return Some(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self.monitor.changed.wait_timeout(s, left).ok()?.0;
        }
    }

    /// Blocks until the payload is ready, the VM dies, the payload finishes, or `timeout`.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), VmWaitError> {
        let deadline = Instant::now() + timeout;
        let Ok(mut s) = self.monitor.state.lock() else {
            return Err(VmWaitError::TimedOut);
        };
        loop {
            if let Some(reason) = s.death {
                return Err(VmWaitError::Died { reason });
            }
            match s.state {
                Some(VirtualMachineState::READY) => return Ok(()),
                Some(VirtualMachineState::FINISHED) => return Err(VmWaitError::Finished),
                _ => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(VmWaitError::TimedOut);
            }
            s = match self.monitor.changed.wait_timeout(s, left) {
                Ok(r) => r.0,
                Err(_) => return Err(VmWaitError::TimedOut),
            };
        }
    }

    /// A connected stream to the guest's vsock `port` (`connectVsock`).
    pub fn connect_vsock(&self, port: u32) -> Result<OwnedFd, Error> {
        Ok(self.vm.connect_vsock(port as i32)?)
    }

    /// An RPC binder session to the payload's server on `port` and its root object, as
    /// libvmclient's `connect_service`: each connection the session opens is a `connectVsock`.
    pub fn connect_service(&self, port: u32) -> Result<(RpcSession, SpIBinder), Error> {
        let vm = self.vm.clone();
        let connector = move || {
            vm.connect_vsock(port as i32).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string())
            })
        };
        let session = RpcSession::connect(SessionConfig::default(), connector)?;
        let root = session.root()?;
        Ok((session, root))
    }
}
