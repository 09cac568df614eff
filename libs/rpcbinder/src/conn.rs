//! Command framing over a byte stream: encoding helpers and a reader of incoming commands.

use std::io::{ErrorKind, Read, Write};

use crate::error::Error;
use crate::parcel::{Parcel, TYPE_BINDER, TYPE_NATIVE_FILE_DESCRIPTOR};
use crate::status::StatusCode;
use crate::wire::{
    split_parcel, Address, Command, DecStrong, ReplyHeader, TransactionHeader, WireHeader,
    PROTOCOL_VERSION_1, PROTOCOL_VERSION_2,
};

/// A received TRANSACT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingTransaction {
    /// Fixed header.
    pub header: TransactionHeader,
    /// Parcel data.
    pub data: Vec<u8>,
    /// Object table (v1+; only binders, at v2).
    pub objects: Vec<u32>,
}

/// A received REPLY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingReply {
    /// Transport status.
    pub status: StatusCode,
    /// Parcel data (empty when the status is not OK).
    pub data: Vec<u8>,
    /// Object table.
    pub objects: Vec<u32>,
}

/// One received command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// TRANSACT.
    Transact(IncomingTransaction),
    /// REPLY.
    Reply(IncomingReply),
    /// DEC_STRONG.
    DecStrong(DecStrong),
}

/// Fills `buf`, returning [`Error::ConnectionClosed`] if the stream ends before the first byte
/// and an `UnexpectedEof` I/O error if it ends later.
pub(crate) fn read_exact_or_closed<S: Read>(stream: &mut S, buf: &mut [u8]) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Err(Error::ConnectionClosed),
            Ok(0) => return Err(Error::Io(ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

/// Fills `buf` from a stream with a read timeout, waiting without limit while nothing has
/// arrived (a server between commands) but failing with [`Error::Stalled`] once the peer has
/// started and then stops for longer than the timeout.
fn read_exact_idle_ok<S: Read>(stream: &mut S, buf: &mut [u8], idle: bool) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 && idle => return Err(Error::ConnectionClosed),
            Ok(0) => return Err(Error::Io(ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !(idle && filled == 0) {
                    return Err(Error::Stalled {
                        received: filled,
                        expected: buf.len(),
                    });
                }
            }
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

/// [`read_command`] for a server waiting for its client's next command: with a read timeout
/// on the stream, an idle client may take as long as it likes, but a command must arrive whole
/// within the timeout of its first byte (else [`Error::Stalled`]).
pub fn read_next_command<S: Read>(stream: &mut S, version: u32) -> Result<Incoming, Error> {
    let mut hb = [0u8; WireHeader::SIZE];
    read_exact_idle_ok(stream, &mut hb, true)?;
    let header = WireHeader::decode(&hb, version)?;
    let mut body = vec![0u8; header.body_size as usize];
    if !body.is_empty() {
        read_exact_idle_ok(stream, &mut body, false)?;
    }
    parse_command(header.command, &body, version)
}

/// Objects in a received parcel: binders at v2, fds only where the session allows them
/// (Unix sockets with fd mode UNIX; never over vsock). Whether the fds themselves came is the
/// receiver's check (it counts the fd objects against the fds received).
fn check_objects(data: &[u8], objects: &[u32], version: u32, allow_fds: bool) -> Result<(), Error> {
    for &off in objects {
        let o = off as usize; // split_parcel checked o + 4 < data.len()
        let ty = i32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        match ty {
            TYPE_BINDER if version >= PROTOCOL_VERSION_2 => {}
            TYPE_NATIVE_FILE_DESCRIPTOR if allow_fds => {}
            _ => return Err(Error::ObjectsNotAllowed(objects.len())),
        }
    }
    Ok(())
}

/// Parses a command body (after its header) at protocol `version`.
pub fn parse_command(command: Command, body: &[u8], version: u32) -> Result<Incoming, Error> {
    parse_command_with(command, body, version, false)
}

/// Parses a command body; `allow_fds` admits fd objects in the object table (their count
/// must then match the fds received, which the caller checks).
pub fn parse_command_with(
    command: Command,
    body: &[u8],
    version: u32,
    allow_fds: bool,
) -> Result<Incoming, Error> {
    match command {
        Command::Transact => {
            let header = TransactionHeader::decode(body)?;
            let rest = &body[TransactionHeader::SIZE..];
            let (data, objects) = split_parcel(rest, header.parcel_data_size, version)?;
            check_objects(data, &objects, version, allow_fds)?;
            Ok(Incoming::Transact(IncomingTransaction {
                header,
                data: data.to_vec(),
                objects,
            }))
        }
        Command::Reply => {
            let rh = ReplyHeader::decode(body, version)?;
            let rest = &body[ReplyHeader::size(version)..];
            if rh.status != 0 {
                return Ok(Incoming::Reply(IncomingReply {
                    status: StatusCode(rh.status),
                    data: Vec::new(),
                    objects: Vec::new(),
                }));
            }
            let (data, objects) = split_parcel(rest, rh.parcel_data_size, version)?;
            check_objects(data, &objects, version, allow_fds)?;
            Ok(Incoming::Reply(IncomingReply {
                status: StatusCode::OK,
                data: data.to_vec(),
                objects,
            }))
        }
        Command::DecStrong => Ok(Incoming::DecStrong(DecStrong::decode(body)?)),
    }
}

/// Reads and parses one command. Bodies are bounded by the per-version limit before any
/// allocation.
pub fn read_command<S: Read>(stream: &mut S, version: u32) -> Result<Incoming, Error> {
    let mut hb = [0u8; WireHeader::SIZE];
    read_exact_or_closed(stream, &mut hb)?;
    let header = WireHeader::decode(&hb, version)?;
    let mut body = vec![0u8; header.body_size as usize];
    if !body.is_empty() {
        stream.read_exact(&mut body)?;
    }
    parse_command(header.command, &body, version)
}

/// The object table: fds at v1+, binders too at v2, sorted by offset.
fn object_table(parcel: &Parcel, version: u32) -> Vec<u8> {
    let mut offsets: Vec<u32> = Vec::new();
    if version >= PROTOCOL_VERSION_1 {
        offsets.extend_from_slice(parcel.fd_offsets());
    }
    if version >= PROTOCOL_VERSION_2 {
        offsets.extend_from_slice(parcel.binder_offsets());
    }
    offsets.sort_unstable();
    offsets.iter().flat_map(|o| o.to_le_bytes()).collect()
}

fn frame(command: Command, body: Vec<u8>, version: u32) -> Result<Vec<u8>, Error> {
    let size = u32::try_from(body.len()).map_err(|_| Error::OutgoingTooLarge(body.len()))?;
    if size > crate::wire::max_body_size(version) {
        return Err(Error::OutgoingTooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(WireHeader::SIZE + body.len());
    out.extend_from_slice(
        &WireHeader {
            command,
            body_size: size,
        }
        .encode(),
    );
    out.extend_from_slice(&body);
    Ok(out)
}

/// Bytes of a TRANSACT command whose parcel data is `data_override` (the parcel with its
/// binder addresses filled in) when given.
pub(crate) fn encode_transact_data(
    version: u32,
    address: Address,
    code: u32,
    flags: u32,
    async_number: u64,
    parcel: &Parcel,
    data_override: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let data_size =
        u32::try_from(parcel.len()).map_err(|_| Error::OutgoingTooLarge(parcel.len()))?;
    let th = TransactionHeader {
        address,
        code,
        flags,
        async_number,
        parcel_data_size: if version >= PROTOCOL_VERSION_1 {
            data_size
        } else {
            0
        },
    };
    let mut body = th.encode().to_vec();
    body.extend_from_slice(data_override.unwrap_or(parcel.data()));
    body.extend_from_slice(&object_table(parcel, version));
    frame(Command::Transact, body, version)
}

/// Bytes of a TRANSACT command.
pub fn encode_transact(
    version: u32,
    address: Address,
    code: u32,
    flags: u32,
    async_number: u64,
    parcel: &Parcel,
) -> Result<Vec<u8>, Error> {
    encode_transact_data(version, address, code, flags, async_number, parcel, None)
}

/// Bytes of a REPLY command. A non-OK status carries no parcel.
pub fn encode_reply(version: u32, status: StatusCode, parcel: &Parcel) -> Result<Vec<u8>, Error> {
    encode_reply_data(version, status, parcel, None)
}

/// As [`encode_reply`], with the parcel's data replaced by `data_override` when given.
pub(crate) fn encode_reply_data(
    version: u32,
    status: StatusCode,
    parcel: &Parcel,
    data_override: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let empty = Parcel::new();
    let parcel = if status == StatusCode::OK {
        parcel
    } else {
        &empty
    };
    let data_size =
        u32::try_from(parcel.len()).map_err(|_| Error::OutgoingTooLarge(parcel.len()))?;
    let data = match data_override {
        Some(d) if status == StatusCode::OK => d,
        _ => parcel.data(),
    };
    let mut body = ReplyHeader {
        status: status.0,
        parcel_data_size: data_size,
    }
    .encode(version);
    body.extend_from_slice(data);
    body.extend_from_slice(&object_table(parcel, version));
    frame(Command::Reply, body, version)
}

/// Bytes of a DEC_STRONG command.
pub fn encode_dec_strong(address: Address, amount: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(WireHeader::SIZE + DecStrong::SIZE);
    out.extend_from_slice(
        &WireHeader {
            command: Command::DecStrong,
            body_size: DecStrong::SIZE as u32,
        }
        .encode(),
    );
    out.extend_from_slice(&DecStrong { address, amount }.encode());
    out
}

/// Writes `bytes` in one `write_all` and flushes.
pub(crate) fn send<S: Write>(stream: &mut S, bytes: &[u8]) -> Result<(), Error> {
    stream.write_all(bytes)?;
    stream.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{Address, PROTOCOL_VERSION_1};
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn command() -> Vec<u8> {
        let mut parcel = Parcel::new();
        parcel.write_i32(7);
        encode_transact(PROTOCOL_VERSION_1, Address::ZERO, 1, 0, 0, &parcel).unwrap()
    }

    #[test]
    fn a_server_waits_for_an_idle_client_without_limit() {
        let (mut client, mut server) = UnixStream::pair().unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let bytes = command();
        let writer = std::thread::spawn(move || {
            // Idle for several read timeouts, then a whole command.
            std::thread::sleep(Duration::from_millis(300));
            client.write_all(&bytes).unwrap();
            client
        });
        assert!(matches!(
            read_next_command(&mut server, PROTOCOL_VERSION_1).unwrap(),
            Incoming::Transact(_)
        ));
        drop(writer.join().unwrap());
        assert!(matches!(
            read_next_command(&mut server, PROTOCOL_VERSION_1),
            Err(Error::ConnectionClosed)
        ));
    }

    #[test]
    fn a_client_that_stops_inside_a_command_is_stalled() {
        let bytes = command();
        for cut in [8, WireHeader::SIZE + 2] {
            let (mut client, mut server) = UnixStream::pair().unwrap();
            server
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            client.write_all(&bytes[..cut]).unwrap();
            let err = read_next_command(&mut server, PROTOCOL_VERSION_1).unwrap_err();
            let expected = if cut < WireHeader::SIZE {
                (cut, WireHeader::SIZE)
            } else {
                (cut - WireHeader::SIZE, bytes.len() - WireHeader::SIZE)
            };
            match err {
                Error::Stalled {
                    received,
                    expected: e,
                } => assert_eq!((received, e), expected),
                other => panic!("expected Stalled, got {other:?}"),
            }
            assert!(err.is_protocol_violation());
            drop(client);
        }
    }

    /// A reader that plays back a script of reads: data chunks and errors, then end of stream.
    struct Script(std::collections::VecDeque<std::io::Result<Vec<u8>>>);

    impl Script {
        fn new(steps: Vec<std::io::Result<Vec<u8>>>) -> Self {
            Script(steps.into())
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(Err(e)) => Err(e),
                Some(Ok(mut chunk)) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(Ok(chunk.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    fn err(kind: ErrorKind) -> std::io::Result<Vec<u8>> {
        Err(kind.into())
    }

    fn io_kind(r: Result<(), Error>) -> Option<ErrorKind> {
        match r {
            Err(Error::Io(e)) => Some(e.kind()),
            _ => None,
        }
    }

    #[test]
    fn reads_retry_interrupts_and_tell_a_close_from_a_cut() {
        let mut buf = [0u8; 4];
        let mut s = Script::new(vec![
            Ok(vec![1]),
            err(ErrorKind::Interrupted),
            Ok(vec![2, 3, 4]),
        ]);
        read_exact_or_closed(&mut s, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
        // Nothing at all: a close at a command boundary; something, then nothing: a cut.
        let mut s = Script::new(vec![]);
        assert!(matches!(
            read_exact_or_closed(&mut s, &mut buf),
            Err(Error::ConnectionClosed)
        ));
        let mut s = Script::new(vec![Ok(vec![1, 2])]);
        assert_eq!(
            io_kind(read_exact_or_closed(&mut s, &mut buf)),
            Some(ErrorKind::UnexpectedEof)
        );
        // Any other error ends the read, even with data queued behind it.
        let mut s = Script::new(vec![err(ErrorKind::Other), Ok(vec![1, 2, 3, 4])]);
        assert_eq!(
            io_kind(read_exact_or_closed(&mut s, &mut buf)),
            Some(ErrorKind::Other)
        );
    }

    #[test]
    fn an_idle_read_waits_through_timeouts_only_before_its_first_byte() {
        let mut buf = [0u8; 4];
        // Idle: timeouts and interrupts before the first byte are waited through.
        let mut s = Script::new(vec![
            err(ErrorKind::WouldBlock),
            err(ErrorKind::TimedOut),
            err(ErrorKind::Interrupted),
            Ok(vec![9, 8]),
            err(ErrorKind::Interrupted),
            Ok(vec![7, 6]),
        ]);
        read_exact_idle_ok(&mut s, &mut buf, true).unwrap();
        assert_eq!(buf, [9, 8, 7, 6]);
        // Not idle (a command's body): the first timeout is a stall.
        let mut s = Script::new(vec![err(ErrorKind::WouldBlock), Ok(vec![1, 2, 3, 4])]);
        assert!(matches!(
            read_exact_idle_ok(&mut s, &mut buf, false),
            Err(Error::Stalled {
                received: 0,
                expected: 4
            })
        ));
        // An end of stream is a close only where a command may end: idle and before any byte.
        let mut s = Script::new(vec![]);
        assert!(matches!(
            read_exact_idle_ok(&mut s, &mut buf, true),
            Err(Error::ConnectionClosed)
        ));
        let mut s = Script::new(vec![]);
        assert_eq!(
            io_kind(read_exact_idle_ok(&mut s, &mut buf, false)),
            Some(ErrorKind::UnexpectedEof)
        );
        let mut s = Script::new(vec![Ok(vec![1])]);
        assert_eq!(
            io_kind(read_exact_idle_ok(&mut s, &mut buf, true)),
            Some(ErrorKind::UnexpectedEof)
        );
        // Other errors end the read at once, idle or not.
        for idle in [true, false] {
            let mut s = Script::new(vec![err(ErrorKind::Other), Ok(vec![1, 2, 3, 4])]);
            assert_eq!(
                io_kind(read_exact_idle_ok(&mut s, &mut buf, idle)),
                Some(ErrorKind::Other)
            );
        }
    }

    /// A TRANSACT body carrying `parcel` (its object table written at `version`).
    fn transact_body(parcel: &Parcel, version: u32) -> Vec<u8> {
        let bytes = encode_transact(version, Address::ZERO, 1, 0, 0, parcel).unwrap();
        bytes[WireHeader::SIZE..].to_vec()
    }

    #[test]
    fn objects_are_admitted_by_version_and_fd_mode() {
        // A non-zero word before each object: its type is read at its own offset, not near it.
        let mut binder = Parcel::new();
        binder.write_i32(-1);
        binder.write_strong_binder(Some((Address(0x8000_0000_0000_0003), 0x0c)));
        let v2 = transact_body(&binder, PROTOCOL_VERSION_2);
        match parse_command(Command::Transact, &v2, PROTOCOL_VERSION_2).unwrap() {
            Incoming::Transact(t) => assert_eq!(t.objects, vec![4]),
            other => panic!("expected a TRANSACT, got {other:?}"),
        }
        // The same bytes at v1 (objects table present, but binders are not listed before v2).
        assert!(matches!(
            parse_command(Command::Transact, &v2, PROTOCOL_VERSION_1),
            Err(Error::ObjectsNotAllowed(1))
        ));
        let (fd_end, _keep) = UnixStream::pair().unwrap();
        let mut fd = Parcel::new();
        fd.write_i32(-1);
        fd.write_fd(fd_end.into());
        let v1 = transact_body(&fd, PROTOCOL_VERSION_1);
        assert!(matches!(
            parse_command_with(Command::Transact, &v1, PROTOCOL_VERSION_1, true),
            Ok(Incoming::Transact(_))
        ));
        assert!(matches!(
            parse_command_with(Command::Transact, &v1, PROTOCOL_VERSION_1, false),
            Err(Error::ObjectsNotAllowed(1))
        ));
        // A REPLY's objects go through the same check.
        let reply = encode_reply(PROTOCOL_VERSION_1, StatusCode::OK, &fd).unwrap();
        assert!(matches!(
            parse_command(
                Command::Reply,
                &reply[WireHeader::SIZE..],
                PROTOCOL_VERSION_1
            ),
            Err(Error::ObjectsNotAllowed(1))
        ));
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_sent() {
        for version in [PROTOCOL_VERSION_1, PROTOCOL_VERSION_2] {
            let max = crate::wire::max_body_size(version) as usize;
            let framed = frame(Command::Transact, vec![0; max], version).unwrap();
            assert_eq!(framed.len(), WireHeader::SIZE + max);
            assert!(matches!(
                frame(Command::Transact, vec![0; max + 1], version),
                Err(Error::OutgoingTooLarge(n)) if n == max + 1
            ));
        }
    }

    #[test]
    fn a_failed_reply_carries_no_parcel() {
        let mut parcel = Parcel::new();
        parcel.write_i32(5);
        let ok = encode_reply(PROTOCOL_VERSION_1, StatusCode::OK, &parcel).unwrap();
        let failed = encode_reply(PROTOCOL_VERSION_1, StatusCode::BAD_VALUE, &parcel).unwrap();
        assert_eq!(ok.len(), failed.len() + 4);
        // The override is used only with an OK status.
        let over = encode_reply_data(
            PROTOCOL_VERSION_1,
            StatusCode::OK,
            &parcel,
            Some(&[6, 0, 0, 0]),
        )
        .unwrap();
        assert_eq!(&over[over.len() - 4..], &[6, 0, 0, 0]);
        let over_failed = encode_reply_data(
            PROTOCOL_VERSION_1,
            StatusCode::BAD_VALUE,
            &parcel,
            Some(&[6, 0, 0, 0]),
        )
        .unwrap();
        assert_eq!(over_failed, failed);
        match parse_command(
            Command::Reply,
            &failed[WireHeader::SIZE..],
            PROTOCOL_VERSION_1,
        ) {
            Ok(Incoming::Reply(r)) => {
                assert_eq!(r.status, StatusCode::BAD_VALUE);
                assert!(r.data.is_empty());
            }
            other => panic!("expected a REPLY, got {other:?}"),
        }
    }

    #[test]
    fn protocol_violations_are_told_apart_from_disconnects() {
        assert!(Error::BodyTooLarge { size: 1, max: 0 }.is_protocol_violation());
        assert!(!Error::ConnectionClosed.is_protocol_violation());
        assert!(!Error::Io(ErrorKind::UnexpectedEof.into()).is_protocol_violation());
    }
}
