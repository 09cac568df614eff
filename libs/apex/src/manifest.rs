//! `apex.proto.ApexManifest` (AOSP `system/apex/proto/apex_manifest.proto`), the fields apexd in
//! a VM uses. Unknown fields (hooks, native library lists, ...) are skipped by prost.

use prost::Message;

use crate::{Error, Result, MAX_NAME_LEN};

/// `apex.proto.ApexManifest`.
#[derive(Clone, PartialEq, Message)]
pub struct ApexManifest {
    /// Package name, e.g. `com.android.art`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version code.
    #[prost(int64, tag = "2")]
    pub version: i64,
    /// Human-readable version.
    #[prost(string, tag = "5")]
    pub version_name: String,
    /// The APEX has no code: apexd mounts it noexec.
    #[prost(bool, tag = "6")]
    pub no_code: bool,
    /// The APEX provides shared libraries to other APEXes (not bind-mounted at /apex/<name>).
    #[prost(bool, tag = "11")]
    pub provide_shared_apex_libs: bool,
}

impl ApexManifest {
    /// Decodes and checks a manifest: the name must be usable as a directory under /apex and
    /// in a dm device name, the version must not be negative.
    pub fn decode_checked(bytes: &[u8]) -> Result<Self> {
        let manifest = Self::decode(bytes)?;
        check_name(&manifest.name)?;
        if manifest.version < 0 {
            return Err(Error::InvalidVersion(manifest.version));
        }
        Ok(manifest)
    }

    /// `<name>@<version>`: AOSP's package id, the dm device and the versioned mount point.
    pub fn package_id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// An APEX name is a Java-package-like name: ASCII letters, digits, `.`, `_` and `-`, not
/// starting with `.`, at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}
