//! `vmctl adb CID`: what AOSP's `adb forward tcp:N vsock:CID:5555` sets up, for a host whose
//! vsock is vhost-device-vsock's Unix socket. A loopback TCP port forwards each connection to the
//! guest adbd's vsock port 5555 (through the VM's `vm.vsock`, `CONNECT 5555`), so that the stock
//! client's `adb connect 127.0.0.1:PORT` reaches the VM and `adb -s 127.0.0.1:PORT shell` works.
//! It serves until the VM ends.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::registry;
use crate::vsock;

/// The guest adbd's vsock port (AOSP's Microdroid: `service.adb.listen_addrs=vsock:5555`).
pub const ADB_VSOCK_PORT: u32 = 5555;
/// How long the first connection may wait for adbd (a VM that is still booting).
pub const ADB_WAIT: Duration = Duration::from_secs(30);

/// A running VM's adb endpoint.
#[derive(Debug, Clone)]
pub struct AdbTarget {
    pub cid: u32,
    pub vsock_socket: PathBuf,
}

/// Finds the VM and checks that it is debuggable (only those run adbd).
pub fn target(runtime_dir: &Path, cid: u32) -> Result<AdbTarget> {
    let record = registry::find(runtime_dir, cid)
        .with_context(|| format!("no running VM has CID {cid} (see `vmctl list`)"))?;
    if record.debug == "none" {
        bail!("VM {cid} is not debuggable (debug level NONE): it runs no adbd");
    }
    Ok(AdbTarget {
        cid,
        vsock_socket: vsock::guest_vsock_socket(&record.run_dir),
    })
}

/// Connects to the guest's adbd, retrying while the VM boots, up to `wait`.
pub fn connect_adbd(target: &AdbTarget, wait: Duration) -> Result<UnixStream> {
    let deadline = Instant::now() + wait;
    loop {
        match vsock::connect(&target.vsock_socket, ADB_VSOCK_PORT, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "reaching adbd on vsock port {ADB_VSOCK_PORT} of VM {}",
                        target.cid
                    )
                })
            }
        }
    }
}

fn copy(mut from: impl Read, mut to: impl Write) -> io::Result<u64> {
    io::copy(&mut from, &mut to)
}

/// Forwards one TCP connection to adbd until either side closes.
fn forward(client: TcpStream, target: &AdbTarget) -> Result<()> {
    let guest = connect_adbd(target, Duration::ZERO)?;
    let _ = client.set_nodelay(true);
    let (client_in, guest_in) = (client.try_clone()?, guest.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = copy(&client_in, &guest_in);
        let _ = guest_in.shutdown(Shutdown::Write);
    });
    let _ = copy(&guest, &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// A bound forwarder.
#[derive(Debug)]
pub struct Forwarder {
    listener: TcpListener,
    target: AdbTarget,
    runtime_dir: PathBuf,
}

impl Forwarder {
    /// Binds 127.0.0.1:`port` (0: any free port).
    pub fn bind(runtime_dir: &Path, target: AdbTarget, port: u16) -> Result<Forwarder> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
        Ok(Forwarder {
            listener,
            target,
            runtime_dir: runtime_dir.to_owned(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves connections until the VM is no longer running.
    pub fn serve(&self) -> Result<()> {
        self.listener.set_nonblocking(true)?;
        loop {
            match self.listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false)?;
                    let target = self.target.clone();
                    std::thread::spawn(move || {
                        if let Err(e) = forward(client, &target) {
                            eprintln!("vmctl adb: {e:#}");
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !registry::is_running(&self.runtime_dir, self.target.cid) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).context("accepting an adb connection"),
            }
        }
    }
}

/// `vmctl adb CID [--port P] [--connect]`.
pub fn run(cid: u32, port: u16, connect: bool, adb: &Path) -> Result<()> {
    let runtime_dir = registry::default_runtime_dir();
    let target = target(&runtime_dir, cid)?;
    // Fail here, clearly, if adbd does not answer (rather than at the client's first packet).
    drop(connect_adbd(&target, ADB_WAIT)?);
    let forwarder = Forwarder::bind(&runtime_dir, target, port)?;
    let address = format!("127.0.0.1:{}", forwarder.port());
    println!("VM {cid}: adb forwarded to {address}; connect with:");
    println!("adb connect {address}");
    io::stdout().flush()?;
    if connect {
        let out = std::process::Command::new(adb)
            .args(["connect", &address])
            .output()
            .with_context(|| format!("running {}", adb.display()))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    forwarder.serve()?;
    println!("VM {cid} ended");
    Ok(())
}
