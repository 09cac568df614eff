//! Edges the mutation run (`make mutants`) found untested: size limits at their exact value,
//! interrupted reads, every sync request kind, and the encoders' bytes.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{self, Read};

use adb::packet::{read_packet, ReadError, MAX_PAYLOAD};
use adb::shell::{self, ShellError};
use adb::sync::{self, Request, SendItem, Stat, SyncError, MAX_DATA, MAX_PATH};
use adb::{Command, Packet, Service};

/// A reader that fails once with `kind`, then reads `rest`.
struct Flaky<'a> {
    error: Option<io::ErrorKind>,
    rest: &'a [u8],
}

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.error.take() {
            return Err(kind.into());
        }
        self.rest.read(buf)
    }
}

fn request(id: u32, path: &[u8]) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path);
    out
}

#[test]
fn interrupted_reads_are_retried_other_errors_returned() {
    let packet = Packet::new(Command::Okay, 1, 2, Vec::new()).encode(true);
    let mut r = Flaky {
        error: Some(io::ErrorKind::Interrupted),
        rest: &packet,
    };
    assert_eq!(read_packet(&mut r, MAX_PAYLOAD).unwrap().arg0, 1);
    let mut r = Flaky {
        error: Some(io::ErrorKind::Other),
        rest: &packet,
    };
    assert!(matches!(
        read_packet(&mut r, MAX_PAYLOAD),
        Err(ReadError::Io(_))
    ));

    let stat = request(sync::STAT, b"/x");
    let mut r = Flaky {
        error: Some(io::ErrorKind::Interrupted),
        rest: &stat,
    };
    assert!(matches!(
        sync::read_request(&mut r).unwrap(),
        Some(Request::Stat { .. })
    ));
    let mut r = Flaky {
        error: Some(io::ErrorKind::Other),
        rest: &stat,
    };
    assert!(matches!(sync::read_request(&mut r), Err(SyncError::Io(_))));
    // A stream that ends inside the 8-byte request header is an error, not a clean end.
    let mut r: &[u8] = &stat[..5];
    assert!(matches!(sync::read_request(&mut r), Err(SyncError::Io(_))));
    let mut r: &[u8] = &[];
    assert!(sync::read_request(&mut r).unwrap().is_none());
}

#[test]
fn every_request_kind_and_the_exact_limits() {
    let path_at_limit = vec![b'p'; MAX_PATH as usize];
    let mut r: &[u8] = &request(sync::RECV, &path_at_limit);
    assert!(matches!(
        sync::read_request(&mut r).unwrap(),
        Some(Request::Recv { path }) if path.len() == MAX_PATH as usize
    ));
    let mut r: &[u8] = &request(sync::RECV, &vec![b'p'; MAX_PATH as usize + 1]);
    assert!(matches!(
        sync::read_request(&mut r),
        Err(SyncError::PathTooLong(n)) if n == MAX_PATH + 1
    ));
    for id in [sync::LIST, sync::LIS2] {
        let mut r: &[u8] = &request(id, b"/d");
        assert_eq!(
            sync::read_request(&mut r).unwrap(),
            Some(Request::List {
                id,
                path: "/d".into()
            })
        );
    }
    // SEND modes: octal with a leading 0, hex, decimal, and the single digit "0".
    for (spec, mode) in [
        ("/f,0755", 0o755),
        ("/f,0x1ed", 0o755),
        ("/f,493", 0o755),
        ("/f,0", 0),
    ] {
        let mut r: &[u8] = &request(sync::SEND, spec.as_bytes());
        assert_eq!(
            sync::read_request(&mut r).unwrap(),
            Some(Request::Send {
                path: "/f".into(),
                mode
            }),
            "{spec}"
        );
    }
    // DATA chunks: exactly MAX_DATA is read, one byte more refused.
    let mut chunk = sync::encode_data(&vec![7u8; MAX_DATA as usize]);
    let mut r: &[u8] = &chunk;
    assert!(matches!(
        sync::read_send_item(&mut r).unwrap(),
        SendItem::Data(d) if d.len() == MAX_DATA as usize
    ));
    chunk[4..8].copy_from_slice(&(MAX_DATA + 1).to_le_bytes());
    let mut r: &[u8] = &chunk;
    assert!(matches!(
        sync::read_send_item(&mut r),
        Err(SyncError::OversizedData(n)) if n == MAX_DATA + 1
    ));
    // Shell packets: exactly the parser's limit is taken, one more refused.
    let mut parser = shell::Parser::new(16);
    parser.push(&shell::encode(shell::ID_STDIN, &[1u8; 16]));
    assert_eq!(parser.next_packet().unwrap().unwrap().1.len(), 16);
    let mut parser = shell::Parser::new(16);
    parser.push(&shell::encode(shell::ID_STDIN, &[1u8; 17]));
    assert!(matches!(
        parser.next_packet(),
        Err(ShellError::Oversized { len: 17, max: 16 })
    ));
    assert_eq!(Service::parse(b"unroot:\0").unwrap(), Service::Unroot);
}

#[test]
fn encoders_write_adbs_bytes() {
    let failed = Stat::error(-2);
    assert_eq!(failed.error, 2);
    assert_eq!(failed.mode, 0);
    // A failed STAT is all zeros after its id; a successful one carries mode, size, mtime.
    let mut ok = Stat {
        mode: 0o100644,
        size: 5,
        mtime: 9,
        ..Stat::default()
    };
    let v1 = ok.encode_v1();
    assert_eq!(&v1[4..8], &0o100644u32.to_le_bytes());
    assert_eq!(&v1[8..12], &5u32.to_le_bytes());
    assert_eq!(&v1[12..16], &9u32.to_le_bytes());
    ok.error = 2;
    assert_eq!(&ok.encode_v1()[4..], &[0u8; 12]);
    assert_eq!(
        sync::encode_fail("no"),
        [&sync::FAIL.to_le_bytes()[..], &2u32.to_le_bytes(), b"no"].concat()
    );
}
