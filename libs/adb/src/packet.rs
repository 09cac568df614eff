//! adb messages: a 24-byte header (six u32 LE: command, arg0, arg1, data_length, data_check,
//! magic = !command) followed by `data_length` bytes.
//!
//! `data_check` is the byte sum of the payload, which peers at protocol version 0x01000000 fill
//! in and later ones set to 0. No adb implementation checks it; here a non-zero value must match,
//! so that a corrupted packet from an old-style sender is caught, while the stock client (which
//! sums its first CNXN and sends 0 afterwards) always passes.

use std::io::{self, Read};

/// Protocol versions: the original one (checksums filled in) and the current one.
pub const VERSION_MIN: u32 = 0x0100_0000;
pub const VERSION_SKIP_CHECKSUM: u32 = 0x0100_0001;
/// The largest payload a peer may announce (adb's MAX_PAYLOAD) and the one CNXN must fit in.
pub const MAX_PAYLOAD: u32 = 1024 * 1024;
pub const MAX_PAYLOAD_V1: u32 = 4096;
pub const HEADER_LEN: usize = 24;

/// The commands of the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Cnxn,
    Auth,
    Open,
    Okay,
    Clse,
    Wrte,
    Stls,
    Sync,
}

impl Command {
    pub const fn value(self) -> u32 {
        match self {
            Command::Cnxn => 0x4e58_4e43,
            Command::Auth => 0x4854_5541,
            Command::Open => 0x4e45_504f,
            Command::Okay => 0x5941_4b4f,
            Command::Clse => 0x4553_4c43,
            Command::Wrte => 0x4554_5257,
            Command::Stls => 0x534c_5453,
            Command::Sync => 0x434e_5953,
        }
    }

    pub fn from_value(v: u32) -> Option<Command> {
        [
            Command::Cnxn,
            Command::Auth,
            Command::Open,
            Command::Okay,
            Command::Clse,
            Command::Wrte,
            Command::Stls,
            Command::Sync,
        ]
        .into_iter()
        .find(|c| c.value() == v)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("bad magic {magic:#010x} for command {command:#010x}")]
    BadMagic { command: u32, magic: u32 },
    #[error("unknown command {0:#010x}")]
    UnknownCommand(u32),
    #[error("payload of {len} bytes is over the negotiated maximum of {max}")]
    Oversized { len: u32, max: u32 },
    #[error("payload checksum {found:#x} does not match the bytes' sum {computed:#x}")]
    BadChecksum { found: u32, computed: u32 },
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub command: Command,
    pub arg0: u32,
    pub arg1: u32,
    pub data_length: u32,
    pub data_check: u32,
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Header {
    /// Checks the magic, the command and the payload size against `max_payload`.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: u32) -> Result<Header, PacketError> {
        let command = u32_at(bytes, 0);
        let magic = u32_at(bytes, 20);
        if magic != !command {
            return Err(PacketError::BadMagic { command, magic });
        }
        let command = Command::from_value(command).ok_or(PacketError::UnknownCommand(command))?;
        let data_length = u32_at(bytes, 12);
        if data_length > max_payload {
            return Err(PacketError::Oversized {
                len: data_length,
                max: max_payload,
            });
        }
        Ok(Header {
            command,
            arg0: u32_at(bytes, 4),
            arg1: u32_at(bytes, 8),
            data_length,
            data_check: u32_at(bytes, 16),
        })
    }
}

/// The byte sum adb calls a checksum.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub command: Command,
    pub arg0: u32,
    pub arg1: u32,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn new(command: Command, arg0: u32, arg1: u32, data: Vec<u8>) -> Packet {
        Packet {
            command,
            arg0,
            arg1,
            data,
        }
    }

    /// The wire bytes; `with_checksum` for peers at [`VERSION_MIN`].
    pub fn encode(&self, with_checksum: bool) -> Vec<u8> {
        let command = self.command.value();
        let len = u32::try_from(self.data.len()).unwrap_or(u32::MAX);
        let check = if with_checksum {
            checksum(&self.data)
        } else {
            0
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.data.len());
        for v in [command, self.arg0, self.arg1, len, check, !command] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the peer closed the connection")]
    Closed,
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error("reading from the peer: {0}")]
    Io(#[from] io::Error),
}

/// Reads one message. End of stream before a header is [`ReadError::Closed`]; inside one, an I/O
/// error. Nothing is allocated before the size is checked.
pub fn read_packet(reader: &mut impl Read, max_payload: u32) -> Result<Packet, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match reader.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(ReadError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let h = Header::parse(&header, max_payload)?;
    let mut data = vec![0u8; h.data_length as usize];
    reader.read_exact(&mut data)?;
    if h.data_check != 0 {
        let computed = checksum(&data);
        if computed != h.data_check {
            return Err(PacketError::BadChecksum {
                found: h.data_check,
                computed,
            }
            .into());
        }
    }
    Ok(Packet::new(h.command, h.arg0, h.arg1, data))
}

/// The device's CNXN banner: `device::key=value;…;features=a,b`. Values must not hold `:` or `;`
/// (the client splits on them).
pub fn device_banner(product: &str, model: &str, device: &str, features: &[&str]) -> Vec<u8> {
    let clean = |s: &str| s.replace([':', ';'], "_");
    format!(
        "device::ro.product.name={};ro.product.model={};ro.product.device={};features={}",
        clean(product),
        clean(model),
        clean(device),
        features.join(",")
    )
    .into_bytes()
}

/// The features a host banner (`host::features=a,b,…`) lists.
pub fn banner_features(banner: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(banner);
    let props = text.splitn(3, ':').nth(2).unwrap_or("");
    props
        .split(';')
        .filter_map(|kv| kv.strip_prefix("features="))
        .flat_map(|f| f.split(','))
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let p = Packet::new(Command::Wrte, 1, 8, b"hello".to_vec());
        for with in [true, false] {
            let bytes = p.encode(with);
            assert_eq!(&bytes[..4], b"WRTE");
            let got = read_packet(&mut &bytes[..], MAX_PAYLOAD).unwrap();
            assert_eq!(got, p);
        }
        let mut bad = p.encode(true);
        bad[HEADER_LEN] ^= 1;
        assert!(matches!(
            read_packet(&mut &bad[..], MAX_PAYLOAD),
            Err(ReadError::Packet(PacketError::BadChecksum { .. }))
        ));
        let mut magic = p.encode(false);
        magic[20] ^= 1;
        assert!(matches!(
            read_packet(&mut &magic[..], MAX_PAYLOAD),
            Err(ReadError::Packet(PacketError::BadMagic { .. }))
        ));
        assert!(matches!(
            read_packet(&mut &p.encode(false)[..], 4),
            Err(ReadError::Packet(PacketError::Oversized { len: 5, max: 4 }))
        ));
        assert!(matches!(
            read_packet(&mut &[][..], 4),
            Err(ReadError::Closed)
        ));
        // The exact boundary is allowed.
        assert!(read_packet(&mut &p.encode(false)[..], 5).is_ok());
    }

    #[test]
    fn banners() {
        let b = device_banner("microdroid", "m:x", "d;y", &["shell_v2", "stat_v2"]);
        assert_eq!(
            b,
            b"device::ro.product.name=microdroid;ro.product.model=m_x;ro.product.device=d_y;features=shell_v2,stat_v2"
        );
        assert_eq!(
            banner_features(b"host::features=shell_v2,cmd,stat_v2"),
            ["shell_v2", "cmd", "stat_v2"]
        );
        assert!(banner_features(b"host::").is_empty());
    }
}
