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
