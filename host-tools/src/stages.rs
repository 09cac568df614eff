//! Boot stage timings in the shape of AOSP's MicrodroidBenchmarks: from host clocks and the
//! guest console's uptime stamps.
//!
//! * `vm_starting_time`: vmctl's start until the VMM process runs (disks, identity, backend).
//! * `kernel_boot_time`: guest uptime when PID 1 starts (the kernel's share).
//! * `userspace_boot_time`: PID 1's start until the payload starts (guest uptime stamps).
//! * `boot_time`: vmctl's start until the host hears `notifyPayloadStarted`.
//!
//! The guest stamps need its console (debug level FULL); without it those two stages are absent.

use std::time::Duration;

use serde::Serialize;

/// The console line PID 1 prints first, and the one microdroid_manager prints as the payload
/// starts.
pub const INIT_START_MARKER: &str = "init: Microdroid init starting";
pub const PAYLOAD_START_MARKER: &str = "microdroid_manager: starting payload";

/// Seconds, as AOSP's benchmarks report them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct BootStages {
    pub vm_starting_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_boot_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userspace_boot_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<f64>,
}

/// The uptime stamp (`[   1.234567] ...`) of the first console line containing `marker`.
pub fn console_stamp(console: &str, marker: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(marker))?;
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    inner.trim().parse().ok()
}

/// The stages of one boot: `vmm_running` and `payload_started` are host times since vmctl's
/// start; `console` is what the guest printed.
pub fn boot_stages(
    vmm_running: Duration,
    payload_started: Option<Duration>,
    console: &str,
) -> BootStages {
    let init = console_stamp(console, INIT_START_MARKER);
    let payload = console_stamp(console, PAYLOAD_START_MARKER);
    BootStages {
        vm_starting_time: vmm_running.as_secs_f64(),
        kernel_boot_time: init,
        userspace_boot_time: init.zip(payload).map(|(i, p)| p - i),
        boot_time: payload_started.map(|d| d.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_from_stamps_and_host_times() {
        let console = "[    1.100000] init: Microdroid init starting (kernel 6.1)\n\
                       [    1.900000] microdroid_manager: starting payload /mnt/apk/lib/x86_64/p\n";
        let s = boot_stages(
            Duration::from_millis(250),
            Some(Duration::from_millis(2600)),
            console,
        );
        assert_eq!(s.vm_starting_time, 0.25);
        assert_eq!(s.kernel_boot_time, Some(1.1));
        assert!((s.userspace_boot_time.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(s.boot_time, Some(2.6));
        let none = boot_stages(Duration::from_millis(250), None, "");
        assert_eq!((none.kernel_boot_time, none.boot_time), (None, None));
        assert_eq!(
            serde_json::to_value(none).unwrap(),
            serde_json::json!({"vm_starting_time": 0.25})
        );
    }
}
