//! Console lines of guest processes, stamped with the time since boot in the kernel's own format
//! (`[    1.234567] tag: text`), so that the console reads as one timeline and boot steps can be
//! timed from the host's console log.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use std::io::Write;

use nix::time::{clock_gettime, ClockId};

/// Seconds since boot, as the kernel prints them.
pub fn uptime() -> f64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Formats one console line.
pub fn format_line(uptime: f64, tag: &str, text: &str) -> String {
    format!("[{uptime:12.6}] {tag}: {text}\n")
}

/// Writes one stamped line in a single `write` so that lines from several processes do not
/// interleave. Errors are ignored: the console is the last place to report anything.
pub fn write_line(out: &mut impl Write, tag: &str, text: &str) {
    let _ = out.write_all(format_line(uptime(), tag, text).as_bytes());
    let _ = out.flush();
}

/// Writes one stamped line to this process's stdout.
pub fn log(tag: &str, text: &str) {
    write_line(&mut std::io::stdout().lock(), tag, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_matches_kernel_timestamps() {
        assert_eq!(format_line(1.5, "init", "hi"), "[    1.500000] init: hi\n");
        assert!(uptime() > 0.0);
        let mut out = Vec::new();
        write_line(&mut out, "t", "x");
        assert!(String::from_utf8(out).unwrap().ends_with("] t: x\n"));
    }
}
