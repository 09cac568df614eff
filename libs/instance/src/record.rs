//! The records sealed in the entries: microdroid_manager's `MicrodroidData` (serde_cbor) and
//! pvmfw's `EntryBody`.

use serde::{Deserialize, Serialize};

use crate::{Error, MAX_ENTRY_PAYLOAD};

/// microdroid_manager's record (`microdroid_manager/src/instance.rs`), encoded as serde_cbor
/// does: a map with the field names as text keys in declaration order, `Vec<u8>` as an
/// array of unsigned integers, `None` as `f6`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MicrodroidData {
    /// 64 bytes (zeros with `llpvm_changes` or on a strict boot).
    pub salt: Vec<u8>,
    /// The app's APK.
    pub apk_data: ApkData,
    /// The extra APKs, in config order.
    pub extra_apks_data: Vec<ApkData>,
    /// The payload's APEXes.
    pub apex_data: Vec<ApexData>,
}

/// One APK of [`MicrodroidData`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApkData {
    /// v4 Merkle root hash (from the idsig).
    pub root_hash: Vec<u8>,
    /// SHA-512 of the first v3 signer's DER certificate.
    pub cert_hash: Vec<u8>,
    /// From AndroidManifest.xml (`""` when unknown).
    pub package_name: String,
    /// `versionCode | versionCodeMajor << 32`.
    pub version_code: u64,
}

/// One APEX of [`MicrodroidData`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApexData {
    /// Name from the payload metadata.
    pub name: String,
    /// Name from the APEX manifest (`dice_changes`).
    pub manifest_name: Option<String>,
    /// Version from the APEX manifest.
    pub manifest_version: Option<i64>,
    /// `apex_pubkey` (AvbRSAPublicKeyHeader format).
    pub public_key: Vec<u8>,
    /// Root digest of the first hashtree descriptor of `apex_payload.img`.
    pub root_digest: Vec<u8>,
    /// From the host's apex-info-list.
    pub last_update_seconds: u64,
    /// From the host's apex-info-list.
    pub is_factory: bool,
}

/// Nesting the decoder follows (the record needs 4; unknown fields are skipped within it).
const CBOR_DEPTH_LIMIT: usize = 16;

impl MicrodroidData {
    /// serde_cbor's encoding (AOSP's `serde_cbor::to_vec`).
    pub fn to_cbor(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).map_err(|e| Error::Cbor(e.to_string()))?;
        Ok(out)
    }

    /// Decodes a record: exactly one CBOR item, at most [`MAX_ENTRY_PAYLOAD`] bytes, no
    /// trailing bytes. Unknown map keys are ignored (as serde does).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let size = bytes.len() as u64;
        if size > MAX_ENTRY_PAYLOAD {
            return Err(Error::EntryTooLarge {
                size,
                max: MAX_ENTRY_PAYLOAD,
            });
        }
        let mut rest = bytes;
        let record: Self =
            ciborium::de::from_reader_with_recursion_limit(&mut rest, CBOR_DEPTH_LIMIT)
                .map_err(|e| Error::Cbor(describe(e)))?;
        if !rest.is_empty() {
            return Err(Error::Cbor(format!(
                "{} trailing bytes after the record",
                rest.len()
            )));
        }
        Ok(record)
    }
}

fn describe(e: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error as E;
    match e {
        E::Io(_) => "record ends early".to_string(),
        E::Syntax(at) => format!("CBOR syntax error at byte {at}"),
        E::Semantic(Some(at), msg) => format!("{msg} (at byte {at})"),
        E::Semantic(None, msg) => msg,
        E::RecursionLimitExceeded => "CBOR nested too deeply".to_string(),
    }
}

/// pvmfw's `#[repr(C)] EntryBody` (193 bytes): the measurements pvmfw saw on first boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvmfwEntry {
    /// Code hash of the payload (kernel) pvmfw verified.
    pub code_hash: [u8; 64],
    /// Authority hash (hash of its signing key).
    pub auth_hash: [u8; 64],
    /// Salt for the DICE hidden input.
    pub salt: [u8; 64],
    /// DICE mode: 0 not initialized, 1 normal, 2 debug, 3 maintenance.
    pub mode: u8,
}

impl PvmfwEntry {
    /// Size of the body.
    pub const SIZE: usize = 193;

    /// `code_hash ‖ auth_hash ‖ salt ‖ mode`.
    pub fn to_bytes(&self) -> [u8; 193] {
        let mut out = [0u8; 193];
        out[..64].copy_from_slice(&self.code_hash);
        out[64..128].copy_from_slice(&self.auth_hash);
        out[128..192].copy_from_slice(&self.salt);
        out[192] = self.mode;
        out
    }

    /// Parses a 193-byte body ([`Error::BadPvmfwEntrySize`] for another length).
    pub fn from_bytes(b: &[u8]) -> Result<Self, Error> {
        let b: &[u8; 193] = b
            .try_into()
            .map_err(|_| Error::BadPvmfwEntrySize(b.len()))?;
        let mut entry = Self {
            code_hash: [0; 64],
            auth_hash: [0; 64],
            salt: [0; 64],
            mode: b[192],
        };
        entry.code_hash.copy_from_slice(&b[..64]);
        entry.auth_hash.copy_from_slice(&b[64..128]);
        entry.salt.copy_from_slice(&b[128..192]);
        Ok(entry)
    }
}
