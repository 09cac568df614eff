//! Service supervision: start the configured services, reap every child with
//! `waitpid(-1, WNOHANG)` (PID 1 inherits all orphans), forward service output to the console
//! line by line with the service's name as tag, restart or shut down as each service's policy
//! says, and keep naming block devices as they appear. One `poll` loop over a signalfd, the
//! uevent socket and the output pipes: nothing sleeps or polls on a timer.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use init_config::{InitConfig, RestartPolicy, Service};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console::{log, write_tagged};
use crate::devices::DeviceManager;

/// Delay before a `restart` service is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);
/// Longest partial line kept before it is forwarded anyway.
const MAX_LINE: usize = 4096;
/// The PATH services get.
const SERVICE_PATH: &str = "/system/bin";
/// How long `wait_for` waits for a path.
const WAIT_FOR_TIMEOUT: Duration = Duration::from_secs(1);

/// A service's command: its arguments and environment only, its own process group, no stdin,
/// and every signal unblocked (PID 1 blocks SIGCHLD, SIGTERM and SIGINT for its signalfd, and a
/// blocked mask survives exec: a service would never die of init's SIGTERM at power-off).
fn service_command(config: &Service) -> Command {
    let mut command = Command::new(&config.path);
    command
        .args(&config.args)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    let capabilities = config.capabilities;
    let last_cap = caps::last_cap();
    // SAFETY: between fork and exec the closure makes async-signal-safe calls only
    // (sigprocmask, prctl) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)?;
            if let Some(keep) = capabilities {
                caps::limit_bounding_set(keep, last_cap)?;
            }
            Ok(())
        });
    }
    command
}

/// Polls for `path` every millisecond until `timeout`.
fn wait_for_path(path: &std::path::Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Why the supervisor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A `poweroff_on_exit` service ended.
    ServiceRequestedPowerOff { service: String, status: String },
    /// PID 1 was asked to stop (SIGTERM, or SIGINT from ctrl-alt-del).
    Signalled(Signal),
}

struct OutputPipe {
    fd: OwnedFd,
    tag: String,
    pending: Vec<u8>,
}

impl OutputPipe {
    /// Reads what is available; returns false at end of file.
    fn read_available(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    self.flush_partial();
                    return false;
                }
                Ok(n) => {
                    self.pending
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                    self.forward_lines();
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(_) => {
                    self.flush_partial();
                    return false;
                }
            }
        }
    }

    fn forward_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            write_tagged(
                &self.tag,
                String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']),
            );
        }
        if self.pending.len() >= MAX_LINE {
            self.flush_partial();
        }
    }

    fn flush_partial(&mut self) {
        if !self.pending.is_empty() {
            write_tagged(
                &self.tag,
                String::from_utf8_lossy(&self.pending).trim_end_matches('\r'),
            );
            self.pending.clear();
        }
    }
}

struct ServiceState {
    config: Service,
    pid: Option<Pid>,
    restart_at: Option<Instant>,
}

pub struct Supervisor {
    services: Vec<ServiceState>,
    outputs: Vec<OutputPipe>,
    devices: DeviceManager,
    signals: SignalFd,
}

/// Describes how a child ended, the way a shell would.
/// Reaps every child that has exited (services and the orphans PID 1 inherits), handing each
/// status to `on_exit`; returns how many. One SIGCHLD may stand for many exits, so it loops
/// until none is left: `WNOHANG` says none has exited yet, `ECHILD` that there are no
/// children; `EINTR` is retried.
pub fn reap_all(mut on_exit: impl FnMut(WaitStatus)) -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return reaped,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log(&format!("waitpid: {e}"));
                return reaped;
            }
            Ok(status) => {
                reaped += 1;
                on_exit(status);
            }
        }
    }
}

pub fn describe_status(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!(
                "killed by signal {} ({sig}){}",
                *sig as i32,
                if *core { ", core dumped" } else { "" }
            )
        }
        other => format!("{other:?}"),
    }
}

impl Supervisor {
    pub fn new(config: InitConfig, devices: DeviceManager) -> Result<Self> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        // Services get an empty mask again (`service_command`): a blocked SIGTERM would outlive
        // exec, and they could not be stopped.
        mask.thread_block()
            .context("blocking signals for the signalfd")?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("creating the signalfd")?;
        let services = config
            .services
            .into_iter()
            .map(|config| ServiceState {
                config,
                pid: None,
                restart_at: None,
            })
            .collect();
        Ok(Supervisor {
            services,
            outputs: Vec::new(),
            devices,
            signals,
        })
    }

    /// Starts every service not marked `disabled` whose `only_if_cmdline` word (if any) is on
    /// the kernel command line, in file order, waiting for each one's `wait_for` paths. A
    /// service that cannot be started at boot is a broken configuration: fatal.
    pub fn start_enabled_services(&mut self, cmdline: &str) -> Result<()> {
        for index in 0..self.services.len() {
            let config = &self.services[index].config;
            if config.disabled {
                continue;
            }
            if let Some(word) = &config.only_if_cmdline {
                if !cmdline.split_whitespace().any(|w| w == word) {
                    continue;
                }
            }
            self.start(index)?;
            let config = &self.services[index].config;
            for path in &config.wait_for {
                if !wait_for_path(std::path::Path::new(path), WAIT_FOR_TIMEOUT) {
                    log(&format!(
                        "service {:?}: {path} did not appear within {WAIT_FOR_TIMEOUT:?}; going on",
                        config.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn start(&mut self, index: usize) -> Result<()> {
        let service = &mut self.services[index];
        let config = &service.config;
        let mut command = service_command(config);
        if config.console {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "starting service {:?} ({}, init.rc line {})",
                config.name, config.path, config.line
            )
        })?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        let pipes: Vec<OwnedFd> = [
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ]
        .into_iter()
        .flatten()
        .collect();
        for fd in pipes {
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .context("making a service pipe non-blocking")?;
            self.outputs.push(OutputPipe {
                fd,
                tag: config.name.clone(),
                pending: Vec::new(),
            });
        }
        log(&format!("started service {:?} (pid {pid})", config.name));
        service.pid = Some(pid);
        service.restart_at = None;
        Ok(())
    }

    /// Supervises until a `poweroff_on_exit` service ends or init is told to stop.
    pub fn run(&mut self) -> Outcome {
        loop {
            let now = Instant::now();
            let timeout = self
                .services
                .iter()
                .filter_map(|s| s.restart_at)
                .min()
                .map(|at| {
                    PollTimeout::from(
                        u16::try_from(at.saturating_duration_since(now).as_millis())
                            .unwrap_or(u16::MAX),
                    )
                })
                .unwrap_or(PollTimeout::NONE);
            let (signal_ready, uevent_ready, pipe_ready) = {
                let mut fds = Vec::with_capacity(2 + self.outputs.len());
                fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
                fds.push(PollFd::new(self.devices.fd(), PollFlags::POLLIN));
                fds.extend(
                    self.outputs
                        .iter()
                        .map(|o| PollFd::new(o.fd.as_fd(), PollFlags::POLLIN)),
                );
                if let Err(e) = poll(&mut fds, timeout) {
                    if e != nix::errno::Errno::EINTR {
                        log(&format!("poll failed: {e}"));
                    }
                    continue;
                }
                let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
                (
                    ready(&fds[0]),
                    ready(&fds[1]),
                    fds[2..].iter().map(ready).collect::<Vec<_>>(),
                )
            };
            // Output first, so that a service's last words come before the news of its exit.
            let mut index = 0;
            self.outputs.retain_mut(|pipe| {
                let keep =
                    !pipe_ready.get(index).copied().unwrap_or(false) || pipe.read_available();
                index += 1;
                keep
            });
            if uevent_ready {
                if let Err(e) = self.devices.handle_pending_events() {
                    log(&format!("uevent handling failed: {e:#}"));
                }
            }
            if signal_ready {
                if let Some(outcome) = self.handle_signals() {
                    return outcome;
                }
            }
            self.restart_due_services();
        }
    }

    fn handle_signals(&mut self) -> Option<Outcome> {
        let mut stop = None;
        while let Ok(Some(info)) = self.signals.read_signal() {
            if let Ok(sig @ (Signal::SIGTERM | Signal::SIGINT)) =
                Signal::try_from(info.ssi_signo as i32)
            {
                stop = Some(Outcome::Signalled(sig));
            }
        }
        // SIGCHLD coalesces: reap everything that has exited.
        let mut outcome = None;
        reap_all(|status| {
            if let Some(o) = self.on_child_exit(&status) {
                outcome.get_or_insert(o);
            }
        });
        outcome.or(stop)
    }

    fn on_child_exit(&mut self, status: &WaitStatus) -> Option<Outcome> {
        let pid = status.pid()?;
        let service = self.services.iter_mut().find(|s| s.pid == Some(pid))?;
        service.pid = None;
        let description = describe_status(status);
        log(&format!(
            "service {:?} (pid {pid}) {description}",
            service.config.name
        ));
        if service.config.poweroff_on_exit {
            return Some(Outcome::ServiceRequestedPowerOff {
                service: service.config.name.clone(),
                status: description,
            });
        }
        if service.config.restart == RestartPolicy::Restart {
            service.restart_at = Some(Instant::now() + RESTART_DELAY);
        }
        None
    }

    fn restart_due_services(&mut self) {
        let now = Instant::now();
        for index in 0..self.services.len() {
            if self.services[index].restart_at.is_some_and(|at| at <= now) {
                if let Err(e) = self.start(index) {
                    log(&format!(
                        "restart failed, trying again in {} s: {e:#}",
                        RESTART_DELAY.as_secs()
                    ));
                    self.services[index].restart_at = Some(now + RESTART_DELAY);
                }
            }
        }
    }

    /// Stops every running service: SIGTERM to its process group, then SIGKILL after `grace`.
    /// Forwards the output they print meanwhile.
    pub fn stop_all(&mut self, grace: Duration) {
        let running: Vec<Pid> = self.services.iter().filter_map(|s| s.pid).collect();
        for pid in &running {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while self.services.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let _ = poll(
                &mut fds,
                PollTimeout::from(u16::try_from(left.as_millis()).unwrap_or(u16::MAX)),
            );
            let _ = self.handle_signals();
        }
        for service in &mut self.services {
            if let Some(pid) = service.pid.take() {
                log(&format!(
                    "service {:?} did not stop in time: killing it",
                    service.config.name
                ));
                let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            }
        }
        self.drain_output();
    }

    /// Forwards whatever the services wrote and has not been printed yet.
    pub fn drain_output(&mut self) {
        self.outputs.retain_mut(OutputPipe::read_available);
        for pipe in &mut self.outputs {
            pipe.flush_partial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(path: &str, args: &[&str]) -> Service {
        let text = format!("service t {path} {}\n", args.join(" "));
        let config = InitConfig::parse(text.as_bytes()).unwrap();
        config.services[0].clone()
    }

    /// A service started while PID 1 blocks its signalfd's signals has none blocked: the
    /// SIGTERM of a power-off reaches it.
    #[test]
    fn services_start_with_no_signal_blocked() {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGCHLD);
        let blocked = std::thread::spawn(move || {
            mask.thread_block().unwrap();
            let out = service_command(&service("/bin/grep", &["^SigBlk", "/proc/self/status"]))
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(blocked.trim(), "SigBlk:\t0000000000000000");
    }

    /// `wait_for`: true as soon as the path appears, false once the time is up.
    #[test]
    fn wait_for_path_waits_until_the_path_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logdw");
        assert!(!wait_for_path(&path, Duration::from_millis(20)));
        let creator = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(path, b"").unwrap();
            })
        };
        let started = Instant::now();
        assert!(wait_for_path(&path, Duration::from_secs(10)));
        assert!(started.elapsed() < Duration::from_secs(5));
        creator.join().unwrap();
    }
}
