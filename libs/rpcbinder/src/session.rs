//! General RPC binder sessions, as libbinder's `RpcSession`/`RpcServer` with `RpcState`:
//! binder objects travel in parcels both ways with their reference counts, a client can offer
//! incoming (callback) connections on which the server calls its binders, oneway calls are run
//! in `asyncNumber` order, and file descriptors travel as SCM_RIGHTS on Unix sockets (fd mode
//! UNIX). The single-root [`crate::RpcServer`] and [`crate::RpcClient`] remain for the guest's
//! services; this is what the host API (virtmgr and its clients) is built on.
//!
//! Reference counting follows `RpcState` (docs/formats/rpc-binder.md): a node's `times_sent`
//! counts references the peer holds; `times_recd` counts references we received and still owe
//! back. A proxy gives back what it received when it is dropped (`DEC_STRONG`), a local binder
//! received in a parcel or as a transaction target is given back at once. A local binder is
//! kept alive while the peer holds a reference; when the last node of a session is erased, or a
//! connection fails, the session shuts down: every connection closes, every local node is
//! dropped, and death listeners run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread;

use crate::client::{
    EXTENSION_TRANSACTION, FIRST_CALL_TRANSACTION, INTERFACE_TRANSACTION, LAST_CALL_TRANSACTION,
    PING_TRANSACTION,
};
use crate::conn::{
    encode_dec_strong, encode_reply_data, encode_transact_data, parse_command_with, Incoming,
    IncomingTransaction,
};
use crate::error::{Error, ParcelError};
use crate::parcel::{stability, ObjectResolver, Parcel, ParcelReader};
use crate::server::Binder;
use crate::status::{Status, StatusCode};
use crate::transport::SocketTransport;
use crate::wire::{
    Address, ConnectionHeader, NewSessionResponse, OutgoingConnectionInit, WireHeader,
    ADDRESS_OPTION_CREATED, ADDRESS_OPTION_FOR_SERVER, CONNECTION_OPTION_INCOMING, DEFAULT_VERSION,
    FD_MODE_NONE, FLAG_ONEWAY, MAX_SUPPORTED_VERSION, PROTOCOL_VERSION_2,
    PROTOCOL_VERSION_EXPERIMENTAL, SESSION_ID_BYTES, SPECIAL_TRANSACT_GET_MAX_THREADS,
    SPECIAL_TRANSACT_GET_ROOT, SPECIAL_TRANSACT_GET_SESSION_ID,
};

/// `FileDescriptorTransportMode::UNIX`.
pub const FD_MODE_UNIX: u8 = 1;
/// libbinder's cap on a client's outgoing connections (`kMaxOutgoingConnections`... as
/// `RpcSession::setupClient` clamps the server's max threads).
pub const MAX_OUTGOING_CONNECTIONS: u32 = 10;
/// Oneway transactions queued for one node before the session is ended (`RpcState`).
pub const MAX_QUEUED_ONEWAY: usize = 10_000;

/// A binder object: one of ours, or a proxy for one of the peer's.
#[derive(Clone)]
pub enum SpIBinder {
    /// A local object.
    Local(Arc<dyn Binder>),
    /// A proxy for a remote object.
    Remote(Arc<Proxy>),
}

impl fmt::Debug for SpIBinder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpIBinder::Local(b) => write!(f, "Local({})", b.descriptor()),
            SpIBinder::Remote(p) => write!(f, "Remote({:#018x})", p.address.0),
        }
    }
}

impl PartialEq for SpIBinder {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SpIBinder::Local(a), SpIBinder::Local(b)) => local_key(a) == local_key(b),
            (SpIBinder::Remote(a), SpIBinder::Remote(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for SpIBinder {}

impl SpIBinder {
    /// A local binder object.
    pub fn local(binder: Arc<dyn Binder>) -> Self {
        SpIBinder::Local(binder)
    }

    /// The stability this binder is sent with: platform (SYSTEM) for ours, the sender's mark
    /// for proxies.
    pub fn stability(&self) -> i32 {
        match self {
            SpIBinder::Local(_) => stability::SYSTEM,
            SpIBinder::Remote(p) => p.stability,
        }
    }

    /// The proxy, if this is a remote object.
    pub fn as_remote(&self) -> Option<&Arc<Proxy>> {
        match self {
            SpIBinder::Remote(p) => Some(p),
            SpIBinder::Local(_) => None,
        }
    }
}

fn local_key(b: &Arc<dyn Binder>) -> usize {
    Arc::as_ptr(b) as *const () as usize
}

/// A proxy for a remote binder. Dropping the last clone gives its references back to the peer
/// (`DEC_STRONG`), which may end the remote object's life.
pub struct Proxy {
    session: Arc<Inner>,
    address: Address,
    stability: i32,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &format_args!("{:#018x}", self.address.0))
            .field("stability", &self.stability)
            .finish()
    }
}

impl Proxy {
    /// The session this proxy belongs to.
    pub fn session(&self) -> RpcSession {
        RpcSession {
            inner: self.session.clone(),
        }
    }

    /// The wire address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Sends a transaction; waits for the reply unless `flags` has `FLAG_ONEWAY`. User codes
    /// need a SYSTEM-stable target, as libbinder's `BpBinder::transact` requires.
    pub fn transact(
        &self,
        code: u32,
        data: &Parcel,
        flags: u32,
    ) -> Result<Option<ReceivedParcel>, Error> {
        if (FIRST_CALL_TRANSACTION..=LAST_CALL_TRANSACTION).contains(&code)
            && self.stability & stability::SYSTEM != stability::SYSTEM
        {
            return Err(Error::BadStability(self.stability));
        }
        self.session.transact(self.address, code, data, flags)
    }

    /// `INTERFACE_TRANSACTION`: the remote object's descriptor.
    pub fn interface_descriptor(&self) -> Result<String, Error> {
        let reply = self
            .transact(INTERFACE_TRANSACTION, &Parcel::new(), 0)?
            .ok_or(Error::UnexpectedReply)?;
        Ok(reply.reader().read_string()?)
    }

    /// `EXTENSION_TRANSACTION` (`IBinder::getExtension`): the object's extension, if any.
    pub fn get_extension(&self) -> Result<Option<SpIBinder>, Error> {
        let reply = self
            .transact(EXTENSION_TRANSACTION, &Parcel::new(), 0)?
            .ok_or(Error::UnexpectedReply)?;
        Ok(reply.reader().read_binder()?)
    }

    /// `PING_TRANSACTION`.
    pub fn ping(&self) -> Result<(), Error> {
        self.transact(PING_TRANSACTION, &Parcel::new(), 0)
            .map(|_| ())
    }

    /// Runs `f` once when the session ends (the remote side died or went away), as
    /// `linkToDeath` does for RPC binders: obituaries are per session. Runs at once if the
    /// session has already ended.
    pub fn link_to_death(&self, f: impl FnOnce() + Send + 'static) {
        self.session.add_death_listener(Box::new(f));
    }

    /// Whether the session is still up.
    pub fn is_alive(&self) -> bool {
        self.session.is_alive()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.session.release_proxy(self.address);
    }
}

/// A parcel received on a session (a reply, or a transaction's data), with the fds that came
/// with it. Read binders and fds through [`Self::reader`].
pub struct ReceivedParcel {
    session: Arc<Inner>,
    data: Vec<u8>,
    objects: Vec<u32>,
    fds: Mutex<Vec<Option<OwnedFd>>>,
}

impl fmt::Debug for ReceivedParcel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedParcel")
            .field("len", &self.data.len())
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

impl ReceivedParcel {
    /// A reader over the parcel.
    pub fn reader(&self) -> ParcelReader<'_> {
        ParcelReader::with_resolver(
            &self.data,
            &self.objects,
            self.session.version >= PROTOCOL_VERSION_2,
            self,
        )
    }

    /// The raw parcel bytes (binder addresses as on the wire).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

impl ObjectResolver for ReceivedParcel {
    fn resolve_binder(&self, address: Address, stab: i32) -> Result<SpIBinder, ParcelError> {
        self.session.receive_binder(address, stab)
    }

    fn take_fd(&self, index: i32) -> Result<OwnedFd, ParcelError> {
        let mut fds = self
            .fds
            .lock()
            .map_err(|_| ParcelError::BadFdIndex(index))?;
        usize::try_from(index)
            .ok()
            .and_then(|i| fds.get_mut(i))
            .and_then(Option::take)
            .ok_or(ParcelError::BadFdIndex(index))
    }
}

/// Session settings shared by clients and servers.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Highest protocol version offered (1 = Android 14/15).
    pub version: u32,
    /// Accept and send file descriptors (fd mode UNIX; Unix sockets only).
    pub unix_fds: bool,
    /// Client: incoming (callback) connections to offer the server
    /// (`setMaxIncomingThreads`). Server: connections a client may open per session
    /// (`setMaxThreads`), reported by `GET_MAX_THREADS`.
    pub threads: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            version: DEFAULT_VERSION,
            unix_fds: false,
            threads: 1,
        }
    }
}

/// One side of a session. Cheap to clone; the session lives while a connection is open and a
/// node (a proxy we hold, or a local binder the peer holds) exists.
#[derive(Clone)]
pub struct RpcSession {
    inner: Arc<Inner>,
}

impl fmt::Debug for RpcSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcSession")
            .field("server", &self.inner.is_server)
            .field("version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

type DeathListener = Box<dyn FnOnce() + Send>;

struct Inner {
    version: u32,
    /// Set at creation on a server, learnt with GET_SESSION_ID on a client.
    id: OnceLock<[u8; SESSION_ID_BYTES]>,
    is_server: bool,
    unix_fds: bool,
    /// Answer to GET_MAX_THREADS.
    threads: u32,
    /// The object GET_ROOT returns (servers).
    root: Option<SpIBinder>,
    state: Mutex<State>,
    free_connection: Condvar,
}

enum NodeKind {
    Local(Arc<dyn Binder>),
    Remote(Weak<Proxy>),
}

struct Node {
    kind: NodeKind,
    /// References the peer holds (we sent them).
    times_sent: u32,
    /// References we received and have not given back.
    times_recd: u32,
    /// Remote node: the next oneway number to send. Local node: the next one to run.
    async_number: u64,
    /// Local node: oneway transactions that arrived ahead of their turn.
    queued: BTreeMap<u64, (IncomingTransaction, Vec<OwnedFd>)>,
}

impl Node {
    fn new(kind: NodeKind) -> Node {
        Node {
            kind,
            times_sent: 0,
            times_recd: 0,
            async_number: 0,
            queued: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<Address, Node>,
    /// Local binder (by object pointer) → its address in this session.
    local_addresses: HashMap<usize, Address>,
    next_id: u32,
    /// Connections on which we send transactions, when no thread is using them.
    free_outgoing: Vec<Arc<SocketTransport>>,
    outgoing_count: usize,
    /// Every connection, to shut them all down.
    connections: Vec<Arc<SocketTransport>>,
    /// References to give back at the next chance (a connection we hold).
    pending_dec_strong: Vec<(Address, u32)>,
    death_listeners: Vec<DeathListener>,
    shutdown: bool,
    /// Incoming connections attached so far (servers cap them at `threads`).
    incoming_count: u32,
}

impl Inner {
    fn new(
        version: u32,
        id: Option<[u8; SESSION_ID_BYTES]>,
        is_server: bool,
        config: &SessionConfig,
        root: Option<SpIBinder>,
    ) -> Arc<Inner> {
        let id_cell = OnceLock::new();
        if let Some(id) = id {
            let _ = id_cell.set(id);
        }
        Arc::new(Inner {
            version,
            id: id_cell,
            is_server,
            unix_fds: config.unix_fds,
            threads: config.threads,
            root,
            state: Mutex::new(State::default()),
            free_connection: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere; the state itself stays consistent (every
        // update is a single step), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_alive(&self) -> bool {
        !self.lock().shutdown
    }

    fn add_death_listener(&self, f: DeathListener) {
        let mut st = self.lock();
        if st.shutdown {
            drop(st);
            f();
        } else {
            st.death_listeners.push(f);
        }
    }

    /// Address options of nodes this side creates.
    fn own_options(&self) -> u32 {
        if self.is_server {
            ADDRESS_OPTION_CREATED | ADDRESS_OPTION_FOR_SERVER
        } else {
            ADDRESS_OPTION_CREATED
        }
    }

    fn is_own(&self, address: Address) -> bool {
        address.is_for_server() == self.is_server
    }

    /// A binder leaves this side in a parcel: its address, `times_sent` counted.
    fn address_for_sending(&self, st: &mut State, binder: &SpIBinder) -> Result<Address, Error> {
        match binder {
            SpIBinder::Local(b) => {
                let key = local_key(b);
                let address = match st.local_addresses.get(&key) {
                    Some(a) => *a,
                    None => {
                        let a = Address::new(self.own_options(), st.next_id);
                        st.next_id = st.next_id.wrapping_add(1);
                        st.local_addresses.insert(key, a);
                        st.nodes.insert(a, Node::new(NodeKind::Local(b.clone())));
                        a
                    }
                };
                if let Some(node) = st.nodes.get_mut(&address) {
                    node.times_sent = node.times_sent.saturating_add(1);
                }
                Ok(address)
            }
            SpIBinder::Remote(p) => {
                if !std::ptr::eq(Arc::as_ptr(&p.session), self) {
                    return Err(Error::ForeignBinder);
                }
                let node = st
                    .nodes
                    .get_mut(&p.address)
                    .ok_or(Error::DecStrongUnknownAddress(p.address.0))?;
                node.times_sent = node.times_sent.saturating_add(1);
                Ok(p.address)
            }
        }
    }

    /// A binder address arrives in a parcel.
    fn receive_binder(
        self: &Arc<Self>,
        address: Address,
        stab: i32,
    ) -> Result<SpIBinder, ParcelError> {
        if !address.is_recognized() {
            return Err(ParcelError::UnknownBinder(address.0));
        }
        let mut st = self.lock();
        if self.is_own(address) {
            let node = st
                .nodes
                .get_mut(&address)
                .ok_or(ParcelError::UnknownBinder(address.0))?;
            let NodeKind::Local(b) = &node.kind else {
                return Err(ParcelError::UnknownBinder(address.0));
            };
            let b = b.clone();
            // Our own binder came back: the reference is given back right away
            // (flushExcessBinderRefs).
            node.times_recd = node.times_recd.saturating_add(1);
            let amount = std::mem::take(&mut node.times_recd);
            st.pending_dec_strong.push((address, amount));
            return Ok(SpIBinder::Local(b));
        }
        let node = st
            .nodes
            .entry(address)
            .or_insert_with(|| Node::new(NodeKind::Remote(Weak::new())));
        node.times_recd = node.times_recd.saturating_add(1);
        let existing = match &node.kind {
            NodeKind::Remote(w) => w.upgrade(),
            NodeKind::Local(_) => None,
        };
        if let Some(p) = existing {
            return Ok(SpIBinder::Remote(p));
        }
        let proxy = Arc::new(Proxy {
            session: self.clone(),
            address,
            stability: stab,
        });
        node.kind = NodeKind::Remote(Arc::downgrade(&proxy));
        Ok(SpIBinder::Remote(proxy))
    }

    /// The last clone of a proxy went away: give back its references.
    fn release_proxy(&self, address: Address) {
        let mut st = self.lock();
        let Some(node) = st.nodes.get_mut(&address) else {
            return;
        };
        if let NodeKind::Remote(w) = &node.kind {
            if w.strong_count() > 0 {
                // A newer proxy for the same node exists; it gives everything back later.
                return;
            }
        }
        let amount = std::mem::take(&mut node.times_recd);
        let erase = node.times_sent == 0;
        if erase {
            st.nodes.remove(&address);
        }
        if amount > 0 && !st.shutdown {
            st.pending_dec_strong.push((address, amount));
        }
        let over = erase && st.nodes.is_empty();
        if over {
            drop(st);
            // Try to say goodbye before closing: the last DEC_STRONG lets the peer erase its
            // node as well.
            self.flush_pending_on_free_connection();
            self.shutdown();
            return;
        }
        drop(st);
        self.flush_pending_on_free_connection();
    }

    /// A DEC_STRONG from the peer.
    fn apply_dec_strong(&self, address: Address, amount: u32) -> Result<(), Error> {
        let mut st = self.lock();
        let node = st
            .nodes
            .get_mut(&address)
            .ok_or(Error::DecStrongUnknownAddress(address.0))?;
        if amount > node.times_sent {
            return Err(Error::DecStrongUnderflow {
                address: address.0,
                amount,
                held: node.times_sent,
            });
        }
        node.times_sent -= amount;
        let alive_proxy = match &node.kind {
            NodeKind::Remote(w) => w.strong_count() > 0,
            NodeKind::Local(_) => false,
        };
        let mut dropped = None;
        if node.times_sent == 0 && node.times_recd == 0 && !alive_proxy {
            if let Some(n) = st.nodes.remove(&address) {
                if let NodeKind::Local(b) = &n.kind {
                    st.local_addresses.remove(&local_key(b));
                }
                dropped = Some(n);
            }
        }
        let over = dropped.is_some() && st.nodes.is_empty();
        drop(st);
        // The local object may run its destructor (e.g. stop a VM): outside the lock.
        drop(dropped);
        if over {
            self.shutdown();
        }
        Ok(())
    }

    fn take_pending(&self) -> Vec<(Address, u32)> {
        std::mem::take(&mut self.lock().pending_dec_strong)
    }

    fn send_pending(&self, conn: &SocketTransport) -> Result<(), Error> {
        for (address, amount) in self.take_pending() {
            conn.send(&encode_dec_strong(address, amount), &[])?;
        }
        Ok(())
    }

    fn flush_pending_on_free_connection(&self) {
        let conn = {
            let mut st = self.lock();
            if st.pending_dec_strong.is_empty() || st.shutdown {
                return;
            }
            match st.free_outgoing.pop() {
                Some(c) => c,
                // Sent later, before the next reply or transaction.
                None => return,
            }
        };
        let r = self.send_pending(&conn);
        self.return_connection(conn);
        if r.is_err() {
            self.shutdown();
        }
    }

    fn acquire_connection(&self) -> Result<Arc<SocketTransport>, Error> {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                return Err(Error::Shutdown);
            }
            if st.outgoing_count == 0 {
                return Err(Error::NoOutgoingConnection);
            }
            if let Some(c) = st.free_outgoing.pop() {
                return Ok(c);
            }
            st = self
                .free_connection
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn return_connection(&self, conn: Arc<SocketTransport>) {
        let mut st = self.lock();
        if !st.shutdown {
            st.free_outgoing.push(conn);
        }
        drop(st);
        self.free_connection.notify_one();
    }

    fn add_outgoing(&self, conn: Arc<SocketTransport>) {
        let mut st = self.lock();
        st.connections.push(conn.clone());
        st.outgoing_count += 1;
        st.free_outgoing.push(conn);
        drop(st);
        self.free_connection.notify_one();
    }

    /// Ends the session: closes every connection, drops every node, runs death listeners.
    fn shutdown(&self) {
        let (conns, nodes, listeners) = {
            let mut st = self.lock();
            if st.shutdown {
                return;
            }
            st.shutdown = true;
            st.free_outgoing.clear();
            st.local_addresses.clear();
            st.pending_dec_strong.clear();
            (
                std::mem::take(&mut st.connections),
                std::mem::take(&mut st.nodes),
                std::mem::take(&mut st.death_listeners),
            )
        };
        self.free_connection.notify_all();
        for c in &conns {
            c.shutdown();
        }
        // Local objects' destructors run here, outside the lock.
        drop(nodes);
        for f in listeners {
            f();
        }
    }

    /// Reads one command and the fds that came with it.
    fn read_command(&self, conn: &SocketTransport) -> Result<(Incoming, Vec<OwnedFd>), Error> {
        let mut fds = Vec::new();
        let mut hb = [0u8; WireHeader::SIZE];
        conn.recv_exact(&mut hb, &mut fds)?;
        let header = WireHeader::decode(&hb, self.version)?;
        let mut body = vec![0u8; header.body_size as usize];
        if !body.is_empty() {
            conn.recv_exact(&mut body, &mut fds)?;
        }
        let cmd = parse_command_with(header.command, &body, self.version, self.unix_fds)?;
        let objects: &[u32] = match &cmd {
            Incoming::Transact(t) => &t.objects,
            Incoming::Reply(r) => &r.objects,
            Incoming::DecStrong(_) => &[],
        };
        let data: &[u8] = match &cmd {
            Incoming::Transact(t) => &t.data,
            Incoming::Reply(r) => &r.data,
            Incoming::DecStrong(_) => &[],
        };
        let fd_objects = objects
            .iter()
            .filter(|&&o| {
                let o = o as usize;
                data.get(o..o + 4)
                    .is_some_and(|w| w == crate::parcel::TYPE_NATIVE_FILE_DESCRIPTOR.to_le_bytes())
            })
            .count();
        if fd_objects != fds.len() {
            return Err(Error::FdCountMismatch {
                objects: fd_objects,
                received: fds.len(),
            });
        }
        Ok((cmd, fds))
    }

    /// Resolves a parcel's binders for sending: data with addresses filled in, and its fds.
    fn prepare(&self, parcel: &Parcel) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), Error> {
        let fds = parcel.fds();
        if !fds.is_empty() && !self.unix_fds {
            return Err(Error::ObjectsNotAllowed(fds.len()));
        }
        if parcel.objects().is_empty() {
            return Ok((parcel.data().to_vec(), fds));
        }
        let mut st = self.lock();
        let data = parcel.patched_data(|b| self.address_for_sending(&mut st, b))?;
        Ok((data, fds))
    }

    fn received(
        self: &Arc<Self>,
        data: Vec<u8>,
        objects: Vec<u32>,
        fds: Vec<OwnedFd>,
    ) -> ReceivedParcel {
        ReceivedParcel {
            session: self.clone(),
            data,
            objects,
            fds: Mutex::new(fds.into_iter().map(Some).collect()),
        }
    }

    fn transact(
        self: &Arc<Self>,
        target: Address,
        code: u32,
        parcel: &Parcel,
        flags: u32,
    ) -> Result<Option<ReceivedParcel>, Error> {
        let oneway = flags & FLAG_ONEWAY != 0;
        let (data, fds) = self.prepare(parcel)?;
        let async_number = {
            let mut st = self.lock();
            if st.shutdown {
                return Err(Error::Shutdown);
            }
            let node = st
                .nodes
                .get_mut(&target)
                .ok_or(Error::DecStrongUnknownAddress(target.0))?;
            // The target address leaves this side once more.
            node.times_sent = node.times_sent.saturating_add(1);
            if oneway {
                let n = node.async_number;
                node.async_number = n.wrapping_add(1);
                n
            } else {
                0
            }
        };
        let bytes = encode_transact_data(
            self.version,
            target,
            code,
            flags,
            async_number,
            parcel,
            Some(&data),
        )?;
        let conn = self.acquire_connection()?;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let sent = self
            .send_pending(&conn)
            .and_then(|()| conn.send(&bytes, &raw));
        if let Err(e) = sent {
            self.return_connection(conn);
            self.shutdown();
            return Err(e);
        }
        if oneway {
            self.return_connection(conn);
            return Ok(None);
        }
        let result = self.wait_for_reply(&conn);
        self.return_connection(conn);
        match result {
            Ok(r) => Ok(Some(r)),
            Err(e @ Error::TransactionFailed(_)) => Err(e),
            Err(e) => {
                self.shutdown();
                Err(e)
            }
        }
    }

    fn wait_for_reply(self: &Arc<Self>, conn: &SocketTransport) -> Result<ReceivedParcel, Error> {
        loop {
            let (cmd, fds) = self.read_command(conn)?;
            match cmd {
                Incoming::DecStrong(d) => self.apply_dec_strong(d.address, d.amount)?,
                // A nested call from the peer while it handles ours.
                Incoming::Transact(t) => self.handle_transaction(conn, t, fds)?,
                Incoming::Reply(r) => {
                    if r.status != StatusCode::OK {
                        return Err(Error::TransactionFailed(r.status));
                    }
                    return Ok(self.received(r.data, r.objects, fds));
                }
            }
        }
    }

    /// Serves an incoming connection until it or the session ends.
    fn serve_incoming(self: Arc<Self>, conn: Arc<SocketTransport>) {
        loop {
            let step = self.read_command(&conn).and_then(|(cmd, fds)| match cmd {
                Incoming::Transact(t) => self.handle_transaction(&conn, t, fds),
                Incoming::DecStrong(d) => self.apply_dec_strong(d.address, d.amount),
                Incoming::Reply(_) => Err(Error::UnexpectedReply),
            });
            if step.is_err() {
                break;
            }
        }
        self.shutdown();
    }

    fn handle_transaction(
        self: &Arc<Self>,
        conn: &SocketTransport,
        t: IncomingTransaction,
        fds: Vec<OwnedFd>,
    ) -> Result<(), Error> {
        let two_way = t.header.flags & FLAG_ONEWAY == 0;
        let address = t.header.address;
        if address.is_zero() {
            let mut reply = Parcel::new();
            let status = self.special(t.header.code, &mut reply);
            return self.finish(conn, two_way, status, &reply);
        }
        if !address.is_recognized() || !self.is_own(address) {
            if two_way {
                self.finish(conn, true, StatusCode::BAD_VALUE, &Parcel::new())?;
            }
            return Err(Error::BadAddress(address.0));
        }
        let binder = {
            let mut st = self.lock();
            let Some(node) = st.nodes.get_mut(&address) else {
                drop(st);
                if two_way {
                    self.finish(conn, true, StatusCode::BAD_VALUE, &Parcel::new())?;
                }
                return Err(Error::UnknownLocalAddress(address.0));
            };
            let NodeKind::Local(b) = &node.kind else {
                return Err(Error::UnknownLocalAddress(address.0));
            };
            let b = b.clone();
            // onBinderEntering; given back before the reply.
            node.times_recd = node.times_recd.saturating_add(1);
            let amount = std::mem::take(&mut node.times_recd);
            if !two_way && t.header.async_number != node.async_number {
                if t.header.async_number < node.async_number {
                    return Err(Error::AsyncNumberMismatch {
                        expected: node.async_number,
                        got: t.header.async_number,
                    });
                }
                if node.queued.len() >= MAX_QUEUED_ONEWAY {
                    return Err(Error::AsyncNumberMismatch {
                        expected: node.async_number,
                        got: t.header.async_number,
                    });
                }
                node.queued.insert(t.header.async_number, (t, fds));
                st.pending_dec_strong.push((address, amount));
                return Ok(());
            }
            st.pending_dec_strong.push((address, amount));
            b
        };
        self.run_transaction(conn, &binder, t, fds, two_way)?;
        if two_way {
            return Ok(());
        }
        // Oneway: this one is done; run any that waited for it, in order.
        loop {
            let next = {
                let mut st = self.lock();
                let Some(node) = st.nodes.get_mut(&address) else {
                    return Ok(());
                };
                node.async_number = node.async_number.wrapping_add(1);
                let expected = node.async_number;
                node.queued.remove(&expected)
            };
            match next {
                Some((t, fds)) => self.run_transaction(conn, &binder, t, fds, false)?,
                None => return Ok(()),
            }
        }
    }

    fn run_transaction(
        self: &Arc<Self>,
        conn: &SocketTransport,
        binder: &Arc<dyn Binder>,
        t: IncomingTransaction,
        fds: Vec<OwnedFd>,
        two_way: bool,
    ) -> Result<(), Error> {
        let code = t.header.code;
        let received = self.received(t.data, t.objects, fds);
        let mut data = received.reader();
        let mut reply = Parcel::new();
        let status = match code {
            INTERFACE_TRANSACTION => {
                reply.write_str(binder.descriptor());
                StatusCode::OK
            }
            PING_TRANSACTION => StatusCode::OK,
            EXTENSION_TRANSACTION => {
                reply.write_binder(binder.extension().as_ref());
                StatusCode::OK
            }
            FIRST_CALL_TRANSACTION..=LAST_CALL_TRANSACTION => {
                match data.enforce_interface(binder.descriptor()) {
                    Err(e) => e.status_code(),
                    Ok(()) => match binder.on_transact(code, &mut data, &mut reply) {
                        Ok(()) => StatusCode::OK,
                        Err(s) => s,
                    },
                }
            }
            _ => StatusCode::UNKNOWN_TRANSACTION,
        };
        // Fds nobody took close here, before the reply goes out.
        drop(received);
        self.finish(conn, two_way, status, &reply)
    }

    /// Gives back pending references on this connection, then replies (two-way only).
    fn finish(
        &self,
        conn: &SocketTransport,
        two_way: bool,
        status: StatusCode,
        reply: &Parcel,
    ) -> Result<(), Error> {
        self.send_pending(conn)?;
        if !two_way {
            return Ok(());
        }
        let (data, fds) = match self.prepare(reply) {
            Ok(p) => p,
            Err(_) => {
                let bytes = encode_reply_data(self.version, StatusCode::BAD_VALUE, reply, None)?;
                return conn.send(&bytes, &[]);
            }
        };
        let bytes = encode_reply_data(self.version, status, reply, Some(&data))?;
        let raw: Vec<i32> = if status == StatusCode::OK {
            fds.iter().map(|f| f.as_raw_fd()).collect()
        } else {
            Vec::new()
        };
        conn.send(&bytes, &raw)
    }

    fn special(&self, code: u32, reply: &mut Parcel) -> StatusCode {
        match code {
            SPECIAL_TRANSACT_GET_ROOT => {
                // A client session has no root: libbinder replies OK and empty.
                if let Some(root) = &self.root {
                    reply.write_binder(Some(root));
                }
                StatusCode::OK
            }
            SPECIAL_TRANSACT_GET_MAX_THREADS => {
                reply.write_i32(i32::try_from(self.threads).unwrap_or(i32::MAX));
                StatusCode::OK
            }
            SPECIAL_TRANSACT_GET_SESSION_ID => {
                let id = self.id.get().copied().unwrap_or_default();
                reply.write_byte_array(Some(&id));
                StatusCode::OK
            }
            _ => StatusCode::UNKNOWN_TRANSACTION,
        }
    }
}

fn spawn_incoming(inner: Arc<Inner>, conn: Arc<SocketTransport>) {
    let name = if inner.is_server {
        "rpc-server"
    } else {
        "rpc-callback"
    };
    let spawned = thread::Builder::new()
        .name(name.into())
        .spawn(move || inner.serve_incoming(conn));
    // Without a thread the connection cannot be served; the session ends when its peer
    // notices. Nothing else to do here.
    drop(spawned);
}

impl RpcSession {
    /// Sets up a client session, opening each connection with `connect` (called once per
    /// connection, as libbinder's `setupPreconnectedClient` calls its request function): the
    /// first one, extra outgoing ones up to the server's thread count, and `config.threads`
    /// incoming ones.
    pub fn connect(
        config: SessionConfig,
        mut connect: impl FnMut() -> std::io::Result<OwnedFd>,
    ) -> Result<RpcSession, Error> {
        if config.version > MAX_SUPPORTED_VERSION {
            return Err(Error::UnsupportedVersion(config.version));
        }
        let fd_mode = if config.unix_fds {
            FD_MODE_UNIX
        } else {
            FD_MODE_NONE
        };
        let first = Arc::new(SocketTransport::new(connect()?));
        let header = ConnectionHeader {
            version: config.version,
            options: 0,
            fd_mode,
            session_id_size: 0,
        };
        first.send(&header.encode(), &[])?;
        first.send(&OutgoingConnectionInit::encode(), &[])?;
        let mut rb = [0u8; NewSessionResponse::SIZE];
        first.recv_exact(&mut rb, &mut Vec::new())?;
        let resp = NewSessionResponse::decode(&rb);
        if resp.version > config.version || resp.version == PROTOCOL_VERSION_EXPERIMENTAL {
            return Err(Error::UnsupportedVersion(resp.version));
        }
        let inner = Inner::new(resp.version, None, false, &config, None);
        inner.add_outgoing(first);
        let max_threads = {
            let reply = inner.transact_special(SPECIAL_TRANSACT_GET_MAX_THREADS)?;
            let n = reply.reader().read_i32()?;
            if n <= 0 {
                return Err(Error::Parcel(ParcelError::BadValue(n)));
            }
            n as u32
        };
        let id_bytes = inner
            .transact_special(SPECIAL_TRANSACT_GET_SESSION_ID)?
            .reader()
            .read_byte_array()?
            .ok_or(ParcelError::UnexpectedNull)?;
        let id: [u8; SESSION_ID_BYTES] = id_bytes.as_slice().try_into().map_err(|_| {
            Error::BadSessionIdSize(u16::try_from(id_bytes.len()).unwrap_or(u16::MAX))
        })?;
        let _ = inner.id.set(id);
        let attach = |options: u8| -> Result<Arc<SocketTransport>, Error> {
            let conn = Arc::new(SocketTransport::new(connect()?));
            let header = ConnectionHeader {
                version: resp.version,
                options,
                fd_mode,
                session_id_size: SESSION_ID_BYTES as u16,
            };
            let mut bytes = header.encode().to_vec();
            bytes.extend_from_slice(&id);
            conn.send(&bytes, &[])?;
            Ok(conn)
        };
        let mut attach = attach;
        for _ in 1..max_threads.min(MAX_OUTGOING_CONNECTIONS) {
            let conn = attach(0)?;
            conn.send(&OutgoingConnectionInit::encode(), &[])?;
            inner.add_outgoing(conn);
        }
        for _ in 0..config.threads {
            let conn = attach(CONNECTION_OPTION_INCOMING)?;
            let mut ib = [0u8; OutgoingConnectionInit::SIZE];
            conn.recv_exact(&mut ib, &mut Vec::new())?;
            OutgoingConnectionInit::check(&ib)?;
            inner.lock().connections.push(conn.clone());
            spawn_incoming(inner.clone(), conn);
        }
        Ok(RpcSession { inner })
    }

    /// `GET_ROOT`: the server's root object.
    pub fn root(&self) -> Result<SpIBinder, Error> {
        let reply = self.inner.transact_special(SPECIAL_TRANSACT_GET_ROOT)?;
        reply.reader().read_binder()?.ok_or(Error::NoRootObject)
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> u32 {
        self.inner.version
    }

    /// Whether the session is still up.
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// Runs `f` when the session ends (at once if it has).
    pub fn add_death_listener(&self, f: impl FnOnce() + Send + 'static) {
        self.inner.add_death_listener(Box::new(f));
    }

    /// Ends the session now.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Nodes in the table (local and remote): for tests of reference counting.
    pub fn node_count(&self) -> usize {
        self.inner.lock().nodes.len()
    }
}

impl Inner {
    fn transact_special(self: &Arc<Self>, code: u32) -> Result<ReceivedParcel, Error> {
        let bytes = encode_transact_data(
            self.version,
            Address::ZERO,
            code,
            0,
            0,
            &Parcel::new(),
            None,
        )?;
        let conn = self.acquire_connection()?;
        let r = conn
            .send(&bytes, &[])
            .and_then(|()| self.wait_for_reply(&conn));
        self.return_connection(conn);
        r
    }
}

/// A server: hands each new session the root object and serves its connections, a thread per
/// connection.
pub struct SessionServer {
    root: SpIBinder,
    config: SessionConfig,
    sessions: Mutex<HashMap<[u8; SESSION_ID_BYTES], Weak<Inner>>>,
}

impl fmt::Debug for SessionServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionServer")
            .field("root", &self.root)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionServer {
    /// A server for `root`. `config.threads` is the connections a client may open per session
    /// (libbinder's default is 1); `config.unix_fds` admits clients asking for fd mode UNIX.
    pub fn new(root: SpIBinder, config: SessionConfig) -> Arc<SessionServer> {
        Arc::new(SessionServer {
            root,
            config: SessionConfig {
                version: config.version.min(MAX_SUPPORTED_VERSION),
                ..config
            },
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// Runs the connection handshake on a new connection and serves it on its own thread (or,
    /// for a client's callback connection, adds it to the session's connections for calls to
    /// the client). Blocks only for the handshake; give it a read timeout to bound that.
    pub fn accept(self: &Arc<Self>, socket: OwnedFd) -> Result<(), Error> {
        let conn = Arc::new(SocketTransport::new(socket));
        let mut hb = [0u8; ConnectionHeader::SIZE];
        conn.recv_exact(&mut hb, &mut Vec::new())?;
        let header = ConnectionHeader::decode(&hb);
        let fd_ok = header.fd_mode == FD_MODE_NONE
            || (header.fd_mode == FD_MODE_UNIX && self.config.unix_fds);
        if !fd_ok {
            return Err(Error::UnsupportedFdMode(header.fd_mode));
        }
        let unix_fds = header.fd_mode == FD_MODE_UNIX;
        match header.session_id_size {
            0 => {}
            n if n as usize == SESSION_ID_BYTES => return self.attach(conn, header),
            n => return Err(Error::BadSessionIdSize(n)),
        }
        if header.options & CONNECTION_OPTION_INCOMING != 0 {
            return Err(Error::IncomingNewSession);
        }
        let version = header.version.min(self.config.version);
        conn.send(&NewSessionResponse { version }.encode(), &[])?;
        let id = crate::server::random_session_id()?;
        let config = SessionConfig {
            unix_fds,
            ..self.config
        };
        let inner = Inner::new(version, Some(id), true, &config, Some(self.root.clone()));
        let mut ib = [0u8; OutgoingConnectionInit::SIZE];
        conn.recv_exact(&mut ib, &mut Vec::new())?;
        OutgoingConnectionInit::check(&ib)?;
        {
            let mut st = inner.lock();
            st.connections.push(conn.clone());
            st.incoming_count = 1;
        }
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|_, s| s.strong_count() > 0);
            sessions.insert(id, Arc::downgrade(&inner));
        }
        spawn_incoming(inner, conn);
        Ok(())
    }

    fn attach(
        self: &Arc<Self>,
        conn: Arc<SocketTransport>,
        header: ConnectionHeader,
    ) -> Result<(), Error> {
        let mut id = [0u8; SESSION_ID_BYTES];
        conn.recv_exact(&mut id, &mut Vec::new())?;
        let inner = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&id).and_then(Weak::upgrade))
            .ok_or(Error::UnknownSession)?;
        if header.options & CONNECTION_OPTION_INCOMING != 0 {
            // The client's callback connection: we send on it.
            conn.send(&OutgoingConnectionInit::encode(), &[])?;
            inner.add_outgoing(conn);
            return Ok(());
        }
        {
            let mut st = inner.lock();
            if st.incoming_count >= self.config.threads {
                return Err(Error::TooManyConnections);
            }
            st.incoming_count += 1;
            st.connections.push(conn.clone());
        }
        let mut ib = [0u8; OutgoingConnectionInit::SIZE];
        conn.recv_exact(&mut ib, &mut Vec::new())?;
        OutgoingConnectionInit::check(&ib)?;
        spawn_incoming(inner, conn);
        Ok(())
    }

    /// Sessions still up.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .map(|s| s.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }

    /// Serves a Unix bootstrap socket (`RpcServer::setupUnixDomainSocketBootstrapServer`):
    /// each message carries one connection's socket. Returns when the client closes its end,
    /// as libbinder's `join` does.
    pub fn serve_bootstrap(self: &Arc<Self>, bootstrap: OwnedFd) -> Result<(), Error> {
        loop {
            let Some(socket) =
                crate::transport::recv_bootstrap_fd(std::os::fd::AsFd::as_fd(&bootstrap))?
            else {
                return Ok(());
            };
            let server = self.clone();
            thread::spawn(move || {
                let _ = server.accept(socket);
            });
        }
    }
}

/// The client half of a Unix bootstrap transport: each call makes a socketpair, sends one end
/// over `bootstrap` and returns the other (libbinder's `setupUnixDomainSocketBootstrapClient`).
pub fn bootstrap_connector(bootstrap: Arc<OwnedFd>) -> impl FnMut() -> std::io::Result<OwnedFd> {
    move || {
        let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
        crate::transport::send_bootstrap_fd(
            std::os::fd::AsFd::as_fd(&*bootstrap),
            std::os::fd::AsFd::as_fd(&theirs),
        )
        .map_err(|e| match e {
            Error::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
        Ok(mine.into())
    }
}

/// The reply of an AIDL call whose status was EX_NONE: [`Self::reader`] starts at the return
/// value.
#[derive(Debug)]
pub struct AidlReply(ReceivedParcel);

impl AidlReply {
    /// A reader positioned after the status header.
    pub fn reader(&self) -> ParcelReader<'_> {
        let mut r = self.0.reader();
        // Read once already in `call`, so it parses.
        let _ = r.read_status();
        r
    }
}

/// What an AIDL proxy does around a two-way call: interface token, transaction, `Status`.
pub fn call(
    binder: &SpIBinder,
    descriptor: &str,
    code: u32,
    args: impl FnOnce(&mut Parcel),
) -> Result<AidlReply, crate::CallError> {
    let proxy = binder
        .as_remote()
        .ok_or(crate::CallError::Rpc(Error::UnexpectedTransaction(0)))?;
    let mut parcel = Parcel::new();
    parcel.write_interface_token(descriptor);
    args(&mut parcel);
    let reply = proxy
        .transact(code, &parcel, 0)?
        .ok_or(Error::UnexpectedReply)?;
    let status: Status = reply.reader().read_status().map_err(Error::Parcel)?;
    if !status.is_ok() {
        return Err(crate::CallError::Service(status));
    }
    Ok(AidlReply(reply))
}

/// A oneway AIDL call (no reply, no status).
pub fn call_oneway(
    binder: &SpIBinder,
    descriptor: &str,
    code: u32,
    args: impl FnOnce(&mut Parcel),
) -> Result<(), Error> {
    let proxy = binder.as_remote().ok_or(Error::UnexpectedTransaction(0))?;
    let mut parcel = Parcel::new();
    parcel.write_interface_token(descriptor);
    args(&mut parcel);
    proxy.transact(code, &parcel, FLAG_ONEWAY).map(|_| ())
}
