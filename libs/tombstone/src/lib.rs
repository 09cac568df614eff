//! Tombstones: what a guest process that dies on a signal leaves behind, in the text layout of
//! Android's debuggerd, so that the tools and habits of AVF developers apply.
//!
//! The pieces, by process:
//! - [`handler`] runs in the crashing process (microdroid_launcher installs it before it loads
//!   the payload). On SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS or SIGSTKFLT it
//!   sends a [`message::CrashMessage`] (signal, code, fault address, the registers of the
//!   faulting context) to the dumper's socket and waits, then lets the signal kill the process;
//! - [`dump`] runs in the dumper (microdroid_manager, as root): it reads the crashed process's
//!   maps, command line and stack while it waits, unwinds with each module's `.eh_frame`
//!   ([`unwind`]), symbolizes from `.symtab`/`.dynsym`, and renders the text ([`text`]);
//! - the dumper sends the text to the host on vsock port 2000 (AOSP's
//!   VM_TOMBSTONES_SERVICE_PORT), one connection per tombstone, ended by EOF.
//!
//! The message crosses a process boundary: [`message::CrashMessage::parse`] checks it like any
//! untrusted input. docs/formats/tombstone.md describes the formats.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod dump;
pub mod dumper;
pub mod handler;
pub mod message;
pub mod text;
pub mod unwind;

/// The dumper's socket (SOCK_SEQPACKET), where handlers send their crash message.
pub const CRASH_SOCKET: &str = "/dev/socket/tombstoned_crash";
/// The host's vsock port for tombstones (AOSP's VM_TOMBSTONES_SERVICE_PORT).
pub const TOMBSTONE_PORT: u32 = 2000;

/// What the dumper parses from another process, for the fuzz target (fuzz/) and the bad-input
/// corpus test: the bytes as a crash message (rendered into a tombstone if they parse) and as
/// /proc/PID/maps text. It must return, never panic, whatever the input.
pub fn fuzz_entry(data: &[u8]) {
    let maps = unwind::parse_maps(&String::from_utf8_lossy(data));
    if let Ok(m) = message::CrashMessage::parse(data) {
        struct NoMemory;
        impl unwind::Memory for NoMemory {
            fn read_u64(&self, _: u64) -> Option<u64> {
                None
            }
        }
        let frames = unwind::unwind(&m.gregs, &maps, &NoMemory);
        let t = dump::Tombstone {
            build_fingerprint: String::new(),
            timestamp: (0, 0),
            process_uptime_secs: 0,
            cmdline: Vec::new(),
            pid: m.pid,
            tid: m.tid,
            thread_name: String::new(),
            uid: 0,
            signal: m.signal,
            code: m.code,
            fault_addr: m.fault_addr,
            gregs: m.gregs,
            frames,
            maps,
            log_tail: Vec::new(),
        };
        let _ = text::render(&t);
    }
}
