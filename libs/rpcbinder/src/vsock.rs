//! A minimal AF_VSOCK stream socket (Linux) for the guest side, plus the local CID query.
//!
//! What the guest needs: connect to (CID 2, port = own CID) and read/write with optional
//! timeouts (microdroid_manager), and listen on a port for the host, telling each connection's
//! peer CID (a payload's `runVsockRpcServer`). The socket calls are nix's; `unsafe` is left
//! only where nix has no wrapper: the CID ioctl, the connect-timeout option and adopting the
//! fd accept4(2) returns.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, connect, getpeername, listen, send, setsockopt, socket, sockopt, AddressFamily,
    Backlog, MsgFlags, SockFlag, SockType, VsockAddr,
};
use nix::sys::time::TimeVal;

/// The host's CID.
pub const VMADDR_CID_HOST: u32 = 2;
/// Any CID (for bind).
pub const VMADDR_CID_ANY: u32 = u32::MAX;
/// `IOCTL_VM_SOCKETS_GET_LOCAL_CID` = `_IO(7, 0xb9)`.
const IOCTL_VM_SOCKETS_GET_LOCAL_CID: libc::c_ulong = 0x7b9;
/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (level `AF_VSOCK`, a `struct timeval`): bounds connect(2),
/// which otherwise waits the kernel's default of 2 s.
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;
/// Pending connections a listener queues.
const LISTEN_BACKLOG: i32 = 16;

/// Returns this VM's CID (`ioctl(IOCTL_VM_SOCKETS_GET_LOCAL_CID)` on `/dev/vsock`), as AOSP's
/// `vsock::get_local_cid()`.
pub fn get_local_cid() -> io::Result<u32> {
    let f = std::fs::File::open("/dev/vsock")?;
    let mut cid: u32 = 0;
    // SAFETY: the ioctl writes one u32 to the valid pointer we pass; the fd is open for the
    // duration of the call.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            IOCTL_VM_SOCKETS_GET_LOCAL_CID as _,
            &mut cid as *mut u32,
        )
    };
    Errno::result(r)?;
    Ok(cid)
}

fn stream_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// A socket timeout as a `timeval`: `None` (0) blocks forever, so a zero duration is refused
/// rather than silently meaning "forever".
fn timeval(t: Option<Duration>) -> io::Result<TimeVal> {
    match t {
        None => Ok(TimeVal::new(0, 0)),
        Some(d) if d.is_zero() => Err(io::Error::new(io::ErrorKind::InvalidInput, "zero timeout")),
        Some(d) => Ok(TimeVal::new(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_micros()),
        )),
    }
}

/// Sets `SO_VM_SOCKETS_CONNECT_TIMEOUT`, which nix has no wrapper for.
fn set_connect_timeout(fd: BorrowedFd<'_>, t: Duration) -> io::Result<()> {
    let tv = timeval(Some(t))?;
    // SAFETY: `tv` is a valid timeval (a libc::timeval underneath) and the length matches
    // its size; the fd is borrowed for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT,
            tv.as_ref() as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Errno::result(r)?;
    Ok(())
}

/// A connected AF_VSOCK stream.
#[derive(Debug)]
pub struct VsockStream {
    fd: OwnedFd,
}

impl VsockStream {
    /// Connects to `(cid, port)`, retrying on EINTR. `timeout` bounds the connect itself via
    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (None = the kernel's default, 2 s).
    pub fn connect(cid: u32, port: u32, timeout: Option<Duration>) -> io::Result<Self> {
        let fd = stream_socket()?;
        if let Some(t) = timeout {
            set_connect_timeout(fd.as_fd(), t)?;
        }
        let addr = VsockAddr::new(cid, port);
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(VsockStream { fd }),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Read timeout (SO_RCVTIMEO); None blocks forever.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Ok(setsockopt(&self.fd, sockopt::ReceiveTimeout, &timeval(t)?)?)
    }

    /// Write timeout (SO_SNDTIMEO); None blocks forever.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Ok(setsockopt(&self.fd, sockopt::SendTimeout, &timeval(t)?)?)
    }
}

/// A listening AF_VSOCK stream socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    /// Binds `(cid, port)` (usually `VMADDR_CID_ANY`) and listens.
    pub fn bind(cid: u32, port: u32) -> io::Result<Self> {
        let fd = stream_socket()?;
        bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
        listen(&fd, Backlog::new(LISTEN_BACKLOG)?)?;
        Ok(VsockListener { fd })
    }

    /// Accepts a connection, retrying on EINTR; returns it with the peer's CID.
    pub fn accept(&self) -> io::Result<(VsockStream, u32)> {
        let raw = loop {
            match accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => break raw,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        // SAFETY: accept4 returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let peer: VsockAddr = getpeername(fd.as_raw_fd())?;
        Ok((VsockStream { fd }, peer.cid()))
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read(self.fd.as_raw_fd(), buf)?)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE.
        Ok(send(self.fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for VsockStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<VsockStream> for OwnedFd {
    fn from(s: VsockStream) -> OwnedFd {
        s.fd
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nix::sys::socket::getsockopt;

    #[test]
    fn connect_without_vsock_fails_cleanly() {
        // On a host without vsock transports this must be an error, never a hang or panic.
        if let Ok(s) = VsockStream::connect(VMADDR_CID_HOST, 1, Some(Duration::from_millis(200))) {
            drop(s);
        }
    }

    /// An unconnected vsock socket, to check the options set on it.
    fn unconnected() -> VsockStream {
        VsockStream {
            fd: stream_socket().unwrap(),
        }
    }

    #[test]
    fn timeouts_are_set_as_given_and_zero_is_refused() {
        let s = unconnected();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(
            getsockopt(&s.fd, sockopt::ReceiveTimeout).unwrap(),
            TimeVal::new(1, 500_000)
        );
        assert_eq!(
            getsockopt(&s.fd, sockopt::SendTimeout).unwrap(),
            TimeVal::new(3, 0)
        );
        s.set_read_timeout(None).unwrap();
        assert_eq!(
            getsockopt(&s.fd, sockopt::ReceiveTimeout).unwrap(),
            TimeVal::new(0, 0)
        );
        for r in [
            s.set_read_timeout(Some(Duration::ZERO)),
            s.set_write_timeout(Some(Duration::ZERO)),
        ] {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
        set_connect_timeout(s.fd.as_fd(), Duration::from_millis(250)).unwrap();
        assert_eq!(
            set_connect_timeout(s.fd.as_fd(), Duration::ZERO)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_listener_binds_and_holds_its_port() {
        // VMADDR_PORT_ANY: the kernel picks a free port.
        let l = match VsockListener::bind(VMADDR_CID_ANY, u32::MAX) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                eprintln!("skipped: this kernel has no AF_VSOCK");
                return;
            }
            r => r.unwrap(),
        };
        let addr: VsockAddr = nix::sys::socket::getsockname(l.fd.as_raw_fd()).unwrap();
        assert_ne!(addr.port(), u32::MAX);
        let again = VsockListener::bind(VMADDR_CID_ANY, addr.port()).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::EADDRINUSE));
    }

    /// `read` and `write` are plain read(2) and send(2) on the fd: over a socket pair they move
    /// the bytes asked for, and a closed peer is EPIPE, not SIGPIPE.
    #[test]
    fn reads_and_writes_move_the_bytes() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (VsockStream { fd: a.into() }, VsockStream { fd: b.into() });
        assert_eq!(a.write(b"hello").unwrap(), 5);
        a.flush().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        drop(b);
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert_eq!(a.write(b"x").unwrap_err().raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn the_local_cid_is_a_guest_cid() {
        match get_local_cid() {
            // Guests have CIDs from 3 up (0 hypervisor, 1 local, 2 host).
            Ok(cid) => assert!(cid >= 3 && cid != VMADDR_CID_ANY, "cid {cid}"),
            Err(e) => assert!(
                matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)),
                "{e}"
            ),
        }
    }
}
