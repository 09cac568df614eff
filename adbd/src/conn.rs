//! One adb connection: the CNXN handshake (no AUTH: authentication is off, as on AOSP's
//! debuggable Microdroid), then OPEN/OKAY/WRTE/CLSE routing to per-stream service threads.
//!
//! Bad input ends this connection only: a bad magic, an unknown command, a payload over the
//! announced maximum or a wrong non-zero checksum (adb::packet), or a second WRTE on a stream
//! before our OKAY. The listener keeps serving others.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, TrySendError};
use std::sync::{Arc, Mutex};

use adb::packet::{self, read_packet, ReadError, VERSION_SKIP_CHECKSUM};
use adb::{Command, Packet, Service};

use crate::stream::{lock, Ends, Output, Route, Routes, StreamReader, StreamWriter};
use crate::{Config, MAX_STREAMS};

/// The features this adbd implements, as the client knows them (nothing it would misuse).
pub const FEATURES: &[&str] = &["shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir"];

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("the host sent a second WRTE on stream {0} before our OKAY")]
    WriteWithoutAck(u32),
    #[error("writing to the host: {0}")]
    Write(#[from] io::Error),
}

pub fn serve(socket: File, config: &Config) -> Result<(), ConnError> {
    let mut input = socket.try_clone()?;
    let out = Arc::new(Output::new(socket));
    let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
    let result = run(&mut input, &out, &routes, config);
    // Dropping the routes ends every stream's reader: their services stop their children.
    lock(&routes).clear();
    result
}

fn run(
    input: &mut File,
    out: &Arc<Output>,
    routes: &Routes,
    config: &Config,
) -> Result<(), ConnError> {
    let mut online = false;
    let mut max_payload = config.max_payload;
    let mut next_id: u32 = 1;
    loop {
        let p = match read_packet(input, config.max_payload) {
            Ok(p) => p,
            Err(ReadError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match p.command {
            Command::Cnxn => {
                // A new CNXN restarts the transport: streams of the old one are gone.
                lock(routes).clear();
                let version = p.arg0.min(VERSION_SKIP_CHECKSUM);
                out.checksum
                    .store(version < VERSION_SKIP_CHECKSUM, Ordering::Relaxed);
                max_payload = p.arg1.clamp(packet::MAX_PAYLOAD_V1, config.max_payload);
                let banner =
                    packet::device_banner("microdroid", "microdroid", "microdroid", FEATURES);
                out.send(&Packet::new(
                    Command::Cnxn,
                    VERSION_SKIP_CHECKSUM,
                    max_payload,
                    banner,
                ))?;
                online = true;
            }
            // Messages before CNXN are ignored, as the protocol says.
            _ if !online => {}
            Command::Open => {
                if p.arg0 == 0 {
                    continue;
                }
                let remote = p.arg0;
                let service = match Service::parse(&p.data) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("adbd: refusing OPEN: {e}");
                        out.send(&Packet::new(Command::Clse, 0, remote, vec![]))?;
                        continue;
                    }
                };
                if lock(routes).len() >= MAX_STREAMS {
                    eprintln!("adbd: {MAX_STREAMS} streams already open; refusing one more");
                    out.send(&Packet::new(Command::Clse, 0, remote, vec![]))?;
                    continue;
                }
                let local = next_id;
                next_id = next_id.checked_add(1).unwrap_or(1);
                // One WRTE may be in flight from the host, one OKAY towards a writer.
                let (data_tx, data_rx) = sync_channel(1);
                let (ack_tx, ack_rx) = sync_channel(1);
                lock(routes).insert(
                    local,
                    Route {
                        remote,
                        data: data_tx,
                        acks: ack_tx,
                    },
                );
                let ends = Ends::new(local, remote, out.clone(), routes.clone());
                let reader = StreamReader::new(ends.clone(), data_rx);
                let writer = StreamWriter::new(ends, ack_rx, max_payload);
                let config = config.clone();
                std::thread::spawn(move || run_service(service, reader, writer, &config));
            }
            Command::Wrte => {
                let routes = lock(routes);
                let Some(route) = routes.get(&p.arg1).filter(|r| r.remote == p.arg0) else {
                    continue; // a stale stream: ignored
                };
                match route.data.try_send(p.data) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(_)) => return Err(ConnError::WriteWithoutAck(p.arg1)),
                }
            }
            Command::Okay => {
                if let Some(route) = lock(routes).get(&p.arg1).filter(|r| r.remote == p.arg0) {
                    let _ = route.acks.try_send(());
                }
            }
            Command::Clse => {
                let mut routes = lock(routes);
                if routes.get(&p.arg1).is_some_and(|r| r.remote == p.arg0) {
                    routes.remove(&p.arg1);
                }
            }
            // No AUTH (authentication is off), no TLS; SYNC is never valid on the wire.
            Command::Auth | Command::Stls | Command::Sync => {}
        }
    }
}

fn run_service(service: Service, reader: StreamReader, writer: StreamWriter, config: &Config) {
    let ends = writer.ends.clone();
    match service {
        Service::Shell {
            v2,
            mode,
            term,
            command,
        } => crate::shell::run_shell(reader, writer, config, v2, mode, term, &command),
        Service::Exec(command) => crate::shell::run_exec(reader, writer, config, &command),
        Service::Sync => crate::sync::run(reader, writer),
        Service::Tcp(port) => crate::forward::run(reader, writer, port),
        Service::Root => text_reply(&writer, "adbd is already running as root\n"),
        Service::Unroot => text_reply(&writer, "adbd cannot run as non-root in this VM\n"),
        Service::Reboot(_) => text_reply(
            &writer,
            "reboot is not supported: the host owns the VM's lifecycle (vmctl stop)\n",
        ),
    }
    ends.close();
}

fn text_reply(writer: &StreamWriter, text: &str) {
    if writer.ends.ready().is_ok() {
        let _ = writer.send(text.as_bytes());
    }
}
