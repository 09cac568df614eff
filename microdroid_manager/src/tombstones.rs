//! Tombstone export (AOSP's `export_tombstones`): when the payload config asks for it (by
//! default in debuggable VMs only, as AOSP), microdroid_manager serves the crash socket that
//! the launcher's crash handler reports to, dumps the crashed process while it waits, puts the
//! tombstone's first lines in the log's crash buffer (priority F, tag DEBUG, as debuggerd) and
//! sends the whole text to the host on vsock port 2000, one connection per tombstone, ended by
//! EOF (what AOSP's crash_dump does in Microdroid).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use android_log::{LogId, Logger};
use anyhow::{Context, Result};
use payload_config::VmPayloadConfig;
use rpcbinder::vsock::VsockStream;
use tombstone::dumper::Dumper;

use crate::log;

/// The host's CID.
const HOST_CID: u32 = 2;
/// Lines of the log a tombstone ends with.
const LOG_TAIL_LINES: usize = 50;

/// AOSP's `should_export_tombstones`: the config's choice, else whether the VM is debuggable.
pub fn should_export(config: &VmPayloadConfig, debuggable: bool) -> bool {
    config.export_tombstones.unwrap_or(debuggable)
}

fn fingerprint() -> String {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "microdroid/microdroid_x86_64/{release}:{}/0:debug",
        env!("CARGO_PKG_VERSION")
    )
}

fn log_tail() -> Vec<String> {
    android_log::read_tail(
        Path::new("/dev/socket"),
        &[LogId::Main, LogId::System],
        LOG_TAIL_LINES,
    )
    .map(|entries| {
        entries
            .iter()
            .flat_map(|e| {
                android_log::format_entry(e, android_log::Format::ThreadTime)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    })
    .unwrap_or_default()
}

fn send_to_host(text: &str) -> Result<()> {
    let mut stream = VsockStream::connect(
        HOST_CID,
        tombstone::TOMBSTONE_PORT,
        Some(Duration::from_secs(5)),
    )
    .context("connecting to the host's tombstone port")?;
    stream
        .write_all(text.as_bytes())
        .context("sending the tombstone")?;
    Ok(())
}

/// Dumps not yet sent to the host, and the signal that the count went down.
static EXPORTS_IN_FLIGHT: (std::sync::Mutex<u32>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Waits (at most `timeout`) until every dump taken so far has been sent to the host: a crashed
/// payload's process is released only once its dump is counted here, so microdroid_manager,
/// seeing the payload die, waits for its tombstone before it reports and the VM powers off.
pub fn wait_for_exports(timeout: Duration) {
    let (count, changed) = &EXPORTS_IN_FLIGHT;
    let guard = count.lock().unwrap_or_else(|p| p.into_inner());
    let _ = changed.wait_timeout_while(guard, timeout, |n| *n > 0);
}

fn exports_in_flight(delta: i32) {
    let (count, changed) = &EXPORTS_IN_FLIGHT;
    let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
    *n = n.saturating_add_signed(delta);
    changed.notify_all();
}

/// Serves the crash socket on a thread of its own for the rest of the VM's life.
pub fn start() -> Result<()> {
    let dumper = Dumper::bind(Path::new(tombstone::CRASH_SOCKET))
        .with_context(|| format!("listening on {}", tombstone::CRASH_SOCKET))?;
    let fingerprint = fingerprint();
    std::thread::spawn(move || {
        let crash_log = Logger::new(LogId::Crash);
        loop {
            match dumper.next(&fingerprint, &log_tail) {
                Ok(mut dumped) => {
                    // Counted before the process is let go (and dies).
                    exports_in_flight(1);
                    dumped.release();
                    // debuggerd logs the header, signal, registers and backtrace.
                    for line in dumped
                        .text
                        .lines()
                        .take_while(|l| !l.starts_with("memory map"))
                    {
                        crash_log.log(android_log::FATAL, "DEBUG", line);
                    }
                    let signal = tombstone::text::signal_name(dumped.signal);
                    match send_to_host(&dumped.text) {
                        Ok(()) => log(&format!(
                            "tombstone of pid {} ({signal}) sent to the host ({} bytes)",
                            dumped.pid,
                            dumped.text.len()
                        )),
                        Err(e) => log(&format!(
                            "tombstone of pid {} ({signal}): {e:#}",
                            dumped.pid
                        )),
                    }
                    exports_in_flight(-1);
                }
                Err(e) => log(&format!("crash socket: {e}")),
            }
        }
    });
    Ok(())
}
