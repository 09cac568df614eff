//! open-dice's CDI derivation and the Android profile's DICE chain and handover: derive, write
//! (byte-identical to open-dice's `cbor_cert_op` and `android.c`), parse and verify.
//!
//! Format reference: `docs/formats/dice.md`.
//!
//! * [`derive_cdis`] / [`main_flow`]: `DiceMainFlow` — the next `CDI_Attest`/`CDI_Seal` from
//!   the current ones and the [`InputValues`], and the CBOR certificate (a COSE_Sign1 CWT signed
//!   by the key from the current `CDI_Attest`, certifying the key from the next one).
//! * [`new_chain`], [`android_main_flow`], [`android_handover_main_flow`]: the Android profile's
//!   `DiceAndroidMainFlow…`: chains `[root COSE_Key, +COSE_Sign1]` and handovers
//!   `{1: CDI_Attest, 2: CDI_Seal, ? 3: chain}`.
//! * [`Handover::parse`] (`DiceAndroidHandoverParse`) and [`verify_chain`] for untrusted
//!   bytes: never panic, bounded nesting, lengths checked before use.
//!
//! Host (the pvmfw role: a device secret as UDS, one `vm_entry` node):
//! ```
//! let uds = [7u8; dice::CDI_SIZE];
//! let config = dice::ConfigDescriptor {
//!     component_name: Some("vm_entry".into()),
//!     ..Default::default()
//! };
//! let input = dice::InputValues {
//!     code_hash: dice::hash(b"kernel and initrd digests"),
//!     config: dice::Config::Descriptor(config.to_bytes()),
//!     authority_hash: dice::hash(b"vbmeta public key"),
//!     mode: dice::Mode::Debug,
//!     ..Default::default()
//! };
//! let (cdis, chain) = dice::new_chain(&uds, &input);
//! let handover = dice::Handover { cdis, chain: Some(chain) }.to_bytes();
//!
//! // Guest (the microdroid_manager role): the payload node.
//! let parsed = dice::Handover::parse(&handover)?;
//! let payload = dice::InputValues {
//!     config: dice::Config::Descriptor(
//!         dice::ConfigDescriptor {
//!             component_name: Some("Microdroid payload".into()),
//!             ..Default::default()
//!         }
//!         .to_bytes(),
//!     ),
//!     ..Default::default()
//! };
//! let next = dice::android_handover_main_flow(&parsed, &payload)?;
//! let entries = dice::verify_chain(next.chain.as_deref().unwrap_or_default())?;
//! assert_eq!(entries.len(), 2);
//! assert_eq!(entries[1].component_name.as_deref(), Some("Microdroid payload"));
//! # Ok::<(), dice::Error>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cbor;
mod cert;
mod chain;
mod derive;
mod handover;

pub use cert::{
    cose_key_ed25519, generate_certificate, label, main_flow, ConfigDescriptor, PROFILE_NAME,
};
pub use chain::{android_main_flow, new_chain, verify_chain, ChainEntry};
pub use derive::{certificate_id, derive_cdis, hash, kdf, keypair_from_cdi, ASYM_SALT, ID_SALT};
pub use handover::{android_handover_main_flow, Handover};

use zeroize::Zeroize;

/// `DICE_CDI_SIZE`.
pub const CDI_SIZE: usize = 32;
/// `DICE_HASH_SIZE` (SHA-512).
pub const HASH_SIZE: usize = 64;
/// `DICE_HIDDEN_SIZE`.
pub const HIDDEN_SIZE: usize = 64;
/// `DICE_ID_SIZE`: certificate identifiers (`iss`, `sub` are their lower-case hex).
pub const ID_SIZE: usize = 20;
/// `DICE_INLINE_CONFIG_SIZE`.
pub const INLINE_CONFIG_SIZE: usize = 64;

/// The QEMU fw_cfg file through which the host hands the guest its DICE handover (the bytes
/// of [`Handover::to_bytes`]). The guest finds it at
/// `/sys/firmware/qemu_fw_cfg/by_name/<name>/raw` once `qemu_fw_cfg` is loaded.
pub const FW_CFG_HANDOVER_NAME: &str = "opt/microdroid/dice_handover";

/// The QEMU fw_cfg file the host adds on an instance's first boot (the one that recorded its
/// entry), as pvmfw sets `/chosen/avf,new-instance` in the device tree: with it the guest must
/// find no record of a payload in the instance, without it it must find one. Its content is
/// `1`; only its presence counts.
pub const FW_CFG_NEW_INSTANCE_NAME: &str = "opt/microdroid/new_instance";

/// A compound device identifier (`CDI_Attest` or `CDI_Seal`), or a UDS.
pub type Cdi = [u8; CDI_SIZE];
/// A SHA-512 digest.
pub type Hash = [u8; HASH_SIZE];
/// The hidden input.
pub type Hidden = [u8; HIDDEN_SIZE];

/// `DiceMode`. Values other than 0–3 read from a certificate are treated as
/// [`Mode::NotInitialized`], as the specification requires.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    NotInitialized = 0,
    Normal = 1,
    Debug = 2,
    /// "Recovery" in the specification.
    Maintenance = 3,
}

impl Mode {
    /// The mode for a byte; undefined values are [`Mode::NotInitialized`].
    pub fn from_byte(b: u8) -> Mode {
        match b {
            1 => Mode::Normal,
            2 => Mode::Debug,
            3 => Mode::Maintenance,
            _ => Mode::NotInitialized,
        }
    }
}

/// The configuration input: 64 inline bytes, or a descriptor (in the Android profile a CBOR
/// map, see [`ConfigDescriptor`]) whose SHA-512 is the CDI input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Config {
    Inline([u8; INLINE_CONFIG_SIZE]),
    Descriptor(Vec<u8>),
}

/// `DiceInputValues`. Descriptors go into the certificate only (empty ones are left out); the
/// CDIs see the hashes, the configuration, the mode and the hidden input.
#[derive(Clone, Debug)]
pub struct InputValues {
    pub code_hash: Hash,
    pub code_descriptor: Vec<u8>,
    pub config: Config,
    pub authority_hash: Hash,
    pub authority_descriptor: Vec<u8>,
    pub mode: Mode,
    pub hidden: Hidden,
}

impl Default for InputValues {
    /// open-dice's `DiceInputValues{}`: zero hashes, inline zero configuration, mode
    /// NotInitialized, zero hidden input.
    fn default() -> Self {
        InputValues {
            code_hash: [0; HASH_SIZE],
            code_descriptor: Vec::new(),
            config: Config::Inline([0; INLINE_CONFIG_SIZE]),
            authority_hash: [0; HASH_SIZE],
            authority_descriptor: Vec::new(),
            mode: Mode::NotInitialized,
            hidden: [0; HIDDEN_SIZE],
        }
    }
}

/// A pair of CDIs. Zeroed when dropped; `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct CdiValues {
    pub cdi_attest: Cdi,
    pub cdi_seal: Cdi,
}

impl Drop for CdiValues {
    fn drop(&mut self) {
        self.cdi_attest.zeroize();
        self.cdi_seal.zeroize();
    }
}

impl std::fmt::Debug for CdiValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdiValues")
            .field("cdi_attest", &"<secret>")
            .field("cdi_seal", &"<secret>")
            .finish()
    }
}

/// Why bytes were rejected (or, for [`kdf`], an output length HKDF cannot give).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not well-formed CBOR, or CBOR this crate does not take (indefinite lengths, reserved
    /// initial bytes, non-UTF-8 text, integers beyond i64 where one is needed).
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    /// The input ends inside an item, or an item declares more bytes than are left.
    #[error("truncated: the input ends inside a CBOR item")]
    Truncated,
    /// Bytes follow an item that must be the whole input.
    #[error("trailing bytes after the CBOR item")]
    TrailingData,
    /// Containers nest more deeply than the parser allows.
    #[error("CBOR containers nested too deeply")]
    NestingTooDeep,
    /// A map was required.
    #[error("not a CBOR map")]
    NotAMap,
    /// An array was required.
    #[error("not a CBOR array")]
    NotAnArray,
    /// A field has the wrong CBOR type.
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A required field is absent.
    #[error("missing field: {0}")]
    MissingField(&'static str),
    /// A map has the same integer key twice.
    #[error("duplicate map key {0}")]
    DuplicateKey(i64),
    /// Keys that must come in a fixed order (the handover's 1 then 2) do not.
    #[error("map key {actual} where key {expected} must be")]
    UnexpectedKey { expected: i64, actual: i64 },
    /// A byte string, array or map has the wrong size.
    #[error("{field}: size {actual}, expected {expected}")]
    BadLength {
        field: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A chain needs the root key and at least one entry.
    #[error("DICE chain has {0} item(s); it needs a root key and at least one entry")]
    ChainTooShort(usize),
    /// A COSE algorithm other than EdDSA (-8).
    #[error("unsupported COSE algorithm {0} (only EdDSA with Ed25519, -8)")]
    UnsupportedAlgorithm(i64),
    /// The signature of chain item `entry` (1 = the first certificate) does not verify
    /// under the previous key.
    #[error("DICE chain entry {entry}: signature does not verify")]
    BadSignature { entry: usize },
    /// `iss` of chain item `entry` is not the ID of the previous key.
    #[error("DICE chain entry {entry}: issuer is not the ID of the signing key")]
    IssuerMismatch { entry: usize },
    /// `sub` of chain item `entry` is not the ID of its subject public key.
    #[error("DICE chain entry {entry}: subject is not the ID of the subject public key")]
    SubjectMismatch { entry: usize },
    /// `configurationHash` of chain item `entry` is not SHA-512 of its descriptor.
    #[error("DICE chain entry {entry}: configurationHash does not match the descriptor")]
    ConfigHashMismatch { entry: usize },
    /// A COSE_Key that is not a valid Ed25519 key.
    #[error("bad public key: {0}")]
    BadKey(String),
    /// HKDF cannot give that many bytes (more than 255 × 64).
    #[error("KDF output length not supported")]
    Kdf,
}

/// Fuzzing entry point (`libs/dice/fuzz`): runs [`Handover::parse`] and [`verify_chain`] on
/// `data`, and on a handover's chain. Must never panic. Returns false only if a handover that
/// parsed does not survive `to_bytes` and a second parse unchanged.
pub fn fuzz_entry(data: &[u8]) -> bool {
    let _ = verify_chain(data);
    match Handover::parse(data) {
        Ok(h) => {
            if let Some(chain) = &h.chain {
                let _ = verify_chain(chain);
            }
            Handover::parse(&h.to_bytes()).is_ok_and(|again| again == h)
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_values() {
        for m in [
            Mode::NotInitialized,
            Mode::Normal,
            Mode::Debug,
            Mode::Maintenance,
        ] {
            assert_eq!(Mode::from_byte(m as u8), m);
        }
        assert_eq!(Mode::from_byte(4), Mode::NotInitialized);
        assert_eq!(Mode::from_byte(0xff), Mode::NotInitialized);
    }

    #[test]
    fn cdi_debug_hides_secrets() {
        let c = CdiValues {
            cdi_attest: [0xab; CDI_SIZE],
            cdi_seal: [0xcd; CDI_SIZE],
        };
        let s = format!("{c:?}");
        assert!(
            !s.contains("171") && !s.contains("ab") && !s.contains("205"),
            "{s}"
        );
        assert!(s.contains("<secret>"));
    }

    #[test]
    fn fuzz_entry_on_junk() {
        for data in [
            &[][..],
            &[0xa3],
            &[0xa2, 0x01, 0x58, 0x20],
            &[0x84, 0x40, 0xa0, 0x40, 0x40],
            &[0xff; 64],
        ] {
            assert!(fuzz_entry(data));
        }
    }

    #[test]
    fn fw_cfg_name_is_a_user_item() {
        // QEMU: user items live under "opt/", names are at most 55 bytes.
        assert!(FW_CFG_HANDOVER_NAME.starts_with("opt/"));
        assert!(FW_CFG_HANDOVER_NAME.len() <= 55);
        assert!(FW_CFG_NEW_INSTANCE_NAME.starts_with("opt/"));
        assert!(FW_CFG_NEW_INSTANCE_NAME.len() <= 55);
    }
}
