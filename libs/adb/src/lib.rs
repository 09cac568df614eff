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

/// Everything bytes from the host side reach, for the fuzz target (fuzz/) and the bad-input
/// corpus test: messages until the stream ends or fails, each payload as a service name, shell
/// protocol packets, sync requests and a banner; the whole input also as a raw shell and sync
/// stream. It must return (never panic, never hang) whatever the input.
pub fn fuzz_entry(data: &[u8]) {
    fn stream_views(bytes: &[u8]) {
        let _ = Service::parse(bytes);
        let _ = packet::banner_features(bytes);
        let mut parser = shell::Parser::new(packet::MAX_PAYLOAD);
        parser.push(bytes);
        while let Ok(Some(_)) = parser.next_packet() {}
        let _ = shell::parse_window_size(bytes);
        let mut r = bytes;
        while let Ok(Some(request)) = sync::read_request(&mut r) {
            if let sync::Request::Send { .. } = request {
                while let Ok(sync::SendItem::Data(_)) = sync::read_send_item(&mut r) {}
            }
        }
    }
    let mut r = data;
    while let Ok(p) = packet::read_packet(&mut r, packet::MAX_PAYLOAD) {
        stream_views(&p.data);
    }
    stream_views(data);
}
