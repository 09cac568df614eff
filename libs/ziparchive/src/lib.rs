//! The zip format, once for the whole project: a reader for untrusted archives ([`archive`]:
//! end records, central directory, local headers, layout, each checked) and a reproducible
//! writer of stored, aligned entries ([`write`]). zipfuse serves APKs with it, apexd_lite finds
//! an APEX's entries with it, the APK signature code finds the sections it signs with it, and
//! the host builds APKs and APEXes with its writer. See docs/zip.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod archive;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod testzip;
pub mod write;

#[cfg(test)]
mod tests;

pub use archive::{
    find_end_record, parse, read_central_directory, Archive, EndRecord, Entry, Method, Source,
};
pub use error::ZipError;
