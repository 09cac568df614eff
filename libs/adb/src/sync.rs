//! The file sync sub-protocol of a `sync:` stream: requests `{id u32, length u32}` + path, data
//! chunks, and the device's replies. Integers are little-endian; ids are four ASCII bytes.

use std::io::{self, Read};

const fn id(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

pub const STAT: u32 = id(b"STAT");
pub const LST2: u32 = id(b"LST2");
pub const STA2: u32 = id(b"STA2");
pub const LIST: u32 = id(b"LIST");
pub const LIS2: u32 = id(b"LIS2");
pub const DENT: u32 = id(b"DENT");
pub const DNT2: u32 = id(b"DNT2");
pub const SEND: u32 = id(b"SEND");
pub const RECV: u32 = id(b"RECV");
pub const DATA: u32 = id(b"DATA");
pub const DONE: u32 = id(b"DONE");
pub const OKAY: u32 = id(b"OKAY");
pub const FAIL: u32 = id(b"FAIL");
pub const QUIT: u32 = id(b"QUIT");

/// The longest path a request may name (adbd's limit).
pub const MAX_PATH: u32 = 1024;
/// The largest DATA chunk either side may send (SYNC_DATA_MAX).
pub const MAX_DATA: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("path of {0} bytes is over the {MAX_PATH}-byte limit")]
    PathTooLong(u32),
    #[error("path is not UTF-8")]
    PathNotUtf8,
    #[error("unknown sync request {0:#010x}")]
    UnknownRequest(u32),
    #[error("expected DATA or DONE, got {0:#010x}")]
    UnexpectedInSend(u32),
    #[error("data chunk of {0} bytes is over the {MAX_DATA}-byte limit")]
    OversizedData(u32),
    #[error("sync stream: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// STAT (v1 reply), LST2 (lstat) or STA2 (stat): the id is echoed in the reply.
    Stat {
        id: u32,
        path: String,
    },
    /// LIST (v1 entries) or LIS2.
    List {
        id: u32,
        path: String,
    },
    /// SEND `"path,mode"`: DATA chunks and DONE(mtime) follow.
    Send {
        path: String,
        mode: u32,
    },
    Recv {
        path: String,
    },
    Quit,
}

fn read_u32_pair(r: &mut impl Read) -> Result<Option<(u32, u32)>, SyncError> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut b[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some((
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )))
}

/// The next request, or `None` at a clean end of stream.
pub fn read_request(r: &mut impl Read) -> Result<Option<Request>, SyncError> {
    let Some((id, len)) = read_u32_pair(r)? else {
        return Ok(None);
    };
    if id == QUIT {
        return Ok(Some(Request::Quit));
    }
    if !matches!(id, STAT | LST2 | STA2 | LIST | LIS2 | SEND | RECV) {
        return Err(SyncError::UnknownRequest(id));
    }
    if len > MAX_PATH {
        return Err(SyncError::PathTooLong(len));
    }
    let mut path = vec![0u8; len as usize];
    r.read_exact(&mut path)?;
    let path = String::from_utf8(path).map_err(|_| SyncError::PathNotUtf8)?;
    Ok(Some(match id {
        SEND => {
            // "path,mode": the mode after the last comma, decimal or 0-prefixed octal/hex.
            let (p, mode) = match path.rsplit_once(',') {
                Some((p, m)) => (p.to_owned(), parse_mode(m).unwrap_or(0o644)),
                None => (path, 0o644),
            };
            Request::Send { path: p, mode }
        }
        RECV => Request::Recv { path },
        LIST | LIS2 => Request::List { id, path },
        _ => Request::Stat { id, path },
    }))
}

fn parse_mode(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// One item of a SEND: a chunk, or the end with the file's mtime.
#[derive(Debug, PartialEq, Eq)]
pub enum SendItem {
    Data(Vec<u8>),
    Done { mtime: u32 },
}

pub fn read_send_item(r: &mut impl Read) -> Result<SendItem, SyncError> {
    let (id, len) = read_u32_pair(r)?
        .ok_or_else(|| SyncError::Io(io::Error::from(io::ErrorKind::UnexpectedEof)))?;
    match id {
        DONE => Ok(SendItem::Done { mtime: len }),
        DATA => {
            if len > MAX_DATA {
                return Err(SyncError::OversizedData(len));
            }
            let mut data = vec![0u8; len as usize];
            r.read_exact(&mut data)?;
            Ok(SendItem::Data(data))
        }
        other => Err(SyncError::UnexpectedInSend(other)),
    }
}

/// A file's status as `stat_v2` carries it; `error` is a Linux errno (0 = success).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub error: u32,
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}

impl Stat {
    pub fn error(errno: i32) -> Stat {
        Stat {
            error: errno.unsigned_abs(),
            ..Stat::default()
        }
    }

    fn push_v2_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.error.to_le_bytes());
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.nlink.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.atime.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&self.ctime.to_le_bytes());
    }

    /// The 72-byte reply to STA2/LST2 (`id` echoes the request).
    pub fn encode_v2(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(72);
        out.extend_from_slice(&id.to_le_bytes());
        self.push_v2_fields(&mut out);
        out
    }

    /// The 16-byte reply to STAT: mode, size, mtime (all 0 on failure).
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&STAT.to_le_bytes());
        let (mode, size, mtime) = if self.error == 0 {
            (self.mode, self.size as u32, self.mtime as u32)
        } else {
            (0, 0, 0)
        };
        for v in [mode, size, mtime] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// A directory entry: DNT2 (76 bytes + name) or DENT (20 bytes + name).
    pub fn encode_dent(&self, v2: bool, name: &[u8]) -> Vec<u8> {
        let namelen = u32::try_from(name.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(76 + name.len());
        if v2 {
            out.extend_from_slice(&DNT2.to_le_bytes());
            self.push_v2_fields(&mut out);
        } else {
            out.extend_from_slice(&DENT.to_le_bytes());
            for v in [self.mode, self.size as u32, self.mtime as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.extend_from_slice(&namelen.to_le_bytes());
        out.extend_from_slice(name);
        out
    }
}

/// The end of a listing: a zeroed entry record of the listing's size with id DONE.
pub fn encode_list_done(v2: bool) -> Vec<u8> {
    let mut out = vec![0u8; if v2 { 76 } else { 20 }];
    out[..4].copy_from_slice(&DONE.to_le_bytes());
    out
}

pub fn encode_data(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&DATA.to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// DONE with length 0 (end of a RECV), or OKAY (a finished SEND).
pub fn encode_status(id: u32) -> Vec<u8> {
    let mut out = id.to_le_bytes().to_vec();
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

pub fn encode_fail(message: &str) -> Vec<u8> {
    let mut out = FAIL.to_le_bytes().to_vec();
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u32, path: &[u8]) -> Vec<u8> {
        let mut v = id.to_le_bytes().to_vec();
        v.extend_from_slice(&(path.len() as u32).to_le_bytes());
        v.extend_from_slice(path);
        v
    }

    #[test]
    fn requests_as_debian_adb_sends_them() {
        let mut bytes = req(STA2, b"/data/local/tmp/f");
        bytes.extend(req(SEND, b"/data/local/tmp/f,33188"));
        bytes.extend(encode_data(b"abc"));
        bytes.extend(encode_status(DONE));
        bytes.extend(req(QUIT, b""));
        let mut r = &bytes[..];
        assert_eq!(
            read_request(&mut r).unwrap(),
            Some(Request::Stat {
                id: STA2,
                path: "/data/local/tmp/f".into()
            })
        );
        assert_eq!(
            read_request(&mut r).unwrap(),
            Some(Request::Send {
                path: "/data/local/tmp/f".into(),
                mode: 0o100644
            })
        );
        assert_eq!(
            read_send_item(&mut r).unwrap(),
            SendItem::Data(b"abc".to_vec())
        );
        assert_eq!(read_send_item(&mut r).unwrap(), SendItem::Done { mtime: 0 });
        assert_eq!(read_request(&mut r).unwrap(), Some(Request::Quit));
        assert_eq!(read_request(&mut r).unwrap(), None);
    }

    #[test]
    fn bad_requests() {
        let long = req(RECV, &[b'a'; 1025]);
        assert!(matches!(
            read_request(&mut &long[..]),
            Err(SyncError::PathTooLong(1025))
        ));
        let unknown = req(0x1234_5678, b"x");
        assert!(matches!(
            read_request(&mut &unknown[..]),
            Err(SyncError::UnknownRequest(_))
        ));
        let mut chunk = DATA.to_le_bytes().to_vec();
        chunk.extend_from_slice(&(MAX_DATA + 1).to_le_bytes());
        assert!(matches!(
            read_send_item(&mut &chunk[..]),
            Err(SyncError::OversizedData(_))
        ));
        let truncated = &req(RECV, b"abc")[..9];
        assert!(matches!(
            read_request(&mut &truncated[..]),
            Err(SyncError::Io(_))
        ));
        let not_utf8 = req(RECV, b"\xff");
        assert!(matches!(
            read_request(&mut &not_utf8[..]),
            Err(SyncError::PathNotUtf8)
        ));
    }

    #[test]
    fn reply_sizes() {
        assert_eq!(Stat::default().encode_v2(STA2).len(), 72);
        assert_eq!(Stat::default().encode_v1().len(), 16);
        assert_eq!(Stat::default().encode_dent(true, b"ab").len(), 78);
        assert_eq!(Stat::default().encode_dent(false, b"ab").len(), 22);
        assert_eq!(encode_list_done(true).len(), 76);
        assert_eq!(&encode_list_done(false)[..4], b"DONE");
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("0x1ed"), Some(0o755));
    }
}
