//! One connection of a session: a connected stream socket (Unix or vsock) that sends a
//! command's bytes with its file descriptors attached as SCM_RIGHTS, and receives whole
//! commands collecting the fds that arrive with them, as libbinder's `RpcTransportRaw` does.
//! Reading and writing take `&self`, so one thread can block in a read while another shuts the
//! socket down to end the session.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, shutdown, ControlMessage, ControlMessageOwned, MsgFlags, Shutdown,
};

use crate::error::Error;

/// Most fds libbinder accepts with one command (`RpcTransportRaw`: kMaxFdsPerMsg).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// A connected stream socket carrying one RPC connection.
#[derive(Debug)]
pub struct SocketTransport {
    fd: OwnedFd,
}

impl SocketTransport {
    /// Wraps a connected stream socket (a `UnixStream`, a `VsockStream`, ...).
    pub fn new(socket: impl Into<OwnedFd>) -> Self {
        SocketTransport { fd: socket.into() }
    }

    /// Sends `bytes`, with `fds` attached to the first chunk.
    pub fn send(&self, bytes: &[u8], fds: &[RawFd]) -> Result<(), Error> {
        let mut sent = 0;
        let mut fds_pending = !fds.is_empty();
        while sent < bytes.len() {
            let iov = [IoSlice::new(&bytes[sent..])];
            let rights = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage] = if fds_pending { &rights } else { &[] };
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    sent += n;
                    fds_pending = false;
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
        Ok(())
    }

    /// Fills `buf`, appending any fds that arrive to `fds`. [`Error::ConnectionClosed`] when
    /// the peer closed before the first byte.
    pub fn recv_exact(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
            let mut iov = [IoSliceMut::new(&mut buf[filled..])];
            let msg = match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::Io(e.into())),
            };
            let n = msg.bytes;
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        for raw in received {
                            // SAFETY: the kernel installed this fd in our table for this
                            // message (SCM_RIGHTS); nothing else owns it.
                            fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                        }
                    }
                }
            }
            if fds.len() > MAX_FDS_PER_MESSAGE {
                return Err(Error::FdCountMismatch {
                    objects: MAX_FDS_PER_MESSAGE,
                    received: fds.len(),
                });
            }
            if n == 0 {
                return Err(if filled == 0 {
                    Error::ConnectionClosed
                } else {
                    Error::Io(io::ErrorKind::UnexpectedEof.into())
                });
            }
            filled += n;
        }
        Ok(())
    }

    /// Ends the connection in both directions: a thread blocked reading it wakes with EOF.
    pub fn shutdown(&self) {
        let _ = shutdown(self.fd.as_raw_fd(), Shutdown::Both);
    }
}

impl AsFd for SocketTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sends one fd over a Unix "bootstrap" socket as libbinder's
/// `setupUnixDomainSocketBootstrapClient` does: a 4-byte `int 0` with the fd as SCM_RIGHTS.
pub fn send_bootstrap_fd(bootstrap: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Error> {
    let zero = 0i32.to_le_bytes();
    let iov = [IoSlice::new(&zero)];
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(
            bootstrap.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(4) => return Ok(()),
            Ok(_) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::Io(e.into())),
        }
    }
}

/// Receives one connection fd from a bootstrap socket (`RpcServer::recvmsgSocketConnection`):
/// `Ok(None)` at EOF (the client closed its end: the server stops), an error for a message
/// without exactly one fd.
pub fn recv_bootstrap_fd(bootstrap: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Error> {
    let mut word = [0u8; 4];
    let mut fds = Vec::new();
    let transport_fd = bootstrap.try_clone_to_owned()?;
    let transport = SocketTransport::new(transport_fd);
    match transport.recv_exact(&mut word, &mut fds) {
        Ok(()) => {}
        Err(Error::ConnectionClosed) => return Ok(None),
        Err(e) => return Err(e),
    }
    if fds.len() != 1 {
        return Err(Error::FdCountMismatch {
            objects: 1,
            received: fds.len(),
        });
    }
    Ok(fds.pop())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;

    #[test]
    fn a_command_may_bring_the_most_fds_libbinder_accepts_and_no_more() {
        let (a, b) = UnixStream::pair().unwrap();
        let (sender, receiver) = (SocketTransport::new(a), SocketTransport::new(b));
        let file = tempfile::tempfile().unwrap();
        let fds = vec![file.as_raw_fd(); MAX_FDS_PER_MESSAGE];
        sender.send(&[1, 2, 3, 4], &fds).unwrap();
        let (mut buf, mut received) = ([0u8; 4], Vec::new());
        receiver.recv_exact(&mut buf, &mut received).unwrap();
        assert_eq!((buf, received.len()), ([1, 2, 3, 4], MAX_FDS_PER_MESSAGE));
        // One more in a second chunk of the same command.
        sender.send(&[5, 6], &fds).unwrap();
        sender.send(&[7, 8], &fds[..1]).unwrap();
        let mut received = Vec::new();
        assert!(matches!(
            receiver.recv_exact(&mut buf, &mut received),
            Err(Error::FdCountMismatch {
                objects: MAX_FDS_PER_MESSAGE,
                received: 254
            })
        ));
    }

    #[test]
    fn shutdown_wakes_a_blocked_reader() {
        let (a, _peer) = UnixStream::pair().unwrap();
        let transport = std::sync::Arc::new(SocketTransport::new(a));
        let reader = transport.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4];
            let _ = tx.send(reader.recv_exact(&mut buf, &mut Vec::new()));
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        transport.shutdown();
        let woken = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert!(
            matches!(woken, Ok(Err(Error::ConnectionClosed))),
            "{woken:?}"
        );
    }
}
