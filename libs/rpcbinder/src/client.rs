//! Client side of a session: the guest's connection to the host service.
//!
//! Behaves like libbinder's `RpcSession::setupClient` with one outgoing connection and no
//! incoming (callback) threads, which is what an Android 14/15 microdroid_manager does:
//! handshake, `GET_MAX_THREADS`, `GET_SESSION_ID`, then `GET_ROOT` and typed calls, with
//! `DEC_STRONG` handled whenever it arrives.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::conn::{encode_dec_strong, encode_reply, encode_transact, read_command, send, Incoming};
use crate::error::{Error, ParcelError};
use crate::parcel::{stability, Parcel, ParcelReader};
use crate::status::StatusCode;
use crate::wire::{
    Address, ConnectionHeader, NewSessionResponse, OutgoingConnectionInit, DEFAULT_VERSION,
    FD_MODE_NONE, FLAG_ONEWAY, MAX_SUPPORTED_VERSION, PROTOCOL_VERSION_2,
    PROTOCOL_VERSION_EXPERIMENTAL, SESSION_ID_BYTES, SPECIAL_TRANSACT_GET_MAX_THREADS,
    SPECIAL_TRANSACT_GET_ROOT, SPECIAL_TRANSACT_GET_SESSION_ID,
};

/// `IBinder::FIRST_CALL_TRANSACTION`.
pub const FIRST_CALL_TRANSACTION: u32 = 1;
/// `IBinder::LAST_CALL_TRANSACTION`.
pub const LAST_CALL_TRANSACTION: u32 = 0x00ff_ffff;
/// `'_NTF'`: returns the interface descriptor.
pub const INTERFACE_TRANSACTION: u32 = 0x5f4e_5446;
/// `'_PNG'`: empty reply.
pub const PING_TRANSACTION: u32 = 0x5f50_4e47;
/// `'_EXT'`: returns the extension binder (null here).
pub const EXTENSION_TRANSACTION: u32 = 0x5f45_5854;

/// A proxy for a remote binder object, as returned by [`RpcClient::get_root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteBinder {
    /// Wire address.
    pub address: Address,
    /// Stability level the peer marked it with.
    pub stability: i32,
}

/// A reply parcel (already known to have transport status OK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    data: Vec<u8>,
    objects: Vec<u32>,
    binders_in_table: bool,
}

impl Reply {
    /// A reader over the reply parcel.
    pub fn reader(&self) -> ParcelReader<'_> {
        ParcelReader::with_objects(&self.data, &self.objects, self.binders_in_table)
    }

    /// Raw parcel data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ProxyNode {
    times_sent: u32,
    times_recd: u32,
    async_number: u64,
}

/// Client configuration.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Highest protocol version offered (1 = Android 14/15).
    pub version: u32,
    /// Whether to issue `GET_MAX_THREADS` and `GET_SESSION_ID` after the handshake, as
    /// libbinder does. Default true.
    pub query_session_info: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            version: DEFAULT_VERSION,
            query_session_info: true,
        }
    }
}

/// A single-connection client session over any byte stream.
///
/// Timeouts are the stream's (e.g. `set_read_timeout` on the socket).
#[derive(Debug)]
pub struct RpcClient<S: Read + Write> {
    stream: S,
    version: u32,
    max_threads: u32,
    session_id: Vec<u8>,
    nodes: HashMap<Address, ProxyNode>,
    shutdown: bool,
}

impl<S: Read + Write> RpcClient<S> {
    /// Runs the connection handshake with the default configuration (protocol v1).
    pub fn connect(stream: S) -> Result<Self, Error> {
        Self::connect_with(stream, ClientConfig::default())
    }

    /// Runs the connection handshake: `RpcConnectionHeader` + "cci", reads the
    /// `RpcNewSessionResponse`, then (by default) queries max threads and the session id.
    pub fn connect_with(mut stream: S, config: ClientConfig) -> Result<Self, Error> {
        if config.version > MAX_SUPPORTED_VERSION {
            return Err(Error::UnsupportedVersion(config.version));
        }
        let header = ConnectionHeader {
            version: config.version,
            options: 0,
            fd_mode: FD_MODE_NONE,
            session_id_size: 0,
        };
        send(&mut stream, &header.encode())?;
        send(&mut stream, &OutgoingConnectionInit::encode())?;
        let mut rb = [0u8; NewSessionResponse::SIZE];
        crate::conn::read_exact_or_closed(&mut stream, &mut rb)?;
        let resp = NewSessionResponse::decode(&rb);
        if resp.version > config.version || resp.version == PROTOCOL_VERSION_EXPERIMENTAL {
            return Err(Error::UnsupportedVersion(resp.version));
        }
        let mut client = RpcClient {
            stream,
            version: resp.version,
            max_threads: 0,
            session_id: Vec::new(),
            nodes: HashMap::new(),
            shutdown: false,
        };
        if config.query_session_info {
            let reply = client.transact_raw(
                Address::ZERO,
                SPECIAL_TRANSACT_GET_MAX_THREADS,
                &Parcel::new(),
                0,
            )?;
            let n = reply.reader().read_i32()?;
            if n <= 0 {
                return Err(Error::Parcel(ParcelError::BadValue(n)));
            }
            client.max_threads = n as u32;
            let reply = client.transact_raw(
                Address::ZERO,
                SPECIAL_TRANSACT_GET_SESSION_ID,
                &Parcel::new(),
                0,
            )?;
            let id = reply
                .reader()
                .read_byte_array()?
                .ok_or(ParcelError::UnexpectedNull)?;
            if id.len() != SESSION_ID_BYTES {
                return Err(Error::BadSessionIdSize(
                    u16::try_from(id.len()).unwrap_or(u16::MAX),
                ));
            }
            client.session_id = id;
        }
        Ok(client)
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> u32 {
        self.version
    }

    /// The server's max threads (0 if not queried).
    pub fn max_threads(&self) -> u32 {
        self.max_threads
    }

    /// The session id (empty if not queried).
    pub fn session_id(&self) -> &[u8] {
        &self.session_id
    }

    /// The underlying stream (e.g. to set timeouts).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Outstanding references of a proxy: (sent to the peer, received from the peer).
    pub fn ref_counts(&self, binder: &RemoteBinder) -> Option<(u32, u32)> {
        self.nodes
            .get(&binder.address)
            .map(|n| (n.times_sent, n.times_recd))
    }

    /// `GET_ROOT`: the server's root object.
    pub fn get_root(&mut self) -> Result<RemoteBinder, Error> {
        let reply =
            self.transact_raw(Address::ZERO, SPECIAL_TRANSACT_GET_ROOT, &Parcel::new(), 0)?;
        let binder = reply
            .reader()
            .read_strong_binder()?
            .ok_or(Error::NoRootObject)?;
        let address = binder.address;
        if !address.is_recognized() {
            return Err(self.fail(Error::BadAddress(address.0)));
        }
        if !address.is_for_server() {
            // The peer claims this node was created by us (the client): we have none.
            return Err(self.fail(Error::UnknownLocalAddress(address.0)));
        }
        let node = self.nodes.entry(address).or_default();
        node.times_recd = node.times_recd.saturating_add(1);
        Ok(RemoteBinder {
            address,
            stability: binder.stability,
        })
    }

    /// `INTERFACE_TRANSACTION`: the descriptor of a remote object.
    pub fn interface_descriptor(&mut self, target: &RemoteBinder) -> Result<String, Error> {
        let reply = self.transact(target, INTERFACE_TRANSACTION, &Parcel::new(), 0)?;
        let reply = reply.ok_or(Error::UnexpectedReply)?;
        Ok(reply.reader().read_string()?)
    }

    /// `PING_TRANSACTION`.
    pub fn ping(&mut self, target: &RemoteBinder) -> Result<(), Error> {
        self.transact(target, PING_TRANSACTION, &Parcel::new(), 0)
            .map(|_| ())
    }

    /// Sends a transaction to `target` and, unless it is oneway, waits for its reply while
    /// handling interleaved `DEC_STRONG`s. User codes require the target's stability to
    /// include SYSTEM, as libbinder's `BpBinder::transact` does.
    pub fn transact(
        &mut self,
        target: &RemoteBinder,
        code: u32,
        data: &Parcel,
        flags: u32,
    ) -> Result<Option<Reply>, Error> {
        if (FIRST_CALL_TRANSACTION..=LAST_CALL_TRANSACTION).contains(&code)
            && target.stability & stability::SYSTEM != stability::SYSTEM
        {
            return Err(Error::BadStability(target.stability));
        }
        if !self.nodes.contains_key(&target.address) {
            return Err(Error::DecStrongUnknownAddress(target.address.0));
        }
        if flags & FLAG_ONEWAY != 0 {
            self.send_transact(target.address, code, data, flags)?;
            return Ok(None);
        }
        self.transact_raw(target.address, code, data, flags)
            .map(Some)
    }

    fn send_transact(
        &mut self,
        address: Address,
        code: u32,
        data: &Parcel,
        flags: u32,
    ) -> Result<(), Error> {
        if self.shutdown {
            return Err(Error::Shutdown);
        }
        // Oneway calls carry the node's async number (then incremented); two-way calls 0.
        let mut async_number = 0;
        if let Some(node) = self.nodes.get_mut(&address) {
            if flags & FLAG_ONEWAY != 0 {
                async_number = node.async_number;
                node.async_number = node.async_number.wrapping_add(1);
            }
        }
        let bytes = encode_transact(self.version, address, code, flags, async_number, data)?;
        if let Some(node) = self.nodes.get_mut(&address) {
            node.times_sent = node.times_sent.saturating_add(1);
        }
        let r = send(&mut self.stream, &bytes);
        r.map_err(|e| self.fail(e))
    }

    fn transact_raw(
        &mut self,
        address: Address,
        code: u32,
        data: &Parcel,
        flags: u32,
    ) -> Result<Reply, Error> {
        self.send_transact(address, code, data, flags)?;
        loop {
            let cmd = match read_command(&mut self.stream, self.version) {
                Ok(c) => c,
                Err(e) => return Err(self.fail(e)),
            };
            match cmd {
                Incoming::DecStrong(d) => {
                    if let Err(e) = self.apply_dec_strong(d.address, d.amount) {
                        return Err(self.fail(e));
                    }
                }
                Incoming::Transact(t) => {
                    if let Err(e) = self.handle_nested(&t) {
                        return Err(self.fail(e));
                    }
                }
                Incoming::Reply(r) => {
                    if r.status != StatusCode::OK {
                        return Err(Error::TransactionFailed(r.status));
                    }
                    return Ok(Reply {
                        data: r.data,
                        objects: r.objects,
                        binders_in_table: self.version >= PROTOCOL_VERSION_2,
                    });
                }
            }
        }
    }

    fn apply_dec_strong(&mut self, address: Address, amount: u32) -> Result<(), Error> {
        let node = self
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
        Ok(())
    }

    /// A TRANSACT from the server while we wait: only special transactions can be answered
    /// (this client hosts no binders).
    fn handle_nested(&mut self, t: &crate::conn::IncomingTransaction) -> Result<(), Error> {
        let two_way = t.header.flags & FLAG_ONEWAY == 0;
        if !t.header.address.is_zero() {
            if two_way {
                let bytes = encode_reply(self.version, StatusCode::BAD_VALUE, &Parcel::new())?;
                send(&mut self.stream, &bytes)?;
            }
            return Err(Error::UnexpectedTransaction(t.header.address.0));
        }
        let mut reply = Parcel::new();
        let status = match t.header.code {
            // A client session has no root object: libbinder logs and replies OK, empty.
            SPECIAL_TRANSACT_GET_ROOT => StatusCode::OK,
            SPECIAL_TRANSACT_GET_MAX_THREADS => {
                reply.write_i32(0);
                StatusCode::OK
            }
            SPECIAL_TRANSACT_GET_SESSION_ID => {
                reply.write_byte_array(Some(&self.session_id));
                StatusCode::OK
            }
            _ => StatusCode::UNKNOWN_TRANSACTION,
        };
        if two_way {
            let bytes = encode_reply(self.version, status, &reply)?;
            send(&mut self.stream, &bytes)?;
        }
        Ok(())
    }

    /// Drops the proxy: sends `DEC_STRONG{address, timesRecd}` as libbinder does when the
    /// last strong reference to a proxy goes away.
    pub fn release(&mut self, binder: RemoteBinder) -> Result<(), Error> {
        if self.shutdown {
            return Err(Error::Shutdown);
        }
        let Some(node) = self.nodes.get_mut(&binder.address) else {
            return Ok(());
        };
        let amount = node.times_recd;
        node.times_recd = 0;
        if node.times_sent == 0 {
            self.nodes.remove(&binder.address);
        }
        if amount > 0 {
            let r = send(&mut self.stream, &encode_dec_strong(binder.address, amount));
            r.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Error {
        self.shutdown = true;
        e
    }

    /// Consumes the client, returning the stream (no references are released).
    pub fn into_inner(self) -> S {
        self.stream
    }
}
