//! Shell protocol v2: `[id u8][length u32 LE][length bytes]` in both directions of a stream,
//! independent of WRTE boundaries.

pub const ID_STDIN: u8 = 0;
pub const ID_STDOUT: u8 = 1;
pub const ID_STDERR: u8 = 2;
pub const ID_EXIT: u8 = 3;
pub const ID_CLOSE_STDIN: u8 = 4;
pub const ID_WINDOW_SIZE: u8 = 5;
const HEADER: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShellError {
    #[error("shell packet of {len} bytes is over the {max}-byte limit")]
    Oversized { len: u32, max: u32 },
    #[error("unknown shell packet id {0}")]
    UnknownId(u8),
}

/// One packet.
pub fn encode(id: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + data.len());
    out.push(id);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Reassembles host→device packets from stream bytes. Only the ids a host sends are accepted.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    max: u32,
}

impl Parser {
    pub fn new(max: u32) -> Parser {
        Parser {
            buf: Vec::new(),
            max,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one has arrived.
    pub fn next_packet(&mut self) -> Result<Option<(u8, Vec<u8>)>, ShellError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let id = self.buf[0];
        if !matches!(id, ID_STDIN | ID_CLOSE_STDIN | ID_WINDOW_SIZE) {
            return Err(ShellError::UnknownId(id));
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if len > self.max {
            return Err(ShellError::Oversized { len, max: self.max });
        }
        let end = HEADER + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let data = self.buf[HEADER..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((id, data)))
    }
}

/// A window-size packet's `"<rows>x<cols>,<xpixels>x<ypixels>"` (NUL-terminated or not).
pub fn parse_window_size(data: &[u8]) -> Option<(u16, u16, u16, u16)> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = std::str::from_utf8(&data[..end]).ok()?;
    let (chars, pixels) = text.split_once(',')?;
    let (rows, cols) = chars.split_once('x')?;
    let (xp, yp) = pixels.split_once('x')?;
    Some((
        rows.trim().parse().ok()?,
        cols.trim().parse().ok()?,
        xp.trim().parse().ok()?,
        yp.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_joined_packets() {
        let mut p = Parser::new(16);
        let mut bytes = encode(ID_STDIN, b"abc");
        bytes.extend(encode(ID_CLOSE_STDIN, b""));
        p.push(&bytes[..2]);
        assert_eq!(p.next_packet().unwrap(), None);
        p.push(&bytes[2..]);
        assert_eq!(p.next_packet().unwrap(), Some((ID_STDIN, b"abc".to_vec())));
        assert_eq!(p.next_packet().unwrap(), Some((ID_CLOSE_STDIN, vec![])));
        assert_eq!(p.next_packet().unwrap(), None);
    }

    #[test]
    fn bad_packets() {
        let mut p = Parser::new(16);
        p.push(&encode(ID_STDIN, &[0; 17]));
        assert_eq!(
            p.next_packet().unwrap_err(),
            ShellError::Oversized { len: 17, max: 16 }
        );
        let mut p = Parser::new(16);
        p.push(&encode(ID_EXIT, &[1]));
        assert_eq!(p.next_packet().unwrap_err(), ShellError::UnknownId(ID_EXIT));
    }

    #[test]
    fn window_size() {
        assert_eq!(parse_window_size(b"40x100,0x0\0"), Some((40, 100, 0, 0)));
        assert_eq!(parse_window_size(b"40x100"), None);
        assert_eq!(parse_window_size(b"axb,0x0"), None);
    }
}
