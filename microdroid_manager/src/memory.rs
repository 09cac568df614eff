//! What the guest's own processes hold in memory when the payload starts: the resident set of
//! PID 1, microdroid_manager and each zipfuse daemon (apexd has exited by then), from
//! `/proc/<pid>/status` (`VmRSS`). Logged once; `make bench` reports it.

use std::path::Path;

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
pub fn rss_kib(proc_root: &Path, pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:   1234 kB` line's number.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `userspace RSS at payload start: init N KiB, microdroid_manager N KiB, zipfuse N KiB
/// (2 daemons); total N KiB`.
pub fn report(zipfuse_pids: &[u32]) -> String {
    let proc_root = Path::new("/proc");
    let init = rss_kib(proc_root, 1).unwrap_or(0);
    let manager = rss_kib(proc_root, std::process::id()).unwrap_or(0);
    let zipfuse: u64 = zipfuse_pids
        .iter()
        .filter_map(|pid| rss_kib(proc_root, *pid))
        .sum();
    format!(
        "userspace RSS at payload start: init {init} KiB, microdroid_manager {manager} KiB, \
         zipfuse {zipfuse} KiB ({} daemons); total {} KiB",
        zipfuse_pids.len(),
        init + manager + zipfuse
    )
}

/// `/proc/uptime`'s two figures: seconds since boot, and seconds the CPUs spent idle (summed
/// over CPUs). Idle time before the payload starts is time the boot waited (on the host, on a
/// device) rather than computed: what running steps side by side could still win on one vCPU.
pub fn parse_uptime(text: &str) -> Option<(f64, f64)> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((fields.next()??, fields.next()??))
}

/// `CPU at payload start: uptime 2.86 s, idle 0.12 s`.
pub fn cpu_report() -> String {
    match std::fs::read_to_string("/proc/uptime")
        .ok()
        .as_deref()
        .and_then(parse_uptime)
    {
        Some((uptime, idle)) => {
            format!("CPU at payload start: uptime {uptime:.2} s, idle {idle:.2} s")
        }
        None => "CPU at payload start: /proc/uptime unreadable".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uptime_and_idle() {
        assert_eq!(parse_uptime("2.86 0.12\n"), Some((2.86, 0.12)));
        assert_eq!(parse_uptime("2.86\n"), None);
        assert_eq!(parse_uptime("x 1\n"), None);
        assert!(cpu_report().contains("idle"));
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tinit\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(2048));
        assert_eq!(parse_vm_rss("Name:\tkthread\n"), None);
        assert!(rss_kib(Path::new("/proc"), std::process::id()).unwrap() > 0);
    }
}
