//! The dumper's side of the crash socket (tombstoned's role): accept a handler's connection,
//! check who sent it, build and render the tombstone while the process waits, then release it.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use android_log::seqpacket;
use nix::sys::socket::{getsockopt, sockopt};

use crate::dump;
use crate::message::{CrashMessage, MessageError, MESSAGE_LEN};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("crash socket: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("thread {tid} named in the crash message is not a thread of the sender {pid}")]
    ForeignThread { pid: i32, tid: i32 },
}

/// A dumped crash. The crashed process waits until this is released (explicitly, or when it
/// is dropped), so that the caller can note the dump before the process dies.
#[derive(Debug)]
pub struct Dumped {
    pub pid: i32,
    pub signal: i32,
    pub text: String,
    conn: Option<OwnedFd>,
}

impl Dumped {
    /// Lets the crashed process go: its signal now kills it.
    pub fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = seqpacket::send_packet(&conn, &[1]);
        }
    }
}

impl Drop for Dumped {
    fn drop(&mut self) {
        self.release();
    }
}

#[derive(Debug)]
pub struct Dumper {
    listener: OwnedFd,
}

impl Dumper {
    /// Listens at `path`, writable by every uid (payloads run as their own user).
    pub fn bind(path: &Path) -> io::Result<Dumper> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let listener = seqpacket::listen_at(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(Dumper { listener })
    }

    /// Waits for the next crash and dumps it. `log_tail` gives the last log lines to include.
    pub fn next(
        &self,
        build_fingerprint: &str,
        log_tail: &dyn Fn() -> Vec<String>,
    ) -> Result<Dumped, DumpError> {
        let conn = seqpacket::accept_from(&self.listener)?;
        // The kernel's word for who sent it; the message's own pid is only a claim.
        let creds = getsockopt(&conn, sockopt::PeerCredentials).map_err(io::Error::from)?;
        let pid = creds.pid();
        let mut buf = [0u8; MESSAGE_LEN + 1];
        let n = seqpacket::recv_packet(&conn, &mut buf)?;
        let message = CrashMessage::parse(&buf[..n])?;
        let task = Path::new("/proc")
            .join(pid.to_string())
            .join("task")
            .join(message.tid.to_string());
        if !task.exists() {
            return Err(DumpError::ForeignThread {
                pid,
                tid: message.tid,
            });
        }
        let tombstone = dump::collect(&message, pid, build_fingerprint, log_tail());
        let text = crate::text::render(&tombstone);
        Ok(Dumped {
            pid,
            signal: message.signal,
            text,
            conn: Some(conn),
        })
    }
}
