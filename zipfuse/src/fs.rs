//! The FUSE filesystem: fuser `Filesystem` over an [`InodeTable`] and the archive file.
//!
//! * Stored entries: one `pread` of the archive per FUSE read, at `data_offset + offset`, into a
//!   per-thread buffer that goes straight into the reply (fuser cannot splice). No lock is taken
//!   on this path (the sequential CRC tracker uses `try_lock` and steps aside when contended).
//! * Deflated entries: [`DeflateReader`] (checkpoint index, cursors, block cache).
//! * Everything is immutable, so entries and attributes get one-year TTLs, files are opened with
//!   `FOPEN_KEEP_CACHE` (or zero-message opens, which keep the cache too) and directories with
//!   `FOPEN_CACHE_DIR`.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::archive::{Entry, Method, Source};
use crate::error::ZipError;
use crate::inode::{InodeTable, Node, NodeKind};
use crate::zran::{BlockSink, DeflateOptions, DeflateReader};

/// Entries and attributes never change.
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Largest read the mount allows (`max_read`).
pub const MAX_READ: usize = 1 << 20;
/// Blocks queued for the page-cache feeder at most (64 KiB each).
const FEED_QUEUE: usize = 64;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Filesystem-level options.
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// Owner of every inode.
    pub uid: u32,
    /// Group of every inode.
    pub gid: u32,
    /// Deflate index and cache knobs.
    pub deflate: DeflateOptions,
    /// Push inflated blocks that no request asked for into the kernel page cache.
    pub feed_page_cache: bool,
    /// Offer READDIRPLUS (attributes with directory entries; `FUSE_READDIRPLUS_AUTO`).
    pub readdirplus: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            uid: 0,
            gid: 0,
            deflate: DeflateOptions::default(),
            feed_page_cache: true,
            readdirplus: true,
        }
    }
}

/// A FUSE operation zipfuse answers, for [`RequestCounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Init,
    Lookup,
    Getattr,
    Open,
    Read,
    Opendir,
    Readdir,
    Readdirplus,
    Statfs,
    Getxattr,
    Listxattr,
    Flush,
}

impl Op {
    /// Every operation, in the order `--stats` prints them.
    pub const ALL: [Op; 12] = [
        Op::Init,
        Op::Lookup,
        Op::Getattr,
        Op::Open,
        Op::Read,
        Op::Opendir,
        Op::Readdir,
        Op::Readdirplus,
        Op::Statfs,
        Op::Getxattr,
        Op::Listxattr,
        Op::Flush,
    ];

    /// The name `--stats` prints.
    pub fn name(self) -> &'static str {
        match self {
            Op::Init => "init",
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Open => "open",
            Op::Read => "read",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Readdirplus => "readdirplus",
            Op::Statfs => "statfs",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
            Op::Flush => "flush",
        }
    }
}

/// The FUSE requests the kernel sent, by operation (`zipfuse --stats` prints them when it
/// unmounts). Which requests come at all is what the INIT capabilities, the entry and attribute
/// timeouts, the open flags and the ENOSYS answers decide: this is how a test or a profile sees
/// them. One relaxed atomic add per request.
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: [AtomicU64; Op::ALL.len()],
}

impl RequestCounts {
    fn add(&self, op: Op) {
        if let Some(c) = self.counts.get(op as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests of `op` so far.
    pub fn get(&self, op: Op) -> u64 {
        self.counts
            .get(op as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// `init 1, lookup 3, …`: every operation, in [`Op::ALL`]'s order.
    pub fn summary(&self) -> String {
        Op::ALL
            .iter()
            .map(|&op| format!("{} {}", op.name(), self.get(op)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// CRC of a stored entry read in order from offset 0.
#[derive(Default)]
struct SeqCrc {
    next: u64,
    hasher: crc32fast::Hasher,
    /// The tracker lost the sequence; wait for a read at offset 0.
    broken: bool,
    /// The entry has been verified (ok) and needs no more tracking.
    verified: bool,
}

/// A block queued for `FUSE_NOTIFY_STORE`.
pub struct FeedItem {
    ino: u64,
    offset: u64,
    data: Arc<[u8]>,
}

struct FeedSink {
    tx: SyncSender<FeedItem>,
    entry_ino: Arc<Vec<u64>>,
}

impl BlockSink for FeedSink {
    fn offer(&self, entry: usize, offset: u64, data: Arc<[u8]>) {
        let Some(&ino) = self.entry_ino.get(entry) else {
            return;
        };
        // Never block a request on the feeder: drop the block when the queue is full.
        match self.tx.try_send(FeedItem { ino, offset, data }) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Pushes queued blocks into the kernel page cache until the filesystem goes away. Runs on its
/// own thread: a store waits for page locks that an in-flight read may hold, and that read is
/// answered by a worker thread, never by this one.
pub fn run_feeder(rx: Receiver<FeedItem>, notifier: Notifier) {
    while let Ok(item) = rx.recv() {
        if notifier
            .store(INodeNo(item.ino), item.offset, &item.data)
            .is_err()
        {
            log::debug!("notify_store failed for inode {}", item.ino);
        }
    }
}

/// The filesystem.
pub struct ZipFs {
    file: Arc<File>,
    entries: Vec<Entry>,
    table: InodeTable,
    opts: FsOptions,
    deflate: DeflateReader,
    seq: Vec<Mutex<SeqCrc>>,
    total_size: u64,
    feed_rx: Mutex<Option<Receiver<FeedItem>>>,
    /// The kernel supports zero-message opens (set in `init`).
    no_open: bool,
    requests: Arc<RequestCounts>,
}

impl ZipFs {
    /// A filesystem over `file` with the validated `entries` and their `table`.
    pub fn new(file: File, entries: Vec<Entry>, table: InodeTable, opts: FsOptions) -> ZipFs {
        let mut entry_ino = vec![0u64; entries.len()];
        for ino in 1..=table.len() as u64 {
            if let Some(Node {
                kind: NodeKind::File { entry },
                ..
            }) = table.get(ino)
            {
                if let Some(slot) = entry_ino.get_mut(*entry) {
                    *slot = ino;
                }
            }
        }
        let (sink, rx): (Option<Arc<dyn BlockSink>>, _) = if opts.feed_page_cache {
            let (tx, rx) = std::sync::mpsc::sync_channel(FEED_QUEUE);
            (
                Some(Arc::new(FeedSink {
                    tx,
                    entry_ino: Arc::new(entry_ino),
                })),
                Some(rx),
            )
        } else {
            (None, None)
        };
        let deflate = DeflateReader::new(entries.len(), opts.deflate.clone(), sink);
        let seq = entries
            .iter()
            .map(|_| Mutex::new(SeqCrc::default()))
            .collect();
        let total_size = entries
            .iter()
            .map(|e| e.size)
            .fold(0u64, u64::saturating_add);
        ZipFs {
            file: Arc::new(file),
            entries,
            table,
            opts,
            deflate,
            seq,
            total_size,
            feed_rx: Mutex::new(rx),
            no_open: false,
            requests: Arc::default(),
        }
    }

    /// The FUSE requests served so far, by operation (shared: it outlives the session).
    pub fn requests(&self) -> Arc<RequestCounts> {
        Arc::clone(&self.requests)
    }

    /// The receiving end of the page-cache feeder queue (taken once, by the mount code).
    pub fn take_feed_receiver(&self) -> Option<Receiver<FeedItem>> {
        self.feed_rx.lock().ok().and_then(|mut g| g.take())
    }

    /// The inode table.
    pub fn table(&self) -> &InodeTable {
        &self.table
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, nlink) = match &node.kind {
            NodeKind::Dir { subdirs, .. } => (FileType::Directory, 2u32.saturating_add(*subdirs)),
            NodeKind::File { .. } => (FileType::RegularFile, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size: node.size,
            blocks: node.size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm: (node.perm & 0o777) as u16,
            nlink,
            uid: self.opts.uid,
            gid: self.opts.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Reads `len` bytes of file inode `ino` at `offset` and hands them to `f` (the FUSE reply
    /// in production, a collector in tests).
    pub fn read_with<R>(
        &self,
        ino: u64,
        offset: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ReadError> {
        let node = self.table.get(ino).ok_or(ReadError::NotFound)?;
        let NodeKind::File { entry } = node.kind else {
            return Err(ReadError::IsDir);
        };
        let e = self.entries.get(entry).ok_or(ReadError::NotFound)?;
        let len = len.min(MAX_READ);
        READ_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let n = match e.method {
                Method::Stored => self.read_stored(entry, e, offset, &mut buf[..len])?,
                Method::Deflated => {
                    self.deflate
                        .read(self.file.as_ref(), entry, e, offset, &mut buf[..len])?
                }
            };
            Ok(f(&buf[..n]))
        })
    }

    fn read_stored(
        &self,
        idx: usize,
        e: &Entry,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, ZipError> {
        if offset >= e.size {
            return Ok(0);
        }
        let n = usize::try_from((e.size - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        let at = e
            .data_offset
            .checked_add(offset)
            .ok_or(ZipError::EntryOutOfBounds {
                name: e.display_name(),
            })?;
        self.file
            .as_ref()
            .read_exact_at(&mut buf[..n], at)
            .map_err(|source| ZipError::Io {
                what: "reading a stored entry",
                source,
            })?;
        self.track_crc(idx, e, offset, &buf[..n])?;
        Ok(n)
    }

    /// CRC check of stored entries read in order from 0 to the end (best effort: out-of-order or
    /// concurrent reads just skip it).
    fn track_crc(&self, idx: usize, e: &Entry, offset: u64, data: &[u8]) -> Result<(), ZipError> {
        let Some(slot) = self.seq.get(idx) else {
            return Ok(());
        };
        let Ok(mut t) = slot.try_lock() else {
            return Ok(());
        };
        if t.verified {
            return Ok(());
        }
        if offset == 0 {
            *t = SeqCrc::default();
        } else if t.broken || offset != t.next {
            t.broken = true;
            return Ok(());
        }
        t.hasher.update(data);
        t.next = offset + data.len() as u64;
        if t.next == e.size {
            let actual = std::mem::take(&mut t.hasher).finalize();
            *t = SeqCrc::default();
            if actual != e.crc32 {
                return Err(ZipError::CrcMismatch {
                    name: e.display_name(),
                    expected: e.crc32,
                    actual,
                });
            }
            t.verified = true;
        }
        Ok(())
    }
}

/// One entry of a directory listing, as READDIR and READDIRPLUS send it.
#[derive(Debug)]
pub struct DirEntry<'a> {
    /// The entry's inode.
    pub ino: u64,
    /// The offset the kernel passes back to continue after this entry.
    pub next_offset: u64,
    /// Directory or regular file.
    pub kind: FileType,
    /// The name (`.` and `..` included).
    pub name: &'a [u8],
    /// Its node, for READDIRPLUS's attributes (plain READDIR does not compute them).
    pub node: &'a Node,
}

/// What `statfs` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Total size in 4 KiB blocks.
    pub blocks: u64,
    /// Number of inodes.
    pub files: u64,
}

/// The FUSE operations as plain functions of the request's arguments: the `Filesystem` impl
/// below only moves their results into fuser's replies, so tests and the `ops` fuzz target
/// drive exactly what the kernel drives.
impl ZipFs {
    /// LOOKUP: `name` in directory `parent`.
    pub fn lookup_attr(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        let ino = self.table.lookup(parent, name).ok_or(Errno::ENOENT)?;
        self.attr_of(ino)
    }

    /// GETATTR.
    pub fn attr_of(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.table.get(ino).ok_or(Errno::ENOENT)?;
        Ok(self.attr(ino, node))
    }

    /// OPEN with the kernel's `flags`: read-only opens of files only. With zero-message opens
    /// negotiated this answers ENOSYS, which tells the kernel to stop sending OPEN.
    pub fn open_file(&self, ino: u64, flags: i32) -> Result<FileHandle, Errno> {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(Errno::EROFS);
        }
        match self.table.get(ino) {
            Some(n) if n.is_dir() => Err(Errno::EISDIR),
            Some(_) if self.no_open => Err(Errno::ENOSYS),
            Some(_) => Ok(FileHandle(ino)),
            None => Err(Errno::ENOENT),
        }
    }

    /// OPENDIR.
    pub fn open_dir(&self, ino: u64) -> Result<(), Errno> {
        match self.table.get(ino) {
            Some(n) if n.is_dir() => Ok(()),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// READDIR from `offset`: offsets are 0 (start), 1 (after "."), 2 (after ".."), then
    /// 2 + i + 1 after child i; an offset past the end lists nothing.
    pub fn dir_entries(
        &self,
        ino: u64,
        offset: u64,
    ) -> Result<impl Iterator<Item = DirEntry<'_>>, Errno> {
        let node = self.table.get(ino).ok_or(Errno::ENOENT)?;
        let NodeKind::Dir { children, .. } = &node.kind else {
            return Err(Errno::ENOTDIR);
        };
        let parent = self.table.get(node.parent).unwrap_or(node);
        let dots = [
            DirEntry {
                ino,
                next_offset: 1,
                kind: FileType::Directory,
                name: b".",
                node,
            },
            DirEntry {
                ino: node.parent,
                next_offset: 2,
                kind: FileType::Directory,
                name: b"..",
                node: parent,
            },
        ];
        let skip_dots = usize::try_from(offset.min(2)).unwrap_or(2);
        let start = usize::try_from(offset.saturating_sub(2)).unwrap_or(usize::MAX);
        let children = children
            .iter()
            .enumerate()
            .skip(start)
            .filter_map(move |(i, &child)| {
                let c = self.table.get(child)?;
                Some(DirEntry {
                    ino: child,
                    next_offset: (i as u64).saturating_add(3),
                    kind: if c.is_dir() {
                        FileType::Directory
                    } else {
                        FileType::RegularFile
                    },
                    name: &c.name,
                    node: c,
                })
            });
        Ok(dots.into_iter().skip(skip_dots).chain(children))
    }

    /// STATFS.
    pub fn stats(&self) -> Stats {
        Stats {
            blocks: self.total_size.div_ceil(4096),
            files: self.table.len() as u64,
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such inode.
    #[error("no such inode")]
    NotFound,
    /// The inode is a directory.
    #[error("is a directory")]
    IsDir,
    /// The archive is corrupt or unreadable.
    #[error(transparent)]
    Zip(#[from] ZipError),
}

impl ReadError {
    /// The errno the FUSE reply carries.
    pub fn errno(&self) -> Errno {
        match self {
            ReadError::NotFound => Errno::ENOENT,
            ReadError::IsDir => Errno::EISDIR,
            ReadError::Zip(_) => Errno::EIO,
        }
    }
}

impl Filesystem for ZipFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        self.requests.add(Op::Init);
        // Zero-message opens: when the kernel offers FUSE_NO_OPEN_SUPPORT (a flag it only
        // advertises; nothing is asked back), `open` answers ENOSYS once and the kernel stops
        // sending OPEN/RELEASE for files (it then keeps the page cache, like FOPEN_KEEP_CACHE).
        let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS;
        if self.opts.readdirplus {
            wanted |= InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        }
        let _ = config.add_capabilities(wanted & config.capabilities());
        self.no_open = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        if let Err(max) = config.set_max_readahead(MAX_READ as u32) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.requests.add(Op::Lookup);
        match self.lookup_attr(parent.0, name.as_bytes()) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.requests.add(Op::Getattr);
        match self.attr_of(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.requests.add(Op::Open);
        match self.open_file(ino.0, flags.0) {
            Ok(fh) => reply.opened(fh, FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.requests.add(Op::Read);
        // The handle is not consulted: every read names its inode, and a handle carries nothing
        // an inode does not (so a stale or made-up handle reads what its inode holds).
        let mut reply = Some(reply);
        let result = self.read_with(ino.0, offset, size as usize, |data| {
            if let Some(r) = reply.take() {
                r.data(data);
            }
        });
        if let Err(err) = result {
            if let ReadError::Zip(z) = &err {
                log::error!("read of inode {} at {offset}: {z}", ino.0);
            }
            if let Some(r) = reply.take() {
                r.error(err.errno());
            }
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.requests.add(Op::Opendir);
        match self.open_dir(ino.0) {
            Ok(()) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.requests.add(Op::Readdir);
        let entries = match self.dir_entries(ino.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for e in entries {
            if reply.add(
                INodeNo(e.ino),
                e.next_offset,
                e.kind,
                OsStr::from_bytes(e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.requests.add(Op::Readdirplus);
        let entries = match self.dir_entries(ino.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for e in entries {
            if reply.add(
                INodeNo(e.ino),
                e.next_offset,
                OsStr::from_bytes(e.name),
                &TTL,
                &self.attr(e.ino, e.node),
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.requests.add(Op::Statfs);
        let s = self.stats();
        reply.statfs(s.blocks, 0, 0, s.files, 0, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        self.requests.add(Op::Getxattr);
        // ENOSYS makes the kernel stop asking (cached per mount).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        self.requests.add(Op::Listxattr);
        reply.error(Errno::ENOSYS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.requests.add(Op::Flush);
        // Nothing to flush; ENOSYS makes the kernel stop sending FLUSH on every close.
        reply.error(Errno::ENOSYS);
    }

    // No ACCESS handler: the mount always has `default_permissions`, so the kernel checks
    // access(2) and chdir against the attributes itself and never sends ACCESS.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::parse;
    use crate::inode::ModePolicy;
    use std::io::Write;
    use ziparchive::testzip::ZipBuilder;

    fn fs_from(z: &[u8]) -> ZipFs {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(z).unwrap();
        let a = parse(&f, z.len() as u64).unwrap();
        let t = InodeTable::build(&a.entries, ModePolicy::default()).unwrap();
        ZipFs::new(f, a.entries, t, FsOptions::default())
    }

    #[test]
    fn stored_reads_and_eof() {
        let mut b = ZipBuilder::new();
        b.stored("a/b.txt", b"hello world");
        let fs = fs_from(&b.finish());
        let ino = fs.table().resolve("a/b.txt").unwrap();
        assert_eq!(
            fs.read_with(ino, 0, 100, |d| d.to_vec()).unwrap(),
            b"hello world"
        );
        assert_eq!(fs.read_with(ino, 6, 3, |d| d.to_vec()).unwrap(), b"wor");
        assert_eq!(fs.read_with(ino, 11, 10, |d| d.len()).unwrap(), 0);
        assert_eq!(fs.read_with(ino, u64::MAX, 10, |d| d.len()).unwrap(), 0);
        let dir = fs.table().resolve("a").unwrap();
        assert!(matches!(
            fs.read_with(dir, 0, 1, |d| d.len()),
            Err(ReadError::IsDir)
        ));
        assert!(matches!(
            fs.read_with(999, 0, 1, |d| d.len()),
            Err(ReadError::NotFound)
        ));
    }

    /// Requests the kernel may send that name nothing, ask for nothing or ask for too much.
    #[test]
    fn odd_requests_get_their_errno() {
        let mut b = ZipBuilder::new();
        b.stored("d/f", &[9u8; 3000]);
        let fs = fs_from(&b.finish());
        let dir = fs.table().resolve("d").unwrap();
        let file = fs.table().resolve("d/f").unwrap();
        let unknown = fs.table().len() as u64 + 1;

        // Reads of zero bytes, and of more than any FUSE read can ask for.
        assert_eq!(fs.read_with(file, 0, 0, |d| d.len()).unwrap(), 0);
        assert_eq!(
            fs.read_with(file, 0, MAX_READ * 4, |d| d.len()).unwrap(),
            3000
        );
        // Unknown inodes (0 is never an inode), for every operation.
        for ino in [0, unknown, u64::MAX] {
            assert_eq!(fs.attr_of(ino).unwrap_err(), Errno::ENOENT);
            assert_eq!(
                fs.open_file(ino, libc::O_RDONLY).unwrap_err(),
                Errno::ENOENT
            );
            assert_eq!(fs.open_dir(ino).unwrap_err(), Errno::ENOENT);
            assert_eq!(fs.dir_entries(ino, 0).err(), Some(Errno::ENOENT));
            assert_eq!(fs.lookup_attr(ino, b"f").unwrap_err(), Errno::ENOENT);
            assert_eq!(
                fs.read_with(ino, 0, 1, |d| d.len()).unwrap_err().errno(),
                Errno::ENOENT
            );
        }
        // Kinds that do not match the operation; writes.
        assert_eq!(
            fs.open_file(dir, libc::O_RDONLY).unwrap_err(),
            Errno::EISDIR
        );
        assert_eq!(fs.open_dir(file).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(fs.dir_entries(file, 0).err(), Some(Errno::ENOTDIR));
        assert_eq!(fs.lookup_attr(file, b"x").unwrap_err(), Errno::ENOENT);
        for flags in [libc::O_WRONLY, libc::O_RDWR] {
            assert_eq!(fs.open_file(file, flags).unwrap_err(), Errno::EROFS);
        }
        // A handle is the inode: any read names its inode, so a made-up handle changes nothing.
        assert_eq!(
            fs.open_file(file, libc::O_RDONLY).unwrap(),
            FileHandle(file)
        );
        // Directory offsets: from the start, after each entry, and past the end.
        let names = |off| {
            fs.dir_entries(dir, off)
                .unwrap()
                .map(|e| (e.name.to_vec(), e.next_offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(0),
            vec![(b".".to_vec(), 1), (b"..".to_vec(), 2), (b"f".to_vec(), 3)]
        );
        assert_eq!(names(2), vec![(b"f".to_vec(), 3)]);
        assert!(names(3).is_empty());
        assert!(names(u64::MAX).is_empty());
        assert_eq!(
            fs.stats(),
            Stats {
                blocks: 1,
                files: 3
            }
        );
    }

    #[test]
    fn stored_bad_crc_is_detected_on_sequential_read() {
        let mut b = ZipBuilder::new();
        b.stored("x", &[5u8; 10000]).crc ^= 0xff;
        let fs = fs_from(&b.finish());
        let ino = fs.table().resolve("x").unwrap();
        assert!(fs.read_with(ino, 0, 4096, |d| d.len()).is_ok());
        let err = fs.read_with(ino, 4096, 8192, |d| d.len()).unwrap_err();
        assert!(
            matches!(err, ReadError::Zip(ZipError::CrcMismatch { .. })),
            "{err}"
        );
    }

    #[test]
    fn stored_reads_out_of_order_skip_the_crc_check_and_never_fail_a_good_entry() {
        let data: Vec<u8> = (0..10000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut b = ZipBuilder::new();
        b.stored("x", &data);
        let fs = fs_from(&b.finish());
        let ino = fs.table().resolve("x").unwrap();
        let read = |off: u64, len: usize| fs.read_with(ino, off, len, |d| d.to_vec()).unwrap();
        // A gap (4096..6000 never read), then on to the end: no CRC over bytes that skip some.
        assert_eq!(read(0, 4096), data[..4096]);
        assert_eq!(read(6000, 2000), data[6000..8000]);
        assert_eq!(read(8000, 2000), data[8000..]);
        // Once broken, the whole pass stays unchecked, even when reads line up again.
        assert_eq!(read(4096, 1904), data[4096..6000]);
        assert_eq!(read(6000, 4000), data[6000..]);
        // A new pass from 0 is checked again, and passes.
        assert_eq!(read(0, 10000), data);
    }
}
