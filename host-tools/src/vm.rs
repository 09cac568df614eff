//! One VM's lifecycle: a private run directory, the OS disk assembled as a GPT, the vsock backend,
//! QEMU, the console, and waiting, under a timeout and with every child cleaned up on any path.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use image::OsManifest;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::children::{spawn_guarded, ChildGuard};
use crate::outcome::{Observation, VmOutcome};
use crate::qemu::{kernel_cmdline, Accel, QemuConfig, QBOOT_ROM};

/// How long the vsock backend may take to create its socket.
const BACKEND_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU gets to exit after SIGTERM before it is killed.
const QEMU_STOP_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct VmConfig {
    /// `vm_os.json` from the image builder.
    pub os_manifest: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    pub timeout: Duration,
    pub cid: u32,
    pub debuggable: bool,
    /// Copy the guest console to stdout as it arrives.
    pub console_to_terminal: bool,
    /// Keep the console here (otherwise in the run directory, which is removed).
    pub console_log: Option<PathBuf>,
    pub qemu: PathBuf,
    pub vhost_device_vsock: PathBuf,
    pub extra_kernel_args: Vec<String>,
}

/// What `run` returns: the outcome and where the console went.
pub struct VmResult {
    pub outcome: VmOutcome,
    pub console_log: PathBuf,
    pub console: Vec<u8>,
    pub wall_time: Duration,
}

enum Event {
    Signal(i32),
}

/// Runs the VM to its end.
pub fn run(config: &VmConfig) -> Result<VmResult> {
    let started = Instant::now();
    let (manifest, image_dir) = OsManifest::load(&config.os_manifest)?;
    let run_dir = tempfile::Builder::new().prefix("vmctl-").tempdir().context("creating the run directory")?;
    let dir = run_dir.path();

    // The OS disk: a GPT with the manifest's partitions.
    let os_disk = dir.join("os.img");
    let parts: Vec<(String, PathBuf)> =
        manifest.os_disk.iter().map(|p| (p.label.clone(), image_dir.join(&p.path))).collect();
    let parts_ref: Vec<(&str, &Path)> = parts.iter().map(|(l, p)| (l.as_str(), p.as_path())).collect();
    gpt_disk::write_raw_disk(&os_disk, uuid::Uuid::new_v4(), &parts_ref).context("assembling the OS disk")?;

    let console_log = config.console_log.clone().unwrap_or_else(|| dir.join("console.log"));
    let death_reason_file = dir.join("ttyS1");
    let payload_status_file = dir.join("ttyS2");
    let console_socket = dir.join("console.sock");
    let vhost_socket = dir.join("vhost.sock");

    // Signals first, so that Ctrl-C at any point below still cleans up (guards drop on return).
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGCHLD]).context("installing signal handlers")?;
    let signal_handle = signals.handle();
    let (events, event_rx) = mpsc::channel();
    let signal_thread = thread::spawn(move || {
        for sig in signals.forever() {
            if events.send(Event::Signal(sig)).is_err() {
                return;
            }
        }
    });
    let result = (|| {
        let mut backend = start_vsock_backend(config, dir, &vhost_socket, &event_rx)?;
        let listener = UnixListener::bind(&console_socket).context("binding the console socket")?;
        let console_thread = start_console_reader(listener, &console_log, config.console_to_terminal)?;

        let qemu_config = QemuConfig {
            qemu: config.qemu.clone(),
            accel: config.accel,
            memory_mib: config.memory_mib,
            cpus: config.cpus,
            kernel: config.kernel.clone().unwrap_or_else(|| image_dir.join(&manifest.kernel)),
            initrd: config.initrd.clone().unwrap_or_else(|| image_dir.join(&manifest.initrd)),
            cmdline: kernel_cmdline(config.debuggable, &config.extra_kernel_args),
            disks: vec![os_disk.clone()],
            vhost_vsock_socket: vhost_socket.clone(),
            console_socket: console_socket.clone(),
            death_reason_file: death_reason_file.clone(),
            payload_status_file: payload_status_file.clone(),
            bios: Path::new(QBOOT_ROM).exists().then(|| PathBuf::from(QBOOT_ROM)),
        };
        let qemu_stderr_path = dir.join("qemu.stderr");
        let mut command = Command::new(&qemu_config.qemu);
        command
            .args(qemu_config.argv())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&qemu_stderr_path)?);
        let mut qemu = spawn_guarded("QEMU", &mut command)?;

        let deadline = started + config.timeout;
        let mut stopped_by_us = None;
        let status = loop {
            if let Some(status) = qemu.try_wait()? {
                break status;
            }
            if let Some(status) = backend.try_wait()? {
                bail!("vhost-device-vsock exited early with {status}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                stopped_by_us = Some(VmOutcome::Timeout { seconds: config.timeout.as_secs() });
                break stop(&mut qemu);
            }
            match event_rx.recv_timeout(left) {
                Ok(Event::Signal(SIGCHLD)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Event::Signal(_)) => {
                    stopped_by_us = Some(VmOutcome::Interrupted);
                    break stop(&mut qemu);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("signal thread ended"),
            }
        };
        drop(backend);
        // QEMU has closed its end of the console socket, so the reader sees EOF. If QEMU never
        // connected, this connection releases the reader from accept().
        let _ = std::os::unix::net::UnixStream::connect(&console_socket);
        let _ = console_thread.join();
        let console = fs::read(&console_log).unwrap_or_default();
        let outcome = match stopped_by_us {
            Some(outcome) => outcome,
            None => VmOutcome::from_observation(&Observation {
                qemu_status: status.code(),
                qemu_stderr: &fs::read_to_string(&qemu_stderr_path).unwrap_or_default(),
                death_reason: &fs::read(&death_reason_file).unwrap_or_default(),
                payload_status: &fs::read(&payload_status_file).unwrap_or_default(),
                console: &console,
            }),
        };
        Ok(VmResult { outcome, console_log: console_log.clone(), console, wall_time: started.elapsed() })
    })();
    signal_handle.close();
    let _ = signal_thread.join();
    result
}

/// Stops QEMU: SIGTERM, then SIGKILL after a grace period.
fn stop(qemu: &mut ChildGuard) -> std::process::ExitStatus {
    qemu.terminate();
    let deadline = Instant::now() + QEMU_STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = qemu.try_wait() {
            return status;
        }
        thread::sleep(Duration::from_millis(20));
    }
    qemu.kill().unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(9))
}

fn start_vsock_backend(
    config: &VmConfig,
    dir: &Path,
    socket: &Path,
    events: &mpsc::Receiver<Event>,
) -> Result<ChildGuard> {
    let log = File::create(dir.join("vhost-device-vsock.log"))?;
    let mut command = Command::new(&config.vhost_device_vsock);
    command
        .arg("--guest-cid")
        .arg(config.cid.to_string())
        .arg("--socket")
        .arg(socket)
        .arg("--uds-path")
        .arg(dir.join("vm.vsock"))
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
            bail!("vhost-device-vsock did not create {} within {:?}", socket.display(), BACKEND_START_TIMEOUT);
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
fn start_console_reader(listener: UnixListener, log_path: &Path, to_terminal: bool) -> Result<thread::JoinHandle<()>> {
    let mut log = File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    Ok(thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    let _ = log.write_all(data);
                    if to_terminal {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(data);
                        let _ = out.flush();
                    }
                }
            }
        }
    }))
}
