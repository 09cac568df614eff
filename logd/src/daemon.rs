//! logd: receives writers' datagrams on `logdw` (pid and uid from the socket's credentials),
//! keeps them in the ring, answers readers on `logdr` (`dumpAndClose`/`stream`, `lids=`,
//! `tail=`, `pid=`), clears buffers on the `logd` control socket, and tees each record as a
//! threadtime line to the host's log port (`--tee`), the file `vmctl --log` names.

use std::fs::File;
use std::io::{BufRead, BufReader, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use android_log::{Entry, LogId};
use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};

use crate::buffer::{LogBuffer, Selection, BUFFER_BYTES};
use android_log::seqpacket;

/// Readers served at once.
const MAX_READERS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub socket_dir: PathBuf,
    pub tee: Option<PathBuf>,
    /// Register as the kernel's audit daemon and log SELinux denials (`audit`).
    pub audit: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options {
        socket_dir: PathBuf::from("/dev/socket"),
        tee: None,
        audit: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--socket-dir" => o.socket_dir = value()?.into(),
            "--tee" => o.tee = Some(value()?.into()),
            "--audit" => o.audit = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(o)
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A parsed reader command.
#[derive(Debug, PartialEq, Eq)]
pub struct ReaderCommand {
    pub follow: bool,
    pub selection: Selection,
}

/// `dumpAndClose lids=0,3 tail=N pid=P` or `stream …` (other words are ignored, as logd does).
pub fn parse_reader_command(text: &str) -> ReaderCommand {
    let mut sel = Selection {
        lids: vec![LogId::Main, LogId::System, LogId::Crash, LogId::Kernel],
        pid: None,
        tail: None,
    };
    let mut follow = true;
    for word in text.split_whitespace() {
        if word == "dumpAndClose" {
            follow = false;
        } else if let Some(l) = word.strip_prefix("lids=") {
            sel.lids = l
                .split(',')
                .filter_map(|n| n.parse::<u8>().ok())
                .filter_map(LogId::from_u8)
                .collect();
        } else if let Some(t) = word.strip_prefix("tail=") {
            sel.tail = t.parse().ok();
        } else if let Some(p) = word.strip_prefix("pid=") {
            sel.pid = p.parse().ok();
        }
    }
    ReaderCommand {
        follow,
        selection: sel,
    }
}

pub fn run(o: &Options) -> Result<()> {
    std::fs::create_dir_all(&o.socket_dir)
        .with_context(|| format!("creating {}", o.socket_dir.display()))?;
    let buffer = Arc::new(LogBuffer::new(BUFFER_BYTES));
    let tee = match &o.tee {
        Some(p) => match std::fs::OpenOptions::new().append(true).open(p) {
            Ok(f) => {
                raw_if_tty(&f);
                Some(f)
            }
            Err(e) => {
                eprintln!("logd: not teeing to {}: {e}", p.display());
                None
            }
        },
        None => None,
    };
    let tee = Arc::new(Mutex::new(tee));

    let logdw = o.socket_dir.join("logdw");
    let _ = std::fs::remove_file(&logdw);
    let writers =
        UnixDatagram::bind(&logdw).with_context(|| format!("binding {}", logdw.display()))?;
    setsockopt(&writers, sockopt::PassCred, &true).context("SO_PASSCRED on logdw")?;
    std::fs::set_permissions(&logdw, std::fs::Permissions::from_mode(0o222))?;

    let logdr = o.socket_dir.join("logdr");
    let readers =
        seqpacket::listen_at(&logdr).with_context(|| format!("binding {}", logdr.display()))?;
    std::fs::set_permissions(&logdr, std::fs::Permissions::from_mode(0o666))?;

    let control_path = o.socket_dir.join("logd");
    let _ = std::fs::remove_file(&control_path);
    let control = UnixListener::bind(&control_path)
        .with_context(|| format!("binding {}", control_path.display()))?;
    std::fs::set_permissions(&control_path, std::fs::Permissions::from_mode(0o666))?;

    println!("logd: serving {}", o.socket_dir.display());
    {
        let buffer = buffer.clone();
        std::thread::spawn(move || serve_readers(&readers, &buffer));
    }
    {
        let buffer = buffer.clone();
        std::thread::spawn(move || serve_control(&control, &buffer));
    }
    if o.audit {
        match crate::audit::open() {
            Ok(fd) => {
                let buffer = buffer.clone();
                let tee = tee.clone();
                std::thread::spawn(move || {
                    crate::audit::serve(&fd, |text| {
                        store(audit_entry(text), &buffer, &tee);
                    })
                });
            }
            Err(e) => eprintln!("logd: not logging SELinux denials: {e:#}"),
        }
    }
    receive_writes(&writers, &buffer, &tee);
    Ok(())
}

/// A serial port would turn each `\n` into `\r\n` (and may echo): the host's file gets the
/// lines as written.
fn raw_if_tty(f: &File) {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    if let Ok(mut t) = tcgetattr(f) {
        cfmakeraw(&mut t);
        let _ = tcsetattr(f, SetArg::TCSANOW, &t);
    }
}

fn receive_writes(socket: &UnixDatagram, buffer: &LogBuffer, tee: &Mutex<Option<File>>) {
    let mut buf = vec![0u8; android_log::WRITE_HEADER_LEN + android_log::MAX_PAYLOAD + 1];
    loop {
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let (len, creds) = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(msg) => {
                let creds = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmCredentials(u) => Some((u.pid(), u.uid())),
                        _ => None,
                    })
                });
                (msg.bytes, creds)
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("logd: logdw: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let written = match android_log::parse_write(&buf[..len]) {
            Ok(w) => w,
            // A bad datagram is dropped; the writer is not told (datagrams have no answer).
            Err(_) => continue,
        };
        let (pid, uid) = creds.unwrap_or((0, 0));
        let entry = Entry {
            lid: written.lid,
            pid,
            tid: u32::from(written.tid),
            uid,
            sec: written.sec,
            nsec: written.nsec,
            priority: written.priority,
            tag: written.tag,
            message: written.message,
        };
        store(entry, buffer, tee);
    }
}

/// Keeps an entry, and tees it to the host's file.
fn store(entry: Entry, buffer: &LogBuffer, tee: &Mutex<Option<File>>) {
    if let Some(f) = tee.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let _ = f.write_all(android_log::format_file_line(&entry).as_bytes());
    }
    buffer.push(entry);
}

/// An audit record as a log entry: main buffer, WARN, tag `auditd`, stamped now.
fn audit_entry(text: String) -> Entry {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Entry {
        lid: LogId::Main,
        pid: 0,
        tid: 0,
        uid: 0,
        sec: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
        nsec: now.subsec_nanos(),
        priority: android_log::WARN,
        tag: crate::audit::AUDIT_TAG.to_owned(),
        message: text,
    }
}

fn serve_readers(listener: &OwnedFd, buffer: &Arc<LogBuffer>) {
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let Ok(conn) = seqpacket::accept_from(listener) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if active.load(std::sync::atomic::Ordering::SeqCst) >= MAX_READERS {
            continue; // dropped: the reader sees the end at once
        }
        active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let buffer = buffer.clone();
        let active = active.clone();
        std::thread::spawn(move || {
            serve_reader(&conn, &buffer);
            active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

fn serve_reader(conn: &OwnedFd, buffer: &LogBuffer) {
    let mut cmd = [0u8; 1024];
    let Ok(n) = seqpacket::recv_packet(conn, &mut cmd) else {
        return;
    };
    let command = parse_reader_command(&String::from_utf8_lossy(&cmd[..n]));
    let (entries, mut next) = buffer.snapshot(&command.selection);
    for e in entries {
        if seqpacket::send_packet(conn, &e.encode()).is_err() {
            return;
        }
    }
    if !command.follow {
        return;
    }
    loop {
        let (entries, after) = buffer.since(&command.selection, next, Duration::from_secs(1));
        next = after;
        for e in entries {
            if seqpacket::send_packet(conn, &e.encode()).is_err() {
                return;
            }
        }
        // A reader that went away (hung up, or sent anything more) ends the stream.
        if seqpacket::peer_gone(conn) {
            return;
        }
    }
}

fn serve_control(listener: &UnixListener, buffer: &LogBuffer) {
    for conn in listener.incoming().flatten() {
        let mut reader = BufReader::new(&conn);
        let mut line = Vec::new();
        if reader.by_ref().take(256).read_until(0, &mut line).is_err() {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let mut words = text.trim_end_matches(['\0', '\n']).split_whitespace();
        let reply = match (
            words.next(),
            words.next().and_then(|l| l.parse::<u8>().ok()),
        ) {
            (Some("clear"), Some(lid)) => match LogId::from_u8(lid) {
                Some(lid) => {
                    buffer.clear(lid);
                    "success"
                }
                None => "Invalid buffer",
            },
            _ => "Invalid command",
        };
        let _ = (&conn).write_all(reply.as_bytes());
        let _ = (&conn).write_all(&[0]);
    }
}

/// Where the guest's writers look for logd (tests pass their own directory).
pub fn logdw_path(socket_dir: &Path) -> PathBuf {
    socket_dir.join("logdw")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_commands() {
        let c = parse_reader_command("dumpAndClose lids=0,3,4 tail=5 pid=12");
        assert!(!c.follow);
        assert_eq!(c.selection.lids, [LogId::Main, LogId::System, LogId::Crash]);
        assert_eq!((c.selection.tail, c.selection.pid), (Some(5), Some(12)));
        let s = parse_reader_command("stream lids=99");
        assert!(s.follow && s.selection.lids.is_empty());
    }

    #[test]
    fn arguments() {
        let o = parse_args(&["--tee".into(), "/dev/ttyS2".into()]).unwrap();
        assert_eq!(o.tee, Some(PathBuf::from("/dev/ttyS2")));
        assert!(parse_args(&["--x".into()]).is_err());
    }
}
