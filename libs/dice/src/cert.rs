//! CBOR CDI certificates as open-dice's `cbor_cert_op.c` writes them, and the Android
//! profile's configuration descriptor (`DiceAndroidFormatConfigDescriptor`).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::cbor::{
    write_array_header, write_bstr, write_int, write_map_header, write_null, write_tstr, write_uint,
};
use crate::derive::{derive_cdis, hash, id_hex, keypair_from_cdi};
use crate::{CdiValues, Config, InputValues};

/// The profile name our writers put in every certificate (`profileName`, -4670554).
pub const PROFILE_NAME: &str = "android.15";

/// Map keys (labels) of the DICE formats.
pub mod label {
    /// CWT `iss`: hex of the issuer's ID.
    pub const ISS: i64 = 1;
    /// CWT `sub`: hex of the subject's ID.
    pub const SUB: i64 = 2;
    pub const CODE_HASH: i64 = -4670545;
    pub const CODE_DESCRIPTOR: i64 = -4670546;
    pub const CONFIGURATION_HASH: i64 = -4670547;
    pub const CONFIGURATION_DESCRIPTOR: i64 = -4670548;
    pub const AUTHORITY_HASH: i64 = -4670549;
    pub const AUTHORITY_DESCRIPTOR: i64 = -4670550;
    pub const MODE: i64 = -4670551;
    pub const SUBJECT_PUBLIC_KEY: i64 = -4670552;
    pub const KEY_USAGE: i64 = -4670553;
    pub const PROFILE_NAME: i64 = -4670554;

    /// Android configuration descriptor: component name (tstr).
    pub const COMPONENT_NAME: i64 = -70002;
    /// Component version (uint).
    pub const COMPONENT_VERSION: i64 = -70003;
    /// Resettable (null).
    pub const RESETTABLE: i64 = -70004;
    /// Security version (uint).
    pub const SECURITY_VERSION: i64 = -70005;
    /// RKP VM marker (null).
    pub const RKP_VM_MARKER: i64 = -70006;

    /// COSE_Key `kty`, `alg`, `key_ops`, `crv`, `x` (an Ed25519 key has no `y`); protected
    /// header `alg`.
    pub const COSE_KTY: i64 = 1;
    pub const COSE_ALG: i64 = 3;
    pub const COSE_KEY_OPS: i64 = 4;
    pub const COSE_CRV: i64 = -1;
    pub const COSE_X: i64 = -2;
    pub const HEADER_ALG: i64 = 1;

    /// `kty` OKP, `alg` EdDSA, `crv` Ed25519, `key_ops` verify.
    pub const KTY_OKP: i64 = 1;
    pub const ALG_EDDSA: i64 = -8;
    pub const CRV_ED25519: i64 = 6;
    pub const KEY_OPS_VERIFY: i64 = 2;
}

/// `keyUsage`: keyCertSign (X.509 bit 5), little-endian bit order.
const KEY_USAGE_CERT_SIGN: u8 = 0x20;

/// The protected header `{1: -8}`.
pub(crate) const PROTECTED_EDDSA: [u8; 3] = [0xa1, 0x01, 0x27];

/// `DiceCoseEncodePublicKey` for Ed25519: `{1: 1, 3: -8, 4: [2], -1: 6, -2: x}`, 45 bytes.
pub fn cose_key_ed25519(public_key: &VerifyingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(45);
    write_map_header(&mut out, 5);
    write_int(&mut out, label::COSE_KTY);
    write_int(&mut out, label::KTY_OKP);
    write_int(&mut out, label::COSE_ALG);
    write_int(&mut out, label::ALG_EDDSA);
    write_int(&mut out, label::COSE_KEY_OPS);
    write_array_header(&mut out, 1);
    write_int(&mut out, label::KEY_OPS_VERIFY);
    write_int(&mut out, label::COSE_CRV);
    write_int(&mut out, label::CRV_ED25519);
    write_int(&mut out, label::COSE_X);
    write_bstr(&mut out, public_key.as_bytes());
    out
}

/// COSE `Sig_structure` for COSE_Sign1: `["Signature1", protected, h'', payload]`.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut tbs = Vec::with_capacity(payload.len() + protected.len() + 20);
    write_array_header(&mut tbs, 4);
    write_tstr(&mut tbs, "Signature1");
    write_bstr(&mut tbs, protected);
    write_bstr(&mut tbs, &[]);
    write_bstr(&mut tbs, payload);
    tbs
}

/// The CWT claims of a certificate, in open-dice's order (not canonical: the configuration
/// hash follows the descriptor).
fn cwt(
    issuer: &VerifyingKey,
    subject: &VerifyingKey,
    input: &InputValues,
    profile_name: Option<&str>,
) -> Vec<u8> {
    let config_hash = match &input.config {
        Config::Inline(_) => None,
        Config::Descriptor(d) => Some(hash(d)),
    };
    let pairs = 8
        + u64::from(!input.code_descriptor.is_empty())
        + u64::from(config_hash.is_some())
        + u64::from(!input.authority_descriptor.is_empty())
        + u64::from(profile_name.is_some());
    let mut out = Vec::new();
    write_map_header(&mut out, pairs);
    write_int(&mut out, label::ISS);
    write_tstr(&mut out, &id_hex(issuer.as_bytes()));
    write_int(&mut out, label::SUB);
    write_tstr(&mut out, &id_hex(subject.as_bytes()));
    write_int(&mut out, label::CODE_HASH);
    write_bstr(&mut out, &input.code_hash);
    if !input.code_descriptor.is_empty() {
        write_int(&mut out, label::CODE_DESCRIPTOR);
        write_bstr(&mut out, &input.code_descriptor);
    }
    write_int(&mut out, label::CONFIGURATION_DESCRIPTOR);
    match &input.config {
        Config::Inline(v) => write_bstr(&mut out, v),
        Config::Descriptor(d) => write_bstr(&mut out, d),
    }
    if let Some(h) = config_hash {
        write_int(&mut out, label::CONFIGURATION_HASH);
        write_bstr(&mut out, &h);
    }
    write_int(&mut out, label::AUTHORITY_HASH);
    write_bstr(&mut out, &input.authority_hash);
    if !input.authority_descriptor.is_empty() {
        write_int(&mut out, label::AUTHORITY_DESCRIPTOR);
        write_bstr(&mut out, &input.authority_descriptor);
    }
    write_int(&mut out, label::MODE);
    write_bstr(&mut out, &[input.mode as u8]);
    write_int(&mut out, label::SUBJECT_PUBLIC_KEY);
    write_bstr(&mut out, &cose_key_ed25519(subject));
    write_int(&mut out, label::KEY_USAGE);
    write_bstr(&mut out, &[KEY_USAGE_CERT_SIGN]);
    if let Some(name) = profile_name {
        write_int(&mut out, label::PROFILE_NAME);
        write_tstr(&mut out, name);
    }
    out
}

/// A COSE_Sign1 with protected `{1: -8}`, empty unprotected header, and `payload`.
pub(crate) fn cose_sign1(signer: &SigningKey, payload: &[u8]) -> Vec<u8> {
    let signature = signer.sign(&sig_structure(&PROTECTED_EDDSA, payload));
    let mut out = Vec::with_capacity(payload.len() + 80);
    write_array_header(&mut out, 4);
    write_bstr(&mut out, &PROTECTED_EDDSA);
    write_map_header(&mut out, 0);
    write_bstr(&mut out, payload);
    write_bstr(&mut out, &signature.to_bytes());
    out
}

/// `DiceGenerateCertificate` (`cbor_cert_op.c`): a COSE_Sign1 whose payload is the CWT for
/// `input`, issued by `issuer` for `subject`. `profile_name` adds claim -4670554
/// (open-dice's `DICE_PROFILE_NAME`); our writers pass [`PROFILE_NAME`].
pub fn generate_certificate(
    issuer: &SigningKey,
    subject: &VerifyingKey,
    input: &InputValues,
    profile_name: Option<&str>,
) -> Vec<u8> {
    let payload = cwt(&issuer.verifying_key(), subject, input, profile_name);
    cose_sign1(issuer, &payload)
}

/// `DiceMainFlow`: the next CDIs and the certificate for `input`, signed with the key from the
/// current `CDI_Attest` for the key from the next one.
pub fn main_flow(
    current: &CdiValues,
    input: &InputValues,
    profile_name: Option<&str>,
) -> (CdiValues, Vec<u8>) {
    let next = derive_cdis(current, input);
    let authority = keypair_from_cdi(&current.cdi_attest);
    let subject = keypair_from_cdi(&next.cdi_attest).verifying_key();
    let cert = generate_certificate(&authority, &subject, input, profile_name);
    (next, cert)
}

/// The Android profile's configuration descriptor, as `DiceAndroidFormatConfigDescriptor`
/// writes it: a map of the present fields in the order -70002 (name, tstr), -70003 (version,
/// uint), -70004 (resettable, null), -70005 (security version, uint), -70006 (RKP VM marker,
/// null).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDescriptor {
    pub component_name: Option<String>,
    pub component_version: Option<u64>,
    pub resettable: bool,
    pub security_version: Option<u64>,
    pub rkp_vm_marker: bool,
}

impl ConfigDescriptor {
    /// The CBOR map (the bytes for [`Config::Descriptor`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let pairs = u64::from(self.component_name.is_some())
            + u64::from(self.component_version.is_some())
            + u64::from(self.resettable)
            + u64::from(self.security_version.is_some())
            + u64::from(self.rkp_vm_marker);
        let mut out = Vec::new();
        write_map_header(&mut out, pairs);
        if let Some(name) = &self.component_name {
            write_int(&mut out, label::COMPONENT_NAME);
            write_tstr(&mut out, name);
        }
        if let Some(v) = self.component_version {
            write_int(&mut out, label::COMPONENT_VERSION);
            write_uint(&mut out, v);
        }
        if self.resettable {
            write_int(&mut out, label::RESETTABLE);
            write_null(&mut out);
        }
        if let Some(v) = self.security_version {
            write_int(&mut out, label::SECURITY_VERSION);
            write_uint(&mut out, v);
        }
        if self.rkp_vm_marker {
            write_int(&mut out, label::RKP_VM_MARKER);
            write_null(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::hex;
    use ed25519_dalek::Verifier;

    #[test]
    fn cose_key_layout() {
        let k = keypair_from_cdi(&[0; 32]).verifying_key();
        let b = cose_key_ed25519(&k);
        assert_eq!(b.len(), 45);
        assert_eq!(
            hex(&b[..13]),
            "a50101032704810220062158 20".replace(' ', "")
        );
        assert_eq!(&b[13..], k.as_bytes());
    }

    #[test]
    fn config_descriptor_bytes() {
        assert_eq!(ConfigDescriptor::default().to_bytes(), [0xa0]);
        let d = ConfigDescriptor {
            component_name: Some("vm_entry".into()),
            component_version: Some(12),
            resettable: true,
            security_version: Some(0x1_0000),
            rkp_vm_marker: true,
        };
        assert_eq!(
            hex(&d.to_bytes()),
            concat!(
                "a5",
                "3a00011171",
                "68",
                "766d5f656e747279",
                "3a00011172",
                "0c",
                "3a00011173",
                "f6",
                "3a00011174",
                "1a00010000",
                "3a00011175",
                "f6"
            )
        );
        // The component-name entry of AOSP microdroid_manager's payload config descriptor
        // (`dice.rs`, test `payload_metadata_with_path_formats_correctly`).
        let p = ConfigDescriptor {
            component_name: Some("Microdroid payload".into()),
            ..Default::default()
        };
        assert_eq!(
            hex(&p.to_bytes()),
            "a13a00011171724d6963726f64726f6964207061796c6f6164"
        );
    }

    #[test]
    fn certificate_signature_covers_sig_structure() {
        let issuer = keypair_from_cdi(&[1; 32]);
        let subject = keypair_from_cdi(&[2; 32]).verifying_key();
        let input = InputValues {
            code_descriptor: b"code".to_vec(),
            authority_descriptor: b"auth".to_vec(),
            config: Config::Descriptor(vec![0xa0]),
            ..Default::default()
        };
        let cert = generate_certificate(&issuer, &subject, &input, Some(PROFILE_NAME));
        // 84 43 a10127 a0 59 LLLL payload 58 40 sig
        assert_eq!(cert[..6], [0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0]);
        let len = usize::from(u16::from_be_bytes([cert[7], cert[8]]));
        let payload = &cert[9..9 + len];
        assert_eq!(cert[9 + len..11 + len], [0x58, 0x40]);
        let sig = ed25519_dalek::Signature::from_slice(&cert[11 + len..]).unwrap();
        let tbs = sig_structure(&PROTECTED_EDDSA, payload);
        assert_eq!(tbs[..12], *b"\x84\x6aSignature1");
        issuer.verifying_key().verify(&tbs, &sig).unwrap();
        // 8 + code descriptor + config hash + authority descriptor + profile name.
        assert_eq!(payload[0], 0xac);
    }
}
