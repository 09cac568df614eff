//! Fixed-size wire structs of the RPC binder protocol (`RpcWireFormat.h`).
//!
//! Every field is little-endian. The stream is the connection handshake
//! ([`ConnectionHeader`], [`NewSessionResponse`], [`OutgoingConnectionInit`]) followed by
//! commands, each a [`WireHeader`] plus `body_size` bytes of body.

use crate::error::Error;

/// Android 13.
pub const PROTOCOL_VERSION_0: u32 = 0;
/// Android 14 and 15: explicit parcel size, 20-byte reply header, object table.
pub const PROTOCOL_VERSION_1: u32 = 1;
/// Android 16: binder objects listed in the object table.
pub const PROTOCOL_VERSION_2: u32 = 2;
/// Highest version this crate speaks. Peers offering more are negotiated down.
pub const MAX_SUPPORTED_VERSION: u32 = PROTOCOL_VERSION_2;
/// The version microdroid on Android 14/15 speaks, and our default.
pub const DEFAULT_VERSION: u32 = PROTOCOL_VERSION_1;
/// libbinder's "experimental" version, refused on release builds (and by us).
pub const PROTOCOL_VERSION_EXPERIMENTAL: u32 = 0xF000_0000;

/// Connection option bit: the connecting side wants to *receive* transactions on it.
pub const CONNECTION_OPTION_INCOMING: u8 = 0x1;

/// File descriptor transport modes (only NONE is supported: over vsock fds cannot travel).
pub const FD_MODE_NONE: u8 = 0;

/// Length of a session id.
pub const SESSION_ID_BYTES: usize = 32;

/// Command codes of [`WireHeader::command`].
pub const COMMAND_TRANSACT: u32 = 0;
/// Reply to a two-way TRANSACT.
pub const COMMAND_REPLY: u32 = 1;
/// Release of strong references.
pub const COMMAND_DEC_STRONG: u32 = 2;

/// Special transactions, sent with address 0.
pub const SPECIAL_TRANSACT_GET_ROOT: u32 = 0;
/// Special transaction: how many incoming threads the peer serves (reply i32).
pub const SPECIAL_TRANSACT_GET_MAX_THREADS: u32 = 1;
/// Special transaction: the 32-byte session id (reply byte[]).
pub const SPECIAL_TRANSACT_GET_SESSION_ID: u32 = 2;

/// Address option: set on every real address.
pub const ADDRESS_OPTION_CREATED: u32 = 0x1;
/// Address option: the node was created by the server side of the session.
pub const ADDRESS_OPTION_FOR_SERVER: u32 = 0x2;

/// Transaction flag: no reply expected.
pub const FLAG_ONEWAY: u32 = 0x01;
/// Transaction flag: buffers are sensitive and cleared after use.
pub const FLAG_CLEAR_BUF: u32 = 0x20;

/// "cci\0": [`OutgoingConnectionInit`] message.
pub const CONNECTION_INIT_OKAY: [u8; 4] = *b"cci\0";

/// Command body limit up to Android 15 (`100*1000`).
pub const MAX_BODY_SIZE_V1: u32 = 100 * 1000;
/// Command body limit from Android 16 (`kRpcTransactionLimitBytes`).
pub const MAX_BODY_SIZE_V2: u32 = 600 * 1024;

/// Largest command body accepted at a protocol version.
pub fn max_body_size(version: u32) -> u32 {
    if version >= PROTOCOL_VERSION_2 {
        MAX_BODY_SIZE_V2
    } else {
        MAX_BODY_SIZE_V1
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// First 16 bytes of every connection, client to server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionHeader {
    /// Highest protocol version the client supports.
    pub version: u32,
    /// Bit 0: [`CONNECTION_OPTION_INCOMING`].
    pub options: u8,
    /// File descriptor transport mode.
    pub fd_mode: u8,
    /// 0 = new session; otherwise 32 and the id follows.
    pub session_id_size: u16,
}

impl ConnectionHeader {
    /// Wire size.
    pub const SIZE: usize = 16;

    /// Encodes the header (reserved bytes zero).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4] = self.options;
        b[5] = self.fd_mode;
        b[14..16].copy_from_slice(&self.session_id_size.to_le_bytes());
        b
    }

    /// Decodes a header; reserved bytes are ignored as libbinder does.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        ConnectionHeader {
            version: u32_at(b, 0),
            options: b[4],
            fd_mode: b[5],
            session_id_size: u16_at(b, 14),
        }
    }
}

/// Server's answer to a new-session [`ConnectionHeader`]: the negotiated version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSessionResponse {
    /// `min(client version, server max)`.
    pub version: u32,
}

impl NewSessionResponse {
    /// Wire size.
    pub const SIZE: usize = 8;

    /// Encodes the response.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b
    }

    /// Decodes the response.
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        NewSessionResponse {
            version: u32_at(b, 0),
        }
    }
}

/// "cci\0" + 4 reserved bytes, sent by the side that will send transactions.
pub struct OutgoingConnectionInit;

impl OutgoingConnectionInit {
    /// Wire size.
    pub const SIZE: usize = 8;

    /// The 8 bytes.
    pub fn encode() -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&CONNECTION_INIT_OKAY);
        b
    }

    /// Checks the message ("cci\0"); reserved bytes are ignored.
    pub fn check(b: &[u8; Self::SIZE]) -> Result<(), Error> {
        let mut msg = [0u8; 4];
        msg.copy_from_slice(&b[0..4]);
        if msg == CONNECTION_INIT_OKAY {
            Ok(())
        } else {
            Err(Error::BadConnectionInit(msg))
        }
    }
}

/// The known commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// [`COMMAND_TRANSACT`].
    Transact,
    /// [`COMMAND_REPLY`].
    Reply,
    /// [`COMMAND_DEC_STRONG`].
    DecStrong,
}

impl Command {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Command::Transact => COMMAND_TRANSACT,
            Command::Reply => COMMAND_REPLY,
            Command::DecStrong => COMMAND_DEC_STRONG,
        }
    }
}

/// 16-byte header before every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    /// The command.
    pub command: Command,
    /// Bytes of body that follow.
    pub body_size: u32,
}

impl WireHeader {
    /// Wire size.
    pub const SIZE: usize = 16;

    /// Encodes the header (reserved words zero).
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.command.code().to_le_bytes());
        b[4..8].copy_from_slice(&self.body_size.to_le_bytes());
        b
    }

    /// Decodes a header, checking the command and the body size limit of `version`.
    pub fn decode(b: &[u8; Self::SIZE], version: u32) -> Result<Self, Error> {
        let command = match u32_at(b, 0) {
            COMMAND_TRANSACT => Command::Transact,
            COMMAND_REPLY => Command::Reply,
            COMMAND_DEC_STRONG => Command::DecStrong,
            other => return Err(Error::UnknownCommand(other)),
        };
        let body_size = u32_at(b, 4);
        let max = max_body_size(version);
        if body_size > max {
            return Err(Error::BodyTooLarge {
                size: body_size,
                max,
            });
        }
        Ok(WireHeader { command, body_size })
    }
}

/// An `RpcWireAddress` as the u64 libbinder uses (options in the low word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub u64);

impl Address {
    /// "No binder": the target of special transactions.
    pub const ZERO: Address = Address(0);

    /// Builds an address from options and the creator's counter.
    pub fn new(options: u32, id: u32) -> Self {
        Address(u64::from(options) | (u64::from(id) << 32))
    }

    /// The options word.
    pub fn options(self) -> u32 {
        (self.0 & 0xffff_ffff) as u32
    }

    /// The per-session counter.
    pub fn id(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// True for the all-zero address.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True when no unknown option bits are set (`isRecognizedType`).
    pub fn is_recognized(self) -> bool {
        self.options() & !(ADDRESS_OPTION_CREATED | ADDRESS_OPTION_FOR_SERVER) == 0
    }

    /// True when the server side of the session created the node.
    pub fn is_for_server(self) -> bool {
        self.options() & ADDRESS_OPTION_FOR_SERVER != 0
    }
}

/// Fixed part of a TRANSACT body (40 bytes); parcel data and object table follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionHeader {
    /// Target node, or [`Address::ZERO`] for special transactions.
    pub address: Address,
    /// Transaction code.
    pub code: u32,
    /// [`FLAG_ONEWAY`], [`FLAG_CLEAR_BUF`], ...
    pub flags: u32,
    /// Oneway sequence number per node, else 0.
    pub async_number: u64,
    /// v1+: size of the parcel data (v0: reserved, 0).
    pub parcel_data_size: u32,
}

impl TransactionHeader {
    /// Wire size.
    pub const SIZE: usize = 40;

    /// Encodes the fixed part.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.address.0.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.async_number.to_le_bytes());
        b[24..28].copy_from_slice(&self.parcel_data_size.to_le_bytes());
        b
    }

    /// Decodes the fixed part from the start of a TRANSACT body.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        let size = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if body.len() < Self::SIZE {
            return Err(Error::BodyTooSmall {
                command: "TRANSACT",
                size,
                min: Self::SIZE as u32,
            });
        }
        Ok(TransactionHeader {
            address: Address(u64_at(body, 0)),
            code: u32_at(body, 8),
            flags: u32_at(body, 12),
            async_number: u64_at(body, 16),
            parcel_data_size: u32_at(body, 24),
        })
    }
}

/// Fixed part of a REPLY body: 4 bytes at v0, 20 bytes at v1+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// Transport status (`status_t`).
    pub status: i32,
    /// v1+: size of the parcel data.
    pub parcel_data_size: u32,
}

impl ReplyHeader {
    /// Wire size at `version`.
    pub fn size(version: u32) -> usize {
        if version >= PROTOCOL_VERSION_1 {
            20
        } else {
            4
        }
    }

    /// Encodes the fixed part at `version`.
    pub fn encode(&self, version: u32) -> Vec<u8> {
        let mut b = vec![0u8; Self::size(version)];
        b[0..4].copy_from_slice(&self.status.to_le_bytes());
        if version >= PROTOCOL_VERSION_1 {
            b[4..8].copy_from_slice(&self.parcel_data_size.to_le_bytes());
        }
        b
    }

    /// Decodes the fixed part from the start of a REPLY body.
    pub fn decode(body: &[u8], version: u32) -> Result<Self, Error> {
        let min = Self::size(version);
        if body.len() < min {
            return Err(Error::BodyTooSmall {
                command: "REPLY",
                size: u32::try_from(body.len()).unwrap_or(u32::MAX),
                min: min as u32,
            });
        }
        let status = u32_at(body, 0) as i32;
        let parcel_data_size = if version >= PROTOCOL_VERSION_1 {
            u32_at(body, 4)
        } else {
            // v0: the rest of the body is the parcel (bounded by the body limit).
            (body.len() - min) as u32
        };
        Ok(ReplyHeader {
            status,
            parcel_data_size,
        })
    }
}

/// Body of DEC_STRONG (exactly 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecStrong {
    /// Node whose references are released.
    pub address: Address,
    /// Number of references released.
    pub amount: u32,
}

impl DecStrong {
    /// Wire size.
    pub const SIZE: usize = 16;

    /// Encodes the body.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.address.0.to_le_bytes());
        b[8..12].copy_from_slice(&self.amount.to_le_bytes());
        b
    }

    /// Decodes a DEC_STRONG body, whose size must be exactly 16.
    pub fn decode(body: &[u8]) -> Result<Self, Error> {
        if body.len() != Self::SIZE {
            return Err(Error::DecStrongBodySize(
                u32::try_from(body.len()).unwrap_or(u32::MAX),
            ));
        }
        Ok(DecStrong {
            address: Address(u64_at(body, 0)),
            amount: u32_at(body, 8),
        })
    }
}

/// Splits the payload after a TRANSACT/REPLY fixed header into parcel data and object table.
///
/// At v0 the whole rest is parcel data. At v1+ `parcel_data_size` bytes are data and the
/// remainder, which must be a multiple of 4, is a table of u32 offsets, each of which must
/// satisfy `offset + 4 < data.len()` (libbinder's check).
pub fn split_parcel(
    rest: &[u8],
    parcel_data_size: u32,
    version: u32,
) -> Result<(&[u8], Vec<u32>), Error> {
    if version < PROTOCOL_VERSION_1 {
        return Ok((rest, Vec::new()));
    }
    let data_len = parcel_data_size as usize;
    if data_len > rest.len() {
        return Err(Error::ParcelSizeExceedsBody {
            parcel: parcel_data_size,
            available: u32::try_from(rest.len()).unwrap_or(u32::MAX),
        });
    }
    let (data, table) = rest.split_at(data_len);
    if table.len() % 4 != 0 {
        return Err(Error::ObjectTableMisaligned(
            u32::try_from(table.len()).unwrap_or(u32::MAX),
        ));
    }
    let mut objects = Vec::with_capacity(table.len() / 4);
    for chunk in table.chunks_exact(4) {
        let mut a = [0u8; 4];
        a.copy_from_slice(chunk);
        let off = u32::from_le_bytes(a);
        let in_range = matches!((off as usize).checked_add(4), Some(e) if e < data.len());
        if !in_range {
            return Err(Error::ObjectOffsetOutOfRange {
                offset: off,
                data_size: parcel_data_size,
            });
        }
        objects.push(off);
    }
    Ok((data, objects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_header_roundtrip() {
        let h = ConnectionHeader {
            version: 1,
            options: 0,
            fd_mode: 0,
            session_id_size: 0,
        };
        assert_eq!(h.encode(), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ConnectionHeader::decode(&h.encode()), h);
        let a = ConnectionHeader {
            version: 2,
            options: 1,
            fd_mode: 0,
            session_id_size: 32,
        };
        assert_eq!(
            &a.encode()[..],
            &[2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0][..]
        );
    }

    #[test]
    fn header_rejects_unknown_command_and_oversize() {
        let mut b = [0u8; 16];
        b[0] = 3;
        assert!(matches!(
            WireHeader::decode(&b, 1),
            Err(Error::UnknownCommand(3))
        ));
        let mut b = [0u8; 16];
        b[4..8].copy_from_slice(&100_001u32.to_le_bytes());
        assert!(matches!(
            WireHeader::decode(&b, 1),
            Err(Error::BodyTooLarge {
                size: 100_001,
                max: 100_000
            })
        ));
        assert!(WireHeader::decode(&b, 2).is_ok());
        // Exactly the limit is allowed, at each version.
        for version in [1, 2] {
            let mut b = [0u8; 16];
            b[4..8].copy_from_slice(&max_body_size(version).to_le_bytes());
            assert_eq!(
                WireHeader::decode(&b, version).unwrap().body_size,
                max_body_size(version)
            );
        }
    }

    #[test]
    fn a_v0_reply_parcel_is_the_rest_of_the_body() {
        let body = [0u8; 4 + 12];
        let h = ReplyHeader::decode(&body, 0).unwrap();
        assert_eq!((h.status, h.parcel_data_size), (0, 12));
        assert!(matches!(
            ReplyHeader::decode(&body[..3], 0),
            Err(Error::BodyTooSmall {
                size: 3,
                min: 4,
                ..
            })
        ));
    }

    #[test]
    fn split_parcel_checks() {
        let rest = [0u8; 10];
        assert!(matches!(
            split_parcel(&rest, 11, 1),
            Err(Error::ParcelSizeExceedsBody { .. })
        ));
        assert!(matches!(
            split_parcel(&rest, 8, 1),
            Err(Error::ObjectTableMisaligned(2))
        ));
        let mut rest = vec![0u8; 8];
        rest.extend_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            split_parcel(&rest, 8, 1),
            Err(Error::ObjectOffsetOutOfRange { offset: 4, .. })
        ));
        let mut rest = vec![0u8; 8];
        rest.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            split_parcel(&rest, 8, 1).ok().map(|(_, o)| o),
            Some(vec![3])
        );
        assert_eq!(
            split_parcel(&rest, 8, 0)
                .ok()
                .map(|(d, o)| (d.len(), o.len())),
            Some((12, 0))
        );
    }

    #[test]
    fn address_parts() {
        let a = Address::new(3, 7);
        assert_eq!(a.0, 0x0000_0007_0000_0003);
        assert_eq!((a.options(), a.id()), (3, 7));
        assert!(a.is_recognized() && a.is_for_server());
        assert!(!Address(0x4).is_recognized());
    }
}
