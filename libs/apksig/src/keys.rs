//! Public keys (verification) and private keys (signing): RSA and ECDSA P-256, pure Rust.

use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::signature::{DigestSigner, DigestVerifier};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::pss::Pss;
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha512};

use crate::algorithm::SignatureAlgorithm;
use crate::error::{Error, Result};

const RSA_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// A signer's public key, decoded from its SubjectPublicKeyInfo DER.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// RSA.
    Rsa(RsaPublicKey),
    /// ECDSA on NIST P-256.
    EcP256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Decodes SubjectPublicKeyInfo DER (the v2/v3 `public_key` field).
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki =
            spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| Error::InvalidPublicKey)?;
        if spki.algorithm.oid == RSA_OID {
            RsaPublicKey::from_public_key_der(der)
                .map(Self::Rsa)
                .map_err(|_| Error::InvalidPublicKey)
        } else if spki.algorithm.oid == EC_OID {
            p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(Self::EcP256)
                .map_err(|_| Error::InvalidPublicKey)
        } else {
            Err(Error::InvalidPublicKey)
        }
    }

    /// Verifies `sig` over `msg` with `alg`.
    pub fn verify(&self, alg: SignatureAlgorithm, msg: &[u8], sig: &[u8]) -> Result<()> {
        let bad = || Error::SignatureInvalid(alg);
        match (self, alg) {
            (Self::Rsa(k), SignatureAlgorithm::RsaPkcs1Sha256) => k
                .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
                .map_err(|_| bad()),
            (Self::Rsa(k), SignatureAlgorithm::RsaPkcs1Sha512) => k
                .verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg), sig)
                .map_err(|_| bad()),
            (Self::Rsa(k), SignatureAlgorithm::RsaPssSha256) => k
                .verify(Pss::new_with_salt::<Sha256>(32), &Sha256::digest(msg), sig)
                .map_err(|_| bad()),
            (Self::Rsa(k), SignatureAlgorithm::RsaPssSha512) => k
                .verify(Pss::new_with_salt::<Sha512>(64), &Sha512::digest(msg), sig)
                .map_err(|_| bad()),
            (Self::EcP256(k), SignatureAlgorithm::EcdsaSha256) => {
                let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
                k.verify_digest(Sha256::new_with_prefix(msg), &s)
                    .map_err(|_| bad())
            }
            (Self::EcP256(k), SignatureAlgorithm::EcdsaSha512) => {
                let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?;
                k.verify_prehash(&Sha512::digest(msg), &s)
                    .map_err(|_| bad())
            }
            _ => Err(Error::KeyAlgorithmMismatch(alg)),
        }
    }
}

/// A private signing key: RSA or ECDSA P-256, loaded from PKCS#8 (the `.pk8` apksigner takes).
#[derive(Clone)]
pub enum PrivateKey {
    /// RSA.
    Rsa(Box<RsaPrivateKey>),
    /// ECDSA on NIST P-256.
    EcP256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsa(k) => write!(f, "PrivateKey::Rsa({} bits)", k.size() * 8),
            Self::EcP256(_) => write!(f, "PrivateKey::EcP256"),
        }
    }
}

impl PrivateKey {
    /// Decodes an unencrypted PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|_| Error::InvalidPrivateKey)?;
        if info.algorithm.oid == RSA_OID {
            RsaPrivateKey::from_pkcs8_der(der)
                .map(|k| Self::Rsa(Box::new(k)))
                .map_err(|_| Error::InvalidPrivateKey)
        } else if info.algorithm.oid == EC_OID {
            p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(Self::EcP256)
                .map_err(|_| Error::InvalidPrivateKey)
        } else {
            Err(Error::InvalidPrivateKey)
        }
    }

    /// Decodes an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let (label, doc) =
            pkcs8::SecretDocument::from_pem(pem).map_err(|_| Error::InvalidPrivateKey)?;
        if label != "PRIVATE KEY" {
            return Err(Error::InvalidPrivateKey);
        }
        Self::from_pkcs8_der(doc.as_bytes())
    }

    /// Decodes PKCS#8 given either as DER or as PEM text.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self> {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN") => Self::from_pkcs8_pem(text),
            _ => Self::from_pkcs8_der(bytes),
        }
    }

    /// SubjectPublicKeyInfo DER of the matching public key.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        use rsa::pkcs8::EncodePublicKey;
        let doc = match self {
            Self::Rsa(k) => k.to_public_key().to_public_key_der(),
            Self::EcP256(k) => k.verifying_key().to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec())
            .map_err(|_| Error::InvalidPrivateKey)
    }

    /// The algorithm apksigner picks for this key: RSA PKCS#1 v1.5 with SHA-256 up to 3072 bits
    /// (SHA-512 above), ECDSA with SHA-256 for P-256.
    pub fn default_algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::Rsa(k) if k.size() * 8 <= 3072 => SignatureAlgorithm::RsaPkcs1Sha256,
            Self::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha512,
            Self::EcP256(_) => SignatureAlgorithm::EcdsaSha256,
        }
    }

    /// Signs `msg` with `alg`. PKCS#1 v1.5 and ECDSA (RFC 6979) are deterministic; PSS uses the
    /// OS random generator for its salt.
    pub fn sign(&self, alg: SignatureAlgorithm, msg: &[u8]) -> Result<Vec<u8>> {
        let mut rng = rand_core::OsRng;
        let failed = |_| Error::SigningFailed;
        match (self, alg) {
            (Self::Rsa(k), SignatureAlgorithm::RsaPkcs1Sha256) => k
                .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg))
                .map_err(failed),
            (Self::Rsa(k), SignatureAlgorithm::RsaPkcs1Sha512) => k
                .sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg))
                .map_err(failed),
            (Self::Rsa(k), SignatureAlgorithm::RsaPssSha256) => k
                .sign_with_rng(
                    &mut rng,
                    Pss::new_with_salt::<Sha256>(32),
                    &Sha256::digest(msg),
                )
                .map_err(failed),
            (Self::Rsa(k), SignatureAlgorithm::RsaPssSha512) => k
                .sign_with_rng(
                    &mut rng,
                    Pss::new_with_salt::<Sha512>(64),
                    &Sha512::digest(msg),
                )
                .map_err(failed),
            (Self::EcP256(k), SignatureAlgorithm::EcdsaSha256) => {
                let s: p256::ecdsa::Signature = k.sign_digest(Sha256::new_with_prefix(msg));
                Ok(s.to_der().as_bytes().to_vec())
            }
            (Self::EcP256(k), SignatureAlgorithm::EcdsaSha512) => {
                let s: p256::ecdsa::Signature = k
                    .sign_prehash(&Sha512::digest(msg))
                    .map_err(|_| Error::SigningFailed)?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            _ => Err(Error::KeyAlgorithmMismatch(alg)),
        }
    }
}

/// The SubjectPublicKeyInfo DER of an X.509 certificate.
pub fn certificate_public_key_der(cert_der: &[u8]) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(|_| Error::InvalidCertificate)?;
    cert.tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| Error::InvalidCertificate)
}

/// Decodes a certificate given as DER or PEM (`-----BEGIN CERTIFICATE-----`) into DER.
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>> {
    use der::DecodePem;
    let cert = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => x509_cert::Certificate::from_pem(text),
        _ => x509_cert::Certificate::from_der(bytes),
    }
    .map_err(|_| Error::InvalidCertificate)?;
    cert.to_der().map_err(|_| Error::InvalidCertificate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn testkey(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testkeys")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn keys_from_pem_or_der_and_their_default_algorithms() {
        let from_der = PrivateKey::from_pkcs8(&testkey("testkey.pk8")).unwrap();
        let from_pem = PrivateKey::from_pkcs8(&testkey("testkey.pem")).unwrap();
        assert_eq!(
            from_der.public_key_der().unwrap(),
            from_pem.public_key_der().unwrap()
        );
        assert_eq!(format!("{from_der:?}"), "PrivateKey::Rsa(2048 bits)");
        assert_eq!(
            from_der.default_algorithm(),
            SignatureAlgorithm::RsaPkcs1Sha256
        );
        let ec = PrivateKey::from_pkcs8(&testkey("testkey_ec.pem")).unwrap();
        assert_eq!(format!("{ec:?}"), "PrivateKey::EcP256");
        assert_eq!(ec.default_algorithm(), SignatureAlgorithm::EcdsaSha256);
        // Larger than 3072 bits: SHA-512 (avb's 4096-bit test key, as PKCS#8 by openssl).
        let out = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../avb/testkeys/testkey_rsa4096.pem"),
            )
            .output()
            .unwrap();
        assert!(out.status.success());
        let big = PrivateKey::from_pkcs8(&out.stdout).unwrap();
        assert_eq!(big.default_algorithm(), SignatureAlgorithm::RsaPkcs1Sha512);
        // A PEM whose label is not PRIVATE KEY.
        let relabelled = String::from_utf8(testkey("testkey.pem"))
            .unwrap()
            .replace("PRIVATE KEY", "SECRET KEY");
        assert!(matches!(
            PrivateKey::from_pkcs8_pem(&relabelled),
            Err(Error::InvalidPrivateKey)
        ));
    }

    #[test]
    fn certificates_from_pem_or_der() {
        let der = testkey("testkey.x509.der");
        assert_eq!(certificate_der(&testkey("testkey.x509.pem")).unwrap(), der);
        assert_eq!(certificate_der(&der).unwrap(), der);
        assert!(matches!(
            certificate_der(b"nope"),
            Err(Error::InvalidCertificate)
        ));
    }
}
