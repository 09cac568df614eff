//! Algorithms, the AVB public key encoding (`AvbRSAPublicKeyHeader` ‖ n ‖ rr), RSA PKCS#1 v1.5
//! signing and verification.

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha512};

use crate::util::Reader;
use crate::{Error, Result};

/// `AvbAlgorithmType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Algorithm {
    /// Unsigned.
    None = 0,
    /// SHA-256, RSA-2048 PKCS#1 v1.5.
    Sha256Rsa2048 = 1,
    /// SHA-256, RSA-4096 PKCS#1 v1.5 (what Microdroid uses).
    Sha256Rsa4096 = 2,
    /// SHA-256, RSA-8192 PKCS#1 v1.5.
    Sha256Rsa8192 = 3,
    /// SHA-512, RSA-2048 PKCS#1 v1.5.
    Sha512Rsa2048 = 4,
    /// SHA-512, RSA-4096 PKCS#1 v1.5.
    Sha512Rsa4096 = 5,
    /// SHA-512, RSA-8192 PKCS#1 v1.5.
    Sha512Rsa8192 = 6,
}

impl Algorithm {
    /// All algorithms, in numeric order.
    pub const ALL: [Algorithm; 7] = [
        Self::None,
        Self::Sha256Rsa2048,
        Self::Sha256Rsa4096,
        Self::Sha256Rsa8192,
        Self::Sha512Rsa2048,
        Self::Sha512Rsa4096,
        Self::Sha512Rsa8192,
    ];

    /// From the header's `algorithm_type`.
    pub fn from_u32(v: u32) -> Result<Self> {
        Self::ALL
            .get(v as usize)
            .copied()
            .ok_or(Error::UnsupportedAlgorithm(v))
    }

    /// avbtool's name, e.g. `SHA256_RSA4096`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Sha256Rsa2048 => "SHA256_RSA2048",
            Self::Sha256Rsa4096 => "SHA256_RSA4096",
            Self::Sha256Rsa8192 => "SHA256_RSA8192",
            Self::Sha512Rsa2048 => "SHA512_RSA2048",
            Self::Sha512Rsa4096 => "SHA512_RSA4096",
            Self::Sha512Rsa8192 => "SHA512_RSA8192",
        }
    }

    /// From avbtool's name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// RSA key size in bits (0 for NONE).
    pub fn key_bits(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Sha256Rsa2048 | Self::Sha512Rsa2048 => 2048,
            Self::Sha256Rsa4096 | Self::Sha512Rsa4096 => 4096,
            Self::Sha256Rsa8192 | Self::Sha512Rsa8192 => 8192,
        }
    }

    /// Hash size in bytes.
    pub fn hash_size(self) -> usize {
        match self {
            Self::None => 0,
            Self::Sha256Rsa2048 | Self::Sha256Rsa4096 | Self::Sha256Rsa8192 => 32,
            _ => 64,
        }
    }

    /// Signature size in bytes.
    pub fn signature_size(self) -> usize {
        self.key_bits() as usize / 8
    }

    /// Size of the AVB public key blob: 8 + 2·bits/8.
    pub fn public_key_size(self) -> usize {
        if self == Self::None {
            0
        } else {
            8 + 2 * self.signature_size()
        }
    }

    /// The SHA-256 algorithm for a key of `bits` bits.
    pub fn sha256_for_bits(bits: u32) -> Result<Self> {
        match bits {
            2048 => Ok(Self::Sha256Rsa2048),
            4096 => Ok(Self::Sha256Rsa4096),
            8192 => Ok(Self::Sha256Rsa8192),
            _ => Err(Error::PublicKeyInvalid(
                "key size is not 2048, 4096 or 8192 bits",
            )),
        }
    }

    /// Hash of the concatenated parts with this algorithm's hash (empty for NONE).
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        match self.hash_size() {
            32 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
            64 => {
                let mut h = Sha512::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
            _ => Vec::new(),
        }
    }

    fn padding(self) -> Pkcs1v15Sign {
        if self.hash_size() == 64 {
            Pkcs1v15Sign::new::<Sha512>()
        } else {
            Pkcs1v15Sign::new::<Sha256>()
        }
    }
}

/// An RSA public key (exponent 65537) as AVB uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: RsaPublicKey,
    num_bits: u32,
}

impl PublicKey {
    /// Wraps an RSA public key; AVB only allows exponent 65537.
    pub fn from_rsa(key: RsaPublicKey) -> Result<Self> {
        if key.e() != &BigUint::from(65537u32) {
            return Err(Error::PublicKeyInvalid("exponent is not 65537"));
        }
        let bits = key.n().bits();
        let num_bits = u32::try_from(bits.next_power_of_two())
            .map_err(|_| Error::PublicKeyInvalid("modulus too large"))?;
        Ok(Self { key, num_bits })
    }

    /// From a PEM public key: SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) or PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|e| Error::Key(e.to_string()))?;
        Self::from_rsa(key)
    }

    /// Decodes the AVB public key blob (`avbtool extract_public_key` output), checking that
    /// `n0inv` and `rr` match the modulus, as libavb relies on them.
    pub fn from_avb_bytes(blob: &[u8]) -> Result<Self> {
        let mut r = Reader::new(blob, "public key");
        let num_bits = r.u32()?;
        let n0inv = r.u32()?;
        if !matches!(num_bits, 2048 | 4096 | 8192) {
            return Err(Error::PublicKeyInvalid(
                "key size is not 2048, 4096 or 8192 bits",
            ));
        }
        let len = num_bits as usize / 8;
        let n_bytes = r.bytes(len)?;
        let rr_bytes = r.bytes(len)?;
        if blob.len() != 8 + 2 * len {
            return Err(Error::PublicKeyInvalid(
                "public key blob has trailing bytes",
            ));
        }
        let n = BigUint::from_bytes_be(n_bytes);
        if n.bits() != num_bits as usize {
            return Err(Error::PublicKeyInvalid(
                "modulus does not have the declared size",
            ));
        }
        let key =
            RsaPublicKey::new(n, BigUint::from(65537u32)).map_err(|e| Error::Key(e.to_string()))?;
        let pk = Self::from_rsa(key)?;
        if n0inv != pk.n0inv() {
            return Err(Error::PublicKeyInvalid("n0inv does not match the modulus"));
        }
        if rr_bytes != pk.rr_bytes().as_slice() {
            return Err(Error::PublicKeyInvalid("rr does not match the modulus"));
        }
        Ok(pk)
    }

    /// Encodes the AVB public key blob: `u32 num_bits ‖ u32 n0inv ‖ n ‖ rr` (big-endian),
    /// byte for byte what `avbtool extract_public_key` writes.
    pub fn to_avb_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 2 * self.num_bits as usize / 8);
        out.extend_from_slice(&self.num_bits.to_be_bytes());
        out.extend_from_slice(&self.n0inv().to_be_bytes());
        out.extend_from_slice(&be_padded(self.key.n(), self.num_bits));
        out.extend_from_slice(&self.rr_bytes());
        out
    }

    /// Key size in bits (the modulus size rounded up to a power of two, as avbtool does).
    pub fn num_bits(&self) -> u32 {
        self.num_bits
    }

    /// The RSA key.
    pub fn rsa(&self) -> &RsaPublicKey {
        &self.key
    }

    /// `-1 / n[0] mod 2^32`.
    pub fn n0inv(&self) -> u32 {
        let digits = self.key.n().to_bytes_le();
        let mut n0 = [0u8; 4];
        for (d, s) in n0.iter_mut().zip(digits.iter()) {
            *d = *s;
        }
        let n0 = u32::from_le_bytes(n0);
        // Newton iteration for the inverse modulo 2^32 (n is odd).
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        inv.wrapping_neg()
    }

    /// `rr = (2^bits)^2 mod n`, where bits is the modulus bit length (avbtool's definition).
    fn rr_bytes(&self) -> Vec<u8> {
        let n = self.key.n();
        let rr = (BigUint::from(1u32) << (2 * n.bits())) % n;
        be_padded(&rr, self.num_bits)
    }

    /// Verifies a PKCS#1 v1.5 signature over `data` with `algorithm`.
    pub fn verify(&self, algorithm: Algorithm, data: &[&[u8]], signature: &[u8]) -> Result<()> {
        if algorithm == Algorithm::None {
            return Err(Error::Unsigned);
        }
        if algorithm.key_bits() != self.num_bits {
            return Err(Error::PublicKeyInvalid(
                "key size does not match the algorithm",
            ));
        }
        if signature.len() != algorithm.signature_size() {
            return Err(Error::SignatureInvalid);
        }
        let hash = algorithm.digest(data);
        self.key
            .verify(algorithm.padding(), &hash, signature)
            .map_err(|_| Error::SignatureInvalid)
    }
}

/// An RSA private key for signing.
#[derive(Clone)]
pub struct SigningKey {
    key: RsaPrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("bits", &(self.key.size() * 8))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// From a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| Error::Key(e.to_string()))?;
        Ok(Self { key })
    }

    /// Reads a PEM private key file.
    pub fn from_pem_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_pem(&std::fs::read_to_string(path)?)
    }

    /// Wraps an RSA private key.
    pub fn from_rsa(key: RsaPrivateKey) -> Self {
        Self { key }
    }

    /// The public half.
    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_rsa(self.key.to_public_key())
    }

    /// `SHA256_RSA<bits>` for this key.
    pub fn sha256_algorithm(&self) -> Result<Algorithm> {
        Algorithm::sha256_for_bits(self.public_key()?.num_bits())
    }

    /// Signs `data` (hashes it with the algorithm's hash, PKCS#1 v1.5, deterministic).
    pub fn sign(&self, algorithm: Algorithm, data: &[&[u8]]) -> Result<Vec<u8>> {
        if algorithm == Algorithm::None {
            return Err(Error::Unsigned);
        }
        if algorithm.key_bits() != self.public_key()?.num_bits() {
            return Err(Error::PublicKeyInvalid(
                "key size does not match the algorithm",
            ));
        }
        let hash = algorithm.digest(data);
        // Blinding uses the RNG; the PKCS#1 v1.5 signature itself is deterministic.
        let sig = self
            .key
            .sign_with_rng(&mut rand_core::OsRng, algorithm.padding(), &hash)
            .map_err(|e| Error::Key(e.to_string()))?;
        if sig.len() != algorithm.signature_size() {
            return Err(Error::Key("signature has an unexpected length".into()));
        }
        Ok(sig)
    }
}

/// Big-endian bytes of `v`, left-padded with zeros to `bits/8` bytes.
fn be_padded(v: &BigUint, bits: u32) -> Vec<u8> {
    let len = bits as usize / 8;
    let raw = v.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(raw.len())];
    out.extend_from_slice(raw.get(raw.len().saturating_sub(len)..).unwrap_or_default());
    out
}
