//! `AvbFooter` and `add_hashtree_footer`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::descriptor::{Descriptor, HashtreeDescriptor};
use crate::key::SigningKey;
use crate::util::{round_up, slice, Reader};
use crate::vbmeta::{build_vbmeta, VbmetaImage, VbmetaOptions, VBMETA_MAX_SIZE};
use crate::{Error, Result};

/// `AVBf`.
pub const FOOTER_MAGIC: [u8; 4] = *b"AVBf";
/// Footer size (the last 64 bytes of the partition).
pub const FOOTER_SIZE: usize = 64;
/// Footer major version.
pub const FOOTER_VERSION_MAJOR: u32 = 1;
/// Footer minor version.
pub const FOOTER_VERSION_MINOR: u32 = 0;
/// avbtool's block size for footers and padding.
pub const BLOCK_SIZE: u64 = 4096;
/// avbtool's conservative allowance for the vbmeta struct when sizing partitions.
pub const MAX_VBMETA_SIZE: u64 = 64 * 1024;
/// avbtool's allowance for the footer block.
pub const MAX_FOOTER_SIZE: u64 = 4096;

/// `AvbFooter` (big-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Major version (1).
    pub version_major: u32,
    /// Minor version (0).
    pub version_minor: u32,
    /// Size of the image before AVB data was added.
    pub original_image_size: u64,
    /// Offset of the vbmeta image in the partition.
    pub vbmeta_offset: u64,
    /// Size of the vbmeta image.
    pub vbmeta_size: u64,
}

impl Footer {
    /// Parses a 64-byte footer (`avb_footer_validate_and_byteswap`).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "footer");
        let magic: [u8; 4] = r.array()?;
        let version_major = r.u32()?;
        let version_minor = r.u32()?;
        let original_image_size = r.u64()?;
        let vbmeta_offset = r.u64()?;
        let vbmeta_size = r.u64()?;
        r.skip(28)?;
        if magic != FOOTER_MAGIC {
            return Err(Error::BadMagic { what: "footer" });
        }
        if version_major != FOOTER_VERSION_MAJOR || version_minor > FOOTER_VERSION_MINOR {
            return Err(Error::UnsupportedVersion {
                what: "footer",
                major: version_major,
                minor: version_minor,
            });
        }
        Ok(Self {
            version_major,
            version_minor,
            original_image_size,
            vbmeta_offset,
            vbmeta_size,
        })
    }

    /// The footer in the last 64 bytes of `image`.
    pub fn from_image_end(image: &[u8]) -> Result<Self> {
        let start = image
            .len()
            .checked_sub(FOOTER_SIZE)
            .ok_or(Error::Truncated {
                what: "footer",
                needed: FOOTER_SIZE as u64,
                available: image.len() as u64,
            })?;
        Self::parse(image.get(start..).unwrap_or_default())
    }

    /// Encodes the footer.
    pub fn encode(&self) -> [u8; FOOTER_SIZE] {
        let mut out = [0u8; FOOTER_SIZE];
        let mut v = Vec::with_capacity(36);
        v.extend_from_slice(&FOOTER_MAGIC);
        v.extend_from_slice(&self.version_major.to_be_bytes());
        v.extend_from_slice(&self.version_minor.to_be_bytes());
        v.extend_from_slice(&self.original_image_size.to_be_bytes());
        v.extend_from_slice(&self.vbmeta_offset.to_be_bytes());
        v.extend_from_slice(&self.vbmeta_size.to_be_bytes());
        for (d, s) in out.iter_mut().zip(v) {
            *d = s;
        }
        out
    }

    /// Checks the footer against the partition size: vbmeta inside the partition before the
    /// footer, at most 64 KiB, and after the original image.
    pub fn check_bounds(&self, partition_size: u64) -> Result<()> {
        let end = self
            .vbmeta_offset
            .checked_add(self.vbmeta_size)
            .ok_or(Error::SizeOutOfRange("footer vbmeta"))?;
        if end > partition_size.saturating_sub(FOOTER_SIZE as u64) {
            return Err(Error::SizeOutOfRange(
                "footer vbmeta extends past the partition",
            ));
        }
        if self.vbmeta_size > VBMETA_MAX_SIZE {
            return Err(Error::SizeOutOfRange("footer vbmeta larger than 64 KiB"));
        }
        if self.original_image_size > self.vbmeta_offset {
            return Err(Error::SizeOutOfRange(
                "footer original image overlaps the vbmeta",
            ));
        }
        Ok(())
    }
}

/// Reads the footer of a partition image held in memory and parses its vbmeta (structure only;
/// call [`VbmetaImage::verify_signature`] or [`crate::verify_vbmeta`] to check it).
pub fn vbmeta_from_image(image: &[u8]) -> Result<(Footer, VbmetaImage)> {
    let footer = Footer::from_image_end(image)?;
    footer.check_bounds(image.len() as u64)?;
    let blob = slice(
        image,
        footer.vbmeta_offset,
        footer.vbmeta_size,
        "footer vbmeta",
    )?;
    let vbmeta = VbmetaImage::parse(blob)?;
    if vbmeta.header.vbmeta_size() != footer.vbmeta_size {
        return Err(Error::SizeOutOfRange(
            "footer vbmeta_size does not match the vbmeta header",
        ));
    }
    Ok((footer, vbmeta))
}

/// Reads the footer and the vbmeta bytes of a partition file or block device.
pub fn read_vbmeta_from_file(file: &File) -> Result<(Footer, Vec<u8>)> {
    let size = file_size(file)?;
    let start = size
        .checked_sub(FOOTER_SIZE as u64)
        .ok_or(Error::Truncated {
            what: "footer",
            needed: FOOTER_SIZE as u64,
            available: size,
        })?;
    let mut fbuf = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut fbuf, start)?;
    let footer = Footer::parse(&fbuf)?;
    footer.check_bounds(size)?;
    let mut blob = vec![
        0u8;
        usize::try_from(footer.vbmeta_size)
            .map_err(|_| Error::SizeOutOfRange("vbmeta"))?
    ];
    file.read_exact_at(&mut blob, footer.vbmeta_offset)?;
    Ok((footer, blob))
}

fn file_size(file: &File) -> Result<u64> {
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    // Block devices report 0 in metadata; seek to the end instead.
    let mut f = file;
    let size = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(size)
}

/// avbtool's `calc_max_image_size` for `add_hashtree_footer` without FEC: the largest image
/// that fits `partition_size` with its tree, 64 KiB for vbmeta and a 4 KiB footer block.
pub fn max_image_size_for_hashtree(partition_size: u64) -> Result<u64> {
    let params = verity::Params::new(&[])?;
    let tree = verity::Layout::new(partition_size.max(1), &params)?.tree_size;
    let meta = tree
        .checked_add(MAX_VBMETA_SIZE)
        .and_then(|v| v.checked_add(MAX_FOOTER_SIZE))
        .ok_or(Error::SizeOutOfRange("partition size"))?;
    partition_size
        .checked_sub(meta)
        .ok_or(Error::SizeOutOfRange(
            "partition too small for AVB metadata",
        ))
}

/// Options for [`add_hashtree_footer`] (avbtool's `add_hashtree_footer` with
/// `--hash_algorithm sha256 --do_not_generate_fec`).
#[derive(Clone, Debug)]
pub struct HashtreeFooterOptions<'a> {
    /// Partition name in the descriptor (without A/B suffix, e.g. `system`).
    pub partition_name: String,
    /// Final partition size (a multiple of 4096), or 0 to append the footer block right after
    /// the vbmeta.
    pub partition_size: u64,
    /// Salt (avbtool draws 32 random bytes when not given; pass a fixed one for reproducible images).
    pub salt: Vec<u8>,
    /// Signing key; `None` for an unsigned vbmeta (algorithm NONE).
    pub key: Option<&'a SigningKey>,
    /// Hashtree descriptor flags.
    pub hashtree_flags: u32,
    /// Descriptors after the hashtree one (e.g. properties), as avbtool's `--prop`.
    pub extra_descriptors: Vec<Descriptor>,
    /// vbmeta header options.
    pub vbmeta: VbmetaOptions,
}

impl<'a> HashtreeFooterOptions<'a> {
    /// Defaults for `partition_name` signed with `key`, salt given.
    pub fn new(partition_name: &str, salt: &[u8], key: Option<&'a SigningKey>) -> Self {
        Self {
            partition_name: partition_name.to_owned(),
            partition_size: 0,
            salt: salt.to_vec(),
            key,
            hashtree_flags: 0,
            extra_descriptors: Vec::new(),
            vbmeta: VbmetaOptions::default(),
        }
    }
}

/// What [`add_hashtree_footer`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashtreeFooterInfo {
    /// The hashtree descriptor (also inside `vbmeta`); include it in the top-level vbmeta.
    pub descriptor: HashtreeDescriptor,
    /// The vbmeta image appended to the partition.
    pub vbmeta: Vec<u8>,
    /// The footer.
    pub footer: Footer,
    /// Final image size.
    pub image_size: u64,
}

impl HashtreeFooterInfo {
    /// Root digest as hex.
    pub fn root_hex(&self) -> String {
        verity::to_hex(&self.descriptor.root_digest)
    }
}

struct Plan {
    descriptor: HashtreeDescriptor,
    tree: Vec<u8>,
    vbmeta: Vec<u8>,
    vbmeta_offset: u64,
    footer: Footer,
    footer_block_offset: u64,
    total: u64,
}

fn plan(
    original_size: u64,
    tree: verity::HashTree,
    opts: &HashtreeFooterOptions<'_>,
) -> Result<Plan> {
    let image_size =
        round_up(original_size, BLOCK_SIZE).ok_or(Error::SizeOutOfRange("image size"))?;
    if opts.partition_size % BLOCK_SIZE != 0 {
        return Err(Error::InvalidArgument(
            "partition size is not a multiple of 4096",
        ));
    }
    if opts.partition_size > 0 && image_size > max_image_size_for_hashtree(opts.partition_size)? {
        return Err(Error::SizeOutOfRange(
            "image does not fit the partition size with its AVB metadata",
        ));
    }
    let tree_size = tree.tree().len() as u64;
    let descriptor = HashtreeDescriptor {
        dm_verity_version: 1,
        image_size,
        tree_offset: image_size,
        tree_size,
        data_block_size: BLOCK_SIZE as u32,
        hash_block_size: BLOCK_SIZE as u32,
        fec_num_roots: 0,
        fec_offset: 0,
        fec_size: 0,
        hash_algorithm: verity::HASH_ALGORITHM.to_owned(),
        partition_name: opts.partition_name.clone(),
        salt: opts.salt.clone(),
        root_digest: tree.root_digest().to_vec(),
        flags: opts.hashtree_flags,
    };
    let mut descriptors = vec![Descriptor::Hashtree(descriptor.clone())];
    descriptors.extend(opts.extra_descriptors.iter().cloned());
    let vbmeta = build_vbmeta(&opts.vbmeta, &descriptors, opts.key)?;
    // The tree is a multiple of the block size already.
    let vbmeta_offset = image_size
        .checked_add(tree_size)
        .ok_or(Error::SizeOutOfRange("vbmeta offset"))?;
    let vbmeta_padded =
        round_up(vbmeta.len() as u64, BLOCK_SIZE).ok_or(Error::SizeOutOfRange("vbmeta"))?;
    let vbmeta_end = vbmeta_offset
        .checked_add(vbmeta_padded)
        .ok_or(Error::SizeOutOfRange("vbmeta end"))?;
    let footer_block_offset = if opts.partition_size > 0 {
        opts.partition_size
            .checked_sub(BLOCK_SIZE)
            .filter(|&o| o >= vbmeta_end)
            .ok_or(Error::SizeOutOfRange(
                "image does not fit the partition size",
            ))?
    } else {
        vbmeta_end
    };
    let total = footer_block_offset
        .checked_add(BLOCK_SIZE)
        .ok_or(Error::SizeOutOfRange("image size"))?;
    let footer = Footer {
        version_major: FOOTER_VERSION_MAJOR,
        version_minor: FOOTER_VERSION_MINOR,
        original_image_size: original_size,
        vbmeta_offset,
        vbmeta_size: vbmeta.len() as u64,
    };
    Ok(Plan {
        descriptor,
        tree: tree.into_tree(),
        vbmeta,
        vbmeta_offset,
        footer,
        footer_block_offset,
        total,
    })
}

fn salt_params(opts: &HashtreeFooterOptions<'_>) -> Result<verity::Params> {
    Ok(verity::Params::new(&opts.salt)?)
}

/// Adds a hashtree footer to the image file at `path`, in place, laid out like
/// `avbtool add_hashtree_footer --hash_algorithm sha256 --do_not_generate_fec`:
/// data (zero-padded to 4096) ‖ tree ‖ vbmeta (zero-padded to 4096) ‖ zeros up to
/// `partition_size − 4096` ‖ 4032 zeros ‖ footer. An existing footer is replaced (the image is
/// first cut back to its original size), so running it twice gives the same bytes.
pub fn add_hashtree_footer(
    path: impl AsRef<Path>,
    opts: &HashtreeFooterOptions<'_>,
) -> Result<HashtreeFooterInfo> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut size = file.metadata()?.len();
    if size >= FOOTER_SIZE as u64 {
        let mut fbuf = [0u8; FOOTER_SIZE];
        file.read_exact_at(&mut fbuf, size - FOOTER_SIZE as u64)?;
        if let Ok(old) = Footer::parse(&fbuf) {
            if old.original_image_size <= size {
                size = old.original_image_size;
                file.set_len(size)?;
            }
        }
    }
    if size == 0 {
        return Err(Error::InvalidArgument("image is empty"));
    }
    let padded = round_up(size, BLOCK_SIZE).ok_or(Error::SizeOutOfRange("image size"))?;
    file.set_len(padded)?;
    let tree = verity::HashTree::build_from_file_at(&file, 0, padded, &salt_params(opts)?)?;
    let p = plan(size, tree, opts)?;
    file.write_all_at(&p.tree, padded)?;
    file.write_all_at(&p.vbmeta, p.vbmeta_offset)?;
    // Zeros up to the footer block (a hole where the file system supports it), then the block.
    file.set_len(p.footer_block_offset)?;
    file.seek(SeekFrom::Start(p.footer_block_offset))?;
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    block
        .get_mut(BLOCK_SIZE as usize - FOOTER_SIZE..)
        .ok_or(Error::SizeOutOfRange("footer block"))?
        .copy_from_slice(&p.footer.encode());
    file.write_all(&block)?;
    file.flush()?;
    Ok(HashtreeFooterInfo {
        descriptor: p.descriptor,
        vbmeta: p.vbmeta,
        footer: p.footer,
        image_size: p.total,
    })
}

/// [`add_hashtree_footer`] on an image in memory; `image` becomes the partition image.
pub fn add_hashtree_footer_to_vec(
    image: &mut Vec<u8>,
    opts: &HashtreeFooterOptions<'_>,
) -> Result<HashtreeFooterInfo> {
    if let Ok(old) = Footer::from_image_end(image) {
        if let Ok(orig) = usize::try_from(old.original_image_size) {
            if orig <= image.len() {
                image.truncate(orig);
            }
        }
    }
    if image.is_empty() {
        return Err(Error::InvalidArgument("image is empty"));
    }
    let size = image.len() as u64;
    let padded = round_up(size, BLOCK_SIZE).ok_or(Error::SizeOutOfRange("image size"))?;
    image.resize(
        usize::try_from(padded).map_err(|_| Error::SizeOutOfRange("image size"))?,
        0,
    );
    let tree = verity::HashTree::build(image, &salt_params(opts)?)?;
    let p = plan(size, tree, opts)?;
    image.extend_from_slice(&p.tree);
    image.extend_from_slice(&p.vbmeta);
    image.resize(
        usize::try_from(p.footer_block_offset).map_err(|_| Error::SizeOutOfRange("image size"))?,
        0,
    );
    image.resize(
        usize::try_from(p.total - FOOTER_SIZE as u64)
            .map_err(|_| Error::SizeOutOfRange("image size"))?,
        0,
    );
    image.extend_from_slice(&p.footer.encode());
    Ok(HashtreeFooterInfo {
        descriptor: p.descriptor,
        vbmeta: p.vbmeta,
        footer: p.footer,
        image_size: p.total,
    })
}

impl HashtreeDescriptor {
    /// The dm-verity parameters (block sizes, salt) of this descriptor; only sha256 is supported.
    pub fn verity_params(&self) -> Result<verity::Params> {
        if self.hash_algorithm != verity::HASH_ALGORITHM {
            return Err(Error::DescriptorInvalid(
                "hashtree hash algorithm is not sha256",
            ));
        }
        if self.dm_verity_version != 1 {
            return Err(Error::DescriptorInvalid("dm-verity version is not 1"));
        }
        Ok(verity::Params::with_block_sizes(
            self.data_block_size,
            self.hash_block_size,
            &self.salt,
        )?)
    }

    /// Checks the descriptor is self-consistent: sha256, 32-byte root, block-aligned sizes,
    /// the tree size the layout requires, tree after the data, and (if given) everything
    /// inside a partition of `partition_size` bytes.
    pub fn check(&self, partition_size: Option<u64>) -> Result<verity::Params> {
        let params = self.verity_params()?;
        if self.root_digest.len() != verity::DIGEST_SIZE {
            return Err(Error::DescriptorInvalid("root digest is not 32 bytes"));
        }
        if self.image_size == 0 || self.image_size % u64::from(self.data_block_size) != 0 {
            return Err(Error::DescriptorInvalid(
                "image size is not a whole number of data blocks",
            ));
        }
        if self.tree_offset % u64::from(self.hash_block_size) != 0
            || self.tree_offset < self.image_size
        {
            return Err(Error::DescriptorInvalid(
                "tree offset is not block-aligned after the data",
            ));
        }
        let layout = verity::Layout::new(self.image_size, &params)?;
        if layout.tree_size != self.tree_size {
            return Err(Error::DescriptorInvalid(
                "tree size does not match the image size",
            ));
        }
        if let Some(ps) = partition_size {
            let end = self
                .tree_offset
                .checked_add(self.tree_size)
                .ok_or(Error::SizeOutOfRange("tree end"))?;
            if end > ps {
                return Err(Error::SizeOutOfRange(
                    "hash tree extends past the partition",
                ));
            }
        }
        Ok(params)
    }

    /// The dm `verity` target for a partition device `dev` holding data and tree (AVB layout:
    /// the same device twice, `hash_start_block = tree_offset / hash_block_size`).
    pub fn dm_target(&self, dev: &str) -> Result<verity::DmVerityTarget> {
        self.check(None)?;
        let mut root = [0u8; verity::DIGEST_SIZE];
        root.copy_from_slice(&self.root_digest);
        Ok(verity::DmVerityTarget {
            data_dev: dev.to_owned(),
            hash_dev: dev.to_owned(),
            data_block_size: self.data_block_size,
            hash_block_size: self.hash_block_size,
            num_data_blocks: self.image_size / u64::from(self.data_block_size),
            hash_start_block: self.tree_offset / u64::from(self.hash_block_size),
            root_digest: root,
            salt: self.salt.clone(),
            optional_args: Vec::new(),
        })
    }

    /// Fully verifies a partition (file or block device) against this descriptor in user space:
    /// the tree at `tree_offset`, then every data block (what the kernel would check lazily).
    pub fn verify_partition(&self, file: &File) -> Result<()> {
        let params = self.check(None)?;
        let mut tree =
            vec![0u8; usize::try_from(self.tree_size).map_err(|_| Error::SizeOutOfRange("tree"))?];
        file.read_exact_at(&mut tree, self.tree_offset)?;
        let mut root = [0u8; verity::DIGEST_SIZE];
        root.copy_from_slice(&self.root_digest);
        verity::verify_file_at(file, 0, self.image_size, &tree, &root, &params)?;
        Ok(())
    }
}

/// Reads a whole small file (helper for tools).
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}
