//! dm-verity hash trees: hash type 1 ("normal"), SHA-256, salted, levels stored top-down.
//!
//! This is the tree that `veritysetup format --no-superblock`, `avbtool add_hashtree_footer`
//! and the APK Signature Scheme v4 (`.idsig`, empty salt) produce, and that the kernel's
//! `verity` target checks. See `docs/formats/verity.md`.
//!
//! Algorithm (hash type 1):
//! - the data is split into `data_block_size` blocks; a short last block is zero-padded;
//! - level 0 holds `SHA-256(salt ‖ block)` for each data block, packed, zero-padded to a
//!   multiple of `hash_block_size`;
//! - each next level hashes the blocks of the level below the same way, until a level fits in
//!   one hash block; the root digest is `SHA-256(salt ‖ that block)`;
//! - one data block only: no tree at all, root = `SHA-256(salt ‖ block)`;
//! - levels are stored top-down: the level nearest the root is at offset 0.
//!
//! ```
//! let data = vec![7u8; 3 * 4096];
//! let params = verity::Params::new(&[0xaa, 0xbb])?;
//! let tree = verity::HashTree::build(&data, &params)?;
//! verity::verify(&data, tree.tree(), tree.root_digest(), &params)?;
//! let target = tree.dm_target("/dev/loop0", "/dev/loop1", 0);
//! assert!(target.params().starts_with("1 /dev/loop0 /dev/loop1 4096 4096 3 0 sha256 "));
//! # Ok::<(), verity::Error>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{mpsc, OnceLock};

use sha2::{Digest, Sha256};

/// The block size AVB, Android and this project use for data and hash blocks.
pub const BLOCK_SIZE: u32 = 4096;
/// SHA-256 digest size. Digests are stored unpadded (32 is already a power of two).
pub const DIGEST_SIZE: usize = 32;
/// The largest salt dm-verity (and the veritysetup superblock) accepts.
pub const MAX_SALT_SIZE: usize = 256;
/// The hash algorithm name as the kernel, veritysetup and AVB spell it.
pub const HASH_ALGORITHM: &str = "sha256";

/// A SHA-256 root digest.
pub type RootDigest = [u8; DIGEST_SIZE];

/// Errors from building or verifying a hash tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A block size that is not a power of two in 512..=65536.
    #[error("block size {0} is not a power of two between 512 and 65536")]
    InvalidBlockSize(u32),
    /// A salt longer than dm-verity allows.
    #[error("salt is {0} bytes; dm-verity allows at most 256")]
    SaltTooLong(usize),
    /// Zero bytes of data: dm-verity needs at least one block.
    #[error("the data is empty; a hash tree needs at least one data block")]
    EmptyData,
    /// A size computation overflowed or does not fit in memory.
    #[error("size out of range: {0}")]
    SizeOutOfRange(&'static str),
    /// The hash tree has the wrong length for the data size.
    #[error("hash tree is {actual} bytes, expected {expected}")]
    TreeSizeMismatch {
        /// Size the layout requires.
        expected: u64,
        /// Size given.
        actual: u64,
    },
    /// The top of the tree (or the single data block) does not hash to the expected root.
    #[error("root digest mismatch: expected {expected}, computed {actual}")]
    RootDigestMismatch {
        /// Expected root digest (hex).
        expected: String,
        /// Computed root digest (hex).
        actual: String,
    },
    /// A hash block does not match its digest in the level above.
    #[error("hash tree level {level} block {block} does not match the level above")]
    TreeBlockMismatch {
        /// Level, 0 = the level that hashes the data.
        level: usize,
        /// Block index within the level.
        block: u64,
    },
    /// Bytes after the last digest of a level are not zero.
    #[error("hash tree level {level} has non-zero padding")]
    TreePaddingNotZero {
        /// Level, 0 = the level that hashes the data.
        level: usize,
    },
    /// A data block does not match its digest in the tree.
    #[error("data block {block} does not match the hash tree")]
    DataBlockMismatch {
        /// Index of the corrupted data block.
        block: u64,
    },
    /// The reader ended before `data_size` bytes.
    #[error("truncated input: expected {expected} bytes, got {actual}")]
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A hex string that does not decode.
    #[error("invalid hex string: {0:?}")]
    InvalidHex(String),
    /// An I/O error from the reader or file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Tree parameters: block sizes and salt. The hash is always SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    data_block_size: u32,
    hash_block_size: u32,
    salt: Vec<u8>,
}

impl Params {
    /// 4096-byte data and hash blocks with the given salt (may be empty).
    pub fn new(salt: &[u8]) -> Result<Self> {
        Self::with_block_sizes(BLOCK_SIZE, BLOCK_SIZE, salt)
    }

    /// The APK Signature Scheme v4 tree: 4096-byte blocks, no salt.
    pub fn apk_v4() -> Self {
        Self {
            data_block_size: BLOCK_SIZE,
            hash_block_size: BLOCK_SIZE,
            salt: Vec::new(),
        }
    }

    /// Explicit block sizes (powers of two, 512..=65536) and salt (at most 256 bytes).
    pub fn with_block_sizes(
        data_block_size: u32,
        hash_block_size: u32,
        salt: &[u8],
    ) -> Result<Self> {
        for bs in [data_block_size, hash_block_size] {
            if !bs.is_power_of_two() || !(512..=65536).contains(&bs) {
                return Err(Error::InvalidBlockSize(bs));
            }
        }
        if salt.len() > MAX_SALT_SIZE {
            return Err(Error::SaltTooLong(salt.len()));
        }
        Ok(Self {
            data_block_size,
            hash_block_size,
            salt: salt.to_vec(),
        })
    }

    /// Data block size in bytes.
    pub fn data_block_size(&self) -> u32 {
        self.data_block_size
    }

    /// Hash block size in bytes.
    pub fn hash_block_size(&self) -> u32 {
        self.hash_block_size
    }

    /// The salt (empty for none).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    fn salted_hasher(&self) -> Sha256 {
        Sha256::new_with_prefix(&self.salt)
    }
}

/// One level of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Byte offset of the level in the tree (top-down storage: the top level is at 0).
    pub offset: u64,
    /// Size in bytes, a multiple of the hash block size.
    pub size: u64,
    /// Number of digests (= number of blocks in the level below, or data blocks for level 0).
    pub num_digests: u64,
}

/// The geometry of a tree for a given data size: levels, offsets, total size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Data size in bytes as given (the last block may be partial and is then zero-padded).
    pub data_size: u64,
    /// Number of data blocks (`data_size` rounded up).
    pub num_data_blocks: u64,
    /// Levels bottom-up: `levels[0]` hashes the data, the last one is the single top block.
    /// Empty when the data is a single block.
    pub levels: Vec<Level>,
    /// Total tree size in bytes.
    pub tree_size: u64,
}

impl Layout {
    /// Computes the layout (what `avbtool calc_hash_level_offsets` and veritysetup compute).
    pub fn new(data_size: u64, params: &Params) -> Result<Self> {
        if data_size == 0 {
            return Err(Error::EmptyData);
        }
        let dbs = u64::from(params.data_block_size);
        let hbs = u64::from(params.hash_block_size);
        let num_data_blocks = data_size.div_ceil(dbs);
        let mut sizes = Vec::new();
        let mut entries = num_data_blocks;
        while entries > 1 {
            let bytes = entries
                .checked_mul(DIGEST_SIZE as u64)
                .ok_or(Error::SizeOutOfRange("hash level size"))?;
            let size = round_up(bytes, hbs).ok_or(Error::SizeOutOfRange("hash level size"))?;
            sizes.push((size, entries));
            entries = size / hbs;
        }
        let tree_size = sizes
            .iter()
            .try_fold(0u64, |acc, (s, _)| acc.checked_add(*s))
            .ok_or(Error::SizeOutOfRange("hash tree size"))?;
        // Top-down storage: level i sits after all levels above it.
        let mut levels = Vec::with_capacity(sizes.len());
        let mut end = tree_size;
        for (size, num_digests) in sizes {
            // `end` >= size because tree_size is the sum of all sizes.
            end -= size;
            levels.push(Level {
                offset: end,
                size,
                num_digests,
            });
        }
        Ok(Self {
            data_size,
            num_data_blocks,
            levels,
            tree_size,
        })
    }

    /// Number of hash blocks in the tree (what veritysetup prints as "Hash blocks").
    pub fn num_hash_blocks(&self, params: &Params) -> u64 {
        self.tree_size / u64::from(params.hash_block_size)
    }

    /// Data size rounded up to whole data blocks (what AVB records as `image_size`).
    pub fn padded_data_size(&self, params: &Params) -> u64 {
        // Cannot overflow: num_data_blocks = ceil(data_size / dbs).
        self.num_data_blocks
            .saturating_mul(u64::from(params.data_block_size))
    }
}

/// A built hash tree with its root digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    params: Params,
    layout: Layout,
    root_digest: RootDigest,
    tree: Vec<u8>,
}

impl HashTree {
    /// Builds the tree over `data` (zero-padding a short last block).
    pub fn build(data: &[u8], params: &Params) -> Result<Self> {
        Self::assemble(
            data.len() as u64,
            params,
            |base, dbs, level0| {
                hash_blocks_parallel(base, data, dbs, level0);
                Ok(())
            },
            || Ok(data.to_vec()),
        )
    }

    /// Builds the tree over exactly `data_size` bytes read from `reader`, streaming.
    pub fn build_from_reader<R: Read + Send>(
        reader: &mut R,
        data_size: u64,
        params: &Params,
    ) -> Result<Self> {
        // Both closures need the reader; only one of them runs.
        let reader = std::cell::RefCell::new(reader);
        Self::assemble(
            data_size,
            params,
            |base, dbs, level0| {
                for_each_chunk(
                    &mut **reader.borrow_mut(),
                    data_size,
                    dbs,
                    |block_index, chunk| {
                        let start = usize::try_from(block_index)
                            .ok()
                            .and_then(|b| b.checked_mul(DIGEST_SIZE))
                            .ok_or(Error::SizeOutOfRange("block index"))?;
                        let nblocks = chunk.len().div_ceil(dbs);
                        let dst = level0
                            .get_mut(start..start + nblocks * DIGEST_SIZE)
                            .ok_or(Error::SizeOutOfRange("level 0 slice"))?;
                        hash_blocks_parallel(base, chunk, dbs, dst);
                        Ok(())
                    },
                )
            },
            || {
                let mut block = Vec::new();
                (&mut **reader.borrow_mut())
                    .take(data_size)
                    .read_to_end(&mut block)?;
                if block.len() as u64 != data_size {
                    return Err(Error::Truncated {
                        expected: data_size,
                        actual: block.len() as u64,
                    });
                }
                Ok(block)
            },
        )
    }

    /// Builds the tree over a whole file (its current length is the data size).
    pub fn build_from_file(path: impl AsRef<Path>, params: &Params) -> Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Self::build_from_file_at(&file, 0, size, params)
    }

    /// Builds the tree over `data_size` bytes of `file` starting at byte `offset` (a file or a
    /// block device). Reads with `pread` from all cores at once: the fastest path.
    pub fn build_from_file_at(
        file: &File,
        offset: u64,
        data_size: u64,
        params: &Params,
    ) -> Result<Self> {
        Self::assemble(
            data_size,
            params,
            |base, dbs, level0| level0_from_file(file, offset, data_size, dbs, base, level0),
            || {
                let len =
                    usize::try_from(data_size).map_err(|_| Error::SizeOutOfRange("data size"))?;
                let mut block = vec![0u8; len];
                read_exact_at(file, &mut block, offset, data_size)?;
                Ok(block)
            },
        )
    }

    /// What every builder shares: the layout, the tree buffer, level 0 filled by `fill_level0`
    /// (salted hasher, data block size, level-0 digests), the upper levels, the root. Data of at
    /// most one block has no tree: its root is the hash of that block, read by `single_block`.
    fn assemble(
        data_size: u64,
        params: &Params,
        fill_level0: impl FnOnce(&Sha256, usize, &mut [u8]) -> Result<()>,
        single_block: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let layout = Layout::new(data_size, params)?;
        let mut tree = alloc_zeroed(layout.tree_size)?;
        let base = params.salted_hasher();
        let dbs = params.data_block_size as usize;
        let root_digest = if let Some(level0) = layout.levels.first() {
            let (off, n) = level_range(level0)?;
            let out = tree
                .get_mut(off..off + n * DIGEST_SIZE)
                .ok_or(Error::SizeOutOfRange("level 0"))?;
            fill_level0(&base, dbs, out)?;
            finish_upper_levels(&mut tree, &layout, params)?
        } else {
            hash_one_block(&base, &single_block()?, dbs)
        };
        Ok(Self {
            params: params.clone(),
            layout,
            root_digest,
            tree,
        })
    }

    /// The root digest.
    pub fn root_digest(&self) -> &RootDigest {
        &self.root_digest
    }

    /// The root digest as lowercase hex.
    pub fn root_hex(&self) -> String {
        to_hex(&self.root_digest)
    }

    /// The tree bytes (top level first), `layout().tree_size` long; empty for one data block.
    pub fn tree(&self) -> &[u8] {
        &self.tree
    }

    /// Consumes the tree, returning its bytes.
    pub fn into_tree(self) -> Vec<u8> {
        self.tree
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The dm `verity` target for this tree. `hash_start_block` is in hash blocks (the tree
    /// offset on `hash_dev` divided by the hash block size; 0 for a separate hash device).
    pub fn dm_target(
        &self,
        data_dev: &str,
        hash_dev: &str,
        hash_start_block: u64,
    ) -> DmVerityTarget {
        DmVerityTarget {
            data_dev: data_dev.to_owned(),
            hash_dev: hash_dev.to_owned(),
            data_block_size: self.params.data_block_size,
            hash_block_size: self.params.hash_block_size,
            num_data_blocks: self.layout.num_data_blocks,
            hash_start_block,
            root_digest: self.root_digest,
            salt: self.params.salt.clone(),
            optional_args: Vec::new(),
        }
    }
}

/// The kernel `verity` target (version 1, SHA-256) as one dm table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmVerityTarget {
    /// Data device (path or `major:minor`).
    pub data_dev: String,
    /// Hash device (path or `major:minor`); may equal `data_dev`.
    pub hash_dev: String,
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks.
    pub num_data_blocks: u64,
    /// Offset of the tree on the hash device, in hash blocks.
    pub hash_start_block: u64,
    /// Root digest.
    pub root_digest: RootDigest,
    /// Salt (written as `-` when empty).
    pub salt: Vec<u8>,
    /// Optional arguments, e.g. `["ignore_zero_blocks"]` or `["restart_on_corruption"]`.
    pub optional_args: Vec<String>,
}

impl DmVerityTarget {
    /// The target type name for the table entry.
    pub const TARGET_TYPE: &'static str = "verity";

    /// Target length in 512-byte sectors.
    pub fn length_sectors(&self) -> u64 {
        self.num_data_blocks
            .saturating_mul(u64::from(self.data_block_size))
            / 512
    }

    /// The target parameters:
    /// `1 <data_dev> <hash_dev> <dbs> <hbs> <num_data_blocks> <hash_start_block> sha256 <root> <salt|-> [<#opt> <opts...>]`.
    pub fn params(&self) -> String {
        let salt = if self.salt.is_empty() {
            "-".to_owned()
        } else {
            to_hex(&self.salt)
        };
        let mut s = format!(
            "1 {} {} {} {} {} {} {} {} {}",
            self.data_dev,
            self.hash_dev,
            self.data_block_size,
            self.hash_block_size,
            self.num_data_blocks,
            self.hash_start_block,
            HASH_ALGORITHM,
            to_hex(&self.root_digest),
            salt
        );
        if !self.optional_args.is_empty() {
            s.push_str(&format!(
                " {} {}",
                self.optional_args.len(),
                self.optional_args.join(" ")
            ));
        }
        s
    }
}

impl fmt::Display for DmVerityTarget {
    /// The full `dmsetup` table line: `0 <sectors> verity <params>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0 {} {} {}",
            self.length_sectors(),
            Self::TARGET_TYPE,
            self.params()
        )
    }
}

/// Verifies `data` against `tree` and `root`: the tree top-down first, then every data block.
pub fn verify(data: &[u8], tree: &[u8], root: &RootDigest, params: &Params) -> Result<()> {
    let layout = Layout::new(data.len() as u64, params)?;
    verify_tree(&layout, tree, root, params)?;
    let base = params.salted_hasher();
    let dbs = params.data_block_size as usize;
    match layout.levels.first() {
        None => check_root(&hash_one_block(&base, data, dbs), root),
        Some(level0) => {
            let (off, n) = level_range(level0)?;
            let expected = tree
                .get(off..off + n * DIGEST_SIZE)
                .ok_or(Error::SizeOutOfRange("level 0"))?;
            let mut computed = vec![0u8; expected.len()];
            hash_blocks_parallel(&base, data, dbs, &mut computed);
            compare_digests(&computed, expected, 0)
                .map_err(|block| Error::DataBlockMismatch { block })
        }
    }
}

/// Verifies `data_size` bytes from `reader` against `tree` and `root`, streaming.
pub fn verify_reader<R: Read + Send>(
    reader: &mut R,
    data_size: u64,
    tree: &[u8],
    root: &RootDigest,
    params: &Params,
) -> Result<()> {
    let layout = Layout::new(data_size, params)?;
    verify_tree(&layout, tree, root, params)?;
    let base = params.salted_hasher();
    let dbs = params.data_block_size as usize;
    match layout.levels.first() {
        None => {
            let mut block = Vec::new();
            reader.take(data_size).read_to_end(&mut block)?;
            if block.len() as u64 != data_size {
                return Err(Error::Truncated {
                    expected: data_size,
                    actual: block.len() as u64,
                });
            }
            check_root(&hash_one_block(&base, &block, dbs), root)
        }
        Some(level0) => {
            let (off, n) = level_range(level0)?;
            let expected = tree
                .get(off..off + n * DIGEST_SIZE)
                .ok_or(Error::SizeOutOfRange("level 0"))?;
            let mut computed = Vec::new();
            for_each_chunk(reader, data_size, dbs, |block_index, chunk| {
                let nblocks = chunk.len().div_ceil(dbs);
                computed.clear();
                computed.resize(nblocks * DIGEST_SIZE, 0);
                hash_blocks_parallel(&base, chunk, dbs, &mut computed);
                let start = usize::try_from(block_index)
                    .ok()
                    .and_then(|b| b.checked_mul(DIGEST_SIZE))
                    .ok_or(Error::SizeOutOfRange("block index"))?;
                let exp = expected
                    .get(start..start + computed.len())
                    .ok_or(Error::SizeOutOfRange("level 0 slice"))?;
                compare_digests(&computed, exp, block_index)
                    .map_err(|block| Error::DataBlockMismatch { block })
            })
        }
    }
}

/// Verifies `data_size` bytes of `file` at `offset` against `tree` and `root` (parallel `pread`).
pub fn verify_file_at(
    file: &File,
    offset: u64,
    data_size: u64,
    tree: &[u8],
    root: &RootDigest,
    params: &Params,
) -> Result<()> {
    let layout = Layout::new(data_size, params)?;
    verify_tree(&layout, tree, root, params)?;
    let base = params.salted_hasher();
    let dbs = params.data_block_size as usize;
    match layout.levels.first() {
        None => {
            let mut block = vec![0u8; dbs];
            let len = usize::try_from(data_size).map_err(|_| Error::SizeOutOfRange("data size"))?;
            let dst = block
                .get_mut(..len)
                .ok_or(Error::SizeOutOfRange("data size"))?;
            read_exact_at(file, dst, offset, data_size)?;
            check_root(&hash_one_block(&base, &block, dbs), root)
        }
        Some(level0) => {
            let (off, n) = level_range(level0)?;
            let expected = tree
                .get(off..off + n * DIGEST_SIZE)
                .ok_or(Error::SizeOutOfRange("level 0"))?;
            let mut computed = vec![0u8; expected.len()];
            level0_from_file(file, offset, data_size, dbs, &base, &mut computed)?;
            compare_digests(&computed, expected, 0)
                .map_err(|block| Error::DataBlockMismatch { block })
        }
    }
}

/// Checks the tree alone, top-down: the top block against `root`, every hash block against
/// its digest in the level above, and that level padding is zero.
pub fn verify_tree(layout: &Layout, tree: &[u8], root: &RootDigest, params: &Params) -> Result<()> {
    if tree.len() as u64 != layout.tree_size {
        return Err(Error::TreeSizeMismatch {
            expected: layout.tree_size,
            actual: tree.len() as u64,
        });
    }
    let Some(top) = layout.levels.last() else {
        return Ok(()); // single data block: checked against the root with the data
    };
    let base = params.salted_hasher();
    let hbs = params.hash_block_size as usize;
    let (top_off, _) = level_range(top)?;
    let top_block = tree
        .get(top_off..top_off + hbs)
        .ok_or(Error::SizeOutOfRange("top level"))?;
    check_root(&hash_one_block(&base, top_block, hbs), root)?;
    for (i, level) in layout.levels.iter().enumerate() {
        let (off, n) = level_range(level)?;
        let size = usize::try_from(level.size).map_err(|_| Error::SizeOutOfRange("level size"))?;
        let bytes = tree
            .get(off..off + size)
            .ok_or(Error::SizeOutOfRange("level"))?;
        if bytes
            .get(n * DIGEST_SIZE..)
            .is_some_and(|pad| pad.iter().any(|&b| b != 0))
        {
            return Err(Error::TreePaddingNotZero { level: i });
        }
        if i == 0 {
            continue;
        }
        // Level i holds the digests of the blocks of level i-1.
        let below = layout
            .levels
            .get(i - 1)
            .ok_or(Error::SizeOutOfRange("level"))?;
        let (boff, _) = level_range(below)?;
        let bsize = usize::try_from(below.size).map_err(|_| Error::SizeOutOfRange("level size"))?;
        let below_bytes = tree
            .get(boff..boff + bsize)
            .ok_or(Error::SizeOutOfRange("level"))?;
        let mut computed = vec![0u8; n * DIGEST_SIZE];
        hash_blocks_parallel(&base, below_bytes, hbs, &mut computed);
        let expected = bytes
            .get(..n * DIGEST_SIZE)
            .ok_or(Error::SizeOutOfRange("level"))?;
        compare_digests(&computed, expected, 0).map_err(|block| Error::TreeBlockMismatch {
            level: i - 1,
            block,
        })?;
    }
    Ok(())
}

/// Lowercase hex encoding.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Decodes hex (either case). `"-"` and `""` decode to an empty vector (veritysetup's "no salt").
pub fn from_hex(s: &str) -> Result<Vec<u8>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    let bytes = s.as_bytes();
    if bytes.len() & 1 == 1 {
        return Err(Error::InvalidHex(s.to_owned()));
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    bytes
        .chunks_exact(2)
        .map(|p| match (nibble(p[0]), nibble(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(Error::InvalidHex(s.to_owned())),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// Chunk size for streaming reads: a multiple of every allowed block size.
const READ_CHUNK: usize = 8 << 20;
/// Below this many bytes, hashing stays on the calling thread.
const PARALLEL_THRESHOLD: usize = 1 << 20;

fn round_up(x: u64, to: u64) -> Option<u64> {
    x.checked_add(to - 1).map(|v| v / to * to)
}

fn alloc_zeroed(size: u64) -> Result<Vec<u8>> {
    let size = usize::try_from(size)
        .map_err(|_| Error::SizeOutOfRange("hash tree does not fit in memory"))?;
    Ok(vec![0u8; size])
}

/// (offset, num_digests) of a level as usize, checking the level's bytes are addressable.
fn level_range(level: &Level) -> Result<(usize, usize)> {
    let off = usize::try_from(level.offset).map_err(|_| Error::SizeOutOfRange("level offset"))?;
    let n =
        usize::try_from(level.num_digests).map_err(|_| Error::SizeOutOfRange("level digests"))?;
    n.checked_mul(DIGEST_SIZE)
        .and_then(|b| b.checked_add(off))
        .ok_or(Error::SizeOutOfRange("level range"))?;
    Ok((off, n))
}

fn check_root(computed: &RootDigest, expected: &RootDigest) -> Result<()> {
    if computed == expected {
        Ok(())
    } else {
        Err(Error::RootDigestMismatch {
            expected: to_hex(expected),
            actual: to_hex(computed),
        })
    }
}

/// Returns the index (offset by `first`) of the first differing digest.
fn compare_digests(computed: &[u8], expected: &[u8], first: u64) -> std::result::Result<(), u64> {
    if computed == expected {
        return Ok(());
    }
    let idx = computed
        .chunks(DIGEST_SIZE)
        .zip(expected.chunks(DIGEST_SIZE))
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Err(first.saturating_add(idx as u64))
}

/// SHA-256(salt ‖ block), zero-padding `block` to `block_size`.
fn hash_one_block(base: &Sha256, block: &[u8], block_size: usize) -> RootDigest {
    static ZEROS: [u8; 65536] = [0u8; 65536];
    let mut h = base.clone();
    h.update(block);
    if block.len() < block_size {
        h.update(&ZEROS[..block_size - block.len()]);
    }
    h.finalize().into()
}

/// Hashes consecutive blocks of `input` (last one zero-padded) into `out` (32 bytes each).
fn hash_blocks(base: &Sha256, input: &[u8], block_size: usize, out: &mut [u8]) {
    for (block, dst) in input
        .chunks(block_size)
        .zip(out.chunks_exact_mut(DIGEST_SIZE))
    {
        dst.copy_from_slice(&hash_one_block(base, block, block_size));
    }
}

fn parallelism() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16)
    })
}

/// Like [`hash_blocks`], spread over the available cores for large inputs.
fn hash_blocks_parallel(base: &Sha256, input: &[u8], block_size: usize, out: &mut [u8]) {
    let nblocks = input.len().div_ceil(block_size);
    let threads = if input.len() >= PARALLEL_THRESHOLD {
        parallelism().min(nblocks)
    } else {
        1
    };
    if threads <= 1 {
        hash_blocks(base, input, block_size, out);
        return;
    }
    let per = nblocks.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut rest_in = input;
        let mut rest_out = &mut *out;
        let mut local = None;
        while !rest_in.is_empty() {
            let take = (per * block_size).min(rest_in.len());
            let (inp, next_in) = rest_in.split_at(take);
            let outlen = (inp.len().div_ceil(block_size) * DIGEST_SIZE).min(rest_out.len());
            let (dst, next_out) = std::mem::take(&mut rest_out).split_at_mut(outlen);
            rest_in = next_in;
            rest_out = next_out;
            if rest_in.is_empty() {
                // The last share runs on this thread.
                local = Some((inp, dst));
                break;
            }
            let spawned = std::thread::Builder::new()
                .spawn_scoped(scope, move || hash_blocks(base, inp, block_size, dst));
            if let Err(_e) = spawned {
                // Could not start a thread: this share is lost with the closure, so redo the
                // whole input sequentially after the scope (rare; correctness first).
                return Err(());
            }
        }
        if let Some((inp, dst)) = local {
            hash_blocks(base, inp, block_size, dst);
        }
        Ok(())
    })
    .unwrap_or_else(|()| hash_blocks(base, input, block_size, out));
}

/// Reads exactly `data_size` bytes in chunks of whole blocks and calls `f(first_block, chunk)`.
/// Large inputs are read on a helper thread, one chunk ahead of the hashing (double buffering).
fn for_each_chunk<R: Read + Send>(
    reader: &mut R,
    data_size: u64,
    block_size: usize,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let chunk_cap = usize::try_from(data_size)
        .map_or(READ_CHUNK, |s| s.min(READ_CHUNK))
        .max(1);
    if data_size <= chunk_cap as u64 {
        let mut buf = vec![0u8; chunk_cap];
        let n = fill(reader, &mut buf, chunk_cap)?;
        if n as u64 != data_size {
            return Err(Error::Truncated {
                expected: data_size,
                actual: n as u64,
            });
        }
        return f(0, buf.get(..n).ok_or(Error::SizeOutOfRange("read buffer"))?);
    }
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<Result<(u64, Vec<u8>, usize)>>(1);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..2 {
            // Cannot fail: the receiver is alive.
            let _ = free_tx.send(vec![0u8; chunk_cap]);
        }
        std::thread::Builder::new()
            .name("verity-read".into())
            .spawn_scoped(scope, move || {
                let mut done: u64 = 0;
                while done < data_size {
                    let Ok(mut buf) = free_rx.recv() else { return };
                    let want =
                        usize::try_from(data_size - done).map_or(buf.len(), |r| r.min(buf.len()));
                    let msg = match fill(reader, &mut buf, want) {
                        Ok(n) if n == want => Ok((done, buf, n)),
                        Ok(n) => Err(Error::Truncated {
                            expected: data_size,
                            actual: done.saturating_add(n as u64),
                        }),
                        Err(e) => Err(e),
                    };
                    let stop = msg.is_err();
                    if full_tx.send(msg).is_err() || stop {
                        return;
                    }
                    done += want as u64;
                }
            })?;
        let mut done: u64 = 0;
        for msg in full_rx.iter() {
            let (start, buf, n) = msg?;
            f(
                start / block_size as u64,
                buf.get(..n).ok_or(Error::SizeOutOfRange("read buffer"))?,
            )?;
            done = start.saturating_add(n as u64);
            let _ = free_tx.send(buf);
        }
        if done != data_size {
            return Err(Error::Truncated {
                expected: data_size,
                actual: done,
            });
        }
        Ok(())
    })
}

/// Chunk size of one `pread` in [`level0_from_file`].
const PREAD_CHUNK: usize = 2 << 20;

/// `read_exact_at`, reporting a short file as [`Error::Truncated`].
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, data_size: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            let have = file
                .metadata()
                .map_or(0, |m| m.len())
                .saturating_sub(offset);
            Error::Truncated {
                expected: data_size,
                actual: have.min(data_size),
            }
        } else {
            Error::Io(e)
        }
    })
}

/// Level-0 digests of `data_size` bytes of `file` at `offset` into `out`: every core reads
/// (`pread`) and hashes its own interleaved share of 2 MiB chunks.
fn level0_from_file(
    file: &File,
    offset: u64,
    data_size: u64,
    block_size: usize,
    base: &Sha256,
    out: &mut [u8],
) -> Result<()> {
    let blocks_per_chunk = PREAD_CHUNK / block_size;
    let chunks: Vec<(usize, &mut [u8])> = out
        .chunks_mut(blocks_per_chunk * DIGEST_SIZE)
        .enumerate()
        .collect();
    let workers = parallelism().min(chunks.len()).max(1);
    let mut shares: Vec<Vec<(usize, &mut [u8])>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, c) in chunks.into_iter().enumerate() {
        if let Some(share) = shares.get_mut(i % workers) {
            share.push(c);
        }
    }
    let work = |share: Vec<(usize, &mut [u8])>| -> Result<()> {
        let mut buf = vec![0u8; PREAD_CHUNK];
        for (ci, dst) in share {
            let pos = (ci as u64)
                .checked_mul(PREAD_CHUNK as u64)
                .ok_or(Error::SizeOutOfRange("offset"))?;
            let len = usize::try_from(data_size.saturating_sub(pos))
                .map_or(PREAD_CHUNK, |r| r.min(PREAD_CHUNK));
            let at = offset
                .checked_add(pos)
                .ok_or(Error::SizeOutOfRange("offset"))?;
            let chunk = buf
                .get_mut(..len)
                .ok_or(Error::SizeOutOfRange("read buffer"))?;
            read_exact_at(file, chunk, at, data_size)?;
            hash_blocks(base, chunk, block_size, dst);
        }
        Ok(())
    };
    let mut shares = shares.into_iter();
    let mine = shares.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for share in shares {
            handles.push(
                std::thread::Builder::new()
                    .name("verity-hash".into())
                    .spawn_scoped(scope, move || work(share))?,
            );
        }
        let mut result = work(mine);
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
            result = result.and(r);
        }
        result
    })
}

/// Reads until `want` bytes are in `buf` or the reader ends; returns the count read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8], want: usize) -> Result<usize> {
    let mut filled = 0;
    while filled < want {
        let dst = buf
            .get_mut(filled..want)
            .ok_or(Error::SizeOutOfRange("read buffer"))?;
        match reader.read(dst) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// Hashes level 1.. from level 0 already in `tree`; returns the root digest.
fn finish_upper_levels(tree: &mut [u8], layout: &Layout, params: &Params) -> Result<RootDigest> {
    let base = params.salted_hasher();
    let hbs = params.hash_block_size as usize;
    for pair in layout.levels.windows(2) {
        let [below, above] = pair else { continue };
        let boff =
            usize::try_from(below.offset).map_err(|_| Error::SizeOutOfRange("level offset"))?;
        let bsize = usize::try_from(below.size).map_err(|_| Error::SizeOutOfRange("level size"))?;
        let (aoff, an) = level_range(above)?;
        // Top-down storage: the level above lies before the level below.
        let (head, tail) = tree.split_at_mut(boff);
        let src = tail.get(..bsize).ok_or(Error::SizeOutOfRange("level"))?;
        let dst = head
            .get_mut(aoff..aoff + an * DIGEST_SIZE)
            .ok_or(Error::SizeOutOfRange("level"))?;
        hash_blocks_parallel(&base, src, hbs, dst);
    }
    let top = layout
        .levels
        .last()
        .ok_or(Error::SizeOutOfRange("no levels"))?;
    let (toff, _) = level_range(top)?;
    let top_block = tree
        .get(toff..toff + hbs)
        .ok_or(Error::SizeOutOfRange("top level"))?;
    Ok(hash_one_block(&base, top_block, hbs))
}

#[cfg(test)]
mod tests;
