//! The adb wire protocol, device side, as the stock `adb` client (Debian's 29.0.6) speaks it:
//! - [`packet`]: the 24-byte message header and its payload (CNXN, OPEN, OKAY, WRTE, CLSE);
//! - [`service`]: the destination strings an OPEN names (`shell,v2,raw:cmd`, `sync:`, `tcp:N`…);
//! - [`shell`]: shell protocol v2 (`[id u8][len u32 LE][bytes]`), both directions;
//! - [`sync`]: the file sync sub-protocol (STA2/LST2/STAT, SEND, RECV, LIS2/LIST, QUIT).
//!
//! Everything here parses untrusted bytes from the host side of the link: sizes are checked
//! before anything is allocated, and bad input is an error, never a panic. docs/formats/adb.md
//! describes the format.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod packet;
pub mod service;
pub mod shell;
pub mod sync;

pub use packet::{Command, Header, Packet, PacketError};
pub use service::{Service, ServiceError, ShellMode};
