//! Bounds-checked big-endian reading.

use crate::{Error, Result};

/// A cursor over untrusted bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Error::SizeOutOfRange(self.what))?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated {
            what: self.what,
            needed: end as u64,
            available: self.buf.len() as u64,
        })?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn bytes_u64(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Error::SizeOutOfRange(self.what))?;
        self.bytes(n)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }
}

/// Rounds `x` up to a multiple of `to` (a power of two or any non-zero value).
pub(crate) fn round_up(x: u64, to: u64) -> Option<u64> {
    x.checked_add(to.checked_sub(1)?).map(|v| v / to * to)
}

/// `buf[off..off+len]` with checked arithmetic, as a Truncated error when out of range.
pub(crate) fn slice<'a>(buf: &'a [u8], off: u64, len: u64, what: &'static str) -> Result<&'a [u8]> {
    let end = off.checked_add(len).ok_or(Error::SizeOutOfRange(what))?;
    let (o, e) = (
        usize::try_from(off).map_err(|_| Error::SizeOutOfRange(what))?,
        usize::try_from(end).map_err(|_| Error::SizeOutOfRange(what))?,
    );
    buf.get(o..e).ok_or(Error::Truncated {
        what,
        needed: end,
        available: buf.len() as u64,
    })
}

/// A fixed-size, NUL-padded string field (e.g. `char hash_algorithm[32]`), up to the first NUL.
pub(crate) fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}
