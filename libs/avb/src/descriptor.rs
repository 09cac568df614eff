//! vbmeta descriptors: `u64 tag ‖ u64 num_bytes_following ‖ body`, padded to 8 bytes.

use crate::util::{c_string, Reader};
use crate::{Error, Result};

/// Descriptor tags (`AvbDescriptorTag`).
pub mod tag {
    /// Property.
    pub const PROPERTY: u64 = 0;
    /// Hashtree (dm-verity).
    pub const HASHTREE: u64 = 1;
    /// Hash.
    pub const HASH: u64 = 2;
    /// Kernel command line.
    pub const KERNEL_CMDLINE: u64 = 3;
    /// Chain partition.
    pub const CHAIN_PARTITION: u64 = 4;
}

/// Hashtree descriptor flag: do not append the A/B suffix to the partition name.
pub const HASHTREE_FLAG_DO_NOT_USE_AB: u32 = 1;
/// Hashtree descriptor flag: dm-verity `check_at_most_once`.
pub const HASHTREE_FLAG_CHECK_AT_MOST_ONCE: u32 = 2;
/// Kernel cmdline flag: use only if the hashtree is not disabled.
pub const CMDLINE_FLAG_USE_ONLY_IF_HASHTREE_NOT_DISABLED: u32 = 1;
/// Kernel cmdline flag: use only if the hashtree is disabled.
pub const CMDLINE_FLAG_USE_ONLY_IF_HASHTREE_DISABLED: u32 = 2;

const HEADER: usize = 16;
const RESERVED: usize = 60;
/// Fixed size of a hashtree descriptor including its 16-byte header.
pub const HASHTREE_FIXED_SIZE: usize = 180;
/// Fixed size of a hash descriptor including its 16-byte header.
pub const HASH_FIXED_SIZE: usize = 132;
/// Fixed size of a kernel cmdline descriptor including its 16-byte header.
pub const KERNEL_CMDLINE_FIXED_SIZE: usize = 24;
/// Fixed size of a chain partition descriptor including its 16-byte header.
pub const CHAIN_PARTITION_FIXED_SIZE: usize = 92;
/// Fixed size of a property descriptor including its 16-byte header.
pub const PROPERTY_FIXED_SIZE: usize = 32;

/// A property: `key = value` (both NUL-terminated on disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyDescriptor {
    /// Key.
    pub key: String,
    /// Value (arbitrary bytes; avbtool's `--prop` writes UTF-8).
    pub value: Vec<u8>,
}

/// A dm-verity hashtree descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashtreeDescriptor {
    /// dm-verity version (1).
    pub dm_verity_version: u32,
    /// Size of the hashed data (block-aligned).
    pub image_size: u64,
    /// Offset of the tree in the partition.
    pub tree_offset: u64,
    /// Tree size.
    pub tree_size: u64,
    /// Data block size.
    pub data_block_size: u32,
    /// Hash block size.
    pub hash_block_size: u32,
    /// FEC roots (0 = no FEC).
    pub fec_num_roots: u32,
    /// FEC offset.
    pub fec_offset: u64,
    /// FEC size.
    pub fec_size: u64,
    /// Hash algorithm name, e.g. `sha256` (at most 31 bytes).
    pub hash_algorithm: String,
    /// Partition name without A/B suffix.
    pub partition_name: String,
    /// Salt.
    pub salt: Vec<u8>,
    /// Root digest (empty with a persistent digest).
    pub root_digest: Vec<u8>,
    /// Flags (`HASHTREE_FLAG_*`).
    pub flags: u32,
}

/// A hash descriptor: digest = H(salt ‖ image[0..image_size]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashDescriptor {
    /// Size of the hashed image.
    pub image_size: u64,
    /// Hash algorithm name, e.g. `sha256`.
    pub hash_algorithm: String,
    /// Partition name.
    pub partition_name: String,
    /// Salt.
    pub salt: Vec<u8>,
    /// Digest.
    pub digest: Vec<u8>,
    /// Flags (1 = DO_NOT_USE_AB).
    pub flags: u32,
}

/// A kernel command line fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelCmdlineDescriptor {
    /// Flags (`CMDLINE_FLAG_*`).
    pub flags: u32,
    /// Command line.
    pub cmdline: String,
}

/// Delegates a partition's verification to another key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPartitionDescriptor {
    /// Rollback index location.
    pub rollback_index_location: u32,
    /// Partition name.
    pub partition_name: String,
    /// AVB public key blob of the chained partition.
    pub public_key: Vec<u8>,
    /// Flags (1 = DO_NOT_USE_AB).
    pub flags: u32,
}

/// One descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Descriptor {
    /// Tag 0.
    Property(PropertyDescriptor),
    /// Tag 1.
    Hashtree(HashtreeDescriptor),
    /// Tag 2.
    Hash(HashDescriptor),
    /// Tag 3.
    KernelCmdline(KernelCmdlineDescriptor),
    /// Tag 4.
    ChainPartition(ChainPartitionDescriptor),
    /// Any other tag, kept verbatim (libavb skips unknown tags).
    Unknown {
        /// Tag.
        tag: u64,
        /// Body (`num_bytes_following` bytes).
        body: Vec<u8>,
    },
}

impl Descriptor {
    /// The tag.
    pub fn tag(&self) -> u64 {
        match self {
            Self::Property(_) => tag::PROPERTY,
            Self::Hashtree(_) => tag::HASHTREE,
            Self::Hash(_) => tag::HASH,
            Self::KernelCmdline(_) => tag::KERNEL_CMDLINE,
            Self::ChainPartition(_) => tag::CHAIN_PARTITION,
            Self::Unknown { tag, .. } => *tag,
        }
    }

    /// The partition name for hash, hashtree and chain descriptors.
    pub fn partition_name(&self) -> Option<&str> {
        match self {
            Self::Hashtree(d) => Some(&d.partition_name),
            Self::Hash(d) => Some(&d.partition_name),
            Self::ChainPartition(d) => Some(&d.partition_name),
            _ => None,
        }
    }

    /// Encodes the descriptor exactly as avbtool does (`num_bytes_following` includes the
    /// padding to a multiple of 8).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        match self {
            Self::Property(d) => {
                body.extend_from_slice(&(d.key.len() as u64).to_be_bytes());
                body.extend_from_slice(&(d.value.len() as u64).to_be_bytes());
                body.extend_from_slice(d.key.as_bytes());
                body.push(0);
                body.extend_from_slice(&d.value);
                body.push(0);
            }
            Self::Hashtree(d) => {
                body.extend_from_slice(&d.dm_verity_version.to_be_bytes());
                body.extend_from_slice(&d.image_size.to_be_bytes());
                body.extend_from_slice(&d.tree_offset.to_be_bytes());
                body.extend_from_slice(&d.tree_size.to_be_bytes());
                body.extend_from_slice(&d.data_block_size.to_be_bytes());
                body.extend_from_slice(&d.hash_block_size.to_be_bytes());
                body.extend_from_slice(&d.fec_num_roots.to_be_bytes());
                body.extend_from_slice(&d.fec_offset.to_be_bytes());
                body.extend_from_slice(&d.fec_size.to_be_bytes());
                body.extend_from_slice(&fixed_string::<32>(&d.hash_algorithm)?);
                body.extend_from_slice(&len32(d.partition_name.len())?.to_be_bytes());
                body.extend_from_slice(&len32(d.salt.len())?.to_be_bytes());
                body.extend_from_slice(&len32(d.root_digest.len())?.to_be_bytes());
                body.extend_from_slice(&d.flags.to_be_bytes());
                body.extend_from_slice(&[0u8; RESERVED]);
                body.extend_from_slice(d.partition_name.as_bytes());
                body.extend_from_slice(&d.salt);
                body.extend_from_slice(&d.root_digest);
            }
            Self::Hash(d) => {
                body.extend_from_slice(&d.image_size.to_be_bytes());
                body.extend_from_slice(&fixed_string::<32>(&d.hash_algorithm)?);
                body.extend_from_slice(&len32(d.partition_name.len())?.to_be_bytes());
                body.extend_from_slice(&len32(d.salt.len())?.to_be_bytes());
                body.extend_from_slice(&len32(d.digest.len())?.to_be_bytes());
                body.extend_from_slice(&d.flags.to_be_bytes());
                body.extend_from_slice(&[0u8; RESERVED]);
                body.extend_from_slice(d.partition_name.as_bytes());
                body.extend_from_slice(&d.salt);
                body.extend_from_slice(&d.digest);
            }
            Self::KernelCmdline(d) => {
                body.extend_from_slice(&d.flags.to_be_bytes());
                body.extend_from_slice(&len32(d.cmdline.len())?.to_be_bytes());
                body.extend_from_slice(d.cmdline.as_bytes());
            }
            Self::ChainPartition(d) => {
                body.extend_from_slice(&d.rollback_index_location.to_be_bytes());
                body.extend_from_slice(&len32(d.partition_name.len())?.to_be_bytes());
                body.extend_from_slice(&len32(d.public_key.len())?.to_be_bytes());
                body.extend_from_slice(&d.flags.to_be_bytes());
                body.extend_from_slice(&[0u8; RESERVED]);
                body.extend_from_slice(d.partition_name.as_bytes());
                body.extend_from_slice(&d.public_key);
            }
            Self::Unknown { body: b, .. } => body.extend_from_slice(b),
        }
        let padded = body.len().div_ceil(8) * 8;
        body.resize(padded, 0);
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&self.tag().to_be_bytes());
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses one descriptor from the start of `buf`; returns it and the bytes consumed.
    /// Checks what libavb checks: `num_bytes_following` a multiple of 8 and inside `buf`, and
    /// each variable part inside the descriptor.
    pub fn parse(buf: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(buf, "descriptor");
        let tag = r.u64()?;
        let nbf = r.u64()?;
        if nbf % 8 != 0 {
            return Err(Error::DescriptorInvalid(
                "num_bytes_following is not a multiple of 8",
            ));
        }
        let body = r.bytes_u64(nbf)?;
        let total = HEADER + body.len();
        let d = match tag {
            tag::PROPERTY => {
                let mut b = Reader::new(body, "property descriptor");
                let key_len = b.u64()?;
                let value_len = b.u64()?;
                let key = b.bytes_u64(key_len)?;
                if b.bytes(1)? != [0] {
                    return Err(Error::DescriptorInvalid(
                        "property key is not NUL-terminated",
                    ));
                }
                let value = b.bytes_u64(value_len)?;
                if b.bytes(1)? != [0] {
                    return Err(Error::DescriptorInvalid(
                        "property value is not NUL-terminated",
                    ));
                }
                Self::Property(PropertyDescriptor {
                    key: utf8(key, "property key is not UTF-8")?,
                    value: value.to_vec(),
                })
            }
            tag::HASHTREE => {
                let mut b = Reader::new(body, "hashtree descriptor");
                let dm_verity_version = b.u32()?;
                let image_size = b.u64()?;
                let tree_offset = b.u64()?;
                let tree_size = b.u64()?;
                let data_block_size = b.u32()?;
                let hash_block_size = b.u32()?;
                let fec_num_roots = b.u32()?;
                let fec_offset = b.u64()?;
                let fec_size = b.u64()?;
                let hash_algorithm = c_string(b.bytes(32)?);
                let name_len = b.u32()?;
                let salt_len = b.u32()?;
                let digest_len = b.u32()?;
                let flags = b.u32()?;
                b.skip(RESERVED)?;
                let partition_name =
                    utf8(b.bytes(name_len as usize)?, "partition name is not UTF-8")?;
                let salt = b.bytes(salt_len as usize)?.to_vec();
                let root_digest = b.bytes(digest_len as usize)?.to_vec();
                Self::Hashtree(HashtreeDescriptor {
                    dm_verity_version,
                    image_size,
                    tree_offset,
                    tree_size,
                    data_block_size,
                    hash_block_size,
                    fec_num_roots,
                    fec_offset,
                    fec_size,
                    hash_algorithm,
                    partition_name,
                    salt,
                    root_digest,
                    flags,
                })
            }
            tag::HASH => {
                let mut b = Reader::new(body, "hash descriptor");
                let image_size = b.u64()?;
                let hash_algorithm = c_string(b.bytes(32)?);
                let name_len = b.u32()?;
                let salt_len = b.u32()?;
                let digest_len = b.u32()?;
                let flags = b.u32()?;
                b.skip(RESERVED)?;
                let partition_name =
                    utf8(b.bytes(name_len as usize)?, "partition name is not UTF-8")?;
                let salt = b.bytes(salt_len as usize)?.to_vec();
                let digest = b.bytes(digest_len as usize)?.to_vec();
                Self::Hash(HashDescriptor {
                    image_size,
                    hash_algorithm,
                    partition_name,
                    salt,
                    digest,
                    flags,
                })
            }
            tag::KERNEL_CMDLINE => {
                let mut b = Reader::new(body, "kernel cmdline descriptor");
                let flags = b.u32()?;
                let len = b.u32()?;
                let cmdline = utf8(b.bytes(len as usize)?, "kernel cmdline is not UTF-8")?;
                Self::KernelCmdline(KernelCmdlineDescriptor { flags, cmdline })
            }
            tag::CHAIN_PARTITION => {
                let mut b = Reader::new(body, "chain partition descriptor");
                let rollback_index_location = b.u32()?;
                let name_len = b.u32()?;
                let key_len = b.u32()?;
                let flags = b.u32()?;
                b.skip(RESERVED)?;
                let partition_name =
                    utf8(b.bytes(name_len as usize)?, "partition name is not UTF-8")?;
                let public_key = b.bytes(key_len as usize)?.to_vec();
                Self::ChainPartition(ChainPartitionDescriptor {
                    rollback_index_location,
                    partition_name,
                    public_key,
                    flags,
                })
            }
            _ => Self::Unknown {
                tag,
                body: body.to_vec(),
            },
        };
        Ok((d, total))
    }
}

/// Parses a whole descriptors area (`descriptors_size` bytes).
pub fn parse_descriptors(mut buf: &[u8]) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (d, used) = Descriptor::parse(buf)?;
        out.push(d);
        buf = buf.get(used..).unwrap_or_default();
    }
    Ok(out)
}

/// Encodes descriptors back to back.
pub fn encode_descriptors(descriptors: &[Descriptor]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for d in descriptors {
        out.extend_from_slice(&d.encode()?);
    }
    Ok(out)
}

/// The order `avbtool make_vbmeta_image --include_descriptors_from_image A --include_descriptors_from_image B`
/// gives: descriptors without a partition name (properties, cmdlines) in the order seen, then
/// one descriptor per (type, partition name) — the last one seen wins — sorted by avbtool's key
/// `<ClassName>_<partition_name>`.
pub fn merge_included_descriptors(images: &[Vec<Descriptor>]) -> Vec<Descriptor> {
    let mut plain = Vec::new();
    let mut named: std::collections::BTreeMap<String, Descriptor> =
        std::collections::BTreeMap::new();
    for d in images.iter().flatten() {
        let class = match d {
            Descriptor::Hashtree(_) => "AvbHashtreeDescriptor",
            Descriptor::Hash(_) => "AvbHashDescriptor",
            Descriptor::ChainPartition(_) => "AvbChainPartitionDescriptor",
            _ => {
                plain.push(d.clone());
                continue;
            }
        };
        let name = d.partition_name().unwrap_or_default();
        named.insert(format!("{class}_{name}"), d.clone());
    }
    plain.extend(named.into_values());
    plain
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::SizeOutOfRange("descriptor field length"))
}

fn fixed_string<const N: usize>(s: &str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() >= N {
        return Err(Error::InvalidArgument("string field too long"));
    }
    out.get_mut(..s.len())
        .ok_or(Error::InvalidArgument("string field too long"))?
        .copy_from_slice(s.as_bytes());
    Ok(out)
}

fn utf8(b: &[u8], what: &'static str) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::DescriptorInvalid(what))
}
