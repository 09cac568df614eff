//! Loading the payload config and running the payload's task.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use payload_config::{Task, TaskType, VmPayloadConfig};

use crate::error::MicrodroidError;

pub fn load_config(path: &Path) -> Result<VmPayloadConfig> {
    let bytes = std::fs::read(path)
        .map_err(|e| MicrodroidError::PayloadInvalidConfig(format!("cannot read {}: {e}", path.display())))?;
    VmPayloadConfig::from_json(&bytes)
        .map_err(|e| MicrodroidError::PayloadInvalidConfig(format!("{}: {e}", path.display())).into())
}

/// Runs the task and waits for it. Returns its exit code; death by a signal is an error, as in
/// AOSP ("Payload exited due to signal: N (SIGxxx)").
pub fn run_task(task: &Task, debuggable: bool) -> Result<i32> {
    if task.type_ == TaskType::MicrodroidLauncher {
        return Err(MicrodroidError::PayloadInvalidConfig(format!(
            "microdroid_launcher task {:?} needs an APK payload, and this VM has none",
            task.command
        ))
        .into());
    }
    let mut command = Command::new(&task.command);
    command.args(&task.args).stdin(Stdio::null());
    // AOSP sends payload stdio to /dev/null and its logs to the log device when debuggable; here
    // the payload's output is the log, forwarded to the console only in debuggable VMs.
    if debuggable {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    crate::log(&format!("starting payload {}", task.command));
    let mut child = command.spawn().with_context(|| format!("starting payload {}", task.command))?;
    let forwarders: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| thread::spawn(move || forward_to_console(stream)))
    .collect();
    let status = child.wait().context("waiting for the payload")?;
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    if let Some(code) = status.code() {
        return Ok(code);
    }
    match status.signal() {
        Some(signo) => {
            let name = Signal::try_from(signo).map(|s| s.as_str()).unwrap_or("unknown signal");
            bail!("Payload exited due to signal: {signo} ({name})")
        }
        None => bail!("payload ended with status {status:?}"),
    }
}

/// Copies payload output to the console line by line, tagged `payload`. Stops at end of file
/// (the payload exited) or at the first read error.
fn forward_to_console(stream: Box<dyn Read + Send>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let mut console = std::fs::OpenOptions::new().write(true).open("/dev/console");
                match console.as_mut() {
                    Ok(out) => guest_console::write_line(out, "payload", text.trim_end_matches(['\n', '\r'])),
                    Err(_) => guest_console::log("payload", text.trim_end_matches(['\n', '\r'])),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(command: &str, args: &[&str]) -> Task {
        Task { type_: TaskType::Executable, command: command.into(), args: args.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn reports_exit_codes_and_signals() {
        assert_eq!(run_task(&task("/bin/sh", &["-c", "exit 0"]), false).unwrap(), 0);
        assert_eq!(run_task(&task("/bin/sh", &["-c", "exit 7"]), true).unwrap(), 7);
        let err = run_task(&task("/bin/sh", &["-c", "kill -9 $$"]), false).unwrap_err();
        assert_eq!(err.to_string(), "Payload exited due to signal: 9 (SIGKILL)");
        let err = run_task(&task("/nonexistent/payload", &[]), false).unwrap_err();
        assert!(format!("{err:#}").contains("starting payload /nonexistent/payload"));
    }

    #[test]
    fn bad_configs_are_invalid_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_config(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(missing.downcast_ref(), Some(MicrodroidError::PayloadInvalidConfig(_))));
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{").unwrap();
        let bad = load_config(&path).unwrap_err();
        assert!(matches!(bad.downcast_ref(), Some(MicrodroidError::PayloadInvalidConfig(_))));
        let launcher = Task { type_: TaskType::MicrodroidLauncher, command: "lib.so".into(), args: vec![] };
        let err = run_task(&launcher, false).unwrap_err();
        assert!(matches!(err.downcast_ref(), Some(MicrodroidError::PayloadInvalidConfig(_))));
    }
}
