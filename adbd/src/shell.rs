//! `shell:` and `exec:`: a command (or an interactive shell) with its I/O on the stream.
//! With shell protocol v2 the stream carries `[id][len][bytes]` packets: stdout (1) and stderr
//! (2) separately in raw mode, the exit status (3) at the end; stdin (0), its end (4) and the
//! window size (5, pty) from the host. Without v2 (and for `exec:`) it carries the raw bytes,
//! stdout and stderr merged, and no exit status.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use adb::shell::{self as proto, Parser};
use adb::ShellMode;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::stream::{send_shared, SharedWriter, StreamReader, StreamWriter};
use crate::Config;

/// The exit status v2 reports when the command could not start (adbd's value).
const EXIT_CANNOT_START: u8 = 126;

nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, libc::winsize);

fn command(config: &Config, term: &str, command_line: &str) -> Command {
    let mut cmd = Command::new(&config.shell);
    if command_line.is_empty() {
        // A login shell, as adbd's `sh -`: argv[0] starting with '-'.
        cmd.arg0("-sh");
    } else {
        cmd.arg("-c").arg(command_line);
    }
    cmd.env_clear()
        .env("PATH", &config.path)
        .env("HOME", "/")
        .env("SHELL", &config.shell)
        .env("TMPDIR", &config.tmpdir)
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("HOSTNAME", "microdroid")
        .env("TERM", term)
        .current_dir("/");
    cmd
}

/// How the child's output is framed on the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    V2(u8),
    Raw,
}

fn pump(mut from: impl Read, writer: SharedWriter, framing: Framing) {
    let max = writer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .max_payload();
    let mut buf = vec![0u8; max.saturating_sub(5).clamp(1, 64 * 1024)];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A pty's master reads EIO once the last slave holder has gone: the end.
            Err(_) => return,
        };
        let sent = match framing {
            Framing::V2(id) => send_shared(&writer, &proto::encode(id, &buf[..n])),
            Framing::Raw => send_shared(&writer, &buf[..n]),
        };
        if sent.is_err() {
            return;
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 0x80 | (sig as u8),
        (None, None) => EXIT_CANNOT_START,
    }
}

/// Runs the stream's input side until it closes; then stops the child if it still runs.
fn feed_input(
    mut reader: StreamReader,
    mut stdin: Option<impl Write>,
    pty: Option<&OwnedFd>,
    v2: bool,
    max_payload: u32,
    pgid: Pid,
    exited: &AtomicBool,
) {
    let mut parser = Parser::new(max_payload);
    while let Some(chunk) = reader.next_chunk() {
        if !v2 {
            if let Some(w) = stdin.as_mut() {
                if w.write_all(&chunk).is_err() {
                    stdin = None;
                }
            }
            continue;
        }
        parser.push(&chunk);
        loop {
            match parser.next_packet() {
                Ok(Some((proto::ID_STDIN, data))) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data).is_err() {
                            stdin = None;
                        }
                    }
                }
                // A terminal has no end of input short of its close; raw stdin does.
                Ok(Some((proto::ID_CLOSE_STDIN, _))) if pty.is_none() => stdin = None,
                Ok(Some((proto::ID_WINDOW_SIZE, data))) => {
                    if let (Some(master), Some((rows, cols, xp, yp))) =
                        (pty, proto::parse_window_size(&data))
                    {
                        let ws = libc::winsize {
                            ws_row: rows,
                            ws_col: cols,
                            ws_xpixel: xp,
                            ws_ypixel: yp,
                        };
                        // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer; the fd
                        // is the pty master we own.
                        let _ = unsafe { set_window_size(master.as_raw_fd(), &ws) };
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    eprintln!("adbd: shell stream: {e}; closing it");
                    reader.ends.close();
                    break;
                }
            }
        }
    }
    if !exited.load(Ordering::SeqCst) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Waits for the output pumps and the child, reports the exit status (v2), closes the stream.
fn finish(
    mut child: Child,
    pumps: Vec<std::thread::JoinHandle<()>>,
    writer: SharedWriter,
    v2: bool,
    exited: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for p in pumps {
            let _ = p.join();
        }
        let status = child.wait();
        exited.store(true, Ordering::SeqCst);
        if v2 {
            let code = status.map(exit_code).unwrap_or(EXIT_CANNOT_START);
            let _ = send_shared(&writer, &proto::encode(proto::ID_EXIT, &[code]));
        }
        writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ends
            .close();
    })
}

fn report_start_failure(writer: &StreamWriter, v2: bool, what: &str, err: &dyn std::fmt::Display) {
    let message = format!("error: {what}: {err}\n");
    if v2 {
        let _ = writer.send(&proto::encode(proto::ID_STDERR, message.as_bytes()));
        let _ = writer.send(&proto::encode(proto::ID_EXIT, &[EXIT_CANNOT_START]));
    } else {
        let _ = writer.send(message.as_bytes());
    }
}

pub fn run_shell(
    reader: StreamReader,
    writer: StreamWriter,
    config: &Config,
    v2: bool,
    mode: ShellMode,
    term: Option<String>,
    command_line: &str,
) {
    let term = term.unwrap_or_else(|| "dumb".into());
    let cmd = command(config, &term, command_line);
    match mode {
        ShellMode::Pty => run_pty(reader, writer, config, v2, cmd),
        ShellMode::Raw => run_pipes(reader, writer, config, v2, cmd),
    }
}

pub fn run_exec(reader: StreamReader, writer: StreamWriter, config: &Config, command_line: &str) {
    let cmd = command(config, "dumb", command_line);
    run_pipes(reader, writer, config, false, cmd);
}

fn run_pipes(
    reader: StreamReader,
    writer: StreamWriter,
    config: &Config,
    v2: bool,
    mut cmd: Command,
) {
    if writer.ends.ready().is_err() {
        return;
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0);
    // v2 keeps stderr apart; otherwise it is merged into stdout as adbd does.
    let merged = if v2 {
        cmd.stderr(Stdio::piped());
        None
    } else {
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((r, w)) => {
                let w2 = match w.try_clone() {
                    Ok(w2) => w2,
                    Err(e) => return report_start_failure(&writer, v2, "pipe", &e),
                };
                cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
                Some(r)
            }
            Err(e) => return report_start_failure(&writer, v2, "pipe", &e),
        }
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return report_start_failure(&writer, v2, &config.shell, &e),
    };
    drop(cmd); // our copies of the child's pipe ends
    let pgid = Pid::from_raw(child.id() as i32);
    let max_payload = writer.max_payload() as u32;
    let writer: SharedWriter = Arc::new(Mutex::new(writer));
    let mut pumps = Vec::new();
    if let Some(r) = merged {
        let w = writer.clone();
        pumps.push(std::thread::spawn(move || {
            pump(std::fs::File::from(r), w, Framing::Raw)
        }));
    } else {
        if let Some(out) = child.stdout.take() {
            let w = writer.clone();
            pumps.push(std::thread::spawn(move || {
                pump(out, w, Framing::V2(proto::ID_STDOUT))
            }));
        }
        if let Some(err) = child.stderr.take() {
            let w = writer.clone();
            pumps.push(std::thread::spawn(move || {
                pump(err, w, Framing::V2(proto::ID_STDERR))
            }));
        }
    }
    let stdin = child.stdin.take();
    let exited = Arc::new(AtomicBool::new(false));
    let finisher = finish(child, pumps, writer, v2, exited.clone());
    feed_input(reader, stdin, None, v2, max_payload, pgid, &exited);
    let _ = finisher.join();
}

fn run_pty(
    reader: StreamReader,
    writer: StreamWriter,
    config: &Config,
    v2: bool,
    mut cmd: Command,
) {
    if writer.ends.ready().is_err() {
        return;
    }
    let pty = match nix::pty::openpty(None, None) {
        Ok(p) => p,
        Err(e) => return report_start_failure(&writer, v2, "openpty", &e),
    };
    let slave = pty.slave;
    let stdio = || slave.try_clone().map(Stdio::from);
    match (stdio(), stdio(), stdio()) {
        (Ok(i), Ok(o), Ok(e)) => {
            cmd.stdin(i).stdout(o).stderr(e);
        }
        _ => return report_start_failure(&writer, v2, "pty", &"dup failed"),
    }
    // SAFETY: the closure runs in the child between fork and exec and only makes two
    // async-signal-safe system calls (setsid, ioctl) on fds the child has.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return report_start_failure(&writer, v2, &config.shell, &e),
    };
    drop(cmd);
    drop(slave);
    let pgid = Pid::from_raw(child.id() as i32);
    let master = pty.master;
    let (out, input) = match (master.try_clone(), master.try_clone()) {
        (Ok(a), Ok(b)) => (std::fs::File::from(a), std::fs::File::from(b)),
        _ => return,
    };
    let max_payload = writer.max_payload() as u32;
    let writer: SharedWriter = Arc::new(Mutex::new(writer));
    let framing = if v2 {
        Framing::V2(proto::ID_STDOUT)
    } else {
        Framing::Raw
    };
    let w = writer.clone();
    let pumps = vec![std::thread::spawn(move || pump(out, w, framing))];
    let exited = Arc::new(AtomicBool::new(false));
    let finisher = finish(child, pumps, writer, v2, exited.clone());
    feed_input(
        reader,
        Some(input),
        Some(&master),
        v2,
        max_payload,
        pgid,
        &exited,
    );
    let _ = finisher.join();
}
