//! The small part of CBOR (RFC 8949) that DICE needs.
//!
//! * **Writer**: definite lengths, shortest heads, maps in the order the caller writes them
//!   (open-dice's certificates are not in canonical order, so a canonicalising encoder would
//!   not do). Public, so that callers can build configuration descriptors with their own keys
//!   (AVF's -71000… keys, for example).
//! * **Reader** (crate-private): borrowed values over untrusted bytes. Every declared length is
//!   checked against the bytes left before anything is read or allocated; containers nest at
//!   most [`MAX_DEPTH`] deep; indefinite lengths and the reserved additional-information values
//!   28–30 are rejected (open-dice's reader does the same); heads need not be minimal.

use crate::Error;

/// How deep arrays, maps and tags may nest in a decoded item.
pub(crate) const MAX_DEPTH: usize = 16;

/// open-dice's `CBOR_READ_SKIP_STACK_SIZE`: the open containers [`Reader::skip`] can track.
const SKIP_STACK: usize = 10;

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_BSTR: u8 = 2;
const MAJOR_TSTR: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

/// Simple value `null` (major type 7, value 22).
pub const NULL: u8 = 0xf6;

/// Appends a head: major type (0–7) and argument, in its shortest form.
pub fn write_header(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = (major & 7) << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= 0xff {
        out.push(m | 24);
        out.push(arg as u8);
    } else if arg <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Appends an unsigned integer.
pub fn write_uint(out: &mut Vec<u8>, v: u64) {
    write_header(out, MAJOR_UINT, v);
}

/// Appends an integer (major type 0 or 1).
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_header(out, MAJOR_UINT, v as u64);
    } else {
        // -1 - v, which cannot overflow for a negative i64.
        write_header(out, MAJOR_NINT, (!v) as u64);
    }
}

/// Appends a byte string.
pub fn write_bstr(out: &mut Vec<u8>, b: &[u8]) {
    write_header(out, MAJOR_BSTR, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a text string.
pub fn write_tstr(out: &mut Vec<u8>, s: &str) {
    write_header(out, MAJOR_TSTR, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends an array head for `n` items (the caller appends the items).
pub fn write_array_header(out: &mut Vec<u8>, n: u64) {
    write_header(out, MAJOR_ARRAY, n);
}

/// Appends a map head for `n` pairs (the caller appends keys and values, in its order).
pub fn write_map_header(out: &mut Vec<u8>, n: u64) {
    write_header(out, MAJOR_MAP, n);
}

/// Appends `null`.
pub fn write_null(out: &mut Vec<u8>) {
    out.push(NULL);
}

/// A decoded item, borrowing strings from the input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Uint(u64),
    /// The integer `-1 - n`.
    Nint(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Tag(u64, Box<Value<'a>>),
    /// false (20), true (21), null (22), undefined (23) and other simple values.
    Simple(u8),
    /// A half, single or double float, kept as its raw bits.
    Float(u64),
}

impl Value<'_> {
    /// The integer, if it is one that fits an i64.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Uint(u) => i64::try_from(u).ok(),
            Value::Nint(n) => i64::try_from(n).ok().map(|n| -1 - n),
            _ => None,
        }
    }
}

/// Decodes exactly one item; bytes after it are [`Error::TrailingData`].
pub(crate) fn decode(data: &[u8]) -> Result<Value<'_>, Error> {
    let mut r = Reader::new(data);
    let v = r.read_value()?;
    if !r.is_at_end() {
        return Err(Error::TrailingData);
    }
    Ok(v)
}

/// A cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Takes `n` bytes, after checking that they are there.
    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let n = usize::try_from(n).map_err(|_| Error::Truncated)?;
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads a head: (major type, argument).
    pub(crate) fn read_head(&mut self) -> Result<(u8, u64), Error> {
        let (major, _, arg) = self.head()?;
        Ok((major, arg))
    }

    /// Reads a head: (major type, additional information, argument).
    fn head(&mut self) -> Result<(u8, u8, u64), Error> {
        let first = *self.take(1)?.first().ok_or(Error::Truncated)?;
        let major = first >> 5;
        let ai = first & 0x1f;
        let arg = match ai {
            0..=23 => u64::from(ai),
            24 => u64::from(self.take(1)?.first().copied().ok_or(Error::Truncated)?),
            25 => {
                let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| Error::Truncated)?;
                u64::from(u16::from_be_bytes(b))
            }
            26 => {
                let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| Error::Truncated)?;
                u64::from(u32::from_be_bytes(b))
            }
            27 => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| Error::Truncated)?;
                u64::from_be_bytes(b)
            }
            31 => {
                return Err(Error::Cbor(format!(
                    "indefinite length (initial byte {first:#04x}) is not supported"
                )))
            }
            _ => {
                return Err(Error::Cbor(format!(
                    "reserved additional information in initial byte {first:#04x}"
                )))
            }
        };
        Ok((major, ai, arg))
    }

    /// Reads an integer (major type 0 or 1) that fits an i64, as open-dice's `CborReadInt`.
    pub(crate) fn read_int(&mut self, field: &'static str) -> Result<i64, Error> {
        let (major, arg) = self.read_head()?;
        let v = i64::try_from(arg)
            .map_err(|_| Error::Cbor(format!("{field}: integer out of range")))?;
        match major {
            MAJOR_UINT => Ok(v),
            MAJOR_NINT => Ok(-1 - v),
            _ => Err(Error::WrongType {
                field,
                expected: "integer",
            }),
        }
    }

    /// Reads a byte string.
    pub(crate) fn read_bstr(&mut self, field: &'static str) -> Result<&'a [u8], Error> {
        let (major, len) = self.read_head()?;
        if major != MAJOR_BSTR {
            return Err(Error::WrongType {
                field,
                expected: "bstr",
            });
        }
        self.take(len)
    }

    /// Reads one item of any type.
    pub(crate) fn read_value(&mut self) -> Result<Value<'a>, Error> {
        self.value(0)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let (major, ai, arg) = self.head()?;
        Ok(match major {
            MAJOR_UINT => Value::Uint(arg),
            MAJOR_NINT => Value::Nint(arg),
            MAJOR_BSTR => Value::Bytes(self.take(arg)?),
            MAJOR_TSTR => {
                let b = self.take(arg)?;
                Value::Text(
                    std::str::from_utf8(b)
                        .map_err(|_| Error::Cbor("text string is not UTF-8".into()))?,
                )
            }
            MAJOR_ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(Error::NestingTooDeep);
                }
                // No allocation from `arg`: every item takes at least one byte, so the loop
                // ends with Truncated long before `arg` items when the input is short.
                let mut items = Vec::new();
                for _ in 0..arg {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            MAJOR_MAP => {
                if depth >= MAX_DEPTH {
                    return Err(Error::NestingTooDeep);
                }
                let mut pairs = Vec::new();
                for _ in 0..arg {
                    let k = self.value(depth + 1)?;
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            MAJOR_TAG => {
                if depth >= MAX_DEPTH {
                    return Err(Error::NestingTooDeep);
                }
                Value::Tag(arg, Box::new(self.value(depth + 1)?))
            }
            // MAJOR_SIMPLE: additional information 0-24 is a simple value (its argument fits
            // a byte), 25-27 a half, single or double float.
            _ => match u8::try_from(arg) {
                Ok(simple) if ai <= 24 => Value::Simple(simple),
                _ => Value::Float(arg),
            },
        })
    }

    /// Skips one item without decoding it, exactly as open-dice's `CborReadSkip`: iteratively,
    /// with room for 10 open containers (a container whose last item is being read no longer
    /// counts).
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        let mut stack = [0u64; SKIP_STACK];
        stack[0] = 1;
        let mut len = 1usize;
        while len > 0 {
            let (major, arg) = self.read_head()?;
            let top = &mut stack[len - 1];
            *top -= 1;
            if *top == 0 {
                len -= 1;
            }
            let items = match major {
                MAJOR_UINT | MAJOR_NINT | MAJOR_SIMPLE => continue,
                MAJOR_BSTR | MAJOR_TSTR => {
                    self.take(arg)?;
                    continue;
                }
                MAJOR_ARRAY => arg,
                MAJOR_MAP => arg.checked_mul(2).ok_or(Error::Truncated)?,
                _ => 1, // MAJOR_TAG: one tagged item follows
            };
            if items == 0 {
                continue;
            }
            if len == SKIP_STACK {
                return Err(Error::NestingTooDeep);
            }
            stack[len] = items;
            len += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn heads_are_shortest() {
        assert_eq!(enc(|o| write_uint(o, 23)), [0x17]);
        assert_eq!(enc(|o| write_uint(o, 24)), [0x18, 24]);
        assert_eq!(enc(|o| write_uint(o, 0x100)), [0x19, 1, 0]);
        assert_eq!(enc(|o| write_uint(o, 0x1_0000)), [0x1a, 0, 1, 0, 0]);
        assert_eq!(
            enc(|o| write_uint(o, 1 << 32)),
            [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(enc(|o| write_int(o, -1)), [0x20]);
        assert_eq!(enc(|o| write_int(o, -8)), [0x27]);
        assert_eq!(
            enc(|o| write_int(o, -4670545)),
            [0x3a, 0x00, 0x47, 0x44, 0x50]
        );
        assert_eq!(
            enc(|o| write_int(o, -70002)),
            [0x3a, 0x00, 0x01, 0x11, 0x71]
        );
        assert_eq!(
            enc(|o| write_int(o, i64::MIN)),
            [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(enc(|o| write_bstr(o, &[0; 32]))[..2], [0x58, 0x20]);
        assert_eq!(enc(|o| write_tstr(o, "android.18"))[0], 0x6a);
        assert_eq!(enc(write_null), [0xf6]);
    }

    #[test]
    fn decode_round_trip() {
        let mut b = Vec::new();
        write_map_header(&mut b, 3);
        write_int(&mut b, -70002);
        write_tstr(&mut b, "vm_entry");
        write_int(&mut b, 1);
        write_array_header(&mut b, 2);
        write_bstr(&mut b, b"ab");
        write_null(&mut b);
        write_int(&mut b, i64::MIN);
        b.extend_from_slice(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 1]); // float64
        let v = decode(&b).unwrap();
        let Value::Map(pairs) = v else { panic!() };
        assert_eq!(pairs[0].0.as_i64(), Some(-70002));
        assert_eq!(pairs[0].1, Value::Text("vm_entry"));
        assert_eq!(
            pairs[1].1,
            Value::Array(vec![Value::Bytes(b"ab"), Value::Simple(22)])
        );
        assert_eq!(pairs[2].0.as_i64(), Some(i64::MIN));
        assert_eq!(pairs[2].1, Value::Float(1));
        // Simple value in the one-byte form.
        assert_eq!(decode(&[0xf8, 0x20]).unwrap(), Value::Simple(0x20));
        assert_eq!(decode(&[0xf9, 0, 1]).unwrap(), Value::Float(1));
        assert_eq!(
            decode(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap()
                .as_i64(),
            None
        );
    }

    #[test]
    fn negative_integers_tags_and_indefinite_lengths() {
        let mut r = Reader::new(&[0x20, 0x38, 0x63, 0x3a, 0x00, 0x01, 0x11, 0x71]);
        assert_eq!(r.read_int("a").unwrap(), -1);
        assert_eq!(r.read_int("b").unwrap(), -100);
        assert_eq!(r.read_int("c").unwrap(), -70002);
        // Tag 24 (encoded CBOR) around a byte string.
        assert_eq!(
            decode(&[0xd8, 0x18, 0x41, 0x07]).unwrap(),
            Value::Tag(24, Box::new(Value::Bytes(&[7])))
        );
        let Err(Error::Cbor(m)) = decode(&[0x9f, 0xff]) else {
            panic!()
        };
        assert!(m.contains("indefinite length"), "{m}");
        let Err(Error::Cbor(m)) = decode(&[0x1c]) else {
            panic!()
        };
        assert!(m.contains("reserved"), "{m}");
    }

    /// Arrays, maps and tags nest at most MAX_DEPTH deep, each kind counting.
    #[test]
    fn nesting_is_bounded_for_every_container() {
        // `open` opens one container around what follows; the innermost item is 0.
        let nested = |open: &[u8], depth: usize| {
            let mut b = Vec::new();
            for _ in 0..depth {
                b.extend_from_slice(open);
            }
            b.push(0);
            b
        };
        // An array of one item; a map whose one key is 0 and value is what follows; tag 1.
        for open in [&[0x81][..], &[0xa1, 0x00][..], &[0xc1][..]] {
            assert!(decode(&nested(open, MAX_DEPTH)).is_ok(), "{open:?}");
            assert!(
                matches!(
                    decode(&nested(open, MAX_DEPTH + 1)),
                    Err(Error::NestingTooDeep)
                ),
                "{open:?}"
            );
        }
        // A map's key nests too.
        let mut b = vec![0xa1; MAX_DEPTH + 1];
        b.resize(2 * (MAX_DEPTH + 1) + 1, 0);
        assert!(matches!(decode(&b), Err(Error::NestingTooDeep)));
    }

    #[test]
    fn decode_rejects() {
        assert!(matches!(decode(&[]), Err(Error::Truncated)));
        assert!(matches!(decode(&[0x01, 0x02]), Err(Error::TrailingData)));
        assert!(matches!(decode(&[0x9f, 0xff]), Err(Error::Cbor(_))));
        assert!(matches!(decode(&[0x1c]), Err(Error::Cbor(_))));
        assert!(matches!(decode(&[0x62, 0xff, 0xfe]), Err(Error::Cbor(_))));
        // Huge declared lengths fail without allocating.
        let huge = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode(&huge), Err(Error::Truncated)));
        let huge_array = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(matches!(decode(&huge_array), Err(Error::Truncated)));
        let huge_map = [0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode(&huge_map), Err(Error::Truncated)));
        let deep = [0x81u8; 100];
        assert!(matches!(decode(&deep), Err(Error::NestingTooDeep)));
        let mut ok_depth = vec![0x81u8; MAX_DEPTH];
        ok_depth.push(0);
        assert!(decode(&ok_depth).is_ok());
    }

    #[test]
    fn skip_like_open_dice() {
        let mut item = Vec::new();
        write_array_header(&mut item, 2);
        write_map_header(&mut item, 1);
        write_int(&mut item, 1);
        write_bstr(&mut item, &[7; 40]);
        item.extend_from_slice(&[0xc1, 0x1a, 0, 0, 0, 1]); // tag 1 (epoch time)
        let mut with_tail = item.clone();
        with_tail.push(0x00);
        let mut r = Reader::new(&with_tail);
        r.skip().unwrap();
        assert_eq!(r.position(), item.len());
        // Tail-nested arrays do not grow the stack (open-dice behaves the same) ...
        let mut tail_nested = vec![0x81u8; 1000];
        tail_nested.push(0);
        assert!(Reader::new(&tail_nested).skip().is_ok());
        // ... but 11 open containers do not fit.
        let open = [[0x82u8; 11].as_slice(), &[0; 12]].concat();
        assert!(matches!(
            Reader::new(&open).skip(),
            Err(Error::NestingTooDeep)
        ));
        let ten = [[0x82u8; 10].as_slice(), &[0; 11]].concat();
        assert!(Reader::new(&ten).skip().is_ok());
        assert!(matches!(
            Reader::new(&[0x82, 0x00]).skip(),
            Err(Error::Truncated)
        ));
        assert!(matches!(Reader::new(&[0x5f]).skip(), Err(Error::Cbor(_))));
    }
}
