//! Unix SOCK_SEQPACKET sockets (logdr's type), which std does not offer, through nix.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    accept, bind, connect, listen, recv, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag,
    SockType, UnixAddr,
};

fn new_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

pub fn listen_at(path: &Path) -> io::Result<OwnedFd> {
    let _ = std::fs::remove_file(path);
    let fd = new_socket()?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(16)?)?;
    Ok(fd)
}

pub fn accept_from(listener: &OwnedFd) -> io::Result<OwnedFd> {
    loop {
        match accept(listener.as_raw_fd()) {
            // SAFETY: accept returned a new descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn connect_to(path: &Path) -> io::Result<OwnedFd> {
    let fd = new_socket()?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

pub fn send_packet(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    loop {
        match send(fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One packet (0 at end of stream); a packet longer than `buf` is cut.
pub fn recv_packet(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match recv(fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the peer hung up or sent more (a reader only ever sends its one command).
pub fn peer_gone(fd: &OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => true,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (tempfile::TempDir, OwnedFd, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = listen_at(&path).unwrap();
        let client = connect_to(&path).unwrap();
        let server = accept_from(&listener).unwrap();
        (dir, client, server)
    }

    /// Packets keep their boundaries; a packet longer than the buffer is cut; end of stream
    /// reads as 0; a send to a closed peer is an error, not a SIGPIPE.
    #[test]
    fn packets_boundaries_cut_and_end() {
        let (_dir, client, server) = pair();
        send_packet(&client, b"first").unwrap();
        send_packet(&client, b"second packet").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(recv_packet(&server, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"first");
        let mut small = [0u8; 6];
        assert_eq!(recv_packet(&server, &mut small).unwrap(), 6);
        assert_eq!(&small, b"second");
        drop(client);
        assert_eq!(recv_packet(&server, &mut buf).unwrap(), 0);
        assert!(send_packet(&server, b"x").is_err());
    }

    #[test]
    fn peer_gone_when_it_hangs_up_or_sends_more() {
        let (_dir, client, server) = pair();
        assert!(!peer_gone(&server));
        send_packet(&client, b"more").unwrap();
        assert!(peer_gone(&server));
        let mut buf = [0u8; 8];
        recv_packet(&server, &mut buf).unwrap();
        assert!(!peer_gone(&server));
        drop(client);
        assert!(peer_gone(&server));
    }

    #[test]
    fn connecting_to_nothing_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(connect_to(&dir.path().join("none")).is_err());
    }
}
