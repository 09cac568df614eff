//! The vbmeta image: header (256) ‖ authentication block ‖ auxiliary block.

use sha2::{Digest, Sha256};

use crate::descriptor::{
    encode_descriptors, parse_descriptors, Descriptor, HashtreeDescriptor,
    HASHTREE_FLAG_CHECK_AT_MOST_ONCE, HASHTREE_FLAG_DO_NOT_USE_AB,
};
use crate::key::{Algorithm, PublicKey, SigningKey};
use crate::util::{c_string, round_up, slice, Reader};
use crate::{Error, Result};

/// `AVB0`.
pub const VBMETA_MAGIC: [u8; 4] = *b"AVB0";
/// Size of `AvbVBMetaImageHeader`.
pub const HEADER_SIZE: usize = 256;
/// The libavb major version we implement.
pub const LIBAVB_VERSION_MAJOR: u32 = 1;
/// The highest `required_libavb_version_minor` we accept (AVB 1.3).
pub const LIBAVB_VERSION_MINOR_MAX: u32 = 3;
/// avbtool's release string for AVB 1.3.0, the version the reference images were built with.
pub const DEFAULT_RELEASE_STRING: &str = "avbtool 1.3.0";
/// Largest vbmeta image libavb reads (`VBMETA_MAX_SIZE`).
pub const VBMETA_MAX_SIZE: u64 = 64 * 1024;
/// Header flag: dm-verity disabled.
pub const FLAG_HASHTREE_DISABLED: u32 = 1;
/// Header flag: verification disabled.
pub const FLAG_VERIFICATION_DISABLED: u32 = 2;

/// `AvbVBMetaImageHeader` (big-endian on disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbmetaHeader {
    /// Required libavb major version (1).
    pub required_libavb_version_major: u32,
    /// Required libavb minor version.
    pub required_libavb_version_minor: u32,
    /// Size of the authentication block (multiple of 64).
    pub authentication_data_block_size: u64,
    /// Size of the auxiliary block (multiple of 64).
    pub auxiliary_data_block_size: u64,
    /// Signature algorithm.
    pub algorithm: Algorithm,
    /// Hash offset in the authentication block.
    pub hash_offset: u64,
    /// Hash size.
    pub hash_size: u64,
    /// Signature offset in the authentication block.
    pub signature_offset: u64,
    /// Signature size.
    pub signature_size: u64,
    /// Public key offset in the auxiliary block.
    pub public_key_offset: u64,
    /// Public key size.
    pub public_key_size: u64,
    /// Public key metadata offset in the auxiliary block.
    pub public_key_metadata_offset: u64,
    /// Public key metadata size.
    pub public_key_metadata_size: u64,
    /// Descriptors offset in the auxiliary block.
    pub descriptors_offset: u64,
    /// Descriptors size.
    pub descriptors_size: u64,
    /// Rollback index.
    pub rollback_index: u64,
    /// Flags (`FLAG_*`).
    pub flags: u32,
    /// Rollback index location.
    pub rollback_index_location: u32,
    /// Release string (at most 47 bytes).
    pub release_string: String,
}

impl VbmetaHeader {
    /// Parses and checks the header the way `avb_vbmeta_image_verify` does, against the
    /// length of the buffer holding the whole image.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "vbmeta header");
        let magic: [u8; 4] = r.array()?;
        if magic != VBMETA_MAGIC {
            return Err(Error::BadMagic {
                what: "vbmeta header",
            });
        }
        let major = r.u32()?;
        let minor = r.u32()?;
        // Reading the rest first reports a truncated header as Truncated.
        let auth = r.u64()?;
        let aux = r.u64()?;
        let algorithm_type = r.u32()?;
        let mut f = [0u64; 10];
        for v in f.iter_mut() {
            *v = r.u64()?;
        }
        let rollback_index = r.u64()?;
        let flags = r.u32()?;
        let rollback_index_location = r.u32()?;
        let release_string = c_string(r.bytes(48)?);
        r.skip(80)?;
        if major != LIBAVB_VERSION_MAJOR || minor > LIBAVB_VERSION_MINOR_MAX {
            return Err(Error::UnsupportedVersion {
                what: "vbmeta",
                major,
                minor,
            });
        }
        if auth % 64 != 0 || aux % 64 != 0 {
            return Err(Error::InvalidHeader("block sizes are not multiples of 64"));
        }
        let total = (HEADER_SIZE as u64)
            .checked_add(auth)
            .and_then(|v| v.checked_add(aux))
            .ok_or(Error::SizeOutOfRange("vbmeta block sizes"))?;
        if total > buf.len() as u64 {
            return Err(Error::Truncated {
                what: "vbmeta image",
                needed: total,
                available: buf.len() as u64,
            });
        }
        let algorithm = Algorithm::from_u32(algorithm_type)?;
        let [hash_offset, hash_size, signature_offset, signature_size, public_key_offset, public_key_size, public_key_metadata_offset, public_key_metadata_size, descriptors_offset, descriptors_size] =
            f;
        within(
            hash_offset,
            hash_size,
            auth,
            "hash is outside the authentication block",
        )?;
        within(
            signature_offset,
            signature_size,
            auth,
            "signature is outside the authentication block",
        )?;
        within(
            public_key_offset,
            public_key_size,
            aux,
            "public key is outside the auxiliary block",
        )?;
        within(
            public_key_metadata_offset,
            public_key_metadata_size,
            aux,
            "public key metadata is outside the auxiliary block",
        )?;
        within(
            descriptors_offset,
            descriptors_size,
            aux,
            "descriptors are outside the auxiliary block",
        )?;
        if algorithm != Algorithm::None {
            if hash_size != algorithm.hash_size() as u64 {
                return Err(Error::InvalidHeader(
                    "hash size does not match the algorithm",
                ));
            }
            if signature_size != algorithm.signature_size() as u64 {
                return Err(Error::InvalidHeader(
                    "signature size does not match the algorithm",
                ));
            }
            if public_key_size != algorithm.public_key_size() as u64 {
                return Err(Error::InvalidHeader(
                    "public key size does not match the algorithm",
                ));
            }
        }
        Ok(Self {
            required_libavb_version_major: major,
            required_libavb_version_minor: minor,
            authentication_data_block_size: auth,
            auxiliary_data_block_size: aux,
            algorithm,
            hash_offset,
            hash_size,
            signature_offset,
            signature_size,
            public_key_offset,
            public_key_size,
            public_key_metadata_offset,
            public_key_metadata_size,
            descriptors_offset,
            descriptors_size,
            rollback_index,
            flags,
            rollback_index_location,
            release_string,
        })
    }

    /// Encodes the 256-byte header.
    pub fn encode(&self) -> Result<[u8; HEADER_SIZE]> {
        let mut out = [0u8; HEADER_SIZE];
        let mut v = Vec::with_capacity(HEADER_SIZE);
        v.extend_from_slice(&VBMETA_MAGIC);
        v.extend_from_slice(&self.required_libavb_version_major.to_be_bytes());
        v.extend_from_slice(&self.required_libavb_version_minor.to_be_bytes());
        v.extend_from_slice(&self.authentication_data_block_size.to_be_bytes());
        v.extend_from_slice(&self.auxiliary_data_block_size.to_be_bytes());
        v.extend_from_slice(&(self.algorithm as u32).to_be_bytes());
        for x in [
            self.hash_offset,
            self.hash_size,
            self.signature_offset,
            self.signature_size,
            self.public_key_offset,
            self.public_key_size,
            self.public_key_metadata_offset,
            self.public_key_metadata_size,
            self.descriptors_offset,
            self.descriptors_size,
            self.rollback_index,
        ] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.extend_from_slice(&self.rollback_index_location.to_be_bytes());
        if self.release_string.len() > 47 {
            return Err(Error::InvalidArgument(
                "release string longer than 47 bytes",
            ));
        }
        v.extend_from_slice(self.release_string.as_bytes());
        // NUL terminator, the rest of the 48-byte field and the 80 reserved bytes stay zero.
        out.get_mut(..v.len())
            .ok_or(Error::SizeOutOfRange("header"))?
            .copy_from_slice(&v);
        Ok(out)
    }

    /// header + auth + aux: the size of the vbmeta image (`androidboot.vbmeta.size`).
    pub fn vbmeta_size(&self) -> u64 {
        (HEADER_SIZE as u64)
            .saturating_add(self.authentication_data_block_size)
            .saturating_add(self.auxiliary_data_block_size)
    }
}

fn within(off: u64, size: u64, block: u64, what: &'static str) -> Result<()> {
    match off.checked_add(size) {
        Some(end) if end <= block => Ok(()),
        _ => Err(Error::SizeOutOfRange(what)),
    }
}

/// Options for [`build_vbmeta`]; `Default` gives avbtool's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbmetaOptions {
    /// Algorithm; `None` = `SHA256_RSA<bits>` of the key, or NONE without a key.
    pub algorithm: Option<Algorithm>,
    /// Rollback index.
    pub rollback_index: u64,
    /// Rollback index location.
    pub rollback_index_location: u32,
    /// Header flags.
    pub flags: u32,
    /// Release string (avbtool's by default, so the bytes match avbtool 1.3.0 output).
    pub release_string: String,
    /// Public key metadata blob (usually empty).
    pub public_key_metadata: Vec<u8>,
    /// Lower bound for `required_libavb_version_minor` (bumped automatically like avbtool).
    pub required_libavb_version_minor: u32,
}

impl Default for VbmetaOptions {
    fn default() -> Self {
        Self {
            algorithm: None,
            rollback_index: 0,
            rollback_index_location: 0,
            flags: 0,
            release_string: DEFAULT_RELEASE_STRING.to_owned(),
            public_key_metadata: Vec::new(),
            required_libavb_version_minor: 0,
        }
    }
}

/// Builds a vbmeta image as `avbtool make_vbmeta_image` / `_generate_vbmeta_blob` does:
/// aux = descriptors ‖ public key ‖ metadata (padded to 64), auth = hash ‖ signature (padded
/// to 64), hash and signature over header ‖ aux. Without a key the image is unsigned (NONE).
pub fn build_vbmeta(
    opts: &VbmetaOptions,
    descriptors: &[Descriptor],
    key: Option<&SigningKey>,
) -> Result<Vec<u8>> {
    let algorithm = match (opts.algorithm, key) {
        (Some(a), _) => a,
        (None, Some(k)) => k.sha256_algorithm()?,
        (None, None) => Algorithm::None,
    };
    let public_key = match (algorithm, key) {
        (Algorithm::None, _) => Vec::new(),
        (_, Some(k)) => k.public_key()?.to_avb_bytes(),
        (_, None) => return Err(Error::InvalidArgument("a signing algorithm needs a key")),
    };
    let encoded = encode_descriptors(descriptors)?;
    let mut minor = opts.required_libavb_version_minor;
    for d in descriptors {
        match d {
            Descriptor::Hashtree(h)
                if h.flags & (HASHTREE_FLAG_DO_NOT_USE_AB | HASHTREE_FLAG_CHECK_AT_MOST_ONCE)
                    != 0 =>
            {
                minor = minor.max(1)
            }
            Descriptor::Hash(h) if h.flags & 1 != 0 => minor = minor.max(1),
            Descriptor::ChainPartition(c) if c.flags & 1 != 0 => minor = minor.max(3),
            _ => {}
        }
    }
    if opts.rollback_index_location > 0 {
        minor = minor.max(2);
    }
    let descriptors_size = encoded.len() as u64;
    let public_key_offset = descriptors_size;
    let public_key_size = public_key.len() as u64;
    let pkmd_offset = public_key_offset + public_key_size;
    let pkmd_size = opts.public_key_metadata.len() as u64;
    let aux_used = pkmd_offset + pkmd_size;
    let aux_size = round_up(aux_used, 64).ok_or(Error::SizeOutOfRange("auxiliary block"))?;
    let hash_size = algorithm.hash_size() as u64;
    let signature_size = algorithm.signature_size() as u64;
    let auth_size = round_up(hash_size + signature_size, 64)
        .ok_or(Error::SizeOutOfRange("authentication block"))?;
    let header = VbmetaHeader {
        required_libavb_version_major: LIBAVB_VERSION_MAJOR,
        required_libavb_version_minor: minor,
        authentication_data_block_size: auth_size,
        auxiliary_data_block_size: aux_size,
        algorithm,
        hash_offset: 0,
        hash_size,
        signature_offset: hash_size,
        signature_size,
        public_key_offset,
        public_key_size,
        public_key_metadata_offset: pkmd_offset,
        public_key_metadata_size: pkmd_size,
        descriptors_offset: 0,
        descriptors_size,
        rollback_index: opts.rollback_index,
        flags: opts.flags,
        rollback_index_location: opts.rollback_index_location,
        release_string: opts.release_string.clone(),
    };
    let header_bytes = header.encode()?;
    let mut aux = Vec::with_capacity(aux_size as usize);
    aux.extend_from_slice(&encoded);
    aux.extend_from_slice(&public_key);
    aux.extend_from_slice(&opts.public_key_metadata);
    aux.resize(aux_size as usize, 0);
    let mut auth = Vec::with_capacity(auth_size as usize);
    if let (true, Some(k)) = (algorithm != Algorithm::None, key) {
        auth.extend_from_slice(&algorithm.digest(&[&header_bytes, &aux]));
        auth.extend_from_slice(&k.sign(algorithm, &[&header_bytes, &aux])?);
    }
    auth.resize(auth_size as usize, 0);
    let mut out = Vec::with_capacity(HEADER_SIZE + auth.len() + aux.len());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&auth);
    out.extend_from_slice(&aux);
    Ok(out)
}

/// A parsed vbmeta image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbmetaImage {
    /// The header.
    pub header: VbmetaHeader,
    /// The descriptors, in order.
    pub descriptors: Vec<Descriptor>,
    /// The embedded AVB public key blob (empty when unsigned).
    pub public_key: Vec<u8>,
    /// The public key metadata blob.
    pub public_key_metadata: Vec<u8>,
    blob: Vec<u8>,
}

impl VbmetaImage {
    /// Parses the structure (header checks, descriptors) without checking the hash or
    /// signature. `bytes` may be longer than the image (e.g. a whole `vbmeta_a` partition).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let header = VbmetaHeader::parse(bytes)?;
        let size = header.vbmeta_size();
        let blob = slice(bytes, 0, size, "vbmeta image")?;
        let aux_start = HEADER_SIZE as u64 + header.authentication_data_block_size;
        let aux = slice(
            blob,
            aux_start,
            header.auxiliary_data_block_size,
            "auxiliary block",
        )?;
        let descriptors = parse_descriptors(slice(
            aux,
            header.descriptors_offset,
            header.descriptors_size,
            "descriptors",
        )?)?;
        let public_key = slice(
            aux,
            header.public_key_offset,
            header.public_key_size,
            "public key",
        )?
        .to_vec();
        let public_key_metadata = slice(
            aux,
            header.public_key_metadata_offset,
            header.public_key_metadata_size,
            "public key metadata",
        )?
        .to_vec();
        Ok(Self {
            header,
            descriptors,
            public_key,
            public_key_metadata,
            blob: blob.to_vec(),
        })
    }

    /// The image bytes: header ‖ auth ‖ aux.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// SHA-256 of the image: `androidboot.vbmeta.digest` when there are no chained partitions
    /// (`avbtool calculate_vbmeta_digest`).
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.blob).into()
    }

    /// `1.<minor>`: `androidboot.vbmeta.avb_version`.
    pub fn avb_version(&self) -> String {
        format!(
            "{}.{}",
            self.header.required_libavb_version_major, self.header.required_libavb_version_minor
        )
    }

    /// Checks the stored hash and the signature against the embedded public key; returns that
    /// key. Errors: `Unsigned`, `HashMismatch`, `SignatureInvalid`, `PublicKeyInvalid`.
    pub fn verify_signature(&self) -> Result<PublicKey> {
        let h = &self.header;
        if h.algorithm == Algorithm::None {
            return Err(Error::Unsigned);
        }
        let header_bytes = slice(&self.blob, 0, HEADER_SIZE as u64, "vbmeta header")?;
        let auth = slice(
            &self.blob,
            HEADER_SIZE as u64,
            h.authentication_data_block_size,
            "authentication block",
        )?;
        let aux = slice(
            &self.blob,
            HEADER_SIZE as u64 + h.authentication_data_block_size,
            h.auxiliary_data_block_size,
            "auxiliary block",
        )?;
        let stored_hash = slice(auth, h.hash_offset, h.hash_size, "hash")?;
        let computed = h.algorithm.digest(&[header_bytes, aux]);
        if stored_hash != computed.as_slice() {
            return Err(Error::HashMismatch);
        }
        let key = PublicKey::from_avb_bytes(&self.public_key)?;
        let signature = slice(auth, h.signature_offset, h.signature_size, "signature")?;
        key.verify(h.algorithm, &[header_bytes, aux], signature)?;
        Ok(key)
    }

    /// The hashtree descriptor for `partition_name` (without A/B suffix), if any.
    pub fn hashtree(&self, partition_name: &str) -> Option<&HashtreeDescriptor> {
        self.descriptors.iter().find_map(|d| match d {
            Descriptor::Hashtree(h) if h.partition_name == partition_name => Some(h),
            _ => None,
        })
    }

    /// All hashtree descriptors.
    pub fn hashtrees(&self) -> impl Iterator<Item = &HashtreeDescriptor> {
        self.descriptors.iter().filter_map(|d| match d {
            Descriptor::Hashtree(h) => Some(h),
            _ => None,
        })
    }

    /// The value of property `key`, if any.
    pub fn property(&self, key: &str) -> Option<&[u8]> {
        self.descriptors.iter().find_map(|d| match d {
            Descriptor::Property(p) if p.key == key => Some(p.value.as_slice()),
            _ => None,
        })
    }
}

/// What init does with `vbmeta_a`: parse, check the hash and the signature, check the signing
/// key is `trusted_public_key` (an AVB public key blob), refuse the disabled-verification flags,
/// and, if given, check the image digest against `expected_digest` (from the bootconfig).
/// `bytes` may be the whole partition. Returns the verified image with its descriptors.
pub fn verify_vbmeta(
    bytes: &[u8],
    trusted_public_key: &[u8],
    expected_digest: Option<&[u8]>,
) -> Result<VbmetaImage> {
    let image = VbmetaImage::parse(bytes)?;
    let key = image.verify_signature()?;
    if key.to_avb_bytes() != trusted_public_key || image.public_key != trusted_public_key {
        return Err(Error::PublicKeyMismatch);
    }
    let disabled = image.header.flags & (FLAG_HASHTREE_DISABLED | FLAG_VERIFICATION_DISABLED);
    if disabled != 0 {
        return Err(Error::VerificationDisabled {
            flags: image.header.flags,
        });
    }
    if let Some(expected) = expected_digest {
        let actual = image.digest();
        if expected != actual {
            return Err(Error::DigestMismatch {
                expected: verity::to_hex(expected),
                actual: verity::to_hex(&actual),
            });
        }
    }
    Ok(image)
}

/// `avbtool calculate_vbmeta_digest`: SHA-256 over the top-level vbmeta image followed by each
/// chained partition's vbmeta image.
pub fn vbmeta_digest(images: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    images.iter().for_each(|i| h.update(i));
    h.finalize().into()
}
