//! Writing: aapt2's layout (string pool, resource map, namespaces, elements with attributes
//! sorted by resource ID), deterministic.

use std::collections::HashMap;

use crate::{chunk, data_type, Element, ManifestSpec, Value, ANDROID_NS};

const NONE: u32 = 0xffff_ffff;
/// Longest string a UTF-8 pool can hold (15-bit lengths).
const MAX_UTF8_LEN: usize = 0x7fff;

/// String pool encoding for [`write_document`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolEncoding {
    /// UTF-8 (`UTF8_FLAG`), what [`write_manifest`] uses. Falls back to UTF-16 when a string
    /// is longer than 0x7FFF bytes.
    Utf8,
    /// UTF-16LE, what Debian's aapt2 writes for manifests.
    Utf16,
}

/// Writes the manifest of `spec` (see [`ManifestSpec::to_element`]) with a UTF-8 pool:
///
/// ```text
/// <manifest xmlns:android="http://schemas.android.com/apk/res/android" package="…"
///     android:versionCode="…" [android:versionCodeMajor="…"] [android:versionName="…"]>
///   [<uses-sdk [android:minSdkVersion="…"] [android:targetSdkVersion="…"]/>]
///   [<application android:hasCode="true|false"/>]
/// </manifest>
/// ```
///
/// For `package="com.example.vm" versionCode=7 versionCodeMajor=1 versionName="1.0"` the
/// output is byte for byte the 428-byte example of `docs/formats/axml.md`.
pub fn write_manifest(spec: &ManifestSpec) -> Vec<u8> {
    write_document(&spec.to_element(), PoolEncoding::Utf8)
}

/// Where strings go in the pool: attribute names that carry a resource ID first, sorted by ID
/// (the resource map covers exactly these), then every other string in order of first use.
struct Pool<'a> {
    strings: Vec<&'a str>,
    ids: Vec<u32>,
    by_id: HashMap<(u32, &'a str), u32>,
    plain: HashMap<&'a str, u32>,
}

impl<'a> Pool<'a> {
    fn plain(&mut self, s: &'a str) {
        if !self.plain.contains_key(s) {
            self.plain.insert(s, self.strings.len() as u32);
            self.strings.push(s);
        }
    }
    fn index(&self, s: &str) -> u32 {
        self.plain.get(s).copied().unwrap_or(NONE)
    }
    fn name_index(&self, id: Option<u32>, name: &str) -> u32 {
        match id {
            Some(id) => self.by_id.get(&(id, name)).copied().unwrap_or(NONE),
            None => self.index(name),
        }
    }
}

fn collect_ided<'a>(el: &'a Element, out: &mut Vec<(u32, &'a str)>) {
    for a in &el.attributes {
        if let Some(id) = a.resource_id {
            out.push((id, &a.name));
        }
    }
    for c in &el.children {
        collect_ided(c, out);
    }
}

fn collect_namespaces<'a>(el: &'a Element, out: &mut Vec<&'a str>) {
    let mut add = |ns: &'a Option<String>| {
        if let Some(ns) = ns.as_deref() {
            if !out.contains(&ns) {
                out.push(ns);
            }
        }
    };
    add(&el.namespace);
    for a in &el.attributes {
        add(&a.namespace);
    }
    for c in &el.children {
        collect_namespaces(c, out);
    }
}

fn collect_plain<'a>(el: &'a Element, pool: &mut Pool<'a>) {
    pool.plain(&el.name);
    for a in &el.attributes {
        if a.resource_id.is_none() {
            pool.plain(&a.name);
        }
        if let Some(raw) = &a.raw_value {
            pool.plain(raw);
        }
        if let Value::String(s) = &a.value {
            pool.plain(s);
        }
    }
    for c in &el.children {
        collect_plain(c, pool);
    }
}

/// aapt2's attribute order (`XmlFlattener`): attributes with a resource ID by ID, then the
/// others by namespace and name. `RetrieveAttributes` in the framework needs the ID order.
fn attribute_order(a: &crate::Attribute, b: &crate::Attribute) -> std::cmp::Ordering {
    match (a.resource_id, b.resource_id) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)),
    }
}

/// Sorts every element's attributes into the order [`write_document`] writes them.
pub(crate) fn sort_attributes_deep(el: &mut Element) {
    el.attributes.sort_by(attribute_order);
    for c in &mut el.children {
        sort_attributes_deep(c);
    }
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lengths past u32 cannot be written (outputs of 4 GiB and more are not supported).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() & 3 != 0 {
        out.push(0);
    }
}

fn string_pool(strings: &[&str], utf8: bool) -> Vec<u8> {
    let mut data = Vec::new();
    let mut offsets = Vec::with_capacity(strings.len());
    for s in strings {
        offsets.push(len32(data.len()));
        if utf8 {
            let put_len = |data: &mut Vec<u8>, n: usize| {
                if n > 0x7f {
                    data.push(0x80 | (n >> 8) as u8);
                }
                data.push(n as u8);
            };
            put_len(&mut data, s.encode_utf16().count());
            put_len(&mut data, s.len());
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        } else {
            let units: Vec<u16> = s.encode_utf16().collect();
            let n = units.len();
            if n > 0x7fff {
                put16(&mut data, 0x8000 | ((n >> 16) & 0x7fff) as u16);
            }
            put16(&mut data, n as u16);
            for u in units {
                put16(&mut data, u);
            }
            put16(&mut data, 0);
        }
    }
    pad4(&mut data);
    let strings_start = 28 + 4 * strings.len();
    let mut out = Vec::with_capacity(strings_start + data.len());
    put16(&mut out, chunk::STRING_POOL);
    put16(&mut out, 28);
    put32(&mut out, len32(strings_start + data.len()));
    put32(&mut out, len32(strings.len()));
    put32(&mut out, 0); // styleCount
    put32(&mut out, if utf8 { 1 << 8 } else { 0 });
    put32(&mut out, len32(strings_start));
    put32(&mut out, 0); // stylesStart
    for o in offsets {
        put32(&mut out, o);
    }
    out.extend_from_slice(&data);
    out
}

fn node_header(out: &mut Vec<u8>, ty: u16, size: usize, line: u32) {
    put16(out, ty);
    put16(out, 16);
    put32(out, len32(size));
    put32(out, line);
    put32(out, NONE); // comment
}

struct Emitter<'a, 'p> {
    pool: &'a Pool<'p>,
    out: Vec<u8>,
    line: u32,
}

impl Emitter<'_, '_> {
    fn ns_index(&self, ns: &Option<String>) -> u32 {
        ns.as_deref().map_or(NONE, |s| self.pool.index(s))
    }

    fn element(&mut self, el: &Element) {
        self.line = self.line.saturating_add(1);
        let line = self.line;
        let mut attrs: Vec<_> = el.attributes.iter().collect();
        attrs.sort_by(|a, b| attribute_order(a, b));
        attrs.truncate(usize::from(u16::MAX));
        let ns = self.ns_index(&el.namespace);
        let name = self.pool.index(&el.name);
        let out = &mut self.out;
        node_header(out, chunk::START_ELEMENT, 36 + 20 * attrs.len(), line);
        put32(out, ns);
        put32(out, name);
        put16(out, 20); // attributeStart
        put16(out, 20); // attributeSize
        put16(out, attrs.len() as u16);
        // idIndex, classIndex, styleIndex: 1-based positions of these un-namespaced attributes.
        for special in ["id", "class", "style"] {
            let pos = attrs
                .iter()
                .position(|a| a.namespace.is_none() && a.name == special);
            put16(out, pos.map_or(0, |p| (p + 1) as u16));
        }
        for a in &attrs {
            let (ty, data) = match &a.value {
                Value::Null => (data_type::NULL, 0),
                Value::Reference(r) => (data_type::REFERENCE, *r),
                Value::String(s) => (data_type::STRING, self.pool.index(s)),
                Value::IntDec(v) => (data_type::INT_DEC, *v),
                Value::IntHex(v) => (data_type::INT_HEX, *v),
                Value::Boolean(b) => (data_type::INT_BOOLEAN, if *b { NONE } else { 0 }),
                Value::Other { data_type, data } => (*data_type, *data),
            };
            let ns = a.namespace.as_deref().map_or(NONE, |s| self.pool.index(s));
            put32(out, ns);
            put32(out, self.pool.name_index(a.resource_id, &a.name));
            put32(
                out,
                a.raw_value.as_deref().map_or(NONE, |s| self.pool.index(s)),
            );
            put16(out, 8); // Res_value.size
            out.push(0); // res0
            out.push(ty);
            put32(out, data);
        }
        for c in &el.children {
            self.element(c);
        }
        let out = &mut self.out;
        node_header(out, chunk::END_ELEMENT, 24, line);
        put32(out, ns);
        put32(out, name);
    }
}

/// Writes `root` as a binary XML document, the way aapt2 lays it out:
///
/// - string pool: attribute names with a resource ID first, sorted by ID, then namespace URIs
///   and prefixes, then element names, other attribute names, raw and string values in order of
///   first use (document order, attributes in the order given);
/// - resource map for the names with IDs;
/// - one `START_NAMESPACE` per namespace URI used (prefix `android` for [`ANDROID_NS`], `ns0`,
///   `ns1`… otherwise), the elements, then the `END_NAMESPACE`s in reverse;
/// - each element's attributes sorted as aapt2 sorts them (by resource ID, then the ones without
///   an ID by namespace and name), at most 65535;
/// - line numbers: elements numbered 1, 2, … in document order, end tags and namespaces take
///   their start's line (namespaces line 1); no comments.
///
/// Every chunk is a multiple of 4 bytes; the output depends only on `root` and `encoding`.
/// Recursive in the depth of `root`.
pub fn write_document(root: &Element, encoding: PoolEncoding) -> Vec<u8> {
    let mut ided = Vec::new();
    collect_ided(root, &mut ided);
    ided.sort_unstable();
    ided.dedup();
    let mut namespaces = Vec::new();
    collect_namespaces(root, &mut namespaces);
    let mut other = 0;
    let prefixes: Vec<String> = namespaces
        .iter()
        .map(|&ns| {
            if ns == ANDROID_NS {
                "android".to_owned()
            } else {
                other += 1;
                format!("ns{}", other - 1)
            }
        })
        .collect();

    let mut pool = Pool {
        strings: Vec::new(),
        ids: Vec::new(),
        by_id: HashMap::new(),
        plain: HashMap::new(),
    };
    for &(id, name) in &ided {
        pool.by_id.insert((id, name), pool.strings.len() as u32);
        pool.strings.push(name);
        pool.ids.push(id);
    }
    for (ns, prefix) in namespaces.iter().zip(&prefixes) {
        pool.plain(ns);
        pool.plain(prefix);
    }
    collect_plain(root, &mut pool);

    let utf8 =
        encoding == PoolEncoding::Utf8 && pool.strings.iter().all(|s| s.len() <= MAX_UTF8_LEN);
    let mut out = Vec::new();
    put16(&mut out, chunk::XML);
    put16(&mut out, 8);
    put32(&mut out, 0); // size, patched below
    out.extend_from_slice(&string_pool(&pool.strings, utf8));
    if !pool.ids.is_empty() {
        put16(&mut out, chunk::RESOURCE_MAP);
        put16(&mut out, 8);
        put32(&mut out, len32(8 + 4 * pool.ids.len()));
        for &id in &pool.ids {
            put32(&mut out, id);
        }
    }
    let ns_nodes: Vec<(u32, u32)> = namespaces
        .iter()
        .zip(&prefixes)
        .map(|(ns, prefix)| (pool.index(prefix), pool.index(ns)))
        .collect();
    for &(prefix, uri) in &ns_nodes {
        node_header(&mut out, chunk::START_NAMESPACE, 24, 1);
        put32(&mut out, prefix);
        put32(&mut out, uri);
    }
    let mut em = Emitter {
        pool: &pool,
        out,
        line: 0,
    };
    em.element(root);
    let mut out = em.out;
    for &(prefix, uri) in ns_nodes.iter().rev() {
        node_header(&mut out, chunk::END_NAMESPACE, 24, 1);
        put32(&mut out, prefix);
        put32(&mut out, uri);
    }
    let size = len32(out.len()).to_le_bytes();
    out[4..8].copy_from_slice(&size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_document, parse_manifest, Attribute};

    #[test]
    fn every_chunk_is_a_multiple_of_4_and_balanced() {
        let mut spec = ManifestSpec::new("é.x", 5);
        spec.version_name = Some("ü".into());
        spec.has_code = Some(true);
        for enc in [PoolEncoding::Utf8, PoolEncoding::Utf16] {
            let b = write_document(&spec.to_element(), enc);
            assert_eq!(b.len() % 4, 0);
            let mut pos = 8;
            let (mut starts, mut ends) = (0, 0);
            while pos < b.len() {
                let ty = u16::from_le_bytes([b[pos], b[pos + 1]]);
                let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
                assert_eq!(size % 4, 0, "chunk {ty:#x}");
                match ty {
                    0x0100 | 0x0102 => starts += 1,
                    0x0101 | 0x0103 => ends += 1,
                    _ => {}
                }
                pos += size;
            }
            assert_eq!(pos, b.len());
            assert_eq!((starts, ends), (3, 3));
        }
    }

    #[test]
    fn long_string_lengths_round_trip() {
        // Two-byte UTF-8 lengths, and a UTF-16 length past 16 bits.
        for len in [200, 70_000] {
            let mut root = Element::new("root");
            root.attributes
                .push(Attribute::string(None, "v", None, &"é".repeat(len)));
            let b = write_document(&root, PoolEncoding::Utf8);
            let back = parse_document(&b).unwrap();
            assert_eq!(back, root, "{len}");
        }
    }

    /// TYPE_NULL with data 0 is "undefined"; with data 1 ("empty") it is kept as it is.
    #[test]
    fn null_values_keep_their_data() {
        let mut root = Element::new("root");
        let mut empty = Attribute::string(None, "e", None, "");
        empty.value = crate::Value::Other {
            data_type: crate::data_type::NULL,
            data: 1,
        };
        let mut undefined = Attribute::string(None, "u", None, "");
        undefined.value = crate::Value::Null;
        root.attributes.push(empty);
        root.attributes.push(undefined);
        let back = parse_document(&write_document(&root, PoolEncoding::Utf8)).unwrap();
        assert_eq!(back.attributes, root.attributes);
    }

    #[test]
    fn element_count_limit() {
        let doc = |children: usize| {
            let mut root = Element::new("r");
            root.children = vec![Element::new("c"); children];
            write_document(&root, PoolEncoding::Utf8)
        };
        assert!(parse_document(&doc(crate::MAX_ELEMENTS - 1)).is_ok());
        assert!(matches!(
            parse_document(&doc(crate::MAX_ELEMENTS)),
            Err(crate::Error::TooManyElements)
        ));
    }

    #[test]
    fn long_strings_fall_back_to_utf16() {
        let long = "a".repeat(0x8000);
        let b = write_manifest(&ManifestSpec::new(&long, 1));
        assert_eq!(b[8 + 16 + 1] & 1, 0, "UTF8_FLAG clear");
        assert_eq!(parse_manifest(&b).unwrap().package, long);
        let short = write_manifest(&ManifestSpec::new(&long[..0x7fff], 1));
        assert_eq!(short[8 + 16 + 1] & 1, 1, "UTF8_FLAG set");
        assert_eq!(parse_manifest(&short).unwrap().package.len(), 0x7fff);
    }

    #[test]
    fn special_indexes_and_foreign_namespaces() {
        let mut root = Element::new("root");
        root.namespace = Some("urn:x".into());
        root.attributes
            .push(Attribute::string(None, "style", None, "s"));
        root.attributes
            .push(Attribute::string(None, "id", None, "i"));
        root.attributes
            .push(Attribute::string(Some("urn:y"), "a", None, "v"));
        let b = write_document(&root, PoolEncoding::Utf8);
        let back = parse_document(&b).unwrap();
        let mut expected = root.clone();
        sort_attributes_deep(&mut expected);
        assert_eq!(back, expected);
        // Sorted: id (1), style (2), {urn:y}a (3); idIndex 1, classIndex 0, styleIndex 2.
        let start = b.len() - 24 - 24 - 24 - (36 + 60);
        assert_eq!(&b[start + 16 + 14..start + 16 + 20], &[1, 0, 0, 0, 2, 0]);
    }
}
