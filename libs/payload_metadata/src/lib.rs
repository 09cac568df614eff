//! The Microdroid payload metadata partition (`payload-metadata`): a 4-byte **big-endian**
//! length `L`, then `L` bytes of protobuf `android.microdroid.Metadata`
//! (`proto/metadata.proto`, AOSP `microdroid/payload/metadata.proto`), then padding that is
//! ignored. The same format is used for `/apex/vm-payload-metadata`.
//!
//! The messages are hand-written prost structs (no protoc at build time); the tests check our
//! bytes with `protoc --decode` against the checked-in `.proto`.
//!
//! ```
//! use payload_metadata::{Metadata, PayloadConfig, Payload};
//! // Host (vmctl): what virtualizationmanager's make_metadata_file writes.
//! let m = Metadata::for_app(
//!     &[("com.android.art", 0, true)],
//!     Payload::Config(PayloadConfig { payload_binary_name: "libpayload.so".into(), extra_apk_count: 0 }),
//! );
//! let bytes = payload_metadata::to_bytes_padded(&m, 4096)?;
//! // Guest (microdroid_manager): read from /dev/block/by-name/payload-metadata.
//! let back = payload_metadata::read_metadata(&mut bytes.as_slice())?;
//! assert_eq!(back, m);
//! # Ok::<(), payload_metadata::Error>(())
//! ```

use std::io::{Read, Write};

use prost::Message;

/// Largest protobuf body accepted (the real ones are a few hundred bytes).
pub const MAX_METADATA_SIZE: u32 = 1024 * 1024;
/// The `version` the host writes.
pub const METADATA_VERSION: u32 = 1;
/// Partition name of the APK (AOSP `make_metadata_file`).
pub const APK_PARTITION_NAME: &str = "microdroid-apk";
/// Partition name of the APK's idsig.
pub const APK_IDSIG_PARTITION_NAME: &str = "microdroid-apk-idsig";

/// Errors of reading and writing payload metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input ends before the 4-byte length or before the body it announces.
    #[error("payload metadata truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The announced or encoded length exceeds [`MAX_METADATA_SIZE`].
    #[error("payload metadata body of {0} bytes exceeds the limit of {MAX_METADATA_SIZE}")]
    TooLarge(u64),
    /// The body is not a valid `Metadata` message.
    #[error("invalid payload metadata protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// `android.microdroid.Metadata`.
#[derive(Clone, PartialEq, Message)]
pub struct Metadata {
    /// Format version; the host writes 1.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// APEXes, in partition order (`microdroid-apex-<i>`).
    #[prost(message, repeated, tag = "2")]
    pub apexes: Vec<ApexPayload>,
    /// The app APK.
    #[prost(message, optional, tag = "3")]
    pub apk: Option<ApkPayload>,
    /// How the payload is configured.
    #[prost(oneof = "Payload", tags = "4, 5")]
    pub payload: Option<Payload>,
}

/// The `payload` oneof of [`Metadata`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Payload {
    /// Path of `vm_config.json`, as `/mnt/apk/<path in APK>`.
    #[prost(string, tag = "4")]
    ConfigPath(String),
    /// A config synthesised from a payload binary name.
    #[prost(message, tag = "5")]
    Config(PayloadConfig),
}

/// `android.microdroid.ApexPayload`.
#[derive(Clone, PartialEq, Message)]
pub struct ApexPayload {
    /// APEX name (required).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `microdroid-apex-<i>`.
    #[prost(string, tag = "2")]
    pub partition_name: String,
    /// Optional: public key to verify against.
    #[prost(bytes = "vec", tag = "3")]
    pub public_key: Vec<u8>,
    /// Optional: root digest to verify against.
    #[prost(bytes = "vec", tag = "4")]
    pub root_digest: Vec<u8>,
    /// Optional: manifest version.
    #[prost(int64, tag = "7")]
    pub manifest_version: i64,
    /// Optional: manifest name.
    #[prost(string, tag = "8")]
    pub manifest_name: String,
    /// Last update time in seconds (required).
    #[prost(uint64, tag = "5")]
    pub last_update_seconds: u64,
    /// Whether the APEX is the factory version (required).
    #[prost(bool, tag = "6")]
    pub is_factory: bool,
}

/// `android.microdroid.ApkPayload`.
#[derive(Clone, PartialEq, Message)]
pub struct ApkPayload {
    /// `"apk"`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `"microdroid-apk"`.
    #[prost(string, tag = "2")]
    pub payload_partition_name: String,
    /// `"microdroid-apk-idsig"`.
    #[prost(string, tag = "3")]
    pub idsig_partition_name: String,
}

/// `android.microdroid.PayloadConfig`.
#[derive(Clone, PartialEq, Message)]
pub struct PayloadConfig {
    /// Payload binary in `lib/<abi>/` of the APK (no `/`).
    #[prost(string, tag = "1")]
    pub payload_binary_name: String,
    /// Number of extra APKs.
    #[prost(uint32, tag = "2")]
    pub extra_apk_count: u32,
}

impl Metadata {
    /// The metadata virtualizationmanager writes for an app VM: version 1, the APK at its fixed
    /// partition names, and `apexes` given as `(name, last_update_seconds, is_factory)` placed
    /// at `microdroid-apex-<i>`.
    pub fn for_app(apexes: &[(&str, u64, bool)], payload: Payload) -> Self {
        Self {
            version: METADATA_VERSION,
            apexes: apexes
                .iter()
                .enumerate()
                .map(|(i, (name, secs, factory))| ApexPayload {
                    name: (*name).to_string(),
                    partition_name: format!("microdroid-apex-{i}"),
                    last_update_seconds: *secs,
                    is_factory: *factory,
                    ..Default::default()
                })
                .collect(),
            apk: Some(ApkPayload {
                name: "apk".into(),
                payload_partition_name: APK_PARTITION_NAME.into(),
                idsig_partition_name: APK_IDSIG_PARTITION_NAME.into(),
            }),
            payload: Some(payload),
        }
    }
}

/// Reads the length and the body from `r`, consuming exactly `4 + L` bytes (padding after the
/// body is not read).
pub fn read_metadata<R: Read>(r: &mut R) -> Result<Metadata> {
    let mut len = [0u8; 4];
    read_fully(r, &mut len, 0)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_METADATA_SIZE {
        return Err(Error::TooLarge(u64::from(len)));
    }
    let mut body = vec![0u8; len as usize];
    read_fully(r, &mut body, 4)?;
    Ok(Metadata::decode(body.as_slice())?)
}

fn read_fully<R: Read>(r: &mut R, buf: &mut [u8], before: u64) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(Error::Truncated {
                    needed: before + buf.len() as u64,
                    available: before + got as u64,
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Parses metadata from a byte slice (trailing padding ignored).
pub fn from_bytes(bytes: &[u8]) -> Result<Metadata> {
    read_metadata(&mut &bytes[..])
}

/// Reads metadata from a file or block device, e.g. `/dev/block/by-name/payload-metadata`.
pub fn read_path<P: AsRef<std::path::Path>>(path: P) -> Result<Metadata> {
    read_metadata(&mut std::io::BufReader::new(std::fs::File::open(path)?))
}

/// Encodes `m` as `u32be(L) ‖ body`.
pub fn to_bytes(m: &Metadata) -> Result<Vec<u8>> {
    let len = m.encoded_len();
    let len32 = u32::try_from(len).map_err(|_| Error::TooLarge(len as u64))?;
    if len32 > MAX_METADATA_SIZE {
        return Err(Error::TooLarge(len as u64));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&len32.to_be_bytes());
    out.extend_from_slice(&m.encode_to_vec());
    Ok(out)
}

/// [`to_bytes`], zero-padded to a multiple of `align` bytes (e.g. 4096 for a partition image).
pub fn to_bytes_padded(m: &Metadata, align: usize) -> Result<Vec<u8>> {
    let mut out = to_bytes(m)?;
    let align = align.max(1);
    let padded = out.len().div_ceil(align).saturating_mul(align);
    out.resize(padded, 0);
    Ok(out)
}

/// Writes `u32be(L) ‖ body` to `w`.
pub fn write_metadata<W: Write>(m: &Metadata, w: &mut W) -> Result<()> {
    w.write_all(&to_bytes(m)?)?;
    Ok(())
}

/// Fuzzing / corpus entry point: decode arbitrary bytes, re-encode what decodes and check it
/// round-trips. Never panics on any input.
pub fn fuzz_entry(data: &[u8]) -> bool {
    match from_bytes(data) {
        Ok(m) => match to_bytes(&m) {
            Ok(b) => from_bytes(&b).map(|m2| m2 == m).unwrap_or(false),
            Err(_) => false,
        },
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Metadata {
        let mut m = Metadata::for_app(
            &[
                ("com.android.art", 1_700_000_000, true),
                ("com.android.sdkext", 5, false),
            ],
            Payload::ConfigPath("/mnt/apk/assets/vm_config.json".into()),
        );
        m.apexes[0].public_key = vec![1, 2, 3];
        m.apexes[0].root_digest = vec![0xaa; 32];
        m.apexes[0].manifest_version = -2;
        m.apexes[0].manifest_name = "art".into();
        m
    }

    /// Metadata whose body is exactly `len` bytes (a config path of the right length).
    fn body_of(len: u32) -> Metadata {
        let mut m = Metadata {
            version: 1,
            payload: Some(Payload::ConfigPath(String::new())),
            ..Metadata::default()
        };
        let mut path_len = len as usize;
        loop {
            m.payload = Some(Payload::ConfigPath("p".repeat(path_len)));
            let encoded = m.encoded_len();
            match encoded.cmp(&(len as usize)) {
                std::cmp::Ordering::Equal => return m,
                std::cmp::Ordering::Greater => path_len -= encoded - len as usize,
                std::cmp::Ordering::Less => path_len += len as usize - encoded,
            }
        }
    }

    /// The size limit is inclusive both ways: a body of exactly `MAX_METADATA_SIZE` (1 MiB)
    /// is written and read, one byte more is `TooLarge` when writing and when reading.
    #[test]
    fn the_size_limit_is_exact() {
        let at_limit = body_of(MAX_METADATA_SIZE);
        let bytes = to_bytes(&at_limit).unwrap();
        assert_eq!(bytes.len(), 4 + 1024 * 1024);
        assert_eq!(from_bytes(&bytes).unwrap(), at_limit);
        let over = body_of(MAX_METADATA_SIZE + 1);
        assert!(
            matches!(to_bytes(&over), Err(Error::TooLarge(n)) if n == u64::from(MAX_METADATA_SIZE) + 1)
        );
        let mut claimed = (MAX_METADATA_SIZE + 1).to_be_bytes().to_vec();
        claimed.resize(4 + MAX_METADATA_SIZE as usize + 1, 0);
        assert!(matches!(from_bytes(&claimed), Err(Error::TooLarge(_))));
    }

    /// A reader interrupted by a signal is read again; any other error is the caller's.
    #[test]
    fn interrupted_reads_are_retried_and_other_errors_returned() {
        struct Flaky<'a> {
            error: Option<std::io::ErrorKind>,
            rest: &'a [u8],
        }
        impl Read for Flaky<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if let Some(kind) = self.error.take() {
                    return Err(kind.into());
                }
                self.rest.read(buf)
            }
        }
        let bytes = to_bytes(&body_of(100)).unwrap();
        let mut interrupted = Flaky {
            error: Some(std::io::ErrorKind::Interrupted),
            rest: &bytes,
        };
        assert_eq!(read_metadata(&mut interrupted).unwrap(), body_of(100));
        let mut failing = Flaky {
            error: Some(std::io::ErrorKind::Other),
            rest: &bytes,
        };
        assert!(matches!(read_metadata(&mut failing), Err(Error::Io(_))));
    }

    /// `write_metadata` writes what `read_path` reads back from a file.
    #[test]
    fn written_to_a_file_and_read_back() {
        let m = body_of(300);
        let mut out = Vec::new();
        write_metadata(&m, &mut out).unwrap();
        assert_eq!(out, to_bytes(&m).unwrap());
        let dir = std::env::temp_dir().join(format!("payload-metadata-{}", std::process::id()));
        std::fs::write(&dir, &out).unwrap();
        let back = read_path(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(back.unwrap(), m);
        assert!(read_path("/nonexistent/payload-metadata").is_err());
    }

    #[test]
    fn round_trip_and_padding() {
        let m = sample();
        let b = to_bytes_padded(&m, 4096).unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(from_bytes(&b).unwrap(), m);
        let len = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        assert_eq!(len, m.encoded_len());
        // Reading consumes exactly 4 + L bytes.
        let mut r = &b[..];
        read_metadata(&mut r).unwrap();
        assert_eq!(r.len(), 4096 - 4 - len);
    }

    #[test]
    fn known_bytes() {
        // version 1, apk {name "apk"}, config_path "x"
        let m = Metadata {
            version: 1,
            apexes: vec![],
            apk: Some(ApkPayload {
                name: "apk".into(),
                ..Default::default()
            }),
            payload: Some(Payload::ConfigPath("x".into())),
        };
        assert_eq!(
            to_bytes(&m).unwrap(),
            [0, 0, 0, 12, 0x08, 1, 0x1a, 5, 0x0a, 3, b'a', b'p', b'k', 0x22, 1, b'x']
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            from_bytes(&[0, 0]),
            Err(Error::Truncated {
                needed: 4,
                available: 2
            })
        ));
        assert!(matches!(
            from_bytes(&[0, 0, 0, 5, 8]),
            Err(Error::Truncated {
                needed: 9,
                available: 5
            })
        ));
        assert!(matches!(
            from_bytes(&[0x80, 0, 0, 0]),
            Err(Error::TooLarge(0x8000_0000))
        ));
        assert!(matches!(
            from_bytes(&[0, 0, 0, 2, 0x08, 0x80]),
            Err(Error::Decode(_))
        ));
        // Empty body is a valid, empty Metadata.
        assert_eq!(from_bytes(&[0, 0, 0, 0]).unwrap(), Metadata::default());
    }

    #[test]
    fn fuzz_entry_smoke() {
        assert!(fuzz_entry(&to_bytes(&sample()).unwrap()));
        assert!(fuzz_entry(&[0xff; 10]));
    }
}
