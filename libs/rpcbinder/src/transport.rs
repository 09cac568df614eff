//! One connection of a session: a connected stream socket (Unix or vsock) that sends a
//! command's bytes with its file descriptors attached as SCM_RIGHTS, and receives whole
//! commands collecting the fds that arrive with them, as libbinder's `RpcTransportRaw` does.
//! Reading and writing take `&self`, so one thread can block in a read while another shuts the
//! socket down to end the session.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, shutdown, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    Shutdown,
};
use nix::sys::time::TimeVal;

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

    /// A read timeout for every later receive (`None`: block).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let tv = match timeout {
            Some(t) => TimeVal::new(
                i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                i64::from(t.subsec_micros()),
            ),
            None => TimeVal::new(0, 0),
        };
        setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)
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
