//! What every AIDL interface over RPC binder needs on top of a session, written once:
//!
//! - [`InterfaceClient`]: the generated "Bp" proxy's plumbing. Session setup as libbinder does
//!   it (handshake, GET_MAX_THREADS, GET_SESSION_ID, GET_ROOT), INTERFACE_TRANSACTION with the
//!   descriptor checked, calls that send the interface token and read the `binder::Status`
//!   reply header, and DEC_STRONG of the root when the proxy is closed or dropped. Calls are
//!   serialized on the one connection, so the proxy is shared by reference across threads.
//! - [`UnixSocketServer`]: one root object served on a Unix socket path, a thread per
//!   connection, until stopped or dropped.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{
    ClientConfig, Error, Parcel, RemoteBinder, Reply, RpcClient, RpcServer, SessionEnd, Status,
};

/// Why a call on an [`InterfaceClient`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Session or transport failure (including transport error statuses).
    #[error(transparent)]
    Rpc(#[from] Error),
    /// The service answered with an AIDL exception (e.g. EX_ILLEGAL_STATE).
    #[error("service error: {0}")]
    Service(Status),
    /// The proxy's lock was poisoned by a panic in another thread.
    #[error("client lock poisoned")]
    Poisoned,
}

/// The session and its root object; `None` once closed (the connection is dropped with it).
struct Proxy<S: Read + Write> {
    rpc: RpcClient<S>,
    root: RemoteBinder,
}

/// A proxy for the root object of a session, which implements the interface `descriptor`.
pub struct InterfaceClient<S: Read + Write> {
    descriptor: &'static str,
    proxy: Mutex<Option<Proxy<S>>>,
}

impl<S: Read + Write> std::fmt::Debug for InterfaceClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceClient")
            .field("descriptor", &self.descriptor)
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> InterfaceClient<S> {
    /// Sets up the session on `stream` and checks that its root object is `descriptor`.
    pub fn connect(
        stream: S,
        config: ClientConfig,
        descriptor: &'static str,
    ) -> Result<Self, Error> {
        let mut rpc = RpcClient::connect_with(stream, config)?;
        let root = rpc.get_root()?;
        let actual = rpc.interface_descriptor(&root)?;
        if actual != descriptor {
            return Err(Error::DescriptorMismatch {
                expected: descriptor.to_string(),
                actual,
            });
        }
        Ok(InterfaceClient {
            descriptor,
            proxy: Mutex::new(Some(Proxy { rpc, root })),
        })
    }

    /// Sends transaction `code` with the interface token and the arguments `args` writes.
    /// Returns the reply when its status is EX_NONE; read it after the status header.
    pub fn call(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<Reply, CallError> {
        let mut guard = self.proxy.lock().map_err(|_| CallError::Poisoned)?;
        let proxy = guard.as_mut().ok_or(Error::Shutdown)?;
        let root = proxy.root;
        let mut parcel = Parcel::new();
        parcel.write_interface_token(self.descriptor);
        args(&mut parcel);
        let reply = proxy
            .rpc
            .transact(&root, code, &parcel, 0)?
            .ok_or(Error::UnexpectedReply)?;
        let status = reply.reader().read_status().map_err(Error::Parcel)?;
        if !status.is_ok() {
            return Err(CallError::Service(status));
        }
        Ok(reply)
    }

    /// As [`Self::call`], for methods that return nothing.
    pub fn call_void(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<(), CallError> {
        self.call(code, args).map(|_| ())
    }

    /// Releases the root reference (DEC_STRONG) and closes the connection: the session ends
    /// with its last reference, as in libbinder. Later calls fail with `Error::Shutdown`.
    pub fn close(&self) -> Result<(), CallError> {
        let mut guard = self.proxy.lock().map_err(|_| CallError::Poisoned)?;
        match guard.take() {
            // Dropping the session after the release closes the stream.
            Some(mut proxy) => Ok(proxy.rpc.release(proxy.root)?),
            None => Ok(()),
        }
    }
}

impl<S: Read + Write> Drop for InterfaceClient<S> {
    fn drop(&mut self) {
        // Best effort, as a proxy destructor: the peer may already be gone.
        let _ = self.close();
    }
}

/// How long a client may take to send the rest of a command once it has started one (and to
/// complete its connection's handshake).
pub const MESSAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one root object on a Unix socket, a thread per connection, until [`Self::stop`] or
/// drop. `on_session_end` hears how each session ended.
#[derive(Debug)]
pub struct UnixSocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How a served session ended.
pub type SessionOutcome = Result<SessionEnd, Error>;

impl UnixSocketServer {
    /// Binds `path` (removing a stale socket file first) and starts serving.
    pub fn bind(
        path: &Path,
        server: RpcServer,
        on_session_end: impl Fn(SessionOutcome) + Send + Sync + 'static,
    ) -> io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        Ok(Self::serve(
            listener,
            path.to_path_buf(),
            server,
            on_session_end,
        ))
    }

    /// Serves on an already bound listener whose path is `path` (used to wake it on stop).
    pub fn serve(
        listener: UnixListener,
        path: PathBuf,
        server: RpcServer,
        on_session_end: impl Fn(SessionOutcome) + Send + Sync + 'static,
    ) -> Self {
        Self::serve_limited(listener, path, server, None, on_session_end, |_| {})
    }

    /// [`Self::serve`], serving at most `max_sessions` connections in the server's lifetime:
    /// any later connection is closed at once, unserved (a host service that only its first
    /// client, microdroid_manager, may use), and `on_refused` hears how many were refused so
    /// far. Every connection gets [`MESSAGE_TIMEOUT`] as its read timeout: a client may idle
    /// between commands, but a command must arrive whole (`Error::Stalled` otherwise).
    pub fn serve_limited(
        listener: UnixListener,
        path: PathBuf,
        server: RpcServer,
        max_sessions: Option<usize>,
        on_session_end: impl Fn(SessionOutcome) + Send + Sync + 'static,
        on_refused: impl Fn(usize) + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_requested = stop.clone();
        let server = Arc::new(server);
        let on_session_end = Arc::new(on_session_end);
        let thread = std::thread::spawn(move || {
            let mut sessions = 0usize;
            let mut refused = 0usize;
            for conn in listener.incoming() {
                if stop_requested.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                if max_sessions.is_some_and(|max| sessions >= max) {
                    drop(stream);
                    refused = refused.saturating_add(1);
                    on_refused(refused);
                    continue;
                }
                let _ = stream.set_read_timeout(Some(MESSAGE_TIMEOUT));
                sessions += 1;
                let server = server.clone();
                let on_session_end = on_session_end.clone();
                std::thread::spawn(move || on_session_end(server.serve_connection(stream)));
            }
        });
        UnixSocketServer {
            path,
            stop,
            thread: Some(thread),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket file. Sessions already running end when their
    /// peer goes away.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Wake the blocking accept.
            if let Ok(s) = UnixStream::connect(&self.path) {
                drop(s);
                let _ = thread.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for UnixSocketServer {
    fn drop(&mut self) {
        self.stop();
    }
}
