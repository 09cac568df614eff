//! Host → guest vsock connections through vhost-device-vsock's Unix socket (the hybrid-vsock
//! protocol in rust-vmm/vhost-device's vsock README): connect to the VM's `<run>/vm.vsock`, send
//! `CONNECT <port>\n`, and the backend answers `OK <port>\n` once the guest has accepted, or
//! closes the socket when nothing listens on that port. The stream that remains is the
//! connection: what AOSP's `IVirtualMachine.connectVsock(port)` returns as a file descriptor,
//! on which a client opens an RPC binder session (`setup_preconnected_client`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest's vsock socket in a VM's run directory.
pub const GUEST_VSOCK_SOCKET: &str = "vm.vsock";
/// The lowest port a host may connect to (AOSP's `connectVsock`: below is privileged).
pub const MIN_PORT: u32 = 1024;
/// The longest answer line the backend sends.
const MAX_LINE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum VsockConnectError {
    #[error("Can't connect to privileged port {0} (ports below {MIN_PORT} are the system's)")]
    PrivilegedPort(u32),
    #[error("cannot reach the VM's vsock backend at {path}: {source}")]
    Backend {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the VM does not serve vsock port {0} (the connection was refused)")]
    Refused(u32),
    #[error("no answer from the VM on vsock port {port} within {timeout:?}")]
    TimedOut { port: u32, timeout: Duration },
    #[error("unexpected answer from the vsock backend: {0:?}")]
    Protocol(String),
}

/// The guest vsock socket of the VM whose run directory is `run_dir`.
pub fn guest_vsock_socket(run_dir: &Path) -> PathBuf {
    run_dir.join(GUEST_VSOCK_SOCKET)
}

/// Connects to the guest's vsock `port` through the backend socket `uds`; `timeout` bounds the
/// handshake. The returned stream has no timeouts set.
pub fn connect(uds: &Path, port: u32, timeout: Duration) -> Result<UnixStream, VsockConnectError> {
    if port < MIN_PORT {
        return Err(VsockConnectError::PrivilegedPort(port));
    }
    let backend = |source| VsockConnectError::Backend {
        path: uds.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(uds).map_err(backend)?;
    stream.set_read_timeout(Some(timeout)).map_err(backend)?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .map_err(backend)?;
    // Byte by byte: nothing after the line may be consumed (it belongs to the connection).
    let mut line = Vec::with_capacity(16);
    loop {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => return Err(VsockConnectError::Refused(port)),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_LINE {
                    return Err(VsockConnectError::Protocol(
                        String::from_utf8_lossy(&line).into_owned(),
                    ));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(VsockConnectError::TimedOut { port, timeout })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(VsockConnectError::Refused(port))
            }
            Err(e) => return Err(backend(e)),
        }
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    if !line.starts_with("OK ") {
        return Err(VsockConnectError::Protocol(line));
    }
    stream.set_read_timeout(None).map_err(backend)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A stand-in backend: answers the CONNECT line with `answer` (None: closes), then echoes.
    fn backend(answer: Option<&'static str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.vsock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            assert!(line.starts_with(b"CONNECT "));
            let Some(answer) = answer else { return };
            s.write_all(answer.as_bytes()).unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
        (dir, path)
    }

    #[test]
    fn handshake_then_the_stream_is_the_connection() {
        let (_dir, path) = backend(Some("OK 5678\nhello"));
        let mut s = connect(&path, 5678, Duration::from_secs(5)).unwrap();
        let mut first = [0u8; 5];
        s.read_exact(&mut first).unwrap();
        assert_eq!(
            &first, b"hello",
            "bytes after the OK line are the connection's"
        );
        s.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping");
    }

    #[test]
    fn refusals_and_bad_answers_are_clear_errors() {
        let (_dir, path) = backend(None);
        assert!(matches!(
            connect(&path, 5678, Duration::from_secs(5)),
            Err(VsockConnectError::Refused(5678))
        ));
        let (_dir, path) = backend(Some("NOPE\n"));
        assert!(matches!(
            connect(&path, 5678, Duration::from_secs(5)),
            Err(VsockConnectError::Protocol(line)) if line == "NOPE"
        ));
        assert!(matches!(
            connect(&path, 80, Duration::from_secs(5)),
            Err(VsockConnectError::PrivilegedPort(80))
        ));
        let gone = connect(
            Path::new("/nonexistent/vm.vsock"),
            5678,
            Duration::from_secs(1),
        );
        assert!(matches!(gone, Err(VsockConnectError::Backend { .. })));
    }

    /// A backend that answers each accepted connection in turn with `answers`: the pieces are
    /// written one by one with a pause between them; `close` then closes, otherwise it stays
    /// silent for a while.
    fn scripted_backend(answers: Vec<(Vec<&'static str>, bool)>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.vsock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            for (pieces, close) in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut b = [0u8; 1];
                while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {}
                for piece in pieces {
                    s.write_all(piece.as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                if !close {
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        });
        (dir, path)
    }

    /// Fault matrix rows 45 and 46: an answer written in pieces, an answer that stops before its
    /// newline (closed: refused; left open: timed out), a line that never ends, and a port
    /// nobody listens on yet that is served on a later try.
    #[test]
    fn partial_and_unfinished_answers_and_a_listener_that_comes_up_late() {
        let (_dir, path) = scripted_backend(vec![
            (vec!["O", "K 56", "78\nhe", "llo"], false),
            (vec!["OK 5678"], true),
            (vec!["OK 5678"], false),
            (
                vec!["OOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOO"],
                false,
            ),
            // Nothing listens on the port yet: the backend closes; then it is served.
            (vec![], true),
            (vec!["OK 5678\n"], false),
        ]);
        let mut s = connect(&path, 5678, Duration::from_secs(5)).unwrap();
        let mut first = [0u8; 5];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"hello");
        assert!(matches!(
            connect(&path, 5678, Duration::from_secs(5)),
            Err(VsockConnectError::Refused(5678))
        ));
        assert!(matches!(
            connect(&path, 5678, Duration::from_millis(300)),
            Err(VsockConnectError::TimedOut { port: 5678, .. })
        ));
        assert!(matches!(
            connect(&path, 5678, Duration::from_secs(5)),
            Err(VsockConnectError::Protocol(line)) if line.len() == MAX_LINE + 1
        ));
        assert!(matches!(
            connect(&path, 5678, Duration::from_secs(5)),
            Err(VsockConnectError::Refused(5678))
        ));
        assert!(connect(&path, 5678, Duration::from_secs(5)).is_ok());
    }
}
