//! Reading: chunk validation (`validate_chunk`), the string pool (`ResStringPool`), node
//! iteration (`ResXMLParser::nextNode`), the manifest reader (libapkmanifest) and the tree
//! reader.

use std::collections::HashMap;

use crate::{
    chunk, data_type, Attribute, Element, Error, ManifestInfo, Value, ANDROID_NS, MAX_DEPTH,
    MAX_ELEMENTS, MAX_STRING_BYTES,
};

/// `ResStringPool_ref` "none".
const NONE: u32 = 0xffff_ffff;
const CHUNK_HEADER: usize = 8;
const NODE_HEADER: usize = 16;
const POOL_HEADER: usize = 28;
const ATTR_EXT: usize = 20;
const ATTRIBUTE: usize = 20;
/// `ResStringPool_header.flags` bit for UTF-8 strings.
const UTF8_FLAG: u32 = 1 << 8;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A field read inside a chunk whose bounds were already checked; `None` cannot happen, but is
/// reported rather than unwrapped.
fn field<T>(v: Option<T>, offset: usize) -> Result<T, Error> {
    v.ok_or(Error::BadChunk {
        offset,
        reason: "field outside its chunk",
    })
}

/// A validated chunk header (absolute offsets).
#[derive(Clone, Copy, Debug)]
struct Chunk {
    offset: usize,
    ty: u16,
    header_size: usize,
    size: usize,
}

impl Chunk {
    fn body(&self) -> usize {
        self.offset + self.header_size
    }
    fn end(&self) -> usize {
        self.offset + self.size
    }
}

/// AOSP `validate_chunk`: the header fits, `headerSize >= min_header`, `headerSize <= size`,
/// both multiples of 4, and the chunk ends by `end`.
fn read_chunk(data: &[u8], offset: usize, end: usize, min_header: usize) -> Result<Chunk, Error> {
    let available = end.saturating_sub(offset);
    if available < CHUNK_HEADER {
        return Err(Error::Truncated {
            offset,
            needed: CHUNK_HEADER,
            available,
        });
    }
    let ty = field(u16_at(data, offset), offset)?;
    let header_size = usize::from(field(u16_at(data, offset + 2), offset)?);
    let size = field(u32_at(data, offset + 4), offset)? as usize;
    if header_size < min_header {
        return Err(Error::BadChunk {
            offset,
            reason: "header size smaller than the chunk type's header",
        });
    }
    if header_size > size {
        return Err(Error::BadChunk {
            offset,
            reason: "header size larger than the chunk",
        });
    }
    if (header_size | size) & 3 != 0 {
        return Err(Error::Misaligned { offset });
    }
    if size > available {
        return Err(Error::Truncated {
            offset,
            needed: size,
            available,
        });
    }
    Ok(Chunk {
        offset,
        ty,
        header_size,
        size,
    })
}

/// The string pool chunk, checked as `ResStringPool::setTo` does; strings are checked when
/// read, as `ResStringPool::stringAt` does.
#[derive(Clone, Copy, Debug, Default)]
struct StringPool<'a> {
    /// `stringCount` u32 offsets, relative to `strings`.
    offsets: &'a [u8],
    /// From `stringsStart` to the styles (or the end of the chunk), whole units.
    strings: &'a [u8],
    utf8: bool,
    count: u32,
}

fn pool_err(msg: impl Into<String>) -> Error {
    Error::BadStringPool(msg.into())
}

impl<'a> StringPool<'a> {
    fn parse(data: &'a [u8], c: &Chunk) -> Result<Self, Error> {
        if c.header_size < POOL_HEADER {
            return Err(Error::BadChunk {
                offset: c.offset,
                reason: "string pool header smaller than 28 bytes",
            });
        }
        let chunk = field(data.get(c.offset..c.end()), c.offset)?;
        let rd = |off: usize| field(u32_at(chunk, off), c.offset);
        let count = rd(8)?;
        let style_count = rd(12)?;
        let flags = rd(16)?;
        let strings_start = rd(20)? as usize;
        let styles_start = rd(24)? as usize;
        let size = c.size;
        let utf8 = flags & UTF8_FLAG != 0;

        let index_end = u64::from(count)
            .checked_add(u64::from(style_count))
            .map(|n| n * 4 + c.header_size as u64);
        if !matches!(index_end, Some(e) if e <= size as u64) {
            return Err(pool_err("string or style index runs past the pool"));
        }
        let offsets = field(
            chunk.get(c.header_size..c.header_size + 4 * count as usize),
            c.offset,
        )?;

        let mut strings: &[u8] = &[];
        if count > 0 {
            let unit = if utf8 { 1 } else { 2 };
            // Room for at least the smallest string (size >= 28 here).
            if strings_start >= size - 2 {
                return Err(pool_err(format!(
                    "strings start at {strings_start}, past the pool's {size} bytes"
                )));
            }
            let pool_end = if style_count == 0 {
                size
            } else {
                if styles_start >= size - 2 {
                    return Err(pool_err("styles start past the pool"));
                }
                if styles_start <= strings_start {
                    return Err(pool_err("styles start before the strings"));
                }
                styles_start
            };
            let units = (pool_end - strings_start) / unit;
            if units == 0 {
                return Err(pool_err("strings but no string data"));
            }
            strings = field(
                chunk.get(strings_start..strings_start + units * unit),
                c.offset,
            )?;
            if strings[strings.len() - unit..].iter().any(|&b| b != 0) {
                return Err(pool_err("last string is not NUL-terminated"));
            }
        }
        if style_count > 0 {
            if styles_start >= size {
                return Err(pool_err("styles start past the pool"));
            }
            let words = (size - styles_start) / 4;
            if words < 2 {
                return Err(pool_err("style data too short"));
            }
            let end_span = chunk.get(styles_start + (words - 2) * 4..styles_start + words * 4);
            if end_span != Some(&[0xff; 8][..]) {
                return Err(pool_err("last style is not 0xFFFFFFFF-terminated"));
            }
        }
        Ok(Self {
            offsets,
            strings,
            utf8,
            count,
        })
    }

    /// `stringAt(idx)`: bounds, length prefix, NUL terminator, UTF-8 `u16len`, encoding.
    /// `budget` is reduced by the bytes scanned.
    fn decode(&self, idx: u32, budget: &mut usize) -> Result<String, Error> {
        if idx >= self.count {
            return Err(Error::StringIndex(idx));
        }
        let off_bytes = u32_at(self.offsets, idx as usize * 4).ok_or(Error::StringIndex(idx))?;
        let past = || pool_err(format!("string {idx} runs past the pool"));
        let unterminated = || pool_err(format!("string {idx} is not NUL-terminated"));
        if self.utf8 {
            let s = self.strings;
            let mut p = off_bytes as usize;
            if p >= s.len().saturating_sub(1) {
                return Err(pool_err(format!("string {idx} starts past the pool")));
            }
            let len8 = |p: &mut usize| -> Result<usize, Error> {
                let first = *s.get(*p).ok_or_else(past)?;
                *p += 1;
                if first & 0x80 == 0 {
                    return Ok(usize::from(first));
                }
                let second = *s.get(*p).ok_or_else(past)?;
                *p += 1;
                Ok(usize::from(first & 0x7f) << 8 | usize::from(second))
            };
            let u16len = len8(&mut p)?;
            let u8len = len8(&mut p)?;
            let end = p.checked_add(u8len).ok_or_else(past)?;
            if end >= s.len() {
                return Err(past());
            }
            if s[end] != 0 {
                return Err(unterminated());
            }
            charge(budget, u8len)?;
            let text = std::str::from_utf8(&s[p..end]).map_err(|_| Error::BadUtf8(idx))?;
            let actual = text.encode_utf16().count();
            if actual & 0x7fff != u16len {
                return Err(pool_err(format!(
                    "string {idx} declares {u16len} UTF-16 units but has {actual}"
                )));
            }
            Ok(text.to_owned())
        } else {
            let s = self.strings;
            let units = s.len() / 2;
            let unit = |i: usize| u16_at(s, i.checked_mul(2)?);
            let mut p = off_bytes as usize / 2;
            if p >= units.saturating_sub(1) {
                return Err(pool_err(format!("string {idx} starts past the pool")));
            }
            let first = unit(p).ok_or_else(past)?;
            p += 1;
            let len = if first & 0x8000 == 0 {
                usize::from(first)
            } else {
                let second = unit(p).ok_or_else(past)?;
                p += 1;
                usize::from(first & 0x7fff) << 16 | usize::from(second)
            };
            let end = p.checked_add(len).ok_or_else(past)?;
            if end >= units {
                return Err(past());
            }
            if unit(end) != Some(0) {
                return Err(unterminated());
            }
            charge(budget, len.saturating_mul(2))?;
            let code_units = s[p * 2..end * 2]
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]));
            char::decode_utf16(code_units)
                .collect::<Result<String, _>>()
                .map_err(|_| Error::BadUtf16(idx))
        }
    }
}

fn charge(budget: &mut usize, n: usize) -> Result<(), Error> {
    *budget = budget.checked_sub(n).ok_or(Error::TooLarge)?;
    Ok(())
}

/// Pool strings, each decoded at most once, within [`MAX_STRING_BYTES`].
struct Strings<'a> {
    pool: StringPool<'a>,
    cache: HashMap<u32, Result<String, Error>>,
    budget: usize,
}

impl<'a> Strings<'a> {
    fn new(pool: StringPool<'a>) -> Self {
        Self {
            pool,
            cache: HashMap::new(),
            budget: MAX_STRING_BYTES,
        }
    }

    fn get(&mut self, idx: u32) -> Result<String, Error> {
        let r = match self.cache.get(&idx) {
            Some(r) => r.clone(),
            None => {
                let r = self.pool.decode(idx, &mut self.budget);
                if r != Err(Error::TooLarge) {
                    self.cache.insert(idx, r.clone());
                }
                r
            }
        };
        let s = r?;
        // Copies handed out count too.
        charge(&mut self.budget, s.len())?;
        Ok(s)
    }

    /// A `ResStringPool_ref` that may be "none".
    fn opt(&mut self, idx: u32) -> Result<Option<String>, Error> {
        if idx == NONE {
            Ok(None)
        } else {
            self.get(idx).map(Some)
        }
    }

    /// As libandroidfw's `getAttributeNamespace` / `getAttributeName` as libapkmanifest uses
    /// them: a negative index or an unreadable string reads as "".
    fn lenient(&mut self, idx: u32) -> Result<String, Error> {
        if (idx as i32) < 0 {
            return Ok(String::new());
        }
        match self.get(idx) {
            Ok(s) => Ok(s),
            Err(Error::TooLarge) => Err(Error::TooLarge),
            Err(_) => Ok(String::new()),
        }
    }
}

/// One node, its extension decoded.
#[derive(Clone, Copy, Debug)]
enum Event {
    StartNamespace,
    EndNamespace,
    Start(StartElement),
    End { ns: u32, name: u32 },
    Text,
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct StartElement {
    ns: u32,
    name: u32,
    /// Absolute offset of attribute 0.
    attr_base: usize,
    attr_size: usize,
    attr_count: usize,
}

/// A raw `ResXMLTree_attribute`.
#[derive(Clone, Copy, Debug)]
struct RawAttribute {
    ns: u32,
    name: u32,
    raw: u32,
    data_type: u8,
    data: u32,
}

/// The XML chunk: string pool, resource map, where the nodes start.
struct Doc<'a> {
    data: &'a [u8],
    /// End of the XML chunk.
    end: usize,
    pool: StringPool<'a>,
    res_ids: &'a [u8],
    /// The first node (`mRootNode`).
    root: usize,
}

impl<'a> Doc<'a> {
    /// `ResXMLTree::setTo`: the outer chunk, then the chunks before the first node.
    fn open(data: &'a [u8]) -> Result<Self, Error> {
        if let Some(ty) = u16_at(data, 0) {
            if ty != chunk::XML {
                return Err(Error::NotXml(ty));
            }
        }
        let xml = read_chunk(data, 0, data.len(), CHUNK_HEADER)?;
        let end = xml.end();
        let mut pool = None;
        let mut res_ids: &[u8] = &[];
        let mut pos = xml.body();
        loop {
            if pos >= end {
                return Err(Error::NoRootElement);
            }
            let c = read_chunk(data, pos, end, CHUNK_HEADER)?;
            match c.ty {
                chunk::STRING_POOL => {
                    if pool.is_some() {
                        return Err(pool_err("more than one string pool"));
                    }
                    pool = Some(StringPool::parse(data, &c)?);
                }
                chunk::RESOURCE_MAP => {
                    res_ids = field(data.get(c.body()..c.end()), c.offset)?;
                }
                chunk::START_NAMESPACE..=chunk::LAST_NODE => break,
                _ => {}
            }
            pos = c.end();
        }
        Ok(Self {
            data,
            end,
            pool: pool.unwrap_or_default(),
            res_ids,
            root: pos,
        })
    }

    /// The node at `pos` and the offset of the next one; `None` at the end of the document.
    /// `validateNode` plus `nextNode`'s extension-size check.
    fn node_at(&self, pos: usize) -> Result<Option<(Event, usize)>, Error> {
        if pos >= self.end {
            return Ok(None);
        }
        let c = read_chunk(self.data, pos, self.end, NODE_HEADER)?;
        let ext = c.body();
        let ext_len = c.size - c.header_size;
        let need = match c.ty {
            chunk::START_NAMESPACE | chunk::END_NAMESPACE | chunk::END_ELEMENT => 8,
            chunk::START_ELEMENT => ATTR_EXT,
            chunk::CDATA => 12,
            _ => return Ok(Some((Event::Unknown, c.end()))),
        };
        if ext_len < need {
            return Err(Error::BadChunk {
                offset: pos,
                reason: "node smaller than its extension",
            });
        }
        let rd32 = |off: usize| field(u32_at(self.data, ext + off), pos);
        let rd16 = |off: usize| field(u16_at(self.data, ext + off), pos).map(usize::from);
        let event = match c.ty {
            chunk::START_NAMESPACE => Event::StartNamespace,
            chunk::END_NAMESPACE => Event::EndNamespace,
            chunk::END_ELEMENT => Event::End {
                ns: rd32(0)?,
                name: rd32(4)?,
            },
            chunk::CDATA => Event::Text,
            _ => {
                let attr_start = rd16(8)?;
                let attr_size = rd16(10)?;
                let attr_count = rd16(12)?;
                if attr_count > 0 && attr_size < ATTRIBUTE {
                    return Err(Error::BadChunk {
                        offset: pos,
                        reason: "attributeSize smaller than 20",
                    });
                }
                // Fits in usize: three u16 values.
                if attr_start + attr_size * attr_count > ext_len {
                    return Err(Error::BadChunk {
                        offset: pos,
                        reason: "attributes run past the node",
                    });
                }
                Event::Start(StartElement {
                    ns: rd32(0)?,
                    name: rd32(4)?,
                    attr_base: ext + attr_start,
                    attr_size,
                    attr_count,
                })
            }
        };
        Ok(Some((event, c.end())))
    }

    fn attribute(&self, el: &StartElement, i: usize) -> Result<RawAttribute, Error> {
        let at = el.attr_base + el.attr_size * i;
        let rd32 = |off: usize| field(u32_at(self.data, at + off), at);
        Ok(RawAttribute {
            ns: rd32(0)?,
            name: rd32(4)?,
            raw: rd32(8)?,
            data_type: field(self.data.get(at + 15).copied(), at)?,
            data: rd32(16)?,
        })
    }

    /// `getAttributeNameResID`: the resource map entry of the name string, 0 if none.
    fn resource_id(&self, name: u32) -> u32 {
        (name as usize)
            .checked_mul(4)
            .and_then(|off| u32_at(self.res_ids, off))
            .unwrap_or(0)
    }
}

/// Reads `package`, `android:versionCode` and `android:versionCodeMajor` from the first
/// element, exactly as AOSP libapkmanifest (`apkmanifest.cpp`) does; nodes after that element's
/// start tag are not read. See [`ManifestInfo`].
pub fn parse_manifest(bytes: &[u8]) -> Result<ManifestInfo, Error> {
    let doc = Doc::open(bytes)?;
    let mut strings = Strings::new(doc.pool);
    let mut pos = doc.root;
    let mut first = true;
    let el = loop {
        let Some((event, next)) = doc.node_at(pos)? else {
            return Err(Error::NoRootElement);
        };
        match event {
            Event::StartNamespace | Event::EndNamespace => {}
            // libandroidfw skips unknown nodes, except the root node, whose type it returns.
            Event::Unknown if first => {
                return Err(Error::UnexpectedEvent(
                    "unknown node type before <manifest>",
                ))
            }
            Event::Unknown => {}
            Event::End { .. } => return Err(Error::UnexpectedEvent("end tag before <manifest>")),
            Event::Text => return Err(Error::UnexpectedEvent("text before <manifest>")),
            Event::Start(el) => break el,
        }
        first = false;
        pos = next;
    };
    // `getElementNamespaceID() >= 0` is an error, whatever the string is.
    if (el.ns as i32) >= 0 {
        let ns = strings.get(el.ns).unwrap_or_else(|_| format!("#{}", el.ns));
        let name = strings.get(el.name).unwrap_or_default();
        return Err(Error::NotManifest(format!("{{{ns}}}{name}")));
    }
    let name = strings.get(el.name)?;
    if name != "manifest" {
        return Err(Error::NotManifest(name));
    }
    let mut info = ManifestInfo::default();
    let (mut code, mut major) = (0u32, 0u32);
    for i in 0..el.attr_count {
        let a = doc.attribute(&el, i)?;
        let ns = strings.lenient(a.ns)?;
        let name = strings.lenient(a.name)?;
        if ns.is_empty() {
            if name == "package" {
                info.package = string_only(&mut strings, &a, &name)?;
            }
        } else if ns == ANDROID_NS {
            match name.as_str() {
                "versionCode" => code = u32_attribute(&mut strings, &a, &name)?,
                "versionCodeMajor" => major = u32_attribute(&mut strings, &a, &name)?,
                _ => {}
            }
        }
    }
    info.version_code = u64::from(code) | u64::from(major) << 32;
    Ok(info)
}

/// libapkmanifest `getStringOnlyAttribute`: the rawValue string.
fn string_only(strings: &mut Strings, a: &RawAttribute, name: &str) -> Result<String, Error> {
    if (a.raw as i32) < 0 {
        return Err(Error::MissingStringValue(name.to_owned()));
    }
    strings.get(a.raw)
}

/// libapkmanifest `getU32Attribute`.
fn u32_attribute(strings: &mut Strings, a: &RawAttribute, name: &str) -> Result<u32, Error> {
    match a.data_type {
        data_type::INT_DEC | data_type::INT_HEX => Ok(a.data),
        data_type::STRING => {
            let s = string_only(strings, a, name)?;
            strtoul_whole(&s)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(Error::BadVersionCode(s))
        }
        t => Err(Error::BadVersionCode(format!("data type {t:#04x}"))),
    }
}

/// glibc `strtoul(s, &end, 0)` on a 64-bit target, `Some` only when `end` is the end of `s`:
/// leading C-locale white space, an optional sign (a minus negates modulo 2^64), `0x` hex, `0`
/// octal, else decimal; no digits leaves `end` at the start; overflow gives `ULONG_MAX`.
pub(crate) fn strtoul_whole(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while matches!(at(i), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let base: u64 =
        if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X') && at(i + 2).is_ascii_hexdigit() {
            i += 2;
            16
        } else if at(i) == b'0' {
            8
        } else {
            10
        };
    let digits_start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = (at(i) as char).to_digit(base as u32) {
        match value
            .checked_mul(base)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    let end = if i == digits_start { 0 } else { i };
    if end != b.len() {
        return None;
    }
    Some(if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Reads the whole document into a tree: the first element and everything in it. Checks every
/// node up to the end of the XML chunk: balanced, matching start and end tags, one root
/// element, at most [`MAX_DEPTH`] deep and [`MAX_ELEMENTS`] elements, every referenced string
/// valid. Text and namespace nodes are checked for size and otherwise skipped.
pub fn parse_document(bytes: &[u8]) -> Result<Element, Error> {
    let doc = Doc::open(bytes)?;
    let mut strings = Strings::new(doc.pool);
    let mut stack: Vec<(Element, u32, u32)> = Vec::new();
    let mut root = None;
    let mut elements = 0usize;
    let mut pos = doc.root;
    while let Some((event, next)) = doc.node_at(pos)? {
        match event {
            Event::Start(el) => {
                if root.is_some() {
                    return Err(Error::UnexpectedEvent("second root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Error::TooManyElements);
                }
                let element = read_element(&doc, &mut strings, &el)?;
                stack.push((element, el.ns, el.name));
            }
            Event::End { ns, name } => {
                let (element, start_ns, start_name) = stack.pop().ok_or(Error::Unbalanced)?;
                if (ns, name) != (start_ns, start_name)
                    && (strings.opt(ns)? != element.namespace || strings.get(name)? != element.name)
                {
                    return Err(Error::Unbalanced);
                }
                match stack.last_mut() {
                    Some((parent, _, _)) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::StartNamespace | Event::EndNamespace | Event::Text | Event::Unknown => {}
        }
        pos = next;
    }
    if !stack.is_empty() {
        return Err(Error::Unbalanced);
    }
    root.ok_or(Error::NoRootElement)
}

fn read_element(doc: &Doc, strings: &mut Strings, el: &StartElement) -> Result<Element, Error> {
    let mut attributes = Vec::with_capacity(el.attr_count);
    for i in 0..el.attr_count {
        let a = doc.attribute(el, i)?;
        let value = match a.data_type {
            data_type::NULL if a.data == 0 => Value::Null,
            data_type::REFERENCE => Value::Reference(a.data),
            data_type::STRING => Value::String(strings.get(a.data)?),
            data_type::INT_DEC => Value::IntDec(a.data),
            data_type::INT_HEX => Value::IntHex(a.data),
            data_type::INT_BOOLEAN => Value::Boolean(a.data != 0),
            t => Value::Other {
                data_type: t,
                data: a.data,
            },
        };
        let id = doc.resource_id(a.name);
        attributes.push(Attribute {
            namespace: strings.opt(a.ns)?,
            name: strings.get(a.name)?,
            resource_id: (id != 0).then_some(id),
            raw_value: strings.opt(a.raw)?,
            value,
        });
    }
    Ok(Element {
        namespace: strings.opt(el.ns)?,
        name: strings.get(el.name)?,
        attributes,
        children: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::strtoul_whole as s;

    #[test]
    fn strtoul_like_glibc() {
        assert_eq!(s("7"), Some(7));
        assert_eq!(s("0x1F"), Some(31));
        assert_eq!(s("0X1f"), Some(31));
        assert_eq!(s("010"), Some(8));
        assert_eq!(s("0"), Some(0));
        assert_eq!(s(""), Some(0)); // no digits: end = start = end of ""
        assert_eq!(s("  \t12"), Some(12));
        // The hex prefix is looked for after the white space.
        assert_eq!(s(" 0x1F"), Some(31));
        assert_eq!(s("\t-0x1"), Some(u64::MAX));
        assert_eq!(s("+5"), Some(5));
        assert_eq!(s("-0"), Some(0));
        assert_eq!(s("-1"), Some(u64::MAX));
        assert_eq!(s("-18446744073709551615"), Some(1));
        assert_eq!(s("18446744073709551616"), Some(u64::MAX));
        assert_eq!(s("12abc"), None);
        assert_eq!(s("0x"), None); // parses "0", stops at 'x'
        assert_eq!(s("08"), None);
        assert_eq!(s("12 "), None);
        assert_eq!(s(" "), None);
        assert_eq!(s("+"), None);
        assert_eq!(s("1\x002"), None);
        assert_eq!(s("٣"), None);
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    /// A UTF-16 string pool chunk: `strings`, then (when `styles` is given) style offsets and
    /// the style words. Offsets are those `ResStringPool_header` names.
    fn pool(strings: &[&str], styles: Option<&[u32]>) -> Vec<u8> {
        let style_count = u32::from(styles.is_some());
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for s in strings {
            offsets.push(data.len() as u32);
            let units: Vec<u16> = s.encode_utf16().collect();
            if units.len() > 0x7fff {
                let n = units.len() as u32;
                data.extend_from_slice(&((0x8000 | (n >> 16)) as u16).to_le_bytes());
                data.extend_from_slice(&((n & 0xffff) as u16).to_le_bytes());
            } else {
                data.extend_from_slice(&(units.len() as u16).to_le_bytes());
            }
            for u in units {
                data.extend_from_slice(&u.to_le_bytes());
            }
            data.extend_from_slice(&[0, 0]);
        }
        while data.len() % 4 != 0 {
            data.push(0);
        }
        let index = 4 * (strings.len() + style_count as usize);
        let strings_start = (POOL_HEADER + index) as u32;
        let styles_start = strings_start + data.len() as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&(POOL_HEADER as u16).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // size, below
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&style_count.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // UTF-16
        out.extend_from_slice(&strings_start.to_le_bytes());
        out.extend_from_slice(&(if styles.is_some() { styles_start } else { 0 }).to_le_bytes());
        for o in offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        if styles.is_some() {
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out.extend_from_slice(&data);
        for w in styles.unwrap_or(&[]) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let size = out.len() as u32;
        out[4..8].copy_from_slice(&size.to_le_bytes());
        out
    }

    fn parse(bytes: &[u8]) -> Result<StringPool<'_>, Error> {
        let c = read_chunk(bytes, 0, bytes.len(), POOL_HEADER)?;
        StringPool::parse(bytes, &c)
    }

    fn message(r: Result<StringPool<'_>, Error>) -> String {
        match r {
            Err(Error::BadStringPool(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn utf16_strings_short_long_and_at_offsets() {
        let long = "x".repeat(40_000);
        let bytes = pool(&["first", "second", &long], None);
        let p = parse(&bytes).unwrap();
        let mut budget = MAX_STRING_BYTES;
        assert_eq!(p.decode(0, &mut budget).unwrap(), "first");
        assert_eq!(p.decode(1, &mut budget).unwrap(), "second");
        assert_eq!(p.decode(2, &mut budget).unwrap(), long);
    }

    #[test]
    fn styles_are_checked_as_aosp_does() {
        // One style: its span list ends at once; then the pool's end marker.
        let good = [u32::MAX, u32::MAX, u32::MAX];
        let bytes = pool(&["a"], Some(&good));
        let p = parse(&bytes).unwrap();
        let mut budget = MAX_STRING_BYTES;
        assert_eq!(p.decode(0, &mut budget).unwrap(), "a");
        assert_eq!(
            message(parse(&pool(&["a"], Some(&[u32::MAX, 0, u32::MAX])))),
            "last style is not 0xFFFFFFFF-terminated"
        );
        assert_eq!(
            message(parse(&pool(&["a"], Some(&[u32::MAX])))),
            "style data too short"
        );
        // The shortest style data: the pool's end marker alone.
        assert!(parse(&pool(&["a"], Some(&[u32::MAX, u32::MAX]))).is_ok());
        // Only the last two words are the end marker.
        assert!(parse(&pool(&["a"], Some(&[1, 2, 3, u32::MAX, u32::MAX]))).is_ok());
        assert_eq!(
            message(parse(&pool(
                &["a"],
                Some(&[1, u32::MAX, u32::MAX, 2, u32::MAX])
            ))),
            "last style is not 0xFFFFFFFF-terminated"
        );
        // Styles starting past the pool, or before the strings.
        let mut past = pool(&["a"], Some(&good));
        let size = past.len() as u32;
        past[24..28].copy_from_slice(&(size - 2).to_le_bytes());
        assert_eq!(message(parse(&past)), "styles start past the pool");
        let mut before = pool(&["a"], Some(&good));
        let strings_start = u32::from_le_bytes(before[20..24].try_into().unwrap());
        before[24..28].copy_from_slice(&strings_start.to_le_bytes());
        assert_eq!(message(parse(&before)), "styles start before the strings");
    }

    #[test]
    fn the_index_and_the_strings_must_fit_the_pool() {
        let mut many = pool(&["a"], None);
        many[8..12].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            message(parse(&many)),
            "string or style index runs past the pool"
        );
        // The index is 4 bytes per string and per style: 40 strings need 160 bytes, which a
        // 40-byte pool does not have, nor do 40 styles.
        let mut forty = pool(&["a"], None);
        assert_eq!(forty.len(), 40);
        forty[8..12].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(
            message(parse(&forty)),
            "string or style index runs past the pool"
        );
        let mut styles = pool(&["a"], None);
        styles[12..16].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(
            message(parse(&styles)),
            "string or style index runs past the pool"
        );
        let mut late = pool(&["a"], None);
        let size = late.len() as u32;
        late[20..24].copy_from_slice(&(size - 2).to_le_bytes());
        assert!(message(parse(&late)).starts_with("strings start at"));
        // The strings may start 3 bytes before the end (room for one empty UTF-16 string).
        let mut tight = pool(&["a"], None);
        tight[20..24].copy_from_slice(&(size - 4).to_le_bytes());
        assert!(parse(&tight).is_ok());
        // No strings at all, and no string data.
        assert_eq!(parse(&pool(&[], None)).unwrap().count, 0);
    }

    /// A UTF-16 string that starts or ends past the pool's string data says so (and is not
    /// taken for an unterminated one).
    #[test]
    fn utf16_strings_past_the_pool() {
        let bytes = pool(&["ab"], None);
        let strings_start = POOL_HEADER + 4;
        let mut budget = MAX_STRING_BYTES;
        // "ab": its length, two units, the terminator: 4 units. A length of 4 ends at unit 5.
        let mut long = bytes.clone();
        long[strings_start..strings_start + 2].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(
            parse(&long).unwrap().decode(0, &mut budget),
            Err(pool_err("string 0 runs past the pool"))
        );
        // An offset of 3 units: no room for a length and a terminator.
        let mut late = bytes.clone();
        late[POOL_HEADER..POOL_HEADER + 4].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(
            parse(&late).unwrap().decode(0, &mut budget),
            Err(pool_err("string 0 starts past the pool"))
        );
    }

    /// Each string is decoded once; the copies handed out are charged each time.
    #[test]
    fn strings_are_decoded_once_and_each_copy_is_charged() {
        let long = "y".repeat(30_000);
        let bytes = pool(&[&long, "z"], None);
        let mut strings = Strings::new(parse(&bytes).unwrap());
        for _ in 0..10 {
            assert_eq!(strings.get(0).unwrap(), long);
        }
        // 60,000 bytes of UTF-16 decoded once, 30,000 bytes copied ten times.
        assert_eq!(strings.budget, MAX_STRING_BYTES - 60_000 - 10 * 30_000);
        // An error is remembered too, and costs nothing.
        assert_eq!(strings.get(7), Err(Error::StringIndex(7)));
        assert_eq!(strings.get(7), Err(Error::StringIndex(7)));
        assert_eq!(strings.budget, MAX_STRING_BYTES - 60_000 - 10 * 30_000);
    }

    #[test]
    fn chunk_headers() {
        // A chunk that is only its 8-byte header.
        let header = [3, 0, 8, 0, 8, 0, 0, 0];
        assert_eq!(read_chunk(&header, 0, 8, 8).unwrap().size, 8);
        // Header size and size both 2 past a multiple of 4.
        let odd = [3, 0, 10, 0, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            read_chunk(&odd, 0, 14, 8),
            Err(Error::Misaligned { offset: 0 })
        ));
    }
}

/// Documents from the crate's writer with one node or field patched, for the checks that only
/// such a document reaches.
#[cfg(test)]
mod doc_tests {
    use super::*;
    use crate::{write_document, write_manifest, Element, ManifestSpec, PoolEncoding};

    /// (offset, type, size) of each node of `doc`, in order.
    fn nodes(doc: &[u8]) -> Vec<(usize, u16, usize)> {
        let d = Doc::open(doc).unwrap();
        let mut out = Vec::new();
        let mut pos = d.root;
        while pos < d.end {
            let ty = u16_at(doc, pos).unwrap();
            let size = u32_at(doc, pos + 4).unwrap() as usize;
            out.push((pos, ty, size));
            pos += size;
        }
        out
    }

    /// `doc` with `bytes` inserted at `at`, its XML chunk's size grown to match.
    fn insert(doc: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut out = doc.to_vec();
        out.splice(at..at, bytes.iter().copied());
        let size = u32_at(&out, 4).unwrap() + bytes.len() as u32;
        out[4..8].copy_from_slice(&size.to_le_bytes());
        out
    }

    /// A node of a type in the node range that no version of the format defines: header 16
    /// bytes (line number, comment), no extension.
    const UNKNOWN_NODE: [u8; 16] = [
        0x05, 0x01, 16, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ];

    /// libandroidfw skips unknown nodes, except as the very first node, whose type it returns.
    #[test]
    fn unknown_nodes_are_skipped_except_the_first() {
        let doc = write_manifest(&ManifestSpec::new("com.example.a", 7));
        let n = nodes(&doc);
        assert_eq!(n[0].1, chunk::START_NAMESPACE);
        let after_namespace = insert(&doc, n[0].0 + n[0].2, &UNKNOWN_NODE);
        assert_eq!(parse_manifest(&after_namespace).unwrap().version_code, 7);
        let first = insert(&doc, n[0].0, &UNKNOWN_NODE);
        assert_eq!(
            parse_manifest(&first),
            Err(Error::UnexpectedEvent(
                "unknown node type before <manifest>"
            ))
        );
    }

    /// An element with no attributes may declare any attribute size (AOSP checks it only
    /// when there are attributes).
    #[test]
    fn an_element_without_attributes_may_declare_any_attribute_size() {
        let doc = write_document(&Element::new("a"), PoolEncoding::Utf8);
        let n = nodes(&doc);
        let (pos, ty, _) = n
            .iter()
            .copied()
            .find(|x| x.1 == chunk::START_ELEMENT)
            .unwrap();
        assert_eq!(ty, chunk::START_ELEMENT);
        let ext = pos + NODE_HEADER;
        assert_eq!(u16_at(&doc, ext + 12), Some(0), "attribute count");
        let mut patched = doc.clone();
        patched[ext + 10..ext + 12].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(parse_document(&patched).unwrap().name, "a");
    }

    /// A string-typed versionCode is read from its raw value, string 0 included; only a
    /// negative index means there is none.
    #[test]
    fn a_string_version_code_may_be_string_zero() {
        let doc = write_manifest(&ManifestSpec::new("com.example.a", 7));
        let d = Doc::open(&doc).unwrap();
        let mut strings = Strings::new(d.pool);
        let first_string = strings.get(0).unwrap();
        let n = nodes(&doc);
        let (pos, _, _) = n
            .iter()
            .copied()
            .find(|x| x.1 == chunk::START_ELEMENT)
            .unwrap();
        let ext = pos + NODE_HEADER;
        let attr_start = usize::from(u16_at(&doc, ext + 8).unwrap());
        let attr_size = usize::from(u16_at(&doc, ext + 10).unwrap());
        let count = usize::from(u16_at(&doc, ext + 12).unwrap());
        let version = (0..count)
            .map(|i| ext + attr_start + i * attr_size)
            .find(|&a| strings.get(u32_at(&doc, a + 4).unwrap()).unwrap() == "versionCode")
            .unwrap();
        let patch = |raw: u32| {
            let mut p = doc.clone();
            p[version + 8..version + 12].copy_from_slice(&raw.to_le_bytes());
            p[version + 15] = data_type::STRING;
            p
        };
        assert_eq!(
            parse_manifest(&patch(0)),
            Err(Error::BadVersionCode(first_string))
        );
        assert_eq!(
            parse_manifest(&patch(u32::MAX)),
            Err(Error::MissingStringValue("versionCode".into()))
        );
    }

    /// An end tag may name its element by another index of the same text: libandroidfw
    /// compares the strings, not the indices. The writer never puts a string in its pool
    /// twice, so this one is patched in: an attribute value `ELEM` rewritten to `elem`, the
    /// element's name, and the end tag pointed at it. A different text there is refused.
    #[test]
    fn an_end_tag_may_name_its_element_by_another_index_of_the_same_text() {
        let mut el = Element::new("elem");
        el.attributes
            .push(crate::Attribute::string(None, "label", None, "ELEM"));
        let doc = write_document(&el, PoolEncoding::Utf8);
        let d = Doc::open(&doc).unwrap();
        let mut strings = Strings::new(d.pool);
        let index_of = |strings: &mut Strings, text: &str| {
            (0..8)
                .find(|&i| strings.get(i).as_deref() == Ok(text))
                .unwrap()
        };
        let name = index_of(&mut strings, "elem");
        let other = index_of(&mut strings, "ELEM");
        assert_ne!(name, other);
        let (end, _, _) = nodes(&doc)
            .into_iter()
            .find(|x| x.1 == chunk::END_ELEMENT)
            .unwrap();
        let name_field = end + NODE_HEADER + 4;
        assert_eq!(u32_at(&doc, name_field), Some(name));
        let mut patched = doc.clone();
        patched[name_field..name_field + 4].copy_from_slice(&other.to_le_bytes());
        // The end tag names "ELEM": not the element it closes.
        assert_eq!(parse_document(&patched), Err(Error::Unbalanced));
        // Rewritten in the pool to "elem": the same text under another index.
        let at = patched.windows(4).position(|w| w == b"ELEM").unwrap();
        patched[at..at + 4].copy_from_slice(b"elem");
        let parsed = parse_document(&patched).unwrap();
        assert_eq!(parsed.name, "elem");
        assert_eq!(parsed.attributes[0].raw_value.as_deref(), Some("elem"));
    }
}
