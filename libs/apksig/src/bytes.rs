//! Bounds-checked little-endian reading and writing of length-prefixed structures.

/// A cursor over untrusted bytes. Every read is bounds-checked and returns `None` when the input
/// is too short; callers map that to their own error.
#[derive(Debug, Clone, Copy)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
}

impl<'a> ByteReader<'a> {
    /// Wraps a slice.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether everything was consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Reads a u32-length-prefixed byte string.
    pub fn lp(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

/// Appends a little-endian u32.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a little-endian u64.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a u32-length-prefixed byte string. Fails when `data` is 4 GiB or more.
pub fn put_lp(out: &mut Vec<u8>, data: &[u8]) -> Option<()> {
    put_u32(out, u32::try_from(data.len()).ok()?);
    out.extend_from_slice(data);
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let data = [4, 0, 0, 0, 1, 2, 3, 4, 9];
        let mut r = ByteReader::new(&data);
        assert_eq!(r.lp(), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(r.u8(), Some(9));
        assert!(r.is_empty());
        assert_eq!(r.u32(), None);
        let mut r = ByteReader::new(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(r.lp(), None);
    }

    #[test]
    fn writes() {
        let mut v = Vec::new();
        put_lp(&mut v, b"ab").unwrap();
        put_u64(&mut v, 1);
        assert_eq!(v, [2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
