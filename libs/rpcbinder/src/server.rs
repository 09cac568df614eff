//! Server side: serves one root object to each client session.
//!
//! Behaves like libbinder's `RpcServer` with the default of one thread per session: it
//! answers the new-session handshake, the special transactions, `INTERFACE_TRANSACTION` and
//! `PING` on the root, checks the interface token of user calls, and sends
//! `DEC_STRONG(root, n)` after each transaction on the root, before the REPLY. When the
//! client releases its last reference the session ends and the connection is closed.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::client::{
    EXTENSION_TRANSACTION, FIRST_CALL_TRANSACTION, INTERFACE_TRANSACTION, LAST_CALL_TRANSACTION,
    PING_TRANSACTION,
};
use crate::conn::{
    encode_dec_strong, encode_reply, read_exact_or_closed, read_next_command, send, Incoming,
    IncomingTransaction,
};
use crate::error::Error;
use crate::parcel::{stability, Parcel, ParcelReader};
use crate::status::StatusCode;
use crate::wire::{
    Address, ConnectionHeader, NewSessionResponse, OutgoingConnectionInit, ADDRESS_OPTION_CREATED,
    ADDRESS_OPTION_FOR_SERVER, CONNECTION_OPTION_INCOMING, DEFAULT_VERSION, FD_MODE_NONE,
    FLAG_ONEWAY, MAX_SUPPORTED_VERSION, PROTOCOL_VERSION_2, SESSION_ID_BYTES,
    SPECIAL_TRANSACT_GET_MAX_THREADS, SPECIAL_TRANSACT_GET_ROOT, SPECIAL_TRANSACT_GET_SESSION_ID,
};

/// A local binder object served to clients.
pub trait Binder: Send + Sync {
    /// The interface descriptor (answer to `INTERFACE_TRANSACTION`, checked against the
    /// interface token of every user call).
    fn descriptor(&self) -> &str;

    /// Handles a user transaction (code in `FIRST_CALL_TRANSACTION..=LAST_CALL_TRANSACTION`).
    /// `data` is positioned after the (already checked) interface token. An `Err` becomes the
    /// transport status of the reply and `reply` is discarded; AIDL exceptions are written
    /// into `reply` as a `Status` with `Ok(())`.
    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode>;

    /// The extension object (`IBinder::getExtension`): a binder that adds an interface to this
    /// one without changing it. Served by general sessions ([`crate::SessionServer`]).
    fn extension(&self) -> Option<crate::SpIBinder> {
        None
    }
}

/// How a session ended without a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client released its last reference (final DEC_STRONG); we closed the session.
    Released,
    /// The client closed the connection.
    Closed,
    /// A callback (incoming) connection attached to a session was closed.
    CallbackClosed,
}

/// The root's node. The client's references are not counted: each transaction hands one
/// back and gets it returned at once (see [`Session::handle_transact`]).
#[derive(Debug, Default)]
struct RootNode {
    address: Option<Address>,
    times_sent: u32,
    async_number: u64,
}

/// An RPC binder server for one root object.
pub struct RpcServer {
    root: Arc<dyn Binder>,
    max_version: u32,
    sessions: Mutex<HashSet<[u8; SESSION_ID_BYTES]>>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("descriptor", &self.root.descriptor())
            .field("max_version", &self.max_version)
            .finish()
    }
}

/// Removes a session id from the registry when the serving connection ends.
struct SessionGuard<'a> {
    sessions: &'a Mutex<HashSet<[u8; SESSION_ID_BYTES]>>,
    id: [u8; SESSION_ID_BYTES],
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(&self.id);
        }
    }
}

/// A new session's id: 32 random bytes, as libbinder's `RpcServer` makes them.
pub(crate) fn random_session_id() -> Result<[u8; SESSION_ID_BYTES], Error> {
    let mut id = [0u8; SESSION_ID_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

impl RpcServer {
    /// A server for `root`, offering protocol v1 (Android 14/15).
    pub fn new(root: Arc<dyn Binder>) -> Self {
        RpcServer {
            root,
            max_version: DEFAULT_VERSION,
            sessions: Mutex::new(HashSet::new()),
        }
    }

    /// Sets the highest protocol version offered (clamped to what this crate speaks:
    /// 0 = Android 13, 1 = Android 14/15, 2 = Android 16). Clients offering less get less.
    pub fn with_max_version(mut self, version: u32) -> Self {
        self.max_version = version.min(MAX_SUPPORTED_VERSION);
        self
    }

    /// The root object.
    pub fn root(&self) -> &Arc<dyn Binder> {
        &self.root
    }

    /// Serves one connection until the session ends. Runs on the caller's thread; give each
    /// accepted connection its own thread to serve several. Timeouts are the stream's.
    pub fn serve_connection<S: Read + Write>(&self, mut stream: S) -> Result<SessionEnd, Error> {
        let mut hb = [0u8; ConnectionHeader::SIZE];
        read_exact_or_closed(&mut stream, &mut hb)?;
        let header = ConnectionHeader::decode(&hb);
        if header.fd_mode != FD_MODE_NONE {
            return Err(Error::UnsupportedFdMode(header.fd_mode));
        }
        match header.session_id_size {
            0 => {}
            n if n as usize == SESSION_ID_BYTES => return self.attach(stream, header),
            n => return Err(Error::BadSessionIdSize(n)),
        }
        if header.options & CONNECTION_OPTION_INCOMING != 0 {
            return Err(Error::IncomingNewSession);
        }
        let version = header.version.min(self.max_version);
        send(&mut stream, &NewSessionResponse { version }.encode())?;
        let id = random_session_id()?;
        let guard = SessionGuard {
            sessions: &self.sessions,
            id,
        };
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id);
        }
        let mut ib = [0u8; OutgoingConnectionInit::SIZE];
        read_exact_or_closed(&mut stream, &mut ib)?;
        OutgoingConnectionInit::check(&ib)?;
        let mut session = Session {
            server: self,
            stream,
            version,
            id,
            root: RootNode::default(),
            next_id: 0,
        };
        let r = session.run();
        drop(guard);
        r
    }

    /// Attach of an extra connection to an existing session. A callback (INCOMING) connection
    /// gets "cci" and is held open (this server never calls back); extra outgoing
    /// connections exceed our single thread and are refused, as libbinder does.
    fn attach<S: Read + Write>(
        &self,
        mut stream: S,
        header: ConnectionHeader,
    ) -> Result<SessionEnd, Error> {
        let mut id = [0u8; SESSION_ID_BYTES];
        stream.read_exact(&mut id)?;
        let known = self
            .sessions
            .lock()
            .map(|s| s.contains(&id))
            .unwrap_or(false);
        if !known {
            return Err(Error::UnknownSession);
        }
        if header.options & CONNECTION_OPTION_INCOMING == 0 {
            return Err(Error::TooManyConnections);
        }
        send(&mut stream, &OutgoingConnectionInit::encode())?;
        let mut b = [0u8; 1];
        loop {
            return match stream.read(&mut b) {
                Ok(0) => Ok(SessionEnd::CallbackClosed),
                Ok(_) => Err(Error::UnexpectedReply),
                // Held open for as long as the client likes (a read timeout is for commands).
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => Err(Error::Io(e)),
            };
        }
    }
}

struct Session<'a, S> {
    server: &'a RpcServer,
    stream: S,
    version: u32,
    id: [u8; SESSION_ID_BYTES],
    root: RootNode,
    next_id: u32,
}

enum Flow {
    Continue,
    Released,
}

impl<S: Read + Write> Session<'_, S> {
    fn run(&mut self) -> Result<SessionEnd, Error> {
        loop {
            let cmd = match read_next_command(&mut self.stream, self.version) {
                Ok(c) => c,
                Err(Error::ConnectionClosed) => return Ok(SessionEnd::Closed),
                Err(e) => return Err(e),
            };
            let flow = match cmd {
                Incoming::Transact(t) => self.handle_transact(&t)?,
                Incoming::Reply(_) => return Err(Error::UnexpectedReply),
                Incoming::DecStrong(d) => self.handle_dec_strong(d.address, d.amount)?,
            };
            if let Flow::Released = flow {
                return Ok(SessionEnd::Released);
            }
        }
    }

    fn reply(&mut self, status: StatusCode, parcel: &Parcel) -> Result<(), Error> {
        let bytes = encode_reply(self.version, status, parcel)?;
        send(&mut self.stream, &bytes)
    }

    fn handle_dec_strong(&mut self, address: Address, amount: u32) -> Result<Flow, Error> {
        if self.root.address != Some(address) {
            return Err(Error::DecStrongUnknownAddress(address.0));
        }
        if amount > self.root.times_sent {
            return Err(Error::DecStrongUnderflow {
                address: address.0,
                amount,
                held: self.root.times_sent,
            });
        }
        self.root.times_sent -= amount;
        if self.root.times_sent == 0 {
            // Last node erased: libbinder shuts the session down.
            self.root = RootNode::default();
            return Ok(Flow::Released);
        }
        Ok(Flow::Continue)
    }

    fn handle_transact(&mut self, t: &IncomingTransaction) -> Result<Flow, Error> {
        let two_way = t.header.flags & FLAG_ONEWAY == 0;
        let addr = t.header.address;
        if addr.is_zero() {
            let mut reply = Parcel::new();
            let status = self.special(t.header.code, &mut reply);
            if two_way {
                self.reply(status, &reply)?;
            }
            return Ok(Flow::Continue);
        }
        if !addr.is_recognized() {
            if two_way {
                self.reply(StatusCode::BAD_VALUE, &Parcel::new())?;
            }
            return Err(Error::BadAddress(addr.0));
        }
        if self.root.address != Some(addr) {
            if two_way {
                self.reply(StatusCode::BAD_VALUE, &Parcel::new())?;
            }
            return Err(Error::UnknownLocalAddress(addr.0));
        }
        if !two_way {
            if t.header.async_number != self.root.async_number {
                return Err(Error::AsyncNumberMismatch {
                    expected: self.root.async_number,
                    got: t.header.async_number,
                });
            }
            self.root.async_number = self.root.async_number.wrapping_add(1);
        }
        let binders_in_table = self.version >= PROTOCOL_VERSION_2;
        let mut data = ParcelReader::with_objects(&t.data, &t.objects, binders_in_table);
        let mut reply = Parcel::new();
        let status = self.dispatch(t.header.code, &mut data, &mut reply);
        // onBinderEntering counted the reference the client handed back with its target
        // address; flushExcessBinderRefs gives it back, before the REPLY.
        send(&mut self.stream, &encode_dec_strong(addr, 1))?;
        if two_way {
            self.reply(status, &reply)?;
        }
        Ok(Flow::Continue)
    }

    fn dispatch(&self, code: u32, data: &mut ParcelReader<'_>, reply: &mut Parcel) -> StatusCode {
        let root = &self.server.root;
        match code {
            INTERFACE_TRANSACTION => {
                reply.write_str(root.descriptor());
                StatusCode::OK
            }
            PING_TRANSACTION => StatusCode::OK,
            EXTENSION_TRANSACTION => {
                reply.write_strong_binder(None);
                StatusCode::OK
            }
            FIRST_CALL_TRANSACTION..=LAST_CALL_TRANSACTION => {
                if let Err(e) = data.enforce_interface(root.descriptor()) {
                    return e.status_code();
                }
                match root.on_transact(code, data, reply) {
                    Ok(()) => StatusCode::OK,
                    Err(s) => s,
                }
            }
            _ => StatusCode::UNKNOWN_TRANSACTION,
        }
    }

    fn special(&mut self, code: u32, reply: &mut Parcel) -> StatusCode {
        match code {
            SPECIAL_TRANSACT_GET_ROOT => {
                let address = match self.root.address {
                    Some(a) => a,
                    None => {
                        let a = Address::new(
                            ADDRESS_OPTION_CREATED | ADDRESS_OPTION_FOR_SERVER,
                            self.next_id,
                        );
                        self.next_id = self.next_id.wrapping_add(1);
                        self.root.address = Some(a);
                        a
                    }
                };
                self.root.times_sent = self.root.times_sent.saturating_add(1);
                reply.write_strong_binder(Some((address, stability::SYSTEM)));
                StatusCode::OK
            }
            SPECIAL_TRANSACT_GET_MAX_THREADS => {
                reply.write_i32(1);
                StatusCode::OK
            }
            SPECIAL_TRANSACT_GET_SESSION_ID => {
                reply.write_byte_array(Some(&self.id));
                StatusCode::OK
            }
            _ => StatusCode::UNKNOWN_TRANSACTION,
        }
    }
}
