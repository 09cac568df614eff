//! One adb stream as a service sees it: a reader of the host's WRTE payloads (each acknowledged
//! with OKAY once consumed: that is adb's only backpressure) and a writer that sends WRTEs one
//! at a time, each after the host's OKAY for the previous one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use adb::{Command, Packet};

/// The connection's sending side, shared by every stream.
#[derive(Debug)]
pub struct Output {
    socket: Mutex<File>,
    /// Whether the host negotiated the original protocol version (checksums filled in).
    pub checksum: AtomicBool,
}

impl Output {
    pub fn new(socket: File) -> Output {
        Output {
            socket: Mutex::new(socket),
            checksum: AtomicBool::new(true),
        }
    }

    pub fn send(&self, packet: &Packet) -> io::Result<()> {
        let bytes = packet.encode(self.checksum.load(Ordering::Relaxed));
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        socket.write_all(&bytes)
    }
}

/// What the connection keeps of an open stream to route the host's packets to it.
#[derive(Debug)]
pub struct Route {
    pub remote: u32,
    pub data: SyncSender<Vec<u8>>,
    pub acks: SyncSender<()>,
}

/// Open streams by local id.
pub type Routes = Arc<Mutex<HashMap<u32, Route>>>;

pub fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<u32, Route>> {
    routes.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ids of a stream and how to close it (once).
#[derive(Debug)]
pub struct Ends {
    pub local: u32,
    pub remote: u32,
    pub out: Arc<Output>,
    routes: Routes,
    closed: AtomicBool,
}

impl Ends {
    pub fn new(local: u32, remote: u32, out: Arc<Output>, routes: Routes) -> Arc<Ends> {
        Arc::new(Ends {
            local,
            remote,
            out,
            routes,
            closed: AtomicBool::new(false),
        })
    }

    /// Sends CLSE and forgets the route, which ends the reader's channel.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let was_open = lock(&self.routes).remove(&self.local).is_some();
        if was_open {
            let _ = self
                .out
                .send(&Packet::new(Command::Clse, self.local, self.remote, vec![]));
        }
    }

    /// The host saw our OPEN answer: OKAY.
    pub fn ready(&self) -> io::Result<()> {
        self.out
            .send(&Packet::new(Command::Okay, self.local, self.remote, vec![]))
    }
}

/// The host → service direction. `Read` gives the bytes as a stream; `next_chunk` WRTE by WRTE.
#[derive(Debug)]
pub struct StreamReader {
    pub ends: Arc<Ends>,
    data: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    owe_ack: bool,
}

impl StreamReader {
    pub fn new(ends: Arc<Ends>, data: Receiver<Vec<u8>>) -> StreamReader {
        StreamReader {
            ends,
            data,
            buf: Vec::new(),
            pos: 0,
            owe_ack: false,
        }
    }

    fn ack(&mut self) {
        if std::mem::take(&mut self.owe_ack) {
            let e = &self.ends;
            let _ = e
                .out
                .send(&Packet::new(Command::Okay, e.local, e.remote, vec![]));
        }
    }

    /// The next WRTE's payload, acknowledging the previous one; `None` once the stream closed.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        self.ack();
        let chunk = self.data.recv().ok()?;
        self.owe_ack = true;
        Some(chunk)
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.next_chunk() {
                Some(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The service → host direction: one WRTE in flight, each at most the negotiated size.
#[derive(Debug)]
pub struct StreamWriter {
    pub ends: Arc<Ends>,
    acks: Receiver<()>,
    max: usize,
}

impl StreamWriter {
    pub fn new(ends: Arc<Ends>, acks: Receiver<()>, max_payload: u32) -> StreamWriter {
        StreamWriter {
            ends,
            acks,
            max: (max_payload as usize).max(1),
        }
    }

    /// Sends `data` in WRTEs, each acknowledged before the next. Fails once the stream closed.
    pub fn send(&self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(self.max) {
            let e = &self.ends;
            e.out.send(&Packet::new(
                Command::Wrte,
                e.local,
                e.remote,
                chunk.to_vec(),
            ))?;
            self.acks
                .recv()
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"))?;
        }
        Ok(())
    }

    /// The largest payload a WRTE may carry.
    pub fn max_payload(&self) -> usize {
        self.max
    }
}

/// A writer shared by several producers (a shell's stdout and stderr).
pub type SharedWriter = Arc<Mutex<StreamWriter>>;

pub fn send_shared(w: &SharedWriter, data: &[u8]) -> io::Result<()> {
    w.lock().unwrap_or_else(|p| p.into_inner()).send(data)
}
