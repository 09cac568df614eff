//! Gathers what a tombstone shows about a crashed process that waits in its handler: identity,
//! registers (from the crash message), backtrace, memory maps, the end of the log.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::message::{CrashMessage, NGREG};
use crate::unwind::{self, Frame, Mapping, Memory, ProcessMemory};

/// Everything the text shows.
#[derive(Debug, Clone)]
pub struct Tombstone {
    pub build_fingerprint: String,
    /// Seconds and nanoseconds since the epoch.
    pub timestamp: (u64, u32),
    pub process_uptime_secs: u64,
    pub cmdline: Vec<String>,
    pub pid: i32,
    pub tid: i32,
    pub thread_name: String,
    pub uid: u32,
    pub signal: i32,
    pub code: i32,
    pub fault_addr: u64,
    pub gregs: [u64; NGREG],
    pub frames: Vec<Frame>,
    pub maps: Vec<Mapping>,
    /// Threadtime lines, oldest first.
    pub log_tail: Vec<String>,
}

fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The `Uid:` line's real uid of /proc/PID/status.
fn uid_of(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Seconds since the process started (/proc/PID/stat field 22, in clock ticks).
fn uptime_of(stat: &str, system_uptime: &str) -> u64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let start = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|v| v.parse::<u64>().ok());
    let now = system_uptime
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok());
    match (start, now) {
        (Some(start), Some(now)) => (now as u64).saturating_sub(start / ticks),
        _ => 0,
    }
}

/// Collects the tombstone of `pid` (the kernel's view of the sender, not the message's claim),
/// whose thread `message.tid` crashed.
pub fn collect(
    message: &CrashMessage,
    pid: i32,
    build_fingerprint: &str,
    log_tail: Vec<String>,
) -> Tombstone {
    collect_with(
        message,
        pid,
        build_fingerprint,
        log_tail,
        &ProcessMemory(pid),
    )
}

pub fn collect_with(
    message: &CrashMessage,
    pid: i32,
    build_fingerprint: &str,
    log_tail: Vec<String>,
    memory: &dyn Memory,
) -> Tombstone {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let maps = unwind::parse_maps(&read(&proc_dir.join("maps")));
    let cmdline = split_cmdline(&read(&proc_dir.join("cmdline")));
    let thread_name = read(
        &proc_dir
            .join("task")
            .join(message.tid.to_string())
            .join("comm"),
    )
    .trim_end()
    .to_owned();
    let frames = unwind::unwind(&message.gregs, &maps, memory);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Tombstone {
        build_fingerprint: build_fingerprint.to_owned(),
        timestamp: (now.as_secs(), now.subsec_nanos()),
        process_uptime_secs: uptime_of(
            &read(&proc_dir.join("stat")),
            &read(Path::new("/proc/uptime")),
        ),
        cmdline,
        pid,
        tid: message.tid,
        thread_name,
        uid: uid_of(&read(&proc_dir.join("status"))),
        signal: message.signal,
        code: message.code,
        fault_addr: message.fault_addr,
        gregs: message.gregs,
        frames,
        maps,
        log_tail,
    }
}

/// `/proc/PID/cmdline`: NUL-terminated arguments (no empty ones: the last NUL ends the list).
fn split_cmdline(text: &str) -> Vec<String> {
    text.split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        assert_eq!(uid_of("Name:\tx\nUid:\t1000\t1000\t1000\t1000\n"), 1000);
        assert_eq!(uid_of(""), 0);
        // Field 22 (starttime) is the 20th after the command name.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0";
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
        assert_eq!(uptime_of(stat, &format!("{}.5 1.0", 500 / ticks + 7)), 7);
    }

    #[test]
    fn cmdline_arguments_without_the_empty_tail() {
        assert_eq!(
            super::split_cmdline("/system/bin/x\0--flag\0"),
            ["/system/bin/x", "--flag"]
        );
        assert!(super::split_cmdline("").is_empty());
    }
}
