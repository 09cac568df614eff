//! adbd for debuggable Microdroid VMs: the device side of the adb protocol (libs/adb), so that
//! the stock `adb` client drives the VM. init starts it only when the host asked for a
//! debuggable VM (`androidboot.adb.enabled=1`); it listens on vsock port 5555, as AOSP's
//! Microdroid adbd does (`service.adb.listen_addrs=vsock:5555`), with authentication off
//! (`ro.adb.secure=0`): reaching the port already takes the host's vsock.
//!
//! Modules: [`conn`] runs one connection (handshake, streams, flow control); [`shell`] the shell
//! and exec services; [`sync`] push/pull/ls; [`forward`] `tcp:` streams to the VM's own ports.
//!
//! `adbd [--listen vsock:PORT|tcp:ADDR:PORT]... [--shell PATH] [--path PATH]`: the host tests run
//! it on loopback TCP against Debian's adb.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod conn;
pub mod forward;
pub mod shell;
pub mod stream;
pub mod sync;

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

/// The port AOSP's Microdroid adbd listens on.
pub const ADB_VSOCK_PORT: u32 = 5555;
/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 8;
/// The payload size this adbd announces: what one WRTE may carry towards it (the client's
/// maximum is 1 MiB; a smaller figure bounds the memory a connection may make us hold).
pub const MAX_PAYLOAD: u32 = 256 * 1024;
/// Streams open at once on one connection.
pub const MAX_STREAMS: usize = 64;

/// What the services run with.
#[derive(Debug, Clone)]
pub struct Config {
    pub shell: String,
    /// `PATH` of shell commands.
    pub path: String,
    /// Where `TMPDIR` points (created at start).
    pub tmpdir: String,
    pub max_payload: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shell: "/system/bin/sh".into(),
            path: "/system/bin".into(),
            tmpdir: "/data/local/tmp".into(),
            max_payload: MAX_PAYLOAD,
        }
    }
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Vsock(u32),
    Tcp(String),
}

fn parse_args(args: &[String]) -> Result<(Vec<Listen>, Config)> {
    let mut listen = Vec::new();
    let mut config = Config::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value()?;
                if let Some(port) = v.strip_prefix("vsock:") {
                    listen.push(Listen::Vsock(port.parse().context("bad vsock port")?));
                } else if let Some(addr) = v.strip_prefix("tcp:") {
                    listen.push(Listen::Tcp(addr.to_owned()));
                } else {
                    bail!("--listen takes vsock:PORT or tcp:ADDR:PORT, not {v:?}");
                }
            }
            "--shell" => config.shell = value()?.clone(),
            "--path" => config.path = value()?.clone(),
            "--tmpdir" => config.tmpdir = value()?.clone(),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if listen.is_empty() {
        listen.push(Listen::Vsock(ADB_VSOCK_PORT));
    }
    Ok((listen, config))
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let (listen, config) = parse_args(args)?;
    std::fs::create_dir_all(&config.tmpdir)
        .with_context(|| format!("creating {}", config.tmpdir))?;
    let config = Arc::new(config);
    let active = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for l in listen {
        let config = config.clone();
        let active = active.clone();
        match l {
            Listen::Vsock(port) => {
                let listener = rpcbinder::vsock::VsockListener::bind(libc::VMADDR_CID_ANY, port)
                    .with_context(|| format!("listening on vsock port {port}"))?;
                println!("adbd: listening on vsock port {port}");
                threads.push(std::thread::spawn(move || loop {
                    match listener.accept() {
                        Ok((s, _cid)) => serve(OwnedFd::from(s), &config, &active),
                        Err(e) => eprintln!("adbd: accept: {e}"),
                    }
                }));
            }
            Listen::Tcp(addr) => {
                let listener =
                    TcpListener::bind(&addr).with_context(|| format!("listening on {addr}"))?;
                println!("adbd: listening on tcp {}", listener.local_addr()?);
                threads.push(std::thread::spawn(move || {
                    for s in listener.incoming() {
                        match s {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                serve(OwnedFd::from(s), &config, &active)
                            }
                            Err(e) => eprintln!("adbd: accept: {e}"),
                        }
                    }
                }));
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    bail!("every listener ended")
}

/// Serves one connection on its own thread, within [`MAX_CONNECTIONS`].
fn serve(fd: OwnedFd, config: &Arc<Config>, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::SeqCst);
        eprintln!("adbd: {MAX_CONNECTIONS} connections already open; closing a new one");
        return;
    }
    let config = config.clone();
    let active = active.clone();
    std::thread::spawn(move || {
        if let Err(e) = conn::serve(File::from(fd), &config) {
            eprintln!("adbd: connection ended: {e}");
        }
        active.fetch_sub(1, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let args: Vec<String> = [
            "--listen",
            "tcp:127.0.0.1:0",
            "--listen",
            "vsock:5555",
            "--shell",
            "/bin/sh",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (listen, config) = parse_args(&args).unwrap();
        assert_eq!(
            listen,
            [Listen::Tcp("127.0.0.1:0".into()), Listen::Vsock(5555)]
        );
        assert_eq!(config.shell, "/bin/sh");
        assert_eq!(parse_args(&[]).unwrap().0, [Listen::Vsock(ADB_VSOCK_PORT)]);
        assert!(parse_args(&["--listen".into(), "udp:1".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }
}
