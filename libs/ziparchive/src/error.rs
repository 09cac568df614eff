//! Why an archive is refused, why reading an entry failed, or why one cannot be written.

use std::io;

/// Why an archive was refused at mount time, or why reading an entry failed.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// An I/O error while reading the archive.
    #[error("I/O error while {what}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// No end-of-central-directory record in the last 64 KiB (after zero padding): truncated
    /// archive or not a zip at all.
    #[error("not a zip archive: no end-of-central-directory record (truncated or not a zip)")]
    NoEndOfCentralDirectory,
    /// Archives split over several disks are not supported.
    #[error("multi-disk archives are not supported")]
    MultiDisk,
    /// The zip64 end-of-central-directory structures are inconsistent.
    #[error("bad zip64 structure: {0}")]
    BadZip64(&'static str),
    /// The central directory does not fit between its offset and the end records.
    #[error("central directory (offset {offset}, size {size}) extends past its end at {limit}")]
    CentralDirectoryOutOfBounds {
        /// Declared offset.
        offset: u64,
        /// Declared size.
        size: u64,
        /// Where it must end.
        limit: u64,
    },
    /// The central directory is larger than this reader accepts.
    #[error("central directory of {size} bytes is too large")]
    CentralDirectoryTooLarge {
        /// Declared size.
        size: u64,
    },
    /// More entries than this reader accepts.
    #[error("archive declares {declared} entries, more than the maximum of {max}")]
    TooManyEntries {
        /// Declared entry count.
        declared: u64,
        /// Limit.
        max: u64,
    },
    /// The declared entry count cannot fit in the central directory (46 bytes each at least).
    #[error("archive declares {declared} entries but its central directory has only {directory_size} bytes")]
    EntryCountExceedsDirectory {
        /// Declared entry count.
        declared: u64,
        /// Central directory size.
        directory_size: u64,
    },
    /// Bytes left in the central directory after the declared number of records.
    #[error("central directory has {trailing} bytes after its {declared} declared entries")]
    EntryCountMismatch {
        /// Declared entry count.
        declared: u64,
        /// Unparsed bytes.
        trailing: usize,
    },
    /// A malformed central-directory record.
    #[error("central directory record {index}: {reason}")]
    BadCentralRecord {
        /// Record index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Encrypted entries are not supported.
    #[error("entry {name:?} is encrypted")]
    Encrypted {
        /// Entry name.
        name: String,
    },
    /// Only stored (0) and deflated (8) entries are supported.
    #[error("entry {name:?} uses unsupported compression method {method}")]
    UnsupportedMethod {
        /// Entry name.
        name: String,
        /// The method number.
        method: u16,
    },
    /// The local header is missing or malformed.
    #[error("entry {name:?}: bad local header ({reason})")]
    BadLocalHeader {
        /// Entry name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The local header disagrees with the central directory.
    #[error("entry {name:?}: local header disagrees with the central directory on the {field}")]
    LocalHeaderMismatch {
        /// Entry name.
        name: String,
        /// Which field differs.
        field: &'static str,
    },
    /// The entry's data runs past the start of the central directory.
    #[error("entry {name:?}: data extends past the start of the central directory")]
    EntryOutOfBounds {
        /// Entry name.
        name: String,
    },
    /// Two entries share bytes (overlapping-file zip bombs).
    #[error("entries {first:?} and {second:?} overlap")]
    OverlappingEntries {
        /// The entry that starts first.
        first: String,
        /// The entry that starts inside it.
        second: String,
    },
    /// A deflated entry claims more than deflate can produce from its compressed size.
    #[error("entry {name:?}: absurd compression ratio ({size} bytes from {compressed})")]
    AbsurdCompressionRatio {
        /// Entry name.
        name: String,
        /// Declared uncompressed size.
        size: u64,
        /// Compressed size.
        compressed: u64,
    },
    /// A stored entry whose two sizes differ.
    #[error("stored entry {name:?}: size {size} differs from compressed size {compressed}")]
    StoredSizeMismatch {
        /// Entry name.
        name: String,
        /// Uncompressed size.
        size: u64,
        /// Compressed size.
        compressed: u64,
    },
    /// An absolute path, a `.`/`..`/empty component or a NUL byte.
    #[error("entry {name:?}: invalid path ({reason})")]
    InvalidPath {
        /// Entry name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same path twice.
    #[error("duplicate entry {name:?}")]
    DuplicateName {
        /// Entry name.
        name: String,
    },
    /// A path used both as a file and as a directory.
    #[error("entry {name:?} is both a file and a directory")]
    PathConflict {
        /// Entry name.
        name: String,
    },
    /// The entry's bytes do not match its CRC-32 (detected when read).
    #[error("entry {name:?}: CRC-32 mismatch (expected {expected:#010x}, got {actual:#010x})")]
    CrcMismatch {
        /// Entry name.
        name: String,
        /// From the central directory.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The deflate stream is corrupt, truncated, or inflates to a different size.
    #[error("entry {name:?}: corrupt deflate data ({reason})")]
    CorruptDeflate {
        /// Entry name.
        name: String,
        /// What went wrong.
        reason: &'static str,
    },
    /// What was asked of the writer does not fit a zip without zip64 (4 GiB archives and
    /// entries, 65,535 entries, 64 KiB names and alignment padding).
    #[error("cannot write the zip: {0}")]
    TooLargeToWrite(&'static str),
}
