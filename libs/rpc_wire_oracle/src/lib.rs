//! The test oracle of the RPC binder conformance suites (`libs/rpcbinder`, `libs/vm_service`,
//! `libs/vm_payload_service`): the bytes libbinder puts on the wire, built from its sources
//! (AOSP frameworks/native `libs/binder/RpcWireFormat.h`, `RpcState.cpp`, `Parcel.cpp`; protocol
//! v1) *without* using `rpcbinder`'s encoder, so that a bug there cannot hide in the expected
//! values. Also a scripted libbinder server for the session setup, to test clients against.
//!
//! Vectors are hex strings; whitespace in them is ignored. This is test support: a mismatch
//! panics, which fails the calling test where it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};

/// DEC_STRONG of the root object {3,0} by 1, as libbinder sends it before its reply.
pub const DEC_STRONG_ROOT_1: &str =
    "02000000 10000000 0000000000000000 03000000 00000000 01000000 00000000";
/// `binder::Status` header of a successful reply (EX_NONE).
pub const STATUS_OK: &str = "00000000";

/// Bytes of a hex string (whitespace and other non-hex characters ignored).
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A String16 in a parcel: length, UTF-16LE units, NUL, padded to 4 bytes.
pub fn s16(s: &str) -> String {
    let units: Vec<u16> = s.encode_utf16().collect();
    let mut out = hex(&(units.len() as u32).to_le_bytes());
    for u in &units {
        out += &hex(&u.to_le_bytes());
    }
    out += "0000";
    if units.len() & 1 == 0 {
        out += "0000";
    }
    out
}

pub fn le32(v: i32) -> String {
    hex(&v.to_le_bytes())
}

/// A two-way TRANSACT to the root object {3,0} of interface `descriptor` (the parcel starts
/// with the interface token), protocol v1.
pub fn txn(descriptor: &str, code: u32, args: &str) -> String {
    let parcel = format!("{}{}", s16(descriptor), args);
    let len = unhex(&parcel).len();
    format!(
        "00000000 {} 0000000000000000 0300000000000000 {} 00000000 0000000000000000 {} 000000000000000000000000 {parcel}",
        le32((40 + len) as i32),
        le32(code as i32),
        le32(len as i32)
    )
}

/// A REPLY carrying `parcel`.
pub fn reply(parcel: &str) -> String {
    let len = unhex(parcel).len();
    format!(
        "01000000 {} 0000000000000000 00000000 {} 000000000000000000000000 {parcel}",
        le32((20 + len) as i32),
        le32(len as i32)
    )
}

/// A REPLY with a transport error status and no parcel.
pub fn reply_error(status: i32) -> String {
    format!(
        "01000000 14000000 0000000000000000 {} 00000000 000000000000000000000000",
        le32(status)
    )
}

/// A `binder::Status` header for an AIDL exception with a message.
pub fn exception(code: i32, msg: &str) -> String {
    format!("{} {} 00000000", le32(code), s16(msg))
}

/// Reads exactly the bytes of `want` and compares them.
pub fn expect(s: &mut impl Read, want: &str) {
    let want = unhex(want);
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(hex(&got), hex(&want));
}

/// A libbinder server's side of a new session as the NDK/Rust client drives it: connection
/// header and init (v1), GET_MAX_THREADS, GET_SESSION_ID, GET_ROOT, then
/// INTERFACE_TRANSACTION answered with `descriptor`.
pub fn handshake_peer(s: &mut (impl Read + Write), descriptor: &str) {
    let mut b = [0u8; 24];
    s.read_exact(&mut b).unwrap();
    assert_eq!(hex(&b), "010000000000000000000000000000006363690000000000");
    s.write_all(&unhex("01000000 00000000")).unwrap();
    for (code, rep) in [
        (1u8, reply("01000000")),
        (2, reply(&format!("20000000 {}", "77".repeat(32)))),
        (0, reply("01000000 03000000 00000000 0c000000")),
    ] {
        expect(s, &format!("00000000 28000000 0000000000000000 0000000000000000 {code:02x}000000 00000000 0000000000000000 00000000 000000000000000000000000"));
        s.write_all(&unhex(&rep)).unwrap();
    }
    expect(s, "00000000 28000000 0000000000000000 0300000000000000 46544e5f 00000000 0000000000000000 00000000 000000000000000000000000");
    s.write_all(&unhex(DEC_STRONG_ROOT_1)).unwrap();
    s.write_all(&unhex(&reply(&s16(descriptor)))).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(s16("oops"), "040000006f006f007000730000000000");
        assert_eq!(s16("abc"), "030000006100620063000000");
        assert_eq!(unhex("01 0a ff"), [1, 10, 255]);
        // RpcWireHeader (16) + RpcWireTransaction (40) + the token "x" as String16 (8).
        assert_eq!(unhex(&txn("x", 1, "")).len(), 16 + 40 + 8);
    }
}
