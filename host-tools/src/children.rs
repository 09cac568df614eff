//! Child processes that never outlive vmctl: each is killed and reaped when its guard drops
//! (every return path, panics included), and the kernel kills it if vmctl itself is killed
//! (`PR_SET_PDEATHSIG`).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

/// Starts `command` as a child that dies with this process.
pub fn spawn_guarded(name: &str, command: &mut Command) -> Result<ChildGuard> {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
    Ok(ChildGuard {
        name: name.to_owned(),
        child: Some(child),
    })
}

/// As `spawn_guarded`, and the child inherits `fds` at the same numbers (AVF's preserved fds,
/// referred to as `/proc/self/fd/N` on its command line).
pub fn spawn_guarded_with_fds(
    name: &str,
    command: &mut Command,
    fds: Vec<i32>,
) -> Result<ChildGuard> {
    // SAFETY: the closure runs between fork and exec and only calls fcntl(2), which is
    // async-signal-safe, on fds this process owns (kept open by the caller until the child runs).
    unsafe {
        command.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    spawn_guarded(name, command)
}

impl ChildGuard {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the exit status if the child has ended.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .with_context(|| format!("checking on {}", self.name)),
            None => Ok(None),
        }
    }

    /// Asks the child to stop (SIGTERM).
    pub fn terminate(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Kills the child and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_kills_on_drop() {
        let guard = spawn_guarded("sleeper", Command::new("sleep").arg("60")).unwrap();
        let pid = guard.pid().unwrap() as i32;
        drop(guard);
        // Reaped: the pid no longer exists as our child.
        assert!(kill(Pid::from_raw(pid), None).is_err());
    }

    #[test]
    fn preserved_fds_reach_the_child_at_the_same_numbers() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "inherited").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let fd = file.as_raw_fd();
        let out = dir.path().join("out");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("cat /proc/self/fd/{fd} > {}", out.display()));
        let mut guard = spawn_guarded_with_fds("cat", &mut command, vec![fd]).unwrap();
        while guard.try_wait().unwrap().is_none() {
            std::thread::yield_now();
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "inherited");
    }

    #[test]
    fn reports_exit_status() {
        let mut guard = spawn_guarded("true", &mut Command::new("true")).unwrap();
        let status = loop {
            if let Some(s) = guard.try_wait().unwrap() {
                break s;
            }
            std::thread::yield_now();
        };
        assert!(status.success());
    }
}
