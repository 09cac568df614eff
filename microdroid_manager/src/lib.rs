//! microdroid_manager, the guest's payload manager.
//!
//! Today's flow: load the payload config, tell the host the payload is starting, run it, report
//! its exit (or why it could not run), exit so that init powers the VM off. Later steps slot in
//! before `run_payload`: the RPC link to the host (replacing the status port of `host_link`),
//! the instance partition, APK and APEX verification, and zipfuse.

pub mod error;
pub mod host_link;
pub mod payload;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::error::{failure_class, MicrodroidError};
use crate::host_link::{HostLink, SerialHostLink};

/// The payload config on the system partition (until APK payloads bring theirs).
pub const PAYLOAD_CONFIG_PATH: &str = "/system/etc/vm_config.json";
/// Kernel command line flag set by the host for debuggable VMs.
pub const DEBUGGABLE_FLAG: &str = "androidboot.microdroid.debuggable=1";

pub fn run() -> ExitCode {
    log("starting");
    let mut host = SerialHostLink::open();
    match try_run(&mut host) {
        Ok(code) => {
            log(&format!("payload exited with status {code}"));
            host.notify_payload_finished(code);
            ExitCode::SUCCESS
        }
        Err(err) => {
            let class = failure_class(&err);
            log(&format!("failed: {err:#}"));
            host.notify_error(class, &format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn try_run(host: &mut dyn HostLink) -> Result<i32> {
    let debuggable = is_debuggable(Path::new("/proc/cmdline"));
    let config = payload::load_config(Path::new(PAYLOAD_CONFIG_PATH))?;
    let task = config.task().map_err(|e| MicrodroidError::PayloadInvalidConfig(e.to_string()))?;
    host.notify_payload_started();
    payload::run_task(task, debuggable).context("running the payload")
}

/// Whether the host started this VM as debuggable (payload output goes to the console).
pub fn is_debuggable(cmdline: &Path) -> bool {
    std::fs::read_to_string(cmdline)
        .map(|text| text.split_whitespace().any(|word| word == DEBUGGABLE_FLAG))
        .unwrap_or(false)
}

/// Logs a line. microdroid_manager runs as an init service with `console`: init stamps and tags
/// each line of its stdout, so the line is printed as is.
pub(crate) fn log(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debuggable_flag_from_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        std::fs::write(&path, "console=ttyS0 androidboot.microdroid.debuggable=1 quiet\n").unwrap();
        assert!(is_debuggable(&path));
        std::fs::write(&path, "androidboot.microdroid.debuggable=0\n").unwrap();
        assert!(!is_debuggable(&path));
        assert!(!is_debuggable(&dir.path().join("missing")));
    }
}
