//! Signing: APK Signature Scheme v2 + v3, laid out the way `apksigner sign` lays them out.
//!
//! Output layout: `ZIP entries ‖ zero padding to 4096 ‖ APK Signing Block (v2 pair, v3 pair,
//! verity padding pair; 4096-multiple) ‖ central directory ‖ EOCD (CD offset updated)`.
//! With an RSA key (PKCS#1 v1.5, deterministic) the output is byte-identical to apksigner's
//! for the same input, key, certificate and `--min-sdk-version` (tested).
//!
//! Stored entries are not realigned: run the input through `ziparchive::write` or zipalign first
//! if alignment matters (apksigner does not realign either when given `--alignment-preserved`).

use crate::algorithm::SignatureAlgorithm;
use crate::block::{build_signing_block, parse_signing_block, MAGIC, V2_BLOCK_ID, V3_BLOCK_ID};
use crate::bytes::{put_lp, put_u32};
use crate::digest::{digest_sections, Section};
use crate::error::{Error, Result};
use crate::keys::{certificate_public_key_der, PrivateKey};
use crate::scheme::STRIPPING_PROTECTION_ATTR_ID;
use crate::zip::{check_central_directory, eocd_with_cd_offset, find_zip_sections};

/// Default v3 min SDK: apksigner 31 writes 24 (Android N) whatever `--min-sdk-version` is.
pub const V3_DEFAULT_MIN_SDK: u32 = 24;
/// Default v3 max SDK: `Integer.MAX_VALUE`, as apksigner writes.
pub const V3_DEFAULT_MAX_SDK: u32 = 0x7fff_ffff;
/// Alignment of the signing block start.
pub const SIGNING_BLOCK_ALIGNMENT: u64 = 4096;

/// What to sign with.
#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// The private key.
    pub key: PrivateKey,
    /// Certificate chain, DER; the first certificate must carry the key's public key.
    pub certificates: Vec<Vec<u8>>,
    /// Signature algorithm; `None` picks apksigner's default for the key.
    pub algorithm: Option<SignatureAlgorithm>,
    /// Write a v2 block.
    pub v2: bool,
    /// Write a v3 block.
    pub v3: bool,
    /// v3 signer min SDK.
    pub v3_min_sdk: u32,
    /// v3 signer max SDK.
    pub v3_max_sdk: u32,
}

impl SigningConfig {
    /// v2 + v3 with apksigner's defaults.
    pub fn new(key: PrivateKey, certificate_der: Vec<u8>) -> Self {
        Self {
            key,
            certificates: vec![certificate_der],
            algorithm: None,
            v2: true,
            v3: true,
            v3_min_sdk: V3_DEFAULT_MIN_SDK,
            v3_max_sdk: V3_DEFAULT_MAX_SDK,
        }
    }

    /// Loads a PKCS#8 key (DER or PEM) and an X.509 certificate (DER or PEM) from files.
    pub fn from_files(key: &std::path::Path, cert: &std::path::Path) -> Result<Self> {
        let key = PrivateKey::from_pkcs8(&std::fs::read(key)?)?;
        let cert = crate::keys::certificate_der(&std::fs::read(cert)?)?;
        Ok(Self::new(key, cert))
    }
}

/// Signs a ZIP (an existing signing block is replaced) and returns the signed APK.
pub fn sign(zip: &[u8], config: &SigningConfig) -> Result<Vec<u8>> {
    let first = config.certificates.first().ok_or(Error::NoCertificates)?;
    if certificate_public_key_der(first)? != config.key.public_key_der()? {
        return Err(Error::PublicKeyMismatch);
    }
    sign_inner(zip, config, true)
}

/// [`sign`] without checking that the certificate matches the key or that the central
/// directory is sound. Only for building bad test inputs.
#[doc(hidden)]
pub fn sign_unchecked(zip: &[u8], config: &SigningConfig) -> Result<Vec<u8>> {
    sign_inner(zip, config, false)
}

fn sign_inner(zip: &[u8], config: &SigningConfig, check: bool) -> Result<Vec<u8>> {
    let mut cursor = std::io::Cursor::new(zip);
    let z = find_zip_sections(&mut cursor)?;
    let cd_start = usize::try_from(z.cd_offset).map_err(|_| Error::Overflow("cd offset"))?;
    let cd_end = usize::try_from(z.eocd_offset).map_err(|_| Error::Overflow("eocd offset"))?;
    let cd = zip
        .get(cd_start..cd_end)
        .ok_or(Error::Zip(ziparchive::ZipError::NoEndOfCentralDirectory))?;
    // Drop an existing signing block.
    let mut entries_end = cd_start;
    if cd_start >= 32 && zip.get(cd_start - 16..cd_start) == Some(&MAGIC[..]) {
        let mut size = [0u8; 8];
        size.copy_from_slice(&zip[cd_start - 24..cd_start - 16]);
        let total = u64::from_le_bytes(size)
            .checked_add(8)
            .ok_or(Error::InvalidSigningBlockSize(0))?;
        let start = usize::try_from(total)
            .ok()
            .and_then(|t| cd_start.checked_sub(t))
            .ok_or(Error::InvalidSigningBlockSize(total))?;
        parse_signing_block(&zip[start..cd_start], start as u64)?;
        entries_end = start;
    }
    if check {
        check_central_directory(cd, z.entries, entries_end as u64)?;
    }
    let entries = &zip[..entries_end];
    let pad = (SIGNING_BLOCK_ALIGNMENT - entries.len() as u64 % SIGNING_BLOCK_ALIGNMENT)
        % SIGNING_BLOCK_ALIGNMENT;
    let mut out = Vec::with_capacity(zip.len() + 8192);
    out.extend_from_slice(entries);
    out.resize(entries.len() + pad as usize, 0);
    let block_offset = u32::try_from(out.len()).map_err(|_| Error::Zip64Unsupported)?;

    let alg = config
        .algorithm
        .unwrap_or_else(|| config.key.default_algorithm());
    if !alg.is_supported() {
        return Err(Error::NoSupportedSignature);
    }
    let content_alg = alg
        .content_digest_algorithm()
        .ok_or(Error::NoSupportedSignature)?;
    let digest = {
        let eocd = eocd_with_cd_offset(&z.eocd, block_offset)?;
        let (mut a, mut b, mut c) = (out.as_slice(), cd, eocd.as_slice());
        digest_sections(
            content_alg,
            &mut [
                Section {
                    len: a.len() as u64,
                    reader: &mut a,
                },
                Section {
                    len: b.len() as u64,
                    reader: &mut b,
                },
                Section {
                    len: c.len() as u64,
                    reader: &mut c,
                },
            ],
        )?
    };

    let mut pairs = Vec::new();
    if config.v2 {
        let attrs: Vec<(u32, Vec<u8>)> = if config.v3 {
            vec![(STRIPPING_PROTECTION_ATTR_ID, 3u32.to_le_bytes().to_vec())]
        } else {
            Vec::new()
        };
        pairs.push((
            V2_BLOCK_ID,
            scheme_block(config, alg, &digest, None, &attrs)?,
        ));
    }
    if config.v3 {
        let sdk = Some((config.v3_min_sdk, config.v3_max_sdk));
        pairs.push((V3_BLOCK_ID, scheme_block(config, alg, &digest, sdk, &[])?));
    }
    if pairs.is_empty() {
        return Err(Error::NoSignatureSchemeBlock);
    }
    let block = build_signing_block(&pairs)?;
    let new_cd_offset =
        u32::try_from(out.len() + block.len()).map_err(|_| Error::Zip64Unsupported)?;
    out.extend_from_slice(&block);
    out.extend_from_slice(cd);
    out.extend_from_slice(&eocd_with_cd_offset(&z.eocd, new_cd_offset)?);
    Ok(out)
}

fn overflow() -> Error {
    Error::Overflow("field larger than 4 GiB")
}

/// One v2/v3 scheme block value with a single signer.
fn scheme_block(
    config: &SigningConfig,
    alg: SignatureAlgorithm,
    digest: &[u8],
    sdk: Option<(u32, u32)>,
    attrs: &[(u32, Vec<u8>)],
) -> Result<Vec<u8>> {
    // signed data
    let mut digests = Vec::new();
    let mut d = Vec::new();
    put_u32(&mut d, alg.id());
    put_lp(&mut d, digest).ok_or_else(overflow)?;
    put_lp(&mut digests, &d).ok_or_else(overflow)?;
    let mut certs = Vec::new();
    for c in &config.certificates {
        put_lp(&mut certs, c).ok_or_else(overflow)?;
    }
    let mut attributes = Vec::new();
    for (id, value) in attrs {
        let mut a = Vec::new();
        put_u32(&mut a, *id);
        a.extend_from_slice(value);
        put_lp(&mut attributes, &a).ok_or_else(overflow)?;
    }
    let mut signed = Vec::new();
    put_lp(&mut signed, &digests).ok_or_else(overflow)?;
    put_lp(&mut signed, &certs).ok_or_else(overflow)?;
    if let Some((min, max)) = sdk {
        put_u32(&mut signed, min);
        put_u32(&mut signed, max);
    }
    put_lp(&mut signed, &attributes).ok_or_else(overflow)?;
    if sdk.is_none() {
        // apksigner's v2 signed data ends with an extra empty length-prefixed element
        // (`V2SchemeSigner`: `..., additionalAttributes, new byte[0]`).
        put_u32(&mut signed, 0);
    }

    // signatures
    let signature = config.key.sign(alg, &signed)?;
    let mut s = Vec::new();
    put_u32(&mut s, alg.id());
    put_lp(&mut s, &signature).ok_or_else(overflow)?;
    let mut signatures = Vec::new();
    put_lp(&mut signatures, &s).ok_or_else(overflow)?;

    // signer
    let mut signer = Vec::new();
    put_lp(&mut signer, &signed).ok_or_else(overflow)?;
    if let Some((min, max)) = sdk {
        put_u32(&mut signer, min);
        put_u32(&mut signer, max);
    }
    put_lp(&mut signer, &signatures).ok_or_else(overflow)?;
    put_lp(&mut signer, &config.key.public_key_der()?).ok_or_else(overflow)?;

    let mut signers = Vec::new();
    put_lp(&mut signers, &signer).ok_or_else(overflow)?;
    let mut value = Vec::new();
    put_lp(&mut value, &signers).ok_or_else(overflow)?;
    Ok(value)
}
