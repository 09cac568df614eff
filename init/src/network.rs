//! The loopback interface: up, so that guest processes reach each other over 127.0.0.1 (a
//! debugger's gdbserver behind `adb forward tcp:N tcp:M`, for one). The VM has no other
//! network.

use std::io;

/// Sets `lo` up (IFF_UP | IFF_RUNNING), as Android's init does at boot.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked before use and closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own; fd is our socket.
    let r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    let result = if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: closes the socket opened above, once.
    unsafe { libc::close(fd) };
    result
}
