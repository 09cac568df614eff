//! open-dice's primitives and `DiceMainFlow`'s CDI derivation (`src/dice.c`).

use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::{Cdi, CdiValues, Config, Error, Hash, InputValues, CDI_SIZE, HASH_SIZE, ID_SIZE};

/// `kAsymSalt`: the salt of `KDF(32, CDI_Attest, ASYM_SALT, "Key Pair")`.
pub const ASYM_SALT: [u8; 64] = [
    0x63, 0xB6, 0xA0, 0x4D, 0x2C, 0x07, 0x7F, 0xC1, 0x0F, 0x63, 0x9F, 0x21, 0xDA, 0x79, 0x38, 0x44,
    0x35, 0x6C, 0xC2, 0xB0, 0xB4, 0x41, 0xB3, 0xA7, 0x71, 0x24, 0x03, 0x5C, 0x03, 0xF8, 0xE1, 0xBE,
    0x60, 0x35, 0xD3, 0x1F, 0x28, 0x28, 0x21, 0xA7, 0x45, 0x0A, 0x02, 0x22, 0x2A, 0xB1, 0xB3, 0xCF,
    0xF1, 0x67, 0x9B, 0x05, 0xAB, 0x1C, 0xA5, 0xD1, 0xAF, 0xFB, 0x78, 0x9C, 0xCD, 0x2B, 0x0B, 0x3B,
];

/// `kIdSalt`: the salt of `KDF(20, public key, ID_SALT, "ID")`.
pub const ID_SALT: [u8; 64] = [
    0xDB, 0xDB, 0xAE, 0xBC, 0x80, 0x20, 0xDA, 0x9F, 0xF0, 0xDD, 0x5A, 0x24, 0xC8, 0x3A, 0xA5, 0xA5,
    0x42, 0x86, 0xDF, 0xC2, 0x63, 0x03, 0x1E, 0x32, 0x9B, 0x4D, 0xA1, 0x48, 0x43, 0x06, 0x59, 0xFE,
    0x62, 0xCD, 0xB5, 0xB7, 0xE1, 0xE0, 0x0F, 0xC6, 0x80, 0x30, 0x67, 0x11, 0xEB, 0x44, 0x4A, 0xF7,
    0x72, 0x09, 0x35, 0x94, 0x96, 0xFC, 0xFF, 0x1D, 0xB9, 0x52, 0x0B, 0xA5, 0x1C, 0x7B, 0x29, 0xEA,
];

/// `DiceHash`: SHA-512.
pub fn hash(data: &[u8]) -> Hash {
    Sha512::digest(data).into()
}

/// `DiceKdf`: HKDF-SHA-512 (RFC 5869, extract then expand) of `ikm` into `out`.
/// Fails with [`Error::Kdf`] only for outputs longer than 255 × 64 bytes.
pub fn kdf(out: &mut [u8], ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<(), Error> {
    Hkdf::<Sha512>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| Error::Kdf)
}

/// [`kdf`] into an array whose size is checked at compile time, so it cannot fail.
fn kdf_array<const N: usize>(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; N] {
    const { assert!(N <= 255 * HASH_SIZE) };
    let mut out = [0u8; N];
    if kdf(&mut out, ikm, salt, info).is_err() {
        unreachable!("HKDF-SHA-512 gives up to 255 * 64 bytes and N is at most that");
    }
    out
}

/// `DiceMainFlow` without the certificate: the next CDIs.
///
/// `attest_salt = H(code_hash ‖ config ‖ authority_hash ‖ mode ‖ hidden)` where `config` is the
/// inline value or `H(descriptor)`; `seal_salt = H(authority_hash ‖ mode ‖ hidden)`;
/// `next = KDF(32, current, salt, "CDI_Attest" | "CDI_Seal")`.
pub fn derive_cdis(current: &CdiValues, input: &InputValues) -> CdiValues {
    let config_input: [u8; 64] = match &input.config {
        Config::Inline(v) => *v,
        Config::Descriptor(d) => hash(d),
    };
    let mut buf = [0u8; 3 * HASH_SIZE + 1 + 64];
    buf[..64].copy_from_slice(&input.code_hash);
    buf[64..128].copy_from_slice(&config_input);
    buf[128..192].copy_from_slice(&input.authority_hash);
    buf[192] = input.mode as u8;
    buf[193..].copy_from_slice(&input.hidden);
    let attest_salt = hash(&buf);
    let seal_salt = hash(&buf[128..]);
    buf.zeroize();
    CdiValues {
        cdi_attest: kdf_array::<CDI_SIZE>(&current.cdi_attest, &attest_salt, b"CDI_Attest"),
        cdi_seal: kdf_array::<CDI_SIZE>(&current.cdi_seal, &seal_salt, b"CDI_Seal"),
    }
}

/// `DiceDeriveCdiPrivateKeySeed` + `DiceKeypairFromSeed`: the Ed25519 key whose RFC 8032
/// private key is `KDF(32, cdi_attest, ASYM_SALT, "Key Pair")`.
pub fn keypair_from_cdi(cdi_attest: &Cdi) -> SigningKey {
    let mut seed = kdf_array::<32>(cdi_attest, &ASYM_SALT, b"Key Pair");
    let key = SigningKey::from_bytes(&seed);
    seed.zeroize();
    key
}

/// `DiceDeriveCdiCertificateId`: `KDF(20, public_key, ID_SALT, "ID")` with bit 7 of the first
/// byte cleared. `public_key` is the raw key (32 bytes for Ed25519).
pub fn certificate_id(public_key: &[u8]) -> [u8; ID_SIZE] {
    let mut id = kdf_array::<ID_SIZE>(public_key, &ID_SALT, b"ID");
    id[0] &= 0x7f;
    id
}

/// Lower-case hex, as `DiceHexEncode`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// `iss`/`sub`: the hex of the ID of a raw public key.
pub(crate) fn id_hex(public_key: &[u8]) -> String {
    hex(&certificate_id(public_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn zero() -> CdiValues {
        CdiValues {
            cdi_attest: [0; 32],
            cdi_seal: [0; 32],
        }
    }

    // google/open-dice include/dice/known_test_values.h (ZeroInput).
    #[test]
    fn zero_input_cdis() {
        let next = derive_cdis(&zero(), &InputValues::default());
        assert_eq!(
            hex(&next.cdi_attest),
            "fbfc679771342eeacb908659ce49d6b63b4535da2c51433d7f04efa6319e0c19"
        );
        assert_eq!(
            hex(&next.cdi_seal),
            "8ff8b22571325e7defefbfea8df1c9f34bf4d9ee03b75b788219c6b1ef49bdc5"
        );
    }

    #[test]
    fn keys_and_ids() {
        let root = keypair_from_cdi(&[0; 32]).verifying_key();
        assert_eq!(
            hex(root.as_bytes()),
            "6ee9a71fd3c398e6253aae6d812007675760ecf90d2d43db0d3c76087ba1daec"
        );
        let next = derive_cdis(&zero(), &InputValues::default());
        let subject = keypair_from_cdi(&next.cdi_attest).verifying_key();
        assert_eq!(
            hex(subject.as_bytes()),
            "0d14e5de292eb1c8b31beae43ab55d8e9dc014b73eaa83b925a0788cc62e5c8d"
        );
        assert_eq!(
            id_hex(root.as_bytes()),
            "7a06eee41b789f4863d86b8778b1a201a6fedd56"
        );
        assert_eq!(
            id_hex(subject.as_bytes()),
            "67c22a8859062b986818e8e72b0bcd9f59349c89"
        );
    }

    #[test]
    fn seal_ignores_code_and_config() {
        let base = InputValues::default();
        let a = derive_cdis(&zero(), &base);
        let mut other = base.clone();
        other.code_hash = [1; 64];
        other.config = Config::Descriptor(b"x".to_vec());
        other.code_descriptor = b"ignored".to_vec();
        let b = derive_cdis(&zero(), &other);
        assert_eq!(a.cdi_seal, b.cdi_seal);
        assert_ne!(a.cdi_attest, b.cdi_attest);
        let mut moded = base.clone();
        moded.mode = crate::Mode::Debug;
        let c = derive_cdis(&zero(), &moded);
        assert_ne!(a.cdi_seal, c.cdi_seal);
        // Descriptors other than the configuration's feed neither CDI.
        let mut desc = base;
        desc.authority_descriptor = b"ignored".to_vec();
        assert_eq!(derive_cdis(&zero(), &desc), a);
    }

    #[test]
    fn kdf_rfc5869_shape() {
        let mut long = vec![0u8; 255 * 64];
        kdf(&mut long, b"ikm", b"salt", b"info").unwrap();
        let mut too_long = vec![0u8; 255 * 64 + 1];
        assert!(matches!(
            kdf(&mut too_long, b"ikm", b"salt", b"info"),
            Err(Error::Kdf)
        ));
        // Prefix property of HKDF-Expand.
        let mut short = [0u8; 20];
        kdf(&mut short, b"ikm", b"salt", b"info").unwrap();
        assert_eq!(short[..], long[..20]);
        assert_eq!(unhex("00ff10"), [0, 255, 16]);
    }
}
