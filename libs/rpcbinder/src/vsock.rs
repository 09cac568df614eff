//! A minimal AF_VSOCK stream socket (Linux) for the guest side, plus the local CID query.
//!
//! What the guest needs: connect to (CID 2, port = own CID) and read/write with optional
//! timeouts (microdroid_manager), and listen on a port for the host, telling each connection's
//! peer CID (a payload's `runVsockRpcServer`). `unsafe` is confined to the libc calls below.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The host's CID.
pub const VMADDR_CID_HOST: u32 = 2;
/// Any CID (for bind).
pub const VMADDR_CID_ANY: u32 = u32::MAX;
/// `IOCTL_VM_SOCKETS_GET_LOCAL_CID` = `_IO(7, 0xb9)`.
const IOCTL_VM_SOCKETS_GET_LOCAL_CID: libc::c_ulong = 0x7b9;
/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (level `AF_VSOCK`, a `struct timeval`): bounds connect(2),
/// which otherwise waits the kernel's default of 2 s.
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

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
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cid)
}

fn sockaddr(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    addr
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
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw =
            unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = VsockStream { fd };
        if let Some(t) = timeout {
            s.set_timeout(libc::AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, Some(t))?;
        }
        let addr = sockaddr(cid, port);
        loop {
            // SAFETY: `addr` is a valid sockaddr_vm and the length matches its size.
            let r = unsafe {
                libc::connect(
                    s.fd.as_raw_fd(),
                    &addr as *const libc::sockaddr_vm as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(s)
    }

    fn set_timeout(
        &self,
        level: libc::c_int,
        opt: libc::c_int,
        t: Option<Duration>,
    ) -> io::Result<()> {
        let tv = match t {
            Some(d) => {
                if d.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "zero timeout"));
                }
                libc::timeval {
                    tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
                }
            }
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        // SAFETY: `tv` is a valid timeval and the length matches its size.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read timeout (SO_RCVTIMEO); None blocks forever.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_timeout(libc::SOL_SOCKET, libc::SO_RCVTIMEO, t)
    }

    /// Write timeout (SO_SNDTIMEO); None blocks forever.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_timeout(libc::SOL_SOCKET, libc::SO_SNDTIMEO, t)
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
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw =
            unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = sockaddr(cid, port);
        // SAFETY: `addr` is a valid sockaddr_vm and the length matches its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_vm as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: listen(2) on the fd we own.
        if unsafe { libc::listen(fd.as_raw_fd(), 16) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(VsockListener { fd })
    }

    /// Accepts a connection, retrying on EINTR; returns it with the peer's CID.
    pub fn accept(&self) -> io::Result<(VsockStream, u32)> {
        loop {
            // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value.
            let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
            // SAFETY: `addr` and `len` are valid for writes; the kernel writes at most `len`
            // bytes of address.
            let raw = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    &mut addr as *mut libc::sockaddr_vm as *mut libc::sockaddr,
                    &mut len,
                    libc::SOCK_CLOEXEC,
                )
            };
            if raw < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // SAFETY: accept4 returned a new fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            return Ok((VsockStream { fd }, addr.svm_cid));
        }
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes. MSG_NOSIGNAL avoids SIGPIPE.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
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
    use super::*;

    #[test]
    fn sockaddr_fields() {
        let a = sockaddr(VMADDR_CID_HOST, 2048);
        assert_eq!(a.svm_family as i32, libc::AF_VSOCK);
        assert_eq!((a.svm_cid, a.svm_port), (2, 2048));
    }

    #[test]
    fn connect_without_vsock_fails_cleanly() {
        // On a host without vsock transports this must be an error, never a hang or panic.
        if let Ok(s) = VsockStream::connect(VMADDR_CID_HOST, 1, Some(Duration::from_millis(200))) {
            drop(s);
        }
    }
}
