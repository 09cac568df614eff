//! APK Signature Scheme v2/v3: APK Signing Block parsing, verification and signing, in pure
//! Rust (RustCrypto; no OpenSSL), for a static guest binary and for host tools.
//!
//! # Verification (guest)
//!
//! ```no_run
//! # fn main() -> Result<(), apksig::Error> {
//! let mut apk = std::fs::File::open("/dev/block/mapper/microdroid-apk")?;
//! let signer = apksig::verify(&mut apk, 35)?;
//! let cert_hash = signer.certificate_sha512()?; // microdroid_manager's cert_hash
//! let public_key = &signer.public_key_der;      // AOSP get_public_key_der
//! # let _ = (cert_hash, public_key); Ok(()) }
//! ```
//!
//! The source only needs `Read + Seek`. The end of the ZIP is found by scanning for the EOCD
//! record, and zero bytes after it (a block device rounded up to 4 KiB) are tolerated; see
//! [`zip`].
//!
//! ## Which signature is checked
//!
//! - If a **v3** block exists, exactly one of its signers must cover `sdk` (AOSP behaviour).
//! - If there is **no v3 block but a v2 block**, its single signer is verified. AOSP's
//!   `apkverify` does not fall back to v2 (b/197052981); this crate does. A v2 signature whose
//!   stripping-protection attribute says a v3 signature was made is rejected
//!   ([`Error::V3Stripped`]), so removing the v3 block from a v2+v3 APK does not downgrade it.
//! - Of the signer's signatures, the supported one with the strongest content digest is
//!   verified (SHA-512 over SHA-256). DSA and the verity (0x042x) variants are ignored.
//! - v3.1 blocks, source stamps and proof-of-rotation are not interpreted.
//!
//! Checks, in order: sections and central directory (no ZIP64, every local header before the
//! signing block), signing block framing, signer selection, signature over signed data, signed
//! vs unsigned SDK range (v3), algorithm lists of signatures vs digests, certificate public key
//! vs signer public key, and last the content digest over the whole APK.
//!
//! # Signing (host)
//!
//! ```no_run
//! # fn main() -> Result<(), apksig::Error> {
//! use apksig::sign::{sign, SigningConfig};
//! let config = SigningConfig::from_files("key.pk8".as_ref(), "cert.pem".as_ref())?;
//! let unsigned = ziparchive::write::build_zip(&[
//!     ziparchive::write::ZipEntry::new("assets/vm_config.json", br#"{"task":{}}"#.to_vec()),
//! ])?;
//! std::fs::write("signed.apk", sign(&unsigned, &config)?)?;
//! # Ok(()) }
//! ```

pub mod algorithm;
pub mod block;
pub mod bytes;
pub mod digest;
pub mod error;
pub mod keys;
pub mod scheme;
pub mod sign;
pub mod zip;

use std::io::{Read, Seek};

pub use algorithm::{ContentDigestAlgorithm, SignatureAlgorithm};
pub use error::{Error, Result};
pub use scheme::{ApkSignature, Scheme, SignerInfo};

/// Fully verifies the APK for platform SDK `sdk` and returns its signer.
pub fn verify<R: Read + Seek>(apk: &mut R, sdk: u32) -> Result<SignerInfo> {
    let sig = ApkSignature::read(apk)?;
    sig.verify(apk, sdk)
}

/// [`verify`] on a file path.
pub fn verify_path<P: AsRef<std::path::Path>>(path: P, sdk: u32) -> Result<SignerInfo> {
    verify(&mut std::fs::File::open(path)?, sdk)
}

/// Returns the signer for `sdk` **without verifying** it (AOSP `extract_signed_data`): only
/// for when the APK content is already trusted, e.g. its dm-verity root hash was sealed.
pub fn extract_signer<R: Read + Seek>(apk: &mut R, sdk: u32) -> Result<SignerInfo> {
    ApkSignature::read(apk)?.extract(sdk)
}

/// SubjectPublicKeyInfo DER of the signer for `sdk`, unverified (AOSP `get_public_key_der`).
pub fn get_public_key_der<R: Read + Seek>(apk: &mut R, sdk: u32) -> Result<Vec<u8>> {
    Ok(extract_signer(apk, sdk)?.public_key_der)
}

/// The v4 `apk_digest` of an APK: the algorithm of the strongest supported signature and its
/// signed content digest (AOSP `get_apk_digest`). With `verify`, the digest is also recomputed
/// over the APK and compared.
pub fn v4_apk_digest<R: Read + Seek>(
    apk: &mut R,
    sdk: u32,
    verify: bool,
) -> Result<(SignatureAlgorithm, Vec<u8>)> {
    let sig = ApkSignature::read(apk)?;
    let signer = sig.extract(sdk)?;
    if verify {
        let alg = signer
            .algorithm
            .content_digest_algorithm()
            .ok_or(Error::NoSupportedSignature)?;
        let computed =
            digest::digest_apk(alg, apk, sig.block.offset, &sig.central_directory, &sig.zip)?;
        if computed != signer.content_digest {
            return Err(Error::DigestMismatch(signer.algorithm));
        }
    }
    Ok((signer.algorithm, signer.content_digest))
}

/// Entry point for fuzzing and the corpus tests: parse everything that can be parsed from
/// untrusted bytes, and verify with SDK 33. Must never panic.
pub fn fuzz_entry(data: &[u8]) {
    let mut c = std::io::Cursor::new(data);
    if let Ok(sig) = ApkSignature::read(&mut c) {
        for (id, value) in &sig.block.pairs {
            for scheme in [Scheme::V2, Scheme::V3] {
                if let Ok(signers) = scheme::parse_signers(value, scheme) {
                    for s in signers {
                        let _ = scheme::SignedData::parse(&s.signed_data, scheme);
                        let _ = keys::PublicKey::from_spki_der(&s.public_key);
                    }
                }
            }
            let _ = id;
        }
        let _ = sig.extract(33);
        let _ = sig.verify(&mut c, 33);
    }
    let _ = block::parse_signing_block(data, 0);
}
