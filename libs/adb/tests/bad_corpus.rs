//! The bad-input corpus in `testdata/bad/`: one test per file asserting the specific error.
//! `packet_*` go through `read_packet`, `service_*` through `Service::parse`, `shell_*` through
//! the shell protocol parser, `sync_*` through the sync request reader. Regenerate with
//! `cargo test -p adb --test bad_corpus -- --ignored regenerate`.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use adb::packet::{read_packet, Command, Packet, PacketError, ReadError, MAX_PAYLOAD};
use adb::service::{Service, ServiceError};
use adb::shell::{self, ShellError};
use adb::sync::{self, SyncError};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn good() -> Vec<u8> {
    Packet::new(
        Command::Cnxn,
        0x0100_0001,
        4096,
        b"host::features=shell_v2".to_vec(),
    )
    .encode(true)
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good();
        f(&mut b);
        b
    };
    let sync_req = |id: &[u8; 4], len: u32, path: &[u8]| {
        let mut v = id.to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(path);
        v
    };
    vec![
        ("packet_bad_magic.bin", with(&|b| b[20] ^= 0xff)),
        (
            "packet_unknown_command.bin",
            with(&|b| {
                b[..4].copy_from_slice(b"ZZZZ");
                let not = !u32::from_le_bytes(*b"ZZZZ");
                b[20..24].copy_from_slice(&not.to_le_bytes());
            }),
        ),
        (
            "packet_oversized.bin",
            with(&|b| b[12..16].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes())),
        ),
        (
            "packet_huge_length.bin",
            with(&|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        ("packet_bad_checksum.bin", with(&|b| b[16] ^= 1)),
        ("packet_truncated_payload.bin", with(&|b| b.truncate(30))),
        ("packet_truncated_header.bin", good()[..10].to_vec()),
        ("service_not_utf8.bin", b"shell:\xff\xfe\0".to_vec()),
        ("service_unknown.bin", b"jdwp:1234\0".to_vec()),
        ("service_remote_tcp.bin", b"tcp:10.0.0.1:80\0".to_vec()),
        ("service_port_zero.bin", b"tcp:0\0".to_vec()),
        ("shell_oversized.bin", {
            let mut v = vec![shell::ID_STDIN];
            v.extend_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
            v
        }),
        (
            "shell_device_only_id.bin",
            shell::encode(shell::ID_EXIT, &[3]),
        ),
        (
            "sync_path_too_long.bin",
            sync_req(b"RECV", 1025, &[b'a'; 1025]),
        ),
        ("sync_unknown_request.bin", sync_req(b"NOPE", 1, b"x")),
        ("sync_path_not_utf8.bin", sync_req(b"STA2", 2, b"\xff\xfe")),
        ("sync_truncated_path.bin", sync_req(b"RECV", 100, b"/short")),
        ("sync_oversized_data.bin", {
            let mut v = sync_req(b"SEND", 8, b"/f,33188");
            v.extend_from_slice(b"DATA");
            v.extend_from_slice(&(sync::MAX_DATA + 1).to_le_bytes());
            v
        }),
        ("sync_bad_item_in_send.bin", {
            let mut v = sync_req(b"SEND", 8, b"/f,33188");
            v.extend_from_slice(b"QUIT\0\0\0\0");
            v
        }),
    ]
}

corpus_check::corpus_tests!(dir(), corpus());

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

fn packet_err(name: &str) -> ReadError {
    read_packet(&mut &read(name)[..], MAX_PAYLOAD).expect_err(name)
}

#[test]
fn packets() {
    assert!(read_packet(&mut &good()[..], MAX_PAYLOAD).is_ok());
    assert!(matches!(
        packet_err("packet_bad_magic.bin"),
        ReadError::Packet(PacketError::BadMagic { .. })
    ));
    assert!(matches!(
        packet_err("packet_unknown_command.bin"),
        ReadError::Packet(PacketError::UnknownCommand(_))
    ));
    assert!(matches!(
        packet_err("packet_oversized.bin"),
        ReadError::Packet(PacketError::Oversized { len, max: MAX_PAYLOAD }) if len == MAX_PAYLOAD + 1
    ));
    assert!(matches!(
        packet_err("packet_huge_length.bin"),
        ReadError::Packet(PacketError::Oversized { len: u32::MAX, .. })
    ));
    assert!(matches!(
        packet_err("packet_bad_checksum.bin"),
        ReadError::Packet(PacketError::BadChecksum { .. })
    ));
    assert!(
        matches!(packet_err("packet_truncated_payload.bin"), ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    );
    assert!(
        matches!(packet_err("packet_truncated_header.bin"), ReadError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    );
}

#[test]
fn services() {
    let err = |name: &str| Service::parse(&read(name)).expect_err(name);
    assert_eq!(err("service_not_utf8.bin"), ServiceError::NotUtf8);
    assert_eq!(
        err("service_unknown.bin"),
        ServiceError::Unsupported("jdwp:1234".into())
    );
    assert_eq!(
        err("service_remote_tcp.bin"),
        ServiceError::RemoteHost("10.0.0.1".into())
    );
    assert_eq!(
        err("service_port_zero.bin"),
        ServiceError::BadPort("tcp:0".into())
    );
}

#[test]
fn shell_packets() {
    let err = |name: &str| {
        let mut p = shell::Parser::new(MAX_PAYLOAD);
        p.push(&read(name));
        p.next_packet().expect_err(name)
    };
    assert_eq!(
        err("shell_oversized.bin"),
        ShellError::Oversized {
            len: MAX_PAYLOAD + 1,
            max: MAX_PAYLOAD
        }
    );
    assert_eq!(
        err("shell_device_only_id.bin"),
        ShellError::UnknownId(shell::ID_EXIT)
    );
}

#[test]
fn sync_requests() {
    let err = |name: &str| {
        let bytes = read(name);
        let mut r = &bytes[..];
        match sync::read_request(&mut r) {
            Ok(Some(sync::Request::Send { .. })) => sync::read_send_item(&mut r).expect_err(name),
            Ok(other) => panic!("{name}: parsed as {other:?}"),
            Err(e) => e,
        }
    };
    assert!(matches!(
        err("sync_path_too_long.bin"),
        SyncError::PathTooLong(1025)
    ));
    assert!(matches!(
        err("sync_unknown_request.bin"),
        SyncError::UnknownRequest(_)
    ));
    assert!(matches!(
        err("sync_path_not_utf8.bin"),
        SyncError::PathNotUtf8
    ));
    assert!(matches!(err("sync_truncated_path.bin"), SyncError::Io(_)));
    assert!(
        matches!(err("sync_oversized_data.bin"), SyncError::OversizedData(n) if n == sync::MAX_DATA + 1)
    );
    assert!(matches!(
        err("sync_bad_item_in_send.bin"),
        SyncError::UnexpectedInSend(_)
    ));
}

#[test]
fn fuzz_entry_point_survives_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        adb::fuzz_entry(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    adb::fuzz_entry(&good());
}
