//! One VM's lifecycle: a CID from the host's registry, a private run directory, the OS disk as a
//! composite (VMDK view for QEMU), the vsock backend, the host's IVirtualMachineService on the
//! backend's `<uds>_<cid>` socket, the VMM, the console, and waiting: under a timeout, with hang
//! detection (payload not started in time), and with every child cleaned up on any path.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use image::OsManifest;
use serde::{Deserialize, Serialize};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use vm_service::{
    vsock_uds_path, HostService, PayloadState, ServiceListener, VmEvent, VmEventKind,
};

use crate::children::{spawn_guarded, spawn_guarded_with_fds, ChildGuard};
use crate::crosvm::CrosvmConfig;
use crate::disk::{assemble_vm_disks, fd_composite, PreservedFiles, VmDisk};
use crate::outcome::{Observation, VmOutcome, Vmm};
use crate::qemu::{kernel_cmdline, Accel, QemuConfig, QBOOT_ROM};
use crate::registry::{unix_now, CidLease, VmRecord};

/// How long the vsock backend may take to create its socket.
const BACKEND_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the VMM gets to exit after SIGTERM before it is killed.
const VMM_STOP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait, after the VM ended, for the last RPC events to be delivered.
const EVENT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Guest memory when none is given (AOSP's microdroid.json and virtmgr: 256 MiB).
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// The least guest memory a Microdroid VM is started with. Measured with the demo app under
/// TCG (`vmctl run-app -m N`): at 64 MiB the Debian cloud kernel cannot even start (it reserves
/// about 48 MiB for its own image and tables; QEMU ends at once), at 72 MiB it panics with
/// "System is deadlocked on memory" while unpacking the initramfs, at 80 MiB the payload runs.
/// Asking for less is refused before anything starts, rather than failing in the guest in ways
/// that are hard to read. The boot test `the_least_memory_runs_the_payload_and_less_is_refused`
/// runs the demo at exactly this size, so a kernel or image that outgrows it fails that test.
pub const MIN_MEMORY_MIB: u32 = 80;

/// A Microdroid VM asked for less than [`MIN_MEMORY_MIB`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{given} MiB of guest memory is too little for Microdroid: its kernel and initramfs need at \
     least {min} MiB (--memory-mib)",
    min = MIN_MEMORY_MIB
)]
pub struct MemoryTooSmall {
    /// What was asked for.
    pub given: u32,
}

/// Refuses a Microdroid VM smaller than [`MIN_MEMORY_MIB`] (a raw VM boots what it likes).
pub fn check_memory(memory_mib: u32) -> Result<(), MemoryTooSmall> {
    if memory_mib < MIN_MEMORY_MIB {
        return Err(MemoryTooSmall { given: memory_mib });
    }
    Ok(())
}
/// AOSP's `BOOT_HANGUP_TIMEOUT`: the payload must have started by then.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Names in the run directory: the vhost-user socket of the vsock backend, the console socket
/// QEMU connects to, and the file behind the guest's death-reason port (ttyS1).
const VHOST_SOCKET: &str = "vhost.sock";
const CONSOLE_SOCKET: &str = "console.sock";
const DEATH_REASON_FILE: &str = "ttyS1";
/// The sockets QEMU connects ttyS1 (death reason) and ttyS2 (the guest's log) to.
const DEATH_REASON_SOCKET: &str = "ttyS1.sock";
const GUEST_LOG_SOCKET: &str = "ttyS2.sock";
/// The DICE handover for the guest, read by QEMU into fw_cfg.
const DICE_HANDOVER_FILE: &str = "dice-handover.cbor";
/// The new-instance flag for the guest (fw_cfg `dice::FW_CFG_NEW_INSTANCE_NAME`), on an
/// instance's first boot only.
const NEW_INSTANCE_FILE: &str = "new-instance";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmConfig {
    /// `vm_os.json` from the image builder.
    pub os_manifest: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// The whole VM's time limit (outcome `Timeout`).
    pub timeout: Duration,
    /// The payload must start within this (outcome `Hangup`); `None` disables the check.
    pub boot_timeout: Option<Duration>,
    /// A specific guest CID; `None` takes the lowest free one.
    pub cid: Option<u32>,
    /// The registry of running VMs (`registry::default_runtime_dir()`).
    pub runtime_dir: PathBuf,
    pub debuggable: bool,
    /// Copy the guest console to stdout as it arrives.
    pub console_to_terminal: bool,
    /// Keep the console here (otherwise in this VM's directory under `logs_dir`).
    pub console_log: Option<PathBuf>,
    /// Where each VM's console and death reason are kept after it ends (`host_tools::logs`);
    /// `None`: in the run directory, removed with it.
    pub logs_dir: Option<PathBuf>,
    pub vmm: Vmm,
    pub qemu: PathBuf,
    pub crosvm: PathBuf,
    pub vhost_device_vsock: PathBuf,
    pub extra_kernel_args: Vec<String>,
    /// Serve IVirtualMachineService (tests turn it off to see a guest that cannot reach it).
    pub serve_vm_service: bool,
    /// An app payload (`vmctl run-app`): its payload disk is the second disk.
    pub app: Option<crate::app::AppPayload>,
    /// The instance image (`vm-instance`, writable), created if missing.
    pub instance: Option<PathBuf>,
    /// The encrypted storage image (`encryptedstore`, on the instance disk), created if missing
    /// with this size in bytes.
    pub storage: Option<(PathBuf, u64)>,
    /// The host's device secret, the UDS of the VM's DICE chain (created if missing).
    pub device_secret: PathBuf,
    /// A raw VM (AOSP's `VirtualMachineRawConfig`): its own kernel, initrd, command line and
    /// disks instead of the Microdroid OS; no DICE handover, no hang detection.
    pub raw: Option<RawVm>,
    /// The VM's name, shown by `vmctl list` (AOSP's config `name`).
    #[serde(default)]
    pub name: Option<String>,
    /// The VMM's gdb stub for the guest kernel on this localhost port (debuggable VMs only).
    #[serde(default)]
    pub gdb_port: Option<u16>,
    /// Where the guest's log (logd's records, threadtime lines on ttyS2) is written: AOSP's
    /// `--log` / `osLogFd`. Without it the log port goes nowhere.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Where tombstones the guest sends (vsock port 2000) are written; by default the VM's log
    /// directory (or, without one, the run directory, removed with it).
    #[serde(default)]
    pub tombstone_dir: Option<PathBuf>,
    /// Copy the console to a terminal byte for byte (`--raw-console`); by default a terminal
    /// gets it through `terminal::Sanitizer`.
    #[serde(default)]
    pub raw_console: bool,
    /// Where the guest console is copied as it arrives (a client's `consoleOutFd`).
    #[serde(skip)]
    pub console_out: Option<Arc<File>>,
    /// What is fed to the guest console (a client's `consoleInFd`).
    #[serde(skip)]
    pub console_in: Option<Arc<File>>,
}

/// A raw VM's boot inputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawVm {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub params: String,
    pub disks: Vec<RawDisk>,
}

/// One disk of a raw VM: a whole image, or partitions assembled into a composite disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RawDisk {
    Image { path: PathBuf, writable: bool },
    Partitions(Vec<RawPartition>),
}

/// A partition of a raw VM's composite disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawPartition {
    pub label: String,
    pub path: PathBuf,
    pub writable: bool,
}

/// Stops a VM that `run_controlled` runs, from any thread.
#[derive(Debug, Clone)]
pub struct VmStopper(mpsc::Sender<Event>);

impl VmStopper {
    /// Asks the VM to stop (the VMM is killed, the outcome is `Interrupted`, AOSP's KILLED).
    /// Does nothing once the VM has ended.
    pub fn stop(&self) {
        let _ = self.0.send(Event::Stop);
    }
}

/// The event channel of one run, created before it so that a [`VmStopper`] exists first.
#[derive(Debug)]
pub struct VmControl {
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
}

impl VmControl {
    /// A control and the stopper that acts on it.
    pub fn new() -> (VmControl, VmStopper) {
        let (tx, rx) = mpsc::channel();
        (VmControl { tx: tx.clone(), rx }, VmStopper(tx))
    }
}

impl VmConfig {
    /// The defaults of `vmctl run` for this OS manifest.
    pub fn new(os_manifest: &Path) -> VmConfig {
        VmConfig {
            os_manifest: os_manifest.to_owned(),
            kernel: None,
            initrd: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            cpus: 1,
            accel: Accel::Tcg,
            timeout: Duration::from_secs(120),
            boot_timeout: Some(DEFAULT_BOOT_TIMEOUT),
            cid: None,
            runtime_dir: crate::registry::default_runtime_dir(),
            debuggable: true,
            console_to_terminal: false,
            console_log: None,
            logs_dir: Some(crate::logs::default_logs_dir()),
            vmm: Vmm::Qemu,
            qemu: "qemu-system-x86_64".into(),
            crosvm: "crosvm".into(),
            vhost_device_vsock: "vhost-device-vsock".into(),
            extra_kernel_args: Vec::new(),
            serve_vm_service: true,
            app: None,
            instance: None,
            storage: None,
            device_secret: crate::identity::default_device_secret_path(),
            raw: None,
            name: None,
            gdb_port: None,
            log_file: None,
            tombstone_dir: None,
            raw_console: false,
            console_out: None,
            console_in: None,
        }
    }
}

/// A guest notification as the host received it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    pub time: SystemTime,
    /// Since `vm::run` began.
    pub elapsed: Duration,
    pub kind: VmEventKind,
}

/// The JSON form of an event (`vmctl run --json`).
#[derive(Debug, Serialize)]
pub struct EventJson {
    pub event: &'static str,
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TimedEvent {
    /// The event's name: the AIDL method, or what happened to the session.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            VmEventKind::PayloadStarted => "notifyPayloadStarted",
            VmEventKind::PayloadReady => "notifyPayloadReady",
            VmEventKind::PayloadFinished(_) => "notifyPayloadFinished",
            VmEventKind::Error { .. } => "notifyError",
            VmEventKind::Rejected { .. } => "rejected",
            VmEventKind::Disconnected { .. } => "disconnected",
            VmEventKind::Misbehaving { .. } => "misbehaving",
        }
    }

    pub fn to_json(&self) -> EventJson {
        let time = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut json = EventJson {
            event: self.name(),
            time,
            elapsed_s: self.elapsed.as_secs_f64(),
            exit_code: None,
            error_code: None,
            message: None,
        };
        match &self.kind {
            VmEventKind::PayloadFinished(code) => json.exit_code = Some(*code),
            VmEventKind::Error { code, message } => {
                json.error_code = Some(code.to_string());
                json.message = Some(message.clone());
            }
            VmEventKind::Rejected { method, state } => {
                json.message = Some(format!("{method} refused in state {state}"))
            }
            VmEventKind::Disconnected { error } => json.message = error.clone(),
            VmEventKind::Misbehaving { reason } => json.message = Some(reason.clone()),
            VmEventKind::PayloadStarted | VmEventKind::PayloadReady => {}
        }
        json
    }

    /// One line for the terminal: `+3.214 s 12:34:56.789Z notifyPayloadFinished(0)`.
    pub fn describe(&self) -> String {
        let detail = match &self.kind {
            VmEventKind::PayloadFinished(code) => format!("({code})"),
            VmEventKind::Error { code, message } => format!("({code}, {message:?})"),
            VmEventKind::Rejected { method, state } => {
                format!(": {method} refused in state {state}")
            }
            VmEventKind::Disconnected { error: Some(e) } => format!(": {e}"),
            VmEventKind::Misbehaving { reason } => format!(": {reason}"),
            _ => String::new(),
        };
        format!(
            "+{:.3} s {} {}{detail}",
            self.elapsed.as_secs_f64(),
            utc_time_of_day(self.time),
            self.name()
        )
    }
}

/// `HH:MM:SS.mmmZ` of a time (UTC): enough to line events up with other logs.
pub fn utc_time_of_day(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

/// What `run_observed` reports while the VM runs.
pub enum Notice<'a> {
    /// The VMM is running; the VM is listed.
    Started(&'a VmRecord),
    /// The guest called the host service.
    Event(&'a TimedEvent),
}

/// What `run` returns: the outcome and where the console went.
#[derive(Debug)]
pub struct VmResult {
    pub cid: u32,
    pub outcome: VmOutcome,
    /// The guest's notifications, in the order they arrived.
    pub events: Vec<TimedEvent>,
    pub console_log: PathBuf,
    pub console: Vec<u8>,
    pub wall_time: Duration,
    /// Boot stage timings (AOSP MicrodroidBenchmarks' names); `None` if the VMM never ran.
    pub stages: Option<crate::stages::BootStages>,
    /// Tombstones the guest sent, in arrival order.
    pub tombstones: Vec<PathBuf>,
}

#[derive(Debug)]
enum Event {
    /// A [`VmStopper`] asked the VM to stop.
    Stop,
    /// The guest broke a host limit (what it did): stop it.
    Misbehaving(String),
    Signal(i32),
    Vm(VmEvent),
    /// The host service will send no more events.
    VmServiceClosed,
}

/// Runs the VM to its end.
pub fn run(config: &VmConfig) -> Result<VmResult> {
    run_observed(config, &mut |_| {})
}

/// Runs the VM to its end, telling `observer` when it started and each event as it arrives.
pub fn run_observed(config: &VmConfig, observer: &mut dyn FnMut(Notice<'_>)) -> Result<VmResult> {
    run_controlled(config, None, VmControl::new().0, observer)
}

/// What the VM boots, decided before the VMM starts.
struct BootPlan {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: String,
    disks: Vec<VmDisk>,
    /// Whole-image disks of a raw VM (QEMU `format=raw`).
    image_disks: Vec<(PathBuf, bool)>,
    /// fw_cfg files (name, path): the DICE handover (Microdroid VMs) and the new-instance flag.
    fw_cfg: Vec<(String, PathBuf)>,
}

/// Runs the VM to its end on `lease` (or a CID it takes), stoppable through `control`'s
/// [`VmStopper`], telling `observer` when it started and each event as it arrives.
pub fn run_controlled(
    config: &VmConfig,
    lease: Option<CidLease>,
    control: VmControl,
    observer: &mut dyn FnMut(Notice<'_>),
) -> Result<VmResult> {
    let started = Instant::now();
    let started_wall = SystemTime::now();
    if config.raw.is_none() {
        check_memory(config.memory_mib)?;
    }
    let lease = match (lease, config.cid) {
        (Some(lease), _) => Ok(lease),
        (None, Some(cid)) => CidLease::claim(&config.runtime_dir, cid),
        (None, None) => CidLease::allocate(&config.runtime_dir),
    }
    .context("choosing the guest CID")?;
    let cid = lease.cid();
    let run_dir = tempfile::Builder::new()
        .prefix(&format!("vmctl-{cid}-"))
        .tempdir()
        .context("creating the run directory")?;
    let dir = run_dir.path();
    // The VM's kept logs, unless the console goes where the caller said.
    let vm_log_dir = match (&config.console_log, &config.logs_dir) {
        (None, Some(logs)) => Some(
            crate::logs::new_vm_dir(logs, cid)
                .with_context(|| format!("creating a log directory in {}", logs.display()))?,
        ),
        _ => None,
    };
    let console_log = match (&config.console_log, &vm_log_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(vm_logs)) => vm_logs.join(crate::logs::CONSOLE_FILE),
        (None, None) => dir.join("console.log"),
    };
    let mut record = VmRecord {
        cid,
        pid: std::process::id(),
        state: "starting".into(),
        payload_state: PayloadState::Starting.to_string(),
        vmm: config.vmm.name().into(),
        debug: if config.debuggable { "full" } else { "none" }.into(),
        console_log: std::path::absolute(&console_log).unwrap_or_else(|_| console_log.clone()),
        run_dir: dir.to_owned(),
        started_at: unix_now(),
        name: config.name.clone().unwrap_or_default(),
    };
    lease.publish(&record)?;

    if config.gdb_port.is_some() && !config.debuggable && config.raw.is_none() {
        bail!("--gdb needs a debuggable VM (--debug full): a NONE VM exposes no debugger");
    }
    // One VM at a time per instance (and its storage): the lock lives as long as this run.
    let _instance_locks = crate::disk::lock_instance_files(config)?;
    let plan = match &config.raw {
        Some(raw) => raw_boot_plan(raw, dir)?,
        None => {
            let (manifest, image_dir) = OsManifest::load(&config.os_manifest)?;
            let (kernel, initrd, cmdline) = boot_inputs(config, &manifest, &image_dir);
            let identity = match prepare_identity(
                config, &manifest, &image_dir, &kernel, &initrd, &cmdline, true,
            ) {
                Ok(identity) => identity,
                Err(err) => {
                    let Some(refusal) = err.downcast_ref::<crate::identity::InstanceRefusal>()
                    else {
                        return Err(err);
                    };
                    // As pvmfw: the instance recorded another OS or debug level; nothing boots.
                    return Ok(VmResult {
                        cid,
                        outcome: VmOutcome::GuestError(vm_status::ReportedDeath {
                            reason: vm_status::DeathReason::PvmFirmwareInstanceImageChanged,
                            detail: Some(refusal.to_string()),
                        }),
                        events: Vec::new(),
                        console_log,
                        console: Vec::new(),
                        wall_time: started.elapsed(),
                        stages: None,
                        tombstones: Vec::new(),
                    });
                }
            };
            BootPlan {
                kernel,
                initrd: Some(initrd),
                cmdline,
                disks: assemble_vm_disks(config, &manifest, &image_dir, dir)?,
                image_disks: Vec::new(),
                fw_cfg: write_identity_files(&identity, dir)?,
            }
        }
    };
    let death_reason_file = dir.join(DEATH_REASON_FILE);
    let console_socket = dir.join(CONSOLE_SOCKET);
    let vhost_socket = dir.join(VHOST_SOCKET);
    let vsock_uds = crate::vsock::guest_vsock_socket(dir);

    // Signals first, so that Ctrl-C at any point below still cleans up (guards drop on return).
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP, SIGCHLD]).context("installing signal handlers")?;
    let signal_handle = signals.handle();
    let VmControl {
        tx: events,
        rx: event_rx,
    } = control;
    let signal_events = events.clone();
    let signal_thread = thread::spawn(move || {
        for sig in signals.forever() {
            if signal_events.send(Event::Signal(sig)).is_err() {
                return;
            }
        }
    });
    let result = (|| {
        // The host service listens before the VM boots: the guest connects once, early.
        let (service, payload_state, service_rx) = HostService::new(cid);
        let mut listener = if config.serve_vm_service {
            let path = vsock_uds_path(&vsock_uds, cid);
            Some(
                ServiceListener::bind(&path, service)
                    .with_context(|| format!("serving on {}", path.display()))?,
            )
        } else {
            drop(service);
            None
        };
        let forwarder = {
            let events = events.clone();
            thread::spawn(move || {
                for ev in service_rx {
                    if events.send(Event::Vm(ev)).is_err() {
                        return;
                    }
                }
                let _ = events.send(Event::VmServiceClosed);
            })
        };
        let limit_events = events.clone();
        drop(events);
        // Tombstones may come as soon as a payload runs.
        let tombstone_dir = config
            .tombstone_dir
            .clone()
            .or_else(|| vm_log_dir.clone())
            .unwrap_or_else(|| dir.to_owned());
        let tombstones = crate::tombstones::Receiver::start(
            &vsock_uds_path(&vsock_uds, crate::tombstones::TOMBSTONE_PORT),
            &tombstone_dir,
        )
        .context("listening for tombstones")?;

        let mut backend =
            start_vsock_backend(config, cid, dir, &vhost_socket, &vsock_uds, &event_rx)?;
        let vmm_stderr_path = dir.join("vmm.stderr");
        let (mut vmm, console_thread, _preserved) = match config.vmm {
            Vmm::Qemu => {
                let listener =
                    UnixListener::bind(&console_socket).context("binding the console socket")?;
                let console_thread = start_console_reader(
                    listener,
                    &console_log,
                    config.console_to_terminal,
                    config.raw_console,
                    config.console_out.clone(),
                    config.console_in.clone(),
                )?;
                // ttyS1 and ttyS2 come through sockets too, so that what the guest writes is
                // bounded here rather than growing files QEMU writes.
                let death_reason_listener = UnixListener::bind(dir.join(DEATH_REASON_SOCKET))
                    .context("binding the death-reason socket")?;
                let misbehaving = limit_events.clone();
                start_capped_reader(
                    death_reason_listener,
                    File::create(&death_reason_file)
                        .with_context(|| format!("creating {}", death_reason_file.display()))?,
                    DEATH_REASON_CAP,
                    "death-reason port",
                    Some(Box::new(move || {
                        let _ = misbehaving.send(Event::Misbehaving(format!(
                            "wrote more than {} KiB to its death-reason port (ttyS1)",
                            DEATH_REASON_CAP / 1024
                        )));
                    })),
                );
                if let Some(log_file) = &config.log_file {
                    let log_listener = UnixListener::bind(dir.join(GUEST_LOG_SOCKET))
                        .context("binding the guest log socket")?;
                    let file = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(log_file)
                        .with_context(|| format!("opening {}", log_file.display()))?;
                    start_capped_reader(log_listener, file, GUEST_LOG_CAP, "guest log", None);
                }
                let qemu_config = qemu_config(config, &plan, dir);
                let mut command = Command::new(&qemu_config.qemu);
                command
                    .args(qemu_config.argv())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(File::create(&vmm_stderr_path)?);
                (
                    spawn_guarded("QEMU", &mut command)?,
                    Some(console_thread),
                    None,
                )
            }
            Vmm::Crosvm => {
                File::create(&console_log)
                    .with_context(|| format!("creating {}", console_log.display()))?;
                File::create(&death_reason_file)?;
                let (crosvm_config, preserved) = crosvm_config(
                    config,
                    &plan,
                    dir,
                    &console_log,
                    &death_reason_file,
                    &vhost_socket,
                )?;
                let mut command = Command::new(&crosvm_config.crosvm);
                command
                    .args(crosvm_config.argv())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(File::create(&vmm_stderr_path)?);
                (
                    spawn_guarded_with_fds("crosvm", &mut command, preserved.fds())?,
                    None,
                    Some(preserved),
                )
            }
        };
        record.state = "running".into();
        lease.publish(&record)?;
        let vmm_running = started.elapsed();
        observer(Notice::Started(&record));

        let deadline = started + config.timeout;
        let boot_deadline = config.boot_timeout.map(|t| started + t);
        let mut timed_events = Vec::new();
        let mut stopped_by_us = None;
        let mut service_closed = false;
        let mut on_event =
            |ev: VmEvent, record: &mut VmRecord, timed_events: &mut Vec<TimedEvent>| {
                let elapsed = ev.time.duration_since(started_wall).unwrap_or_default();
                let timed = TimedEvent {
                    time: ev.time,
                    elapsed,
                    kind: ev.kind,
                };
                observer(Notice::Event(&timed));
                timed_events.push(timed);
                record.payload_state = payload_state.get().to_string();
                let _ = lease.publish(record);
            };
        let status = loop {
            if let Some(status) = vmm.try_wait()? {
                break status;
            }
            if let Some(status) = backend.try_wait()? {
                bail!("vhost-device-vsock exited early with {status}");
            }
            let now = Instant::now();
            if now >= deadline {
                stopped_by_us = Some(VmOutcome::Timeout {
                    seconds: config.timeout.as_secs(),
                });
                break stop(&mut vmm, &lease, &mut record);
            }
            let mut wake = deadline;
            if let (Some(boot_deadline), PayloadState::Starting, None) =
                (boot_deadline, payload_state.get(), &config.raw)
            {
                if now >= boot_deadline {
                    // As AOSP: the state machine moves to Hangup, later notifications are refused.
                    let _ = payload_state.update(PayloadState::Hangup);
                    let seconds = config.boot_timeout.map_or(0, |t| t.as_secs());
                    stopped_by_us = Some(VmOutcome::Hangup { seconds });
                    record.payload_state = PayloadState::Hangup.to_string();
                    break stop(&mut vmm, &lease, &mut record);
                }
                wake = wake.min(boot_deadline);
            }
            match event_rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Event::Signal(SIGCHLD)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Event::Signal(_) | Event::Stop) => {
                    stopped_by_us = Some(VmOutcome::Interrupted);
                    break stop(&mut vmm, &lease, &mut record);
                }
                Ok(Event::Misbehaving(reason)) => {
                    stopped_by_us = Some(VmOutcome::Misbehaving { reason });
                    break stop(&mut vmm, &lease, &mut record);
                }
                Ok(Event::Vm(ev)) => {
                    let misbehaving = match &ev.kind {
                        VmEventKind::Misbehaving { reason } => Some(reason.clone()),
                        _ => None,
                    };
                    on_event(ev, &mut record, &mut timed_events);
                    if let Some(reason) = misbehaving {
                        stopped_by_us = Some(VmOutcome::Misbehaving { reason });
                        break stop(&mut vmm, &lease, &mut record);
                    }
                }
                Ok(Event::VmServiceClosed) => service_closed = true,
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("event threads ended"),
            }
        };
        // The guest's connection ends with the backend; then the service has nothing more to
        // send, and every event it accepted before the VM ended is delivered.
        drop(backend);
        if let Some(listener) = listener.as_mut() {
            listener.stop();
        }
        drop(listener);
        let drain_deadline = Instant::now() + EVENT_DRAIN_TIMEOUT;
        while !service_closed {
            match event_rx.recv_timeout(drain_deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Vm(ev)) => on_event(ev, &mut record, &mut timed_events),
                Ok(Event::VmServiceClosed) => service_closed = true,
                Ok(Event::Signal(_) | Event::Stop | Event::Misbehaving(_)) => {}
                Err(_) => break,
            }
        }
        if service_closed {
            let _ = forwarder.join();
        }
        if let Some(console_thread) = console_thread {
            // QEMU has closed its end of the console socket, so the reader sees EOF. If QEMU
            // never connected, this connection releases the reader from accept().
            let _ = std::os::unix::net::UnixStream::connect(&console_socket);
            let _ = console_thread.join();
        }
        let console = read_console_bounded(&console_log);
        if let (Vmm::Crosvm, Some(out)) = (config.vmm, &config.console_out) {
            // crosvm wrote the console to a file; the client gets it when the VM ends.
            let _ = (&**out).write_all(&console);
        }
        if let Some(vm_logs) = &vm_log_dir {
            keep_death_reason(
                &death_reason_file,
                &vm_logs.join(crate::logs::DEATH_REASON_FILE),
            );
        }
        let kinds: Vec<VmEventKind> = timed_events.iter().map(|e| e.kind.clone()).collect();
        let outcome = match stopped_by_us {
            Some(outcome) => outcome,
            None => VmOutcome::from_observation(&Observation {
                qemu_status: status.code(),
                qemu_stderr: &fs::read_to_string(&vmm_stderr_path).unwrap_or_default(),
                death_reason: &read_head(&death_reason_file, DEATH_REASON_CAP),
                events: &kinds,
                console: &console,
                vmm: config.vmm,
            }),
        };
        let payload_started = timed_events
            .iter()
            .find(|e| e.kind == VmEventKind::PayloadStarted)
            .map(|e| e.elapsed);
        let stages = crate::stages::boot_stages(
            vmm_running,
            payload_started,
            &String::from_utf8_lossy(&console),
        );
        let tombstones = tombstones.finish();
        Ok(VmResult {
            cid,
            outcome: outcome.with_tombstone(tombstones.last().map(PathBuf::as_path)),
            events: timed_events,
            console_log: console_log.clone(),
            console,
            wall_time: started.elapsed(),
            stages: Some(stages),
            tombstones,
        })
    })();
    signal_handle.close();
    let _ = signal_thread.join();
    drop(lease);
    result
}

/// What the VM boots: the manifest's kernel and initramfs unless the config overrides them, and
/// the kernel command line for the config's debug level.
fn boot_inputs(
    config: &VmConfig,
    manifest: &OsManifest,
    image_dir: &Path,
) -> (PathBuf, PathBuf, String) {
    let kernel = config
        .kernel
        .clone()
        .unwrap_or_else(|| image_dir.join(&manifest.kernel));
    let initrd = config
        .initrd
        .clone()
        .unwrap_or_else(|| image_dir.join(&manifest.initrd));
    (
        kernel,
        initrd,
        kernel_cmdline(config.debuggable, &config.extra_kernel_args),
    )
}

/// Writes the guest's identity files in the run directory; returns them as fw_cfg items.
fn write_identity_files(
    identity: &crate::identity::GuestIdentity,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let handover_path = dir.join(DICE_HANDOVER_FILE);
    crate::identity::write_handover(&handover_path, &identity.handover)?;
    let mut files = vec![(dice::FW_CFG_HANDOVER_NAME.to_owned(), handover_path)];
    if identity.new_instance {
        let flag = dir.join(NEW_INSTANCE_FILE);
        std::fs::write(&flag, b"1").with_context(|| format!("writing {}", flag.display()))?;
        files.push((dice::FW_CFG_NEW_INSTANCE_NAME.to_owned(), flag));
    }
    Ok(files)
}

/// The guest's DICE handover for this boot: the host's device secret as UDS, the OS measured,
/// and (with `record` and an instance) the instance's pvmfw entry checked or recorded. A
/// refusal is an error carrying `identity::InstanceRefusal`.
fn prepare_identity(
    config: &VmConfig,
    manifest: &OsManifest,
    image_dir: &Path,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    record: bool,
) -> Result<crate::identity::GuestIdentity> {
    let vbmeta = manifest
        .os_disk
        .iter()
        .find(|p| p.label == image::VBMETA_PARTITION_LABEL)
        .map(|p| image_dir.join(&p.path))
        .with_context(|| {
            format!(
                "the OS manifest has no {} partition to measure",
                image::VBMETA_PARTITION_LABEL
            )
        })?;
    let os = crate::identity::measure(kernel, initrd, cmdline, &vbmeta)?;
    let uds = crate::identity::load_or_create_device_secret(&config.device_secret)
        .context("loading the host's device secret")?;
    // The instance file exists by now: `disk::lock_instance_files` made it.
    let instance = config.instance.as_deref().filter(|_| record);
    crate::identity::make_handover(&uds, &os, config.debuggable, instance)
}

/// The QEMU command line's inputs; the sockets and the death-reason file are in the run
/// directory under the names `run` uses.
fn qemu_config(config: &VmConfig, plan: &BootPlan, dir: &Path) -> QemuConfig {
    let accel = match config.accel {
        Accel::Auto => crate::accel::choose(&config.qemu, &config.runtime_dir).accel,
        accel => accel,
    };
    QemuConfig {
        qemu: config.qemu.clone(),
        accel,
        memory_mib: config.memory_mib,
        cpus: config.cpus,
        kernel: plan.kernel.clone(),
        initrd: plan.initrd.clone(),
        cmdline: plan.cmdline.clone(),
        disks: plan
            .disks
            .iter()
            .map(|d| (d.vmdk.clone(), d.writable()))
            .collect(),
        raw_disks: plan.image_disks.clone(),
        vhost_vsock_socket: dir.join(VHOST_SOCKET),
        console_socket: dir.join(CONSOLE_SOCKET),
        death_reason_socket: dir.join(DEATH_REASON_SOCKET),
        bios: Path::new(QBOOT_ROM)
            .exists()
            .then(|| PathBuf::from(QBOOT_ROM)),
        fw_cfg_files: plan.fw_cfg.clone(),
        gdb_port: config.gdb_port,
        log_socket: config.log_file.as_ref().map(|_| dir.join(GUEST_LOG_SOCKET)),
    }
}

/// A raw VM's kernel, command line and disks (partition lists become composite disks).
fn raw_boot_plan(raw: &RawVm, dir: &Path) -> Result<BootPlan> {
    let mut disks = Vec::new();
    let mut image_disks = Vec::new();
    for (i, disk) in raw.disks.iter().enumerate() {
        match disk {
            RawDisk::Image { path, writable } => image_disks.push((path.clone(), *writable)),
            RawDisk::Partitions(parts) => {
                let partitions = parts
                    .iter()
                    .map(|p| {
                        composite::Partition::from_file(&p.label, &p.path, p.writable)
                            .with_context(|| format!("reading partition {}", p.label))
                    })
                    .collect::<Result<Vec<_>>>()?;
                // A fixed GUID per position keeps the disk a function of its partitions.
                let guid =
                    uuid::Uuid::from_u128(0x5f1a_0000_0000_4000_8000_0000_0000_0000 + i as u128);
                disks.push(crate::disk::assemble_disk(
                    &format!("disk{i}"),
                    guid,
                    partitions,
                    dir,
                )?);
            }
        }
    }
    Ok(BootPlan {
        kernel: raw.kernel.clone(),
        initrd: raw.initrd.clone(),
        cmdline: raw.params.clone(),
        disks,
        image_disks,
        fw_cfg: Vec::new(),
    })
}

/// The crosvm command line and the files it inherits (`/proc/self/fd/N`), AVF style.
fn crosvm_config(
    config: &VmConfig,
    plan: &BootPlan,
    dir: &Path,
    console_log: &Path,
    death_reason_file: &Path,
    vhost_socket: &Path,
) -> Result<(CrosvmConfig, PreservedFiles)> {
    let mut preserved = PreservedFiles::default();
    let mut disk_specs = plan
        .disks
        .iter()
        .map(|d| Ok((fd_composite(d, dir, &mut preserved)?, d.writable())))
        .collect::<Result<Vec<_>>>()?;
    for (path, writable) in &plan.image_disks {
        disk_specs.push((preserved.add(path, *writable)?, *writable));
    }
    let crosvm_config = CrosvmConfig {
        crosvm: config.crosvm.clone(),
        memory_mib: config.memory_mib,
        cpus: config.cpus,
        kernel: preserved.add(&plan.kernel, false)?,
        initrd: plan
            .initrd
            .as_deref()
            .map(|i| preserved.add(i, false))
            .transpose()?,
        params: plan.cmdline.clone(),
        disks: disk_specs,
        console: if config.debuggable {
            Some(preserved.add(console_log, true)?)
        } else {
            None
        },
        death_reason: preserved.add(death_reason_file, true)?,
        log: config
            .log_file
            .as_deref()
            .map(|l| preserved.add(l, true))
            .transpose()?,
        vhost_vsock_socket: vhost_socket.to_owned(),
        fw_cfg_files: plan.fw_cfg.clone(),
        gdb_port: config.gdb_port,
    };
    Ok((crosvm_config, preserved))
}

/// The VMM command line `run` would use, for `--dry-run` and for showing the crosvm command
/// where crosvm is not installed. The disks are assembled in `dir`; fd numbers are this
/// process's, as they would be inherited.
pub fn command_line(
    config: &VmConfig,
    dir: &Path,
) -> Result<(Vec<String>, Option<PreservedFiles>)> {
    let plan = match &config.raw {
        Some(raw) => raw_boot_plan(raw, dir)?,
        None => {
            let (manifest, image_dir) = OsManifest::load(&config.os_manifest)?;
            let disks = assemble_vm_disks(config, &manifest, &image_dir, dir)?;
            let (kernel, initrd, cmdline) = boot_inputs(config, &manifest, &image_dir);
            // The handover as it would be, without reading or recording the instance's entry.
            let identity = prepare_identity(
                config, &manifest, &image_dir, &kernel, &initrd, &cmdline, false,
            )?;
            BootPlan {
                kernel,
                initrd: Some(initrd),
                cmdline,
                disks,
                image_disks: Vec::new(),
                fw_cfg: write_identity_files(&identity, dir)?,
            }
        }
    };
    let console_log = config
        .console_log
        .clone()
        .unwrap_or_else(|| dir.join("console.log"));
    let death_reason_file = dir.join(DEATH_REASON_FILE);
    match config.vmm {
        Vmm::Qemu => {
            let qemu = qemu_config(config, &plan, dir);
            let mut argv = vec![qemu.qemu.display().to_string()];
            argv.extend(qemu.argv());
            Ok((argv, None))
        }
        Vmm::Crosvm => {
            File::create(&console_log)?;
            File::create(&death_reason_file)?;
            let vhost = dir.join(VHOST_SOCKET);
            let (crosvm, preserved) =
                crosvm_config(config, &plan, dir, &console_log, &death_reason_file, &vhost)?;
            let mut argv = vec![crosvm.crosvm.display().to_string()];
            argv.extend(crosvm.argv());
            Ok((argv, Some(preserved)))
        }
    }
}

/// Stops the VMM: SIGTERM, then SIGKILL after a grace period.
fn stop(vmm: &mut ChildGuard, lease: &CidLease, record: &mut VmRecord) -> std::process::ExitStatus {
    record.state = "stopping".into();
    let _ = lease.publish(record);
    vmm.terminate();
    let deadline = Instant::now() + VMM_STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = vmm.try_wait() {
            return status;
        }
        thread::sleep(Duration::from_millis(20));
    }
    vmm.kill()
        .unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(9))
}

fn start_vsock_backend(
    config: &VmConfig,
    cid: u32,
    dir: &Path,
    socket: &Path,
    uds_path: &Path,
    events: &mpsc::Receiver<Event>,
) -> Result<ChildGuard> {
    let log = File::create(dir.join("vhost-device-vsock.log"))?;
    let mut command = Command::new(&config.vhost_device_vsock);
    command
        .arg("--guest-cid")
        .arg(cid.to_string())
        .arg("--socket")
        .arg(socket)
        .arg("--uds-path")
        .arg(uds_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut backend = spawn_guarded("vhost-device-vsock", &mut command)?;
    // The backend has no readiness signal other than its socket appearing.
    let deadline = Instant::now() + BACKEND_START_TIMEOUT;
    while !socket.exists() {
        if let Some(status) = backend.try_wait()? {
            let log = fs::read_to_string(dir.join("vhost-device-vsock.log")).unwrap_or_default();
            bail!("vhost-device-vsock exited with {status}: {}", log.trim());
        }
        if Instant::now() > deadline {
            bail!(
                "vhost-device-vsock did not create {} within {:?}",
                socket.display(),
                BACKEND_START_TIMEOUT
            );
        }
        if let Ok(Event::Signal(sig)) = events.recv_timeout(Duration::from_millis(10)) {
            if sig != SIGCHLD {
                bail!("interrupted while starting vhost-device-vsock");
            }
        }
    }
    Ok(backend)
}

/// Accepts QEMU's connection to the console socket and copies everything to the log (and the
/// terminal) until QEMU closes it.
/// Copies what the guest wrote to its death-reason port into the VM's kept logs (at most
/// 64 KiB: the port carries one line).
fn keep_death_reason(port_file: &Path, kept: &Path) {
    let mut bytes = Vec::new();
    if let Ok(file) = File::open(port_file) {
        let _ = file.take(64 * 1024).read_to_end(&mut bytes);
    }
    if !bytes.is_empty() {
        let _ = fs::write(kept, bytes);
    }
}

/// The most bytes kept from the death-reason port (it carries one line); a guest that writes
/// more is misbehaving.
pub const DEATH_REASON_CAP: u64 = 64 * 1024;
/// The most bytes of the guest's log (ttyS2) written to the `--log` file; the rest is dropped
/// and counted in the file's last line.
pub const GUEST_LOG_CAP: u64 = 64 << 20;
/// How much of the console a [`VmResult`] holds in memory: its first and last
/// `CONSOLE_RESULT_PART` bytes (the file on disk has up to `logs::CONSOLE_CAP`).
pub const CONSOLE_RESULT_PART: u64 = 2 << 20;

/// The first `limit` bytes of a file (empty if it cannot be read).
fn read_head(path: &Path, limit: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(file) = File::open(path) {
        let _ = file.take(limit).read_to_end(&mut bytes);
    }
    bytes
}

/// The console as a [`VmResult`] holds it: whole up to twice [`CONSOLE_RESULT_PART`], else its
/// head and tail around a line saying how much was left out.
pub fn read_console_bounded(path: &Path) -> Vec<u8> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= 2 * CONSOLE_RESULT_PART {
        return read_head(path, 2 * CONSOLE_RESULT_PART);
    }
    let mut bytes = read_head(path, CONSOLE_RESULT_PART);
    let tail_start = len - CONSOLE_RESULT_PART;
    bytes.extend_from_slice(
        format!(
            "\n[... {} console bytes left out here; the whole console is in {} ...]\n",
            tail_start - CONSOLE_RESULT_PART,
            path.display()
        )
        .as_bytes(),
    );
    use std::io::Seek;
    if file.seek(std::io::SeekFrom::Start(tail_start)).is_ok() {
        let _ = file.take(CONSOLE_RESULT_PART).read_to_end(&mut bytes);
    }
    bytes
}

/// Accepts the VMM's connection on `listener` and copies what comes to `out`, at most `cap`
/// bytes; past it the rest is read and dropped (the guest is never blocked), the file ends with
/// a line counting what was dropped, and `on_over_cap` runs once.
fn start_capped_reader(
    listener: UnixListener,
    out: File,
    cap: u64,
    what: &'static str,
    on_over_cap: Option<Box<dyn FnOnce() + Send>>,
) {
    thread::spawn(move || {
        let log = crate::logs::CappedWriter::named(out, cap, what);
        let mut on_over_cap = on_over_cap;
        let Ok((mut stream, _)) = listener.accept() else {
            let _ = log.finish();
            return;
        };
        pump_capped(&mut stream, log, |_, log| {
            if log.dropped() > 0 {
                if let Some(report) = on_over_cap.take() {
                    report();
                }
            }
        });
    });
}

/// Copies `stream` into the capped `log` until it ends, calling `each` with every chunk read
/// (after it went to the log), then ends the log.
fn pump_capped(
    stream: &mut std::os::unix::net::UnixStream,
    mut log: crate::logs::CappedWriter<File>,
    mut each: impl FnMut(&[u8], &crate::logs::CappedWriter<File>),
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = log.finish();
                return;
            }
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default();
                let _ = log.write_capped(data);
                each(data, &log);
            }
        }
    }
}

fn start_console_reader(
    listener: UnixListener,
    log_path: &Path,
    to_terminal: bool,
    raw_console: bool,
    console_out: Option<Arc<File>>,
    console_in: Option<Arc<File>>,
) -> Result<thread::JoinHandle<()>> {
    let file =
        File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let log = crate::logs::CappedWriter::new(file, crate::logs::CONSOLE_CAP);
    Ok(thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            let _ = log.finish();
            return;
        };
        if let (Some(input), Ok(mut to_guest)) = (console_in, stream.try_clone()) {
            // The client's console input goes to the guest until either side ends.
            thread::spawn(move || {
                let _ = std::io::copy(&mut &*input, &mut to_guest);
            });
        }
        // Guest bytes on a terminal are shown, not obeyed (crate::terminal).
        let mut sanitizer = crate::terminal::sanitizer_for_stdout(raw_console);
        pump_capped(&mut stream, log, |data, _| {
            if let Some(out) = &console_out {
                let _ = (&**out).write_all(data);
            }
            if to_terminal {
                let mut out = std::io::stdout().lock();
                let _ = match sanitizer.as_mut() {
                    Some(s) => out.write_all(&s.push(data)),
                    None => out.write_all(data),
                };
                let _ = out.flush();
            }
        });
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microdroid_vms_below_the_minimum_memory_are_refused() {
        assert_eq!(check_memory(10), Err(MemoryTooSmall { given: 10 }));
        assert_eq!(
            check_memory(MIN_MEMORY_MIB - 1).unwrap_err().to_string(),
            format!(
                "{} MiB of guest memory is too little for Microdroid: its kernel and initramfs \
                 need at least {MIN_MEMORY_MIB} MiB (--memory-mib)",
                MIN_MEMORY_MIB - 1
            )
        );
        assert!(check_memory(MIN_MEMORY_MIB).is_ok());
        assert!(check_memory(DEFAULT_MEMORY_MIB).is_ok());
    }

    #[test]
    fn events_have_names_times_and_json() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(3_723_004);
        let event = TimedEvent {
            time,
            elapsed: Duration::from_millis(1500),
            kind: VmEventKind::PayloadFinished(3),
        };
        assert_eq!(
            event.describe(),
            "+1.500 s 01:02:03.004Z notifyPayloadFinished(3)"
        );
        let json = serde_json::to_value(event.to_json()).unwrap();
        assert_eq!(json["event"], "notifyPayloadFinished");
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["time"], 3723.004);
        let error = TimedEvent {
            kind: VmEventKind::Error {
                code: vm_service::ErrorCode::PAYLOAD_INVALID_CONFIG,
                message: "m".into(),
            },
            ..event
        };
        assert_eq!(
            serde_json::to_value(error.to_json()).unwrap()["error_code"],
            "PAYLOAD_INVALID_CONFIG"
        );
    }
}
