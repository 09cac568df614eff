//! APK Signature Scheme v2 and v3 blocks: parsing and verification.

use std::io::{Read, Seek};

use sha2::{Digest, Sha256, Sha512};

use crate::algorithm::SignatureAlgorithm;
use crate::block::{read_signing_block, SigningBlock, V2_BLOCK_ID, V3_BLOCK_ID};
use crate::bytes::ByteReader;
use crate::digest::digest_apk;
use crate::error::{Error, Result};
use crate::keys::{certificate_public_key_der, PublicKey};
use crate::zip::{check_central_directory, find_zip_sections, read_central_directory, ZipSections};

/// Additional attribute in v2 signed data telling which newer schemes also signed the APK
/// (`STRIPPING_PROTECTION_ATTR_ID`), value `u32 3` for v3.
pub const STRIPPING_PROTECTION_ATTR_ID: u32 = 0xbeef_f00d;

/// Which signature scheme block a signer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// APK Signature Scheme v2 (used only when there is no v3 block).
    V2,
    /// APK Signature Scheme v3.
    V3,
}

/// One signer record of a v2/v3 block, as read (nothing verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerRecord {
    /// The exact bytes the signatures cover.
    pub signed_data: Vec<u8>,
    /// v3 only: unsigned min SDK.
    pub min_sdk: Option<u32>,
    /// v3 only: unsigned max SDK.
    pub max_sdk: Option<u32>,
    /// `(algorithm, signature)` in record order.
    pub signatures: Vec<(SignatureAlgorithm, Vec<u8>)>,
    /// SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
}

/// The parsed `signed_data` of a signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    /// `(algorithm, content digest)` in record order.
    pub digests: Vec<(SignatureAlgorithm, Vec<u8>)>,
    /// X.509 DER certificates; the first one is the signer's.
    pub certificates: Vec<Vec<u8>>,
    /// v3 only: signed min SDK.
    pub min_sdk: Option<u32>,
    /// v3 only: signed max SDK.
    pub max_sdk: Option<u32>,
    /// `(id, value)` additional attributes.
    pub additional_attributes: Vec<(u32, Vec<u8>)>,
}

fn lp_seq<'a>(r: &mut ByteReader<'a>, what: &'static str) -> Result<Vec<&'a [u8]>> {
    let seq = r.lp().ok_or(Error::Malformed(what))?;
    let mut inner = ByteReader::new(seq);
    let mut out = Vec::new();
    while !inner.is_empty() {
        out.push(inner.lp().ok_or(Error::Malformed(what))?);
    }
    Ok(out)
}

fn id_and_lp(item: &[u8], what: &'static str) -> Result<(SignatureAlgorithm, Vec<u8>)> {
    let mut r = ByteReader::new(item);
    let id = r.u32().ok_or(Error::Malformed(what))?;
    let value = r.lp().ok_or(Error::Malformed(what))?;
    Ok((SignatureAlgorithm::from_id(id), value.to_vec()))
}

/// Parses the signers of a v2 or v3 block value.
pub fn parse_signers(block: &[u8], scheme: Scheme) -> Result<Vec<SignerRecord>> {
    let mut r = ByteReader::new(block);
    let signers = lp_seq(&mut r, "signers")?;
    let mut out = Vec::with_capacity(signers.len());
    for s in signers {
        let mut r = ByteReader::new(s);
        let signed_data = r.lp().ok_or(Error::Malformed("signed data"))?.to_vec();
        let (min_sdk, max_sdk) = match scheme {
            Scheme::V2 => (None, None),
            Scheme::V3 => (
                Some(r.u32().ok_or(Error::Malformed("min sdk"))?),
                Some(r.u32().ok_or(Error::Malformed("max sdk"))?),
            ),
        };
        let signatures = lp_seq(&mut r, "signatures")?
            .into_iter()
            .map(|s| id_and_lp(s, "signature"))
            .collect::<Result<Vec<_>>>()?;
        let public_key = r.lp().ok_or(Error::Malformed("public key"))?.to_vec();
        out.push(SignerRecord {
            signed_data,
            min_sdk,
            max_sdk,
            signatures,
            public_key,
        });
    }
    Ok(out)
}

impl SignedData {
    /// Parses signed data bytes.
    pub fn parse(bytes: &[u8], scheme: Scheme) -> Result<Self> {
        let mut r = ByteReader::new(bytes);
        let digests = lp_seq(&mut r, "digests")?
            .into_iter()
            .map(|d| id_and_lp(d, "digest"))
            .collect::<Result<Vec<_>>>()?;
        let certificates = lp_seq(&mut r, "certificates")?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>();
        let (min_sdk, max_sdk) = match scheme {
            Scheme::V2 => (None, None),
            Scheme::V3 => (
                Some(r.u32().ok_or(Error::Malformed("signed min sdk"))?),
                Some(r.u32().ok_or(Error::Malformed("signed max sdk"))?),
            ),
        };
        let additional_attributes = lp_seq(&mut r, "additional attributes")?
            .into_iter()
            .map(|a| {
                let mut r = ByteReader::new(a);
                let id = r.u32().ok_or(Error::Malformed("attribute"))?;
                Ok((id, r.remaining().to_vec()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            digests,
            certificates,
            min_sdk,
            max_sdk,
            additional_attributes,
        })
    }
}

/// What verification (or extraction) tells about the APK's signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo {
    /// The block the signer came from.
    pub scheme: Scheme,
    /// The strongest supported signature algorithm of the signer (the one verified, and the one
    /// whose content digest a v4 signature uses).
    pub algorithm: SignatureAlgorithm,
    /// The signed content digest for `algorithm` (the v4 `apk_digest`).
    pub content_digest: Vec<u8>,
    /// SubjectPublicKeyInfo DER of the signer (AOSP `get_public_key_der`).
    pub public_key_der: Vec<u8>,
    /// Certificates, DER; the first is the signer's.
    pub certificates: Vec<Vec<u8>>,
    /// Signed min SDK (0 for v2).
    pub min_sdk: u32,
    /// Signed max SDK (`u32::MAX` for v2).
    pub max_sdk: u32,
    /// Additional attributes of the signed data.
    pub additional_attributes: Vec<(u32, Vec<u8>)>,
}

impl SignerInfo {
    /// DER of the signer's certificate.
    pub fn first_certificate_der(&self) -> Result<&[u8]> {
        self.certificates
            .first()
            .map(Vec::as_slice)
            .ok_or(Error::NoCertificates)
    }

    /// SHA-512 of the first certificate: microdroid_manager's `cert_hash` (Android 15).
    pub fn certificate_sha512(&self) -> Result<[u8; 64]> {
        Ok(Sha512::digest(self.first_certificate_der()?).into())
    }

    /// SHA-256 of the first certificate (what `apksigner --print-certs` shows).
    pub fn certificate_sha256(&self) -> Result<[u8; 32]> {
        Ok(Sha256::digest(self.first_certificate_der()?).into())
    }
}

/// An APK opened for verification: sections located, signing block read.
#[derive(Debug)]
pub struct ApkSignature {
    /// ZIP sections.
    pub zip: ZipSections,
    /// The APK Signing Block.
    pub block: SigningBlock,
    /// The central directory bytes.
    pub central_directory: Vec<u8>,
}

impl ApkSignature {
    /// Locates the ZIP sections and the signing block of `src`, and checks the central
    /// directory (no ZIP64, every entry before the signing block).
    pub fn read<R: Read + Seek>(src: &mut R) -> Result<Self> {
        let zip = find_zip_sections(src)?;
        let block = read_signing_block(src, &zip)?;
        let central_directory = read_central_directory(src, &zip)?;
        check_central_directory(&central_directory, zip.entries, block.offset)?;
        Ok(Self {
            zip,
            block,
            central_directory,
        })
    }

    /// Picks the signer: the single v3 signer whose SDK range contains `sdk`, or, when there is
    /// no v3 block, the single v2 signer (AOSP does not fall back to v2; see the crate docs).
    pub fn select_signer(&self, sdk: u32) -> Result<(Scheme, SignerRecord)> {
        if let Some(v3) = self.block.find(V3_BLOCK_ID) {
            let signers = parse_signers(v3, Scheme::V3)?;
            if signers.is_empty() {
                return Err(Error::NoSigners);
            }
            let mut matching: Vec<SignerRecord> = signers
                .into_iter()
                .filter(|s| s.min_sdk.unwrap_or(0) <= sdk && sdk <= s.max_sdk.unwrap_or(u32::MAX))
                .collect();
            match matching.pop() {
                Some(s) if matching.is_empty() => Ok((Scheme::V3, s)),
                other => Err(Error::SignerCountForSdk {
                    sdk,
                    count: matching.len() + usize::from(other.is_some()),
                }),
            }
        } else if let Some(v2) = self.block.find(V2_BLOCK_ID) {
            let mut signers = parse_signers(v2, Scheme::V2)?;
            match signers.len() {
                0 => Err(Error::NoSigners),
                1 => Ok((Scheme::V2, signers.remove(0))),
                n => Err(Error::MultipleV2Signers(n)),
            }
        } else {
            Err(Error::NoSignatureSchemeBlock)
        }
    }

    /// Verifies the signer for `sdk` fully, reading the APK contents from `src`.
    pub fn verify<R: Read + Seek>(&self, src: &mut R, sdk: u32) -> Result<SignerInfo> {
        let (scheme, signer) = self.select_signer(sdk)?;
        let (alg, sig) = strongest(&signer)?;
        let key = PublicKey::from_spki_der(&signer.public_key)?;
        key.verify(alg, &signer.signed_data, sig)?;
        let signed = SignedData::parse(&signer.signed_data, scheme)?;
        if scheme == Scheme::V3
            && (signed.min_sdk, signed.max_sdk) != (signer.min_sdk, signer.max_sdk)
        {
            return Err(Error::SdkVersionMismatch);
        }
        if !signer
            .signatures
            .iter()
            .map(|s| s.0)
            .eq(signed.digests.iter().map(|d| d.0))
        {
            return Err(Error::AlgorithmListMismatch);
        }
        if scheme == Scheme::V2 && stripping_protected(&signed) {
            return Err(Error::V3Stripped);
        }
        let expected = signed
            .digests
            .iter()
            .find(|d| d.0 == alg)
            .map(|d| d.1.clone())
            .ok_or(Error::DigestNotFound(alg))?;
        let first = signed.certificates.first().ok_or(Error::NoCertificates)?;
        if certificate_public_key_der(first)? != signer.public_key {
            return Err(Error::PublicKeyMismatch);
        }
        let content_alg = alg
            .content_digest_algorithm()
            .ok_or(Error::NoSupportedSignature)?;
        let computed = digest_apk(
            content_alg,
            src,
            self.block.offset,
            &self.central_directory,
            &self.zip,
        )?;
        if computed != expected {
            return Err(Error::DigestMismatch(alg));
        }
        Ok(info(scheme, alg, expected, signer, signed))
    }

    /// Returns the signer for `sdk` **without verifying** signatures or digests (AOSP
    /// `extract_signed_data`, for when the root hash is already trusted).
    pub fn extract(&self, sdk: u32) -> Result<SignerInfo> {
        let (scheme, signer) = self.select_signer(sdk)?;
        let (alg, _) = strongest(&signer)?;
        let signed = SignedData::parse(&signer.signed_data, scheme)?;
        let digest = signed
            .digests
            .iter()
            .find(|d| d.0 == alg)
            .map(|d| d.1.clone())
            .ok_or(Error::DigestNotFound(alg))?;
        if signed.certificates.is_empty() {
            return Err(Error::NoCertificates);
        }
        Ok(info(scheme, alg, digest, signer, signed))
    }
}

fn stripping_protected(signed: &SignedData) -> bool {
    signed.additional_attributes.iter().any(|(id, v)| {
        *id == STRIPPING_PROTECTION_ATTR_ID && v.get(..4) == Some(&3u32.to_le_bytes()[..])
    })
}

fn info(
    scheme: Scheme,
    algorithm: SignatureAlgorithm,
    content_digest: Vec<u8>,
    signer: SignerRecord,
    signed: SignedData,
) -> SignerInfo {
    SignerInfo {
        scheme,
        algorithm,
        content_digest,
        public_key_der: signer.public_key,
        certificates: signed.certificates,
        min_sdk: signed.min_sdk.unwrap_or(0),
        max_sdk: signed.max_sdk.unwrap_or(u32::MAX),
        additional_attributes: signed.additional_attributes,
    }
}

/// The supported signature with the strongest content digest (first one on ties).
fn strongest(signer: &SignerRecord) -> Result<(SignatureAlgorithm, &[u8])> {
    let mut best: Option<(SignatureAlgorithm, &[u8])> = None;
    for (alg, sig) in &signer.signatures {
        if !alg.is_supported() {
            continue;
        }
        let better = match best {
            None => true,
            Some((b, _)) => alg.content_digest_algorithm() > b.content_digest_algorithm(),
        };
        if better {
            best = Some((*alg, sig.as_slice()));
        }
    }
    best.ok_or(Error::NoSupportedSignature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn stripping_protection_needs_the_id_and_the_value_3() {
        let signed = |attrs: Vec<(u32, Vec<u8>)>| SignedData {
            digests: vec![],
            certificates: vec![],
            min_sdk: None,
            max_sdk: None,
            additional_attributes: attrs,
        };
        let three = 3u32.to_le_bytes().to_vec();
        assert!(stripping_protected(&signed(vec![(
            STRIPPING_PROTECTION_ATTR_ID,
            three.clone()
        )])));
        assert!(!stripping_protected(&signed(vec![(
            STRIPPING_PROTECTION_ATTR_ID,
            2u32.to_le_bytes().to_vec()
        )])));
        assert!(!stripping_protected(&signed(vec![(1, three)])));
    }

    #[test]
    fn the_strongest_supported_signature_wins_in_any_order() {
        let record = |sigs: Vec<SignatureAlgorithm>| SignerRecord {
            signed_data: vec![],
            min_sdk: None,
            max_sdk: None,
            signatures: sigs
                .into_iter()
                .enumerate()
                .map(|(i, a)| (a, vec![i as u8]))
                .collect(),
            public_key: vec![],
        };
        use SignatureAlgorithm::{RsaPkcs1Sha256 as S256, RsaPkcs1Sha512 as S512};
        for order in [vec![S256, S512], vec![S512, S256]] {
            let r = record(order);
            assert_eq!(strongest(&r).unwrap().0, S512);
        }
        let r = record(vec![S256, S256]);
        // Of two equal ones, the first.
        assert_eq!(strongest(&r).unwrap(), (S256, &[0u8][..]));
    }

    #[test]
    fn certificate_digests() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let apk = std::fs::read(dir.join("testdata/signed-rsa.apk")).unwrap();
        let info = crate::verify(&mut std::io::Cursor::new(apk), 34).unwrap();
        let cert = std::fs::read(dir.join("testkeys/testkey.x509.der")).unwrap();
        assert_eq!(
            info.certificate_sha256().unwrap(),
            <[u8; 32]>::from(Sha256::digest(&cert))
        );
        assert_eq!(
            info.certificate_sha512().unwrap(),
            <[u8; 64]>::from(Sha512::digest(&cert))
        );
    }
}
