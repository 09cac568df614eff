#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! Android binary XML ("AXML"), the format of a compiled `AndroidManifest.xml`: a parser that
//! reads the manifest the way AOSP's guest does, a generic tree reader, and a writer.
//!
//! Layout (little-endian; full description in `docs/formats/axml.md`):
//!
//! ```text
//! RES_XML_TYPE chunk { u16 type = 0x0003, u16 headerSize = 8, u32 size }
//!   RES_STRING_POOL_TYPE chunk (0x0001): string offsets, then UTF-8 or UTF-16 strings
//!   RES_XML_RESOURCE_MAP_TYPE chunk (0x0180): u32 resource ID of string i, for the first strings
//!   nodes (0x0100..=0x017f): START/END_NAMESPACE, START/END_ELEMENT (+ attributes), CDATA
//! ```
//!
//! Guest (microdroid_manager), with AOSP libapkmanifest's rules:
//! ```
//! # let bytes = axml::write_manifest(&axml::ManifestSpec::new("com.example.vm", 7));
//! let info = axml::parse_manifest(&bytes)?;
//! assert_eq!((info.package.as_str(), info.version_code), ("com.example.vm", 7));
//! # Ok::<(), axml::Error>(())
//! ```
//!
//! Host (building an APK):
//! ```
//! let mut spec = axml::ManifestSpec::new("com.example.vm", (1 << 32) | 7);
//! spec.version_name = Some("1.0".into());
//! let bytes = axml::write_manifest(&spec);
//! assert_eq!(bytes.len(), 428); // the worked example of the format page
//! let root = axml::parse_document(&bytes)?;
//! assert_eq!(root.name, "manifest");
//! # Ok::<(), axml::Error>(())
//! ```

mod parse;
mod write;

pub use parse::{parse_document, parse_manifest};
pub use write::{write_document, write_manifest, PoolEncoding};

/// The `android:` namespace URI.
pub const ANDROID_NS: &str = "http://schemas.android.com/apk/res/android";

/// Deepest element nesting [`parse_document`] accepts (real manifests nest about 5 deep).
pub const MAX_DEPTH: usize = 512;
/// Most elements [`parse_document`] accepts.
pub const MAX_ELEMENTS: usize = 1 << 17;
/// Most string bytes one parse decodes or copies out (a bound on work and memory when many
/// references or overlapping pool entries point at long strings).
pub const MAX_STRING_BYTES: usize = 64 << 20;

/// Chunk and node type codes (`ResourceTypes.h`).
pub mod chunk {
    /// `RES_STRING_POOL_TYPE`.
    pub const STRING_POOL: u16 = 0x0001;
    /// `RES_XML_TYPE`: the whole file.
    pub const XML: u16 = 0x0003;
    /// `RES_XML_START_NAMESPACE_TYPE`.
    pub const START_NAMESPACE: u16 = 0x0100;
    /// `RES_XML_END_NAMESPACE_TYPE`.
    pub const END_NAMESPACE: u16 = 0x0101;
    /// `RES_XML_START_ELEMENT_TYPE`.
    pub const START_ELEMENT: u16 = 0x0102;
    /// `RES_XML_END_ELEMENT_TYPE`.
    pub const END_ELEMENT: u16 = 0x0103;
    /// `RES_XML_CDATA_TYPE`.
    pub const CDATA: u16 = 0x0104;
    /// `RES_XML_LAST_CHUNK_TYPE`: node types are 0x0100..=0x017f.
    pub const LAST_NODE: u16 = 0x017f;
    /// `RES_XML_RESOURCE_MAP_TYPE`.
    pub const RESOURCE_MAP: u16 = 0x0180;
}

/// `Res_value` data types (`ResourceTypes.h`).
pub mod data_type {
    /// `TYPE_NULL` (data 0 = undefined, 1 = empty).
    pub const NULL: u8 = 0x00;
    /// `TYPE_REFERENCE`: a resource ID.
    pub const REFERENCE: u8 = 0x01;
    /// `TYPE_ATTRIBUTE`.
    pub const ATTRIBUTE: u8 = 0x02;
    /// `TYPE_STRING`: a string-pool index.
    pub const STRING: u8 = 0x03;
    /// `TYPE_FLOAT`.
    pub const FLOAT: u8 = 0x04;
    /// `TYPE_INT_DEC`.
    pub const INT_DEC: u8 = 0x10;
    /// `TYPE_INT_HEX`.
    pub const INT_HEX: u8 = 0x11;
    /// `TYPE_INT_BOOLEAN` (aapt2 writes true as 0xffffffff).
    pub const INT_BOOLEAN: u8 = 0x12;
}

/// Framework attribute resource IDs (`core/res/res/values/public-final.xml`).
pub mod attr {
    /// `android:name`.
    pub const NAME: u32 = 0x0101_0003;
    /// `android:hasCode`.
    pub const HAS_CODE: u32 = 0x0101_000c;
    /// `android:minSdkVersion`.
    pub const MIN_SDK_VERSION: u32 = 0x0101_020c;
    /// `android:versionCode`.
    pub const VERSION_CODE: u32 = 0x0101_021b;
    /// `android:versionName`.
    pub const VERSION_NAME: u32 = 0x0101_021c;
    /// `android:targetSdkVersion`.
    pub const TARGET_SDK_VERSION: u32 = 0x0101_0270;
    /// `android:maxSdkVersion`.
    pub const MAX_SDK_VERSION: u32 = 0x0101_0271;
    /// `android:compileSdkVersion`.
    pub const COMPILE_SDK_VERSION: u32 = 0x0101_0572;
    /// `android:compileSdkVersionCodename`.
    pub const COMPILE_SDK_VERSION_CODENAME: u32 = 0x0101_0573;
    /// `android:versionCodeMajor`.
    pub const VERSION_CODE_MAJOR: u32 = 0x0101_0576;
}

/// What microdroid_manager needs, read with AOSP libapkmanifest's rules: the first element
/// must be `manifest` with no namespace; `package` from its rawValue; `android:versionCode` /
/// `android:versionCodeMajor` from `TYPE_INT_DEC`/`TYPE_INT_HEX` data, or a `TYPE_STRING`
/// parsed like `strtoul(s, &end, 0)` that must consume the whole string and fit in u32;
/// missing → 0 / "".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ManifestInfo {
    /// The `package` attribute.
    pub package: String,
    /// `versionCode | versionCodeMajor << 32` (AOSP `getVersionCode`).
    pub version_code: u64,
}

/// What [`write_manifest`] emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestSpec {
    /// `package` (no namespace, a string with its rawValue).
    pub package: String,
    /// `android:versionCode` (`TYPE_INT_DEC`).
    pub version_code: u32,
    /// `android:versionCodeMajor` (`TYPE_INT_DEC`), written when `Some`.
    pub version_code_major: Option<u32>,
    /// `android:versionName` (a string with its rawValue), written when `Some`.
    pub version_name: Option<String>,
    /// `<uses-sdk android:minSdkVersion>` (`TYPE_INT_DEC`).
    pub min_sdk_version: Option<u32>,
    /// `<uses-sdk android:targetSdkVersion>` (`TYPE_INT_DEC`).
    pub target_sdk_version: Option<u32>,
    /// `<application android:hasCode>` (`TYPE_INT_BOOLEAN`, true = 0xffffffff).
    pub has_code: Option<bool>,
}

impl ManifestSpec {
    /// A manifest with `package` and the long version code split into `versionCode` (low 32
    /// bits) and `versionCodeMajor` (high 32 bits, written only when non-zero).
    pub fn new(package: &str, version_code: u64) -> Self {
        let major = (version_code >> 32) as u32;
        Self {
            package: package.to_owned(),
            version_code: version_code as u32,
            version_code_major: (major != 0).then_some(major),
            version_name: None,
            min_sdk_version: None,
            target_sdk_version: None,
            has_code: None,
        }
    }

    /// `versionCode | versionCodeMajor << 32`, what [`parse_manifest`] reads back.
    pub fn long_version_code(&self) -> u64 {
        u64::from(self.version_code) | u64::from(self.version_code_major.unwrap_or(0)) << 32
    }

    /// The element tree [`write_manifest`] writes (attributes in source order; the writer
    /// sorts them).
    pub fn to_element(&self) -> Element {
        let mut manifest = Element::new("manifest");
        manifest
            .attributes
            .push(Attribute::string(None, "package", None, &self.package));
        manifest.attributes.push(Attribute::android(
            "versionCode",
            attr::VERSION_CODE,
            Value::IntDec(self.version_code),
        ));
        if let Some(major) = self.version_code_major {
            manifest.attributes.push(Attribute::android(
                "versionCodeMajor",
                attr::VERSION_CODE_MAJOR,
                Value::IntDec(major),
            ));
        }
        if let Some(name) = &self.version_name {
            manifest.attributes.push(Attribute::string(
                Some(ANDROID_NS),
                "versionName",
                Some(attr::VERSION_NAME),
                name,
            ));
        }
        if self.min_sdk_version.is_some() || self.target_sdk_version.is_some() {
            let mut uses_sdk = Element::new("uses-sdk");
            if let Some(v) = self.min_sdk_version {
                uses_sdk.attributes.push(Attribute::android(
                    "minSdkVersion",
                    attr::MIN_SDK_VERSION,
                    Value::IntDec(v),
                ));
            }
            if let Some(v) = self.target_sdk_version {
                uses_sdk.attributes.push(Attribute::android(
                    "targetSdkVersion",
                    attr::TARGET_SDK_VERSION,
                    Value::IntDec(v),
                ));
            }
            manifest.children.push(uses_sdk);
        }
        if let Some(has_code) = self.has_code {
            let mut application = Element::new("application");
            application.attributes.push(Attribute::android(
                "hasCode",
                attr::HAS_CODE,
                Value::Boolean(has_code),
            ));
            manifest.children.push(application);
        }
        manifest
    }
}

/// An element of a binary XML document, as [`parse_document`] reads it (text nodes and
/// namespace prefixes are not kept).
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    /// Namespace URI, `None` for none.
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Attributes in file order.
    pub attributes: Vec<Attribute>,
    /// Child elements in file order.
    pub children: Vec<Element>,
}

impl Element {
    /// An element without namespace, attributes or children.
    pub fn new(name: &str) -> Self {
        Self {
            namespace: None,
            name: name.to_owned(),
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The first attribute with this namespace URI and name.
    pub fn attribute(&self, namespace: Option<&str>, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.namespace.as_deref() == namespace && a.name == name)
    }

    /// The first child element with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// An attribute of an [`Element`].
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// Namespace URI, `None` for none.
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// The name's resource ID from the resource map (`None` when absent or 0).
    pub resource_id: Option<u32>,
    /// The original string (`rawValue`), `None` for `-1`.
    pub raw_value: Option<String>,
    /// The typed value.
    pub value: Value,
}

impl Attribute {
    /// An `android:` attribute with a resource ID and no rawValue (numbers, booleans).
    pub fn android(name: &str, resource_id: u32, value: Value) -> Self {
        Self {
            namespace: Some(ANDROID_NS.to_owned()),
            name: name.to_owned(),
            resource_id: Some(resource_id),
            raw_value: None,
            value,
        }
    }

    /// A string attribute, rawValue and value both set to `value` (as aapt2 writes them).
    pub fn string(
        namespace: Option<&str>,
        name: &str,
        resource_id: Option<u32>,
        value: &str,
    ) -> Self {
        Self {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            resource_id,
            raw_value: Some(value.to_owned()),
            value: Value::String(value.to_owned()),
        }
    }
}

/// A typed attribute value (`Res_value`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `TYPE_NULL` with data 0 (undefined).
    Null,
    /// `TYPE_REFERENCE`: a resource ID.
    Reference(u32),
    /// `TYPE_STRING`: the pool string its data indexes.
    String(String),
    /// `TYPE_INT_DEC`.
    IntDec(u32),
    /// `TYPE_INT_HEX`.
    IntHex(u32),
    /// `TYPE_INT_BOOLEAN`: any non-zero data is true; written as 0xffffffff / 0.
    Boolean(bool),
    /// Any other type (and `TYPE_NULL` with non-zero data), kept as is.
    Other {
        /// `Res_value.dataType`.
        data_type: u8,
        /// `Res_value.data`.
        data: u32,
    },
}

/// Errors of parsing binary XML.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A chunk runs past the end of the buffer or of its parent chunk.
    #[error("truncated: chunk at offset {offset} needs {needed} bytes, {available} left")]
    Truncated {
        /// Where the chunk starts.
        offset: usize,
        /// Bytes it needs (8 for its header, else its declared size).
        needed: usize,
        /// Bytes left in the buffer or parent chunk.
        available: usize,
    },
    /// The outer chunk is not `RES_XML_TYPE`.
    #[error("not binary XML: chunk type {0:#06x}")]
    NotXml(u16),
    /// A chunk or node header is inconsistent.
    #[error("bad chunk at offset {offset}: {reason}")]
    BadChunk {
        /// Where the chunk starts.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A chunk's header size or size is not a multiple of 4.
    #[error("chunk at offset {offset}: header size or size not a multiple of 4")]
    Misaligned {
        /// Where the chunk starts.
        offset: usize,
    },
    /// The string pool or one of its strings is malformed.
    #[error("bad string pool: {0}")]
    BadStringPool(String),
    /// A string reference is past the end of the pool's index.
    #[error("string index {0} out of range")]
    StringIndex(u32),
    /// A UTF-8 pool string (this index) is not valid UTF-8.
    #[error("string {0} is not valid UTF-8")]
    BadUtf8(u32),
    /// A UTF-16 pool string (this index) is not valid UTF-16.
    #[error("string {0} is not valid UTF-16")]
    BadUtf16(u32),
    /// The document has no element.
    #[error("no root element")]
    NoRootElement,
    /// The first element is not `manifest` without a namespace (its name, `{uri}name` if it
    /// has a namespace).
    #[error("first element is <{0}>, not <manifest>")]
    NotManifest(String),
    /// A node that is not allowed where it is.
    #[error("unexpected XML event: {0}")]
    UnexpectedEvent(&'static str),
    /// A string-only attribute (this name) has no rawValue.
    #[error("attribute {0} has no string value")]
    MissingStringValue(String),
    /// `versionCode` / `versionCodeMajor` is not a u32 (the string, or its data type).
    #[error("bad version code: {0}")]
    BadVersionCode(String),
    /// An end tag does not match the open element, or the document ends inside one.
    #[error("unbalanced start and end tags")]
    Unbalanced,
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// More than [`MAX_STRING_BYTES`] of strings decoded or copied.
    #[error("more than {MAX_STRING_BYTES} bytes of strings")]
    TooLarge,
}

/// Fuzzing / corpus entry point: [`parse_manifest`] and [`parse_document`]; a document that
/// parses is written again (UTF-8 and UTF-16) and must parse back to the same tree with its
/// attributes in the writer's order. Never panics; returns false only on such a mismatch (a
/// bug).
pub fn fuzz_entry(data: &[u8]) -> bool {
    let _ = parse_manifest(data);
    let Ok(root) = parse_document(data) else {
        return true;
    };
    let mut expected = root.clone();
    write::sort_attributes_deep(&mut expected);
    for encoding in [PoolEncoding::Utf8, PoolEncoding::Utf16] {
        let bytes = write_document(&root, encoding);
        match parse_document(&bytes) {
            Ok(again) if again == expected => {}
            _ => return false,
        }
        let _ = parse_manifest(&bytes);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_sdk_is_written_for_either_version() {
        let mut spec = ManifestSpec::new("com.example", 1);
        assert!(spec.to_element().child("uses-sdk").is_none());
        spec.min_sdk_version = Some(33);
        let root = spec.to_element();
        let uses_sdk = root.child("uses-sdk").expect("uses-sdk");
        assert!(uses_sdk
            .attribute(Some(ANDROID_NS), "minSdkVersion")
            .is_some());
        assert!(uses_sdk
            .attribute(Some(ANDROID_NS), "targetSdkVersion")
            .is_none());
    }

    #[test]
    fn lookups_match_namespace_and_name() {
        let mut e = Element::new("manifest");
        e.attributes
            .push(Attribute::string(Some(ANDROID_NS), "x", None, "android"));
        e.attributes
            .push(Attribute::string(None, "y", None, "plain"));
        e.children.push(Element::new("a"));
        e.children.push(Element::new("b"));
        assert!(e.attribute(None, "x").is_none());
        assert!(e.attribute(Some(ANDROID_NS), "y").is_none());
        assert!(e.attribute(None, "y").is_some());
        assert_eq!(e.child("b").map(|c| c.name.as_str()), Some("b"));
        assert!(e.child("c").is_none());
    }
}
