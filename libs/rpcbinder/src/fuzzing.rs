//! Entry points that feed untrusted bytes to every parser, shared by the cargo-fuzz targets in
//! `fuzz/` and by the bad-input corpus tests. None of them may panic or loop forever.

use std::io::{self, Cursor, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{send, MsgFlags};

use crate::client::{ClientConfig, RpcClient};
use crate::error::{Error, ParcelError};
use crate::parcel::{Parcel, ParcelReader};
use crate::server::{Binder, RpcServer, SessionEnd};
use crate::status::{Status, StatusCode};

/// An in-memory stream: reads from `input`, discards writes.
#[derive(Debug)]
pub struct MemStream<'a> {
    input: Cursor<&'a [u8]>,
    /// Everything written.
    pub output: Vec<u8>,
}

impl<'a> MemStream<'a> {
    /// A stream whose peer sends `input` and then closes.
    pub fn new(input: &'a [u8]) -> Self {
        MemStream {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }
}

impl Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Bound memory for pathological inputs.
        if self.output.len() < 1 << 20 {
            self.output.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stream that keeps a copy of everything written to it: run a real client over a
/// `Recording` to capture the bytes a fuzz target's seed needs (a handshake and well-formed
/// commands), which libFuzzer then mutates.
#[derive(Debug)]
pub struct Recording<S> {
    inner: S,
    written: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<S> Recording<S> {
    /// Wraps `inner`; the returned buffer fills as the stream is written.
    pub fn new(inner: S) -> (Self, Arc<std::sync::Mutex<Vec<u8>>>) {
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        (
            Recording {
                inner,
                written: written.clone(),
            },
            written,
        )
    }
}

impl<S: Read> Read for Recording<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Recording<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Ok(mut w) = self.written.lock() {
            w.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A root object with the IVirtualMachineService descriptor answering codes 1–4 like the
/// real service (reads an i32 for 3, an i32 and a string for 4).
pub struct FuzzService;

impl Binder for FuzzService {
    fn descriptor(&self) -> &str {
        "android.system.virtualmachineservice.IVirtualMachineService"
    }
    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            1 | 2 => {}
            3 => {
                data.read_i32().map_err(|e| e.status_code())?;
            }
            4 => {
                data.read_i32().map_err(|e| e.status_code())?;
                data.read_string().map_err(|e| e.status_code())?;
            }
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        reply.write_status(&Status::ok());
        Ok(())
    }
}

/// Bytes from a client to our server (handshake then commands), max version 2.
pub fn serve_bytes(input: &[u8]) -> Result<SessionEnd, Error> {
    let server = RpcServer::new(Arc::new(FuzzService)).with_max_version(2);
    server.serve_connection(MemStream::new(input))
}

/// Bytes from a server to our client: the client connects (v1 or v2 by the first input byte),
/// gets the root, checks the descriptor and makes one call.
pub fn client_bytes(input: &[u8]) -> Result<(), Error> {
    let (version, rest) = match input.split_first() {
        Some((v, rest)) => (u32::from(v % 3), rest),
        None => (1, input),
    };
    let mut client = RpcClient::connect_with(
        MemStream::new(rest),
        ClientConfig {
            version,
            query_session_info: true,
        },
    )?;
    let root = client.get_root()?;
    client.interface_descriptor(&root)?;
    let mut p = Parcel::new();
    p.write_interface_token("android.system.virtualmachineservice.IVirtualMachineService");
    p.write_i32(0);
    if let Some(r) = client.transact(&root, 3, &p, 0)? {
        r.reader().read_status()?;
    }
    client.release(root)
}

/// One parcel item: the first byte selects the reader, the rest is the parcel.
/// 0 String16, 1 byte[], 2 strong binder, 3 Status, 4 parcelable{byte[]}, 5 interface token,
/// 6 all of them in sequence until an error.
pub fn parse_parcel(input: &[u8]) -> Result<(), ParcelError> {
    let Some((sel, data)) = input.split_first() else {
        return Ok(());
    };
    let mut r = ParcelReader::new(data);
    let desc = "android.system.virtualmachineservice.IVirtualMachineService";
    match sel % 7 {
        0 => r.read_string16().map(|_| ()),
        1 => r.read_byte_array().map(|_| ()),
        2 => r.read_strong_binder().map(|_| ()),
        3 => r.read_status().map(|_| ()),
        4 => r.read_parcelable(|r| r.read_byte_array()).map(|_| ()),
        5 => r.enforce_interface(desc),
        _ => loop {
            r.read_string16()?;
            r.read_byte_array()?;
            r.read_strong_binder()?;
            r.read_status()?;
            r.read_parcelable(|r| r.read_i32())?;
        },
    }
}

/// Bytes from a client to a [`crate::SessionServer`] (fd mode UNIX allowed, root
/// [`FuzzService`]) over a socketpair: handshake, then commands, then EOF. Returns what the
/// server wrote back. The session must end (no hang) and nothing may panic.
pub fn session_server_bytes(data: &[u8]) -> Vec<u8> {
    use std::os::unix::net::UnixStream;
    let Ok((client, server_end)) = UnixStream::pair() else {
        return Vec::new();
    };
    let server = crate::SessionServer::new(
        crate::SpIBinder::local(Arc::new(FuzzService)),
        crate::SessionConfig {
            unix_fds: true,
            version: crate::wire::MAX_SUPPORTED_VERSION,
            ..crate::SessionConfig::default()
        },
    );
    let _ = server_end.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    // The whole input goes into the socket before the server starts: most inputs fit in its
    // buffer, and a thread spawned per input for what does not fit (and one for `accept`,
    // which only reads what is already there) would cost more than the session itself.
    let rest = send_all(&client, data, MsgFlags::MSG_DONTWAIT);
    let write = if rest.is_empty() {
        let _ = client.shutdown(std::net::Shutdown::Write);
        None
    } else {
        let Ok(writer) = client.try_clone() else {
            return Vec::new();
        };
        let rest = rest.to_vec();
        Some(std::thread::spawn(move || {
            let _ = send_all(&writer, &rest, MsgFlags::empty());
            let _ = writer.shutdown(std::net::Shutdown::Write);
        }))
    };
    // `accept` reads the handshake, answers it (a few bytes, which the socket holds until we
    // read them) and hands the connection to a session thread.
    let _ = server.accept(server_end.into());
    let mut out = Vec::new();
    let _ = (&client).take(1 << 20).read_to_end(&mut out);
    if let Some(write) = write {
        let _ = write.join();
    }
    // The session's thread ends right after it closed the connection; wait for it, so that
    // nothing of this input outlives the call (leak checkers look at exit). It is usually
    // gone within microseconds: yield first, sleep only if it is not.
    for round in 0..2000 {
        if server.session_count() == 0 {
            break;
        }
        if round < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
    }
    out
}

/// Keeps this process on the CPU it runs on now. A session input is handed between threads a
/// dozen times (the harness, `accept`, the session thread, each reply); on one CPU each
/// handoff is a context switch, across CPUs a wakeup of the other one, which in a VM costs
/// more than the work: with another process busy on the second core, `session_stream` ran
/// 1.2 k to 6.7 k executions a second unpinned and 8.3 k to 9.1 k pinned (`taskset -c 1`,
/// 100 k executions from the same corpus and seed). For the fuzz target's `init`.
pub fn pin_to_current_cpu() {
    use nix::sched::{sched_getcpu, sched_setaffinity, CpuSet};
    let Ok(cpu) = sched_getcpu() else { return };
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() {
        // Unpinned it still works, only slower.
        let _ = sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Sends `data` on `socket` until it is all sent or the socket refuses more (with
/// `MSG_DONTWAIT` in `flags`: until it would block); returns what was not sent. Always with
/// `MSG_NOSIGNAL`: a libFuzzer binary does not ignore SIGPIPE as a Rust `main` does, and the
/// server may close the connection before it has read everything.
fn send_all<'a>(
    socket: &std::os::unix::net::UnixStream,
    data: &'a [u8],
    flags: MsgFlags,
) -> &'a [u8] {
    let mut rest = data;
    while !rest.is_empty() {
        match send(socket.as_raw_fd(), rest, flags | MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mem_stream_takes_every_write_and_keeps_the_first_mebibyte() {
        let mut m = MemStream::new(&[]);
        for _ in 0..32 {
            assert_eq!(m.write(&[7; 64 * 1024]).unwrap(), 64 * 1024);
        }
        assert_eq!(m.output.len(), 1 << 20);
    }

    /// A real client recorded against the fuzz service, then its bytes replayed through
    /// [`serve_bytes`]: the seeds the session targets start from.
    #[test]
    fn a_recorded_session_replays_through_the_fuzz_service() {
        use std::os::unix::net::UnixStream;
        let (client_end, server_end) = UnixStream::pair().unwrap();
        client_end
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let server = RpcServer::new(Arc::new(FuzzService));
        let served = std::thread::spawn(move || server.serve_connection(server_end));
        let (recording, written) = Recording::new(client_end);
        let mut client = RpcClient::connect(recording).unwrap();
        let root = client.get_root().unwrap();
        let desc = "android.system.virtualmachineservice.IVirtualMachineService";
        assert_eq!(client.interface_descriptor(&root).unwrap(), desc);
        let args: [&dyn Fn(&mut Parcel); 4] = [&|_| {}, &|_| {}, &|p| p.write_i32(3), &|p| {
            p.write_i32(4);
            p.write_str("error text");
        }];
        for (code, write_args) in (1..=4).zip(args) {
            let mut p = Parcel::new();
            p.write_interface_token(desc);
            write_args(&mut p);
            let reply = client.transact(&root, code, &p, 0).unwrap().unwrap();
            assert_eq!(
                reply.reader().read_status(),
                Ok(Status::ok()),
                "code {code}"
            );
        }
        // Arguments missing, an unknown code: transport errors.
        let mut p = Parcel::new();
        p.write_interface_token(desc);
        for (code, status) in [
            (3, StatusCode::NOT_ENOUGH_DATA),
            (4, StatusCode::NOT_ENOUGH_DATA),
            (5, StatusCode::UNKNOWN_TRANSACTION),
        ] {
            assert!(matches!(
                client.transact(&root, code, &p, 0),
                Err(Error::TransactionFailed(s)) if s == status
            ));
        }
        client.release(root).unwrap();
        assert_eq!(served.join().unwrap().unwrap(), SessionEnd::Released);
        let bytes = written.lock().unwrap().clone();
        assert_eq!(serve_bytes(&bytes).unwrap(), SessionEnd::Released);
    }

    #[test]
    fn parcel_entries_pick_their_reader() {
        // The String16 "a" and nothing after it, read as each kind of item (6: all kinds in
        // turn, until the byte array after the string finds no data).
        let item = [1, 0, 0, 0, b'a', 0, 0, 0];
        let with = |sel: u8| [&[sel][..], &item[..]].concat();
        assert_eq!(parse_parcel(&with(0)), Ok(()));
        assert_eq!(parse_parcel(&with(1)), Ok(()));
        assert!(matches!(
            parse_parcel(&with(2)),
            Err(ParcelError::NotEnoughData { needed: 8, .. })
        ));
        assert!(matches!(
            parse_parcel(&with(6)),
            Err(ParcelError::NotEnoughData { offset: 8, .. })
        ));
    }

    #[test]
    fn the_session_target_speaks_the_newest_version() {
        let mut hello = vec![2, 0, 0, 0, 0, 0];
        hello.extend_from_slice(&[0; 10]);
        hello.extend_from_slice(b"cci\0\0\0\0\0");
        let out = session_server_bytes(&hello);
        assert_eq!(&out[..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
    }

    /// An input larger than the socket's buffer: the rest is written from a thread while the
    /// session reads, and the call still ends with the server's answer.
    #[test]
    fn the_session_target_takes_an_input_larger_than_the_socket_buffer() {
        let mut hello = vec![2, 0, 0, 0, 0, 0];
        hello.extend_from_slice(&[0; 10]);
        hello.extend_from_slice(b"cci\0\0\0\0\0");
        hello.resize(4 << 20, 0xff);
        let out = session_server_bytes(&hello);
        assert_eq!(&out[..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn entries_accept_empty_and_garbage() {
        for input in [&b""[..], &[0xff; 64][..], &[0u8; 100][..]] {
            let _ = serve_bytes(input);
            let _ = client_bytes(input);
            let _ = parse_parcel(input);
        }
    }
}
