//! The host's end of tombstone export: the guest's microdroid_manager connects to the host's
//! vsock port 2000 (AOSP's VM_TOMBSTONES_SERVICE_PORT) once per crash and sends one text
//! tombstone, ended by EOF. Here each connection arrives on vhost-device-vsock's Unix socket
//! `<vm.vsock>_2000` and becomes `tombstone_NN` in the VM's log directory, as AOSP's
//! virtualizationservice hands each to the host's tombstoned.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The guest's tombstone port.
pub const TOMBSTONE_PORT: u32 = 2000;
/// The most bytes kept of one tombstone (a guest could send without end).
pub const MAX_TOMBSTONE_BYTES: u64 = 4 * 1024 * 1024;
/// The most tombstones kept per VM.
pub const MAX_TOMBSTONES: usize = 32;
/// How long a guest may take to send one.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Receives tombstones until stopped.
#[derive(Debug)]
pub struct Receiver {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<PathBuf>>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `socket` (before the VM boots) and writes tombstones into `dir`.
    pub fn start(socket: &Path, dir: &Path) -> std::io::Result<Receiver> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, received, dir) = (stop.clone(), received.clone(), dir.to_owned());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let mut list = received.lock().unwrap_or_else(|p| p.into_inner());
                    if list.len() >= MAX_TOMBSTONES {
                        continue;
                    }
                    match receive(conn, &dir, list.len()) {
                        Ok((path, bytes)) => {
                            eprintln!(
                                "tombstones: Received {bytes} bytes from guest & wrote to tombstone file {}",
                                path.display()
                            );
                            list.push(path);
                        }
                        Err(e) => eprintln!("vmctl: receiving a tombstone: {e}"),
                    }
                }
            })
        };
        Ok(Receiver {
            socket: socket.to_owned(),
            stop,
            received,
            thread: Some(thread),
        })
    }

    /// Stops listening (after the VM ended) and returns the tombstones received.
    pub fn finish(mut self) -> Vec<PathBuf> {
        self.stop.store(true, Ordering::SeqCst);
        // Releases accept() so that the thread sees the stop flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        std::mem::take(&mut *self.received.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn receive(conn: UnixStream, dir: &Path, index: usize) -> std::io::Result<(PathBuf, u64)> {
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut text = Vec::new();
    let bytes = (&conn).take(MAX_TOMBSTONE_BYTES).read_to_end(&mut text)? as u64;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("tombstone_{index:02}"));
    let mut file = std::fs::File::create(&path)?;
    file.write_all(&text)?;
    Ok((path, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_is_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("vm.vsock_2000");
        let receiver = Receiver::start(&socket, &dir.path().join("t")).unwrap();
        for text in ["first tombstone\n", "second\n"] {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(text.as_bytes()).unwrap();
        }
        // Connections are handled in order; a third one makes sure both were read.
        drop(UnixStream::connect(&socket).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        let got = receiver.finish();
        assert!(got.len() >= 2, "{got:?}");
        assert_eq!(
            std::fs::read_to_string(&got[0]).unwrap(),
            "first tombstone\n"
        );
        assert_eq!(got[0].file_name().unwrap(), "tombstone_00");
        assert_eq!(std::fs::read_to_string(&got[1]).unwrap(), "second\n");
    }
}
