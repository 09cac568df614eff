//! The FUSE ceiling for `make bench`: a minimal fuser daemon that serves one STORED zip entry as
//! `MNT/entry` with one `pread` of the archive per FUSE read, and nothing else (no CRC, no
//! prefetch, no inode table). zipfuse's rows are compared with it in the same run
//! (scripts/bench/zipfuse_bench.py), so what is left between them is zipfuse's own cost and what
//! is left between the probe and a raw read is the FUSE transport's.
//!
//! Usage: `fuse_probe ZIP ENTRY MOUNTPOINT` (stays in the foreground; unmount to stop).

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, Request,
};

const TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const ROOT: u64 = 1;
const ENTRY: u64 = 2;

struct Probe {
    zip: File,
    data_start: u64,
    size: u64,
    buf: std::sync::Mutex<Vec<u8>>,
}

impl Probe {
    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, perm, size, nlink) = if ino == ROOT {
            (FileType::Directory, 0o555, 0, 2)
        } else {
            (FileType::RegularFile, 0o444, self.size, 1)
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl Filesystem for Probe {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == ROOT && name == "entry" {
            reply.entry(&TTL, &self.attr(ENTRY), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match ino.0 {
            ROOT | ENTRY => reply.attr(&TTL, &self.attr(ino.0)),
            _ => reply.error(Errno::ENOENT),
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
        if ino.0 != ENTRY {
            return reply.error(Errno::EISDIR);
        }
        let n = self.size.saturating_sub(offset).min(u64::from(size)) as usize;
        let Ok(mut buf) = self.buf.lock() else {
            return reply.error(Errno::EIO);
        };
        if buf.len() < n {
            buf.resize(n, 0);
        }
        match self
            .zip
            .read_exact_at(&mut buf[..n], self.data_start + offset)
        {
            Ok(()) => reply.data(&buf[..n]),
            Err(_) => reply.error(Errno::EIO),
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
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (ENTRY, FileType::RegularFile, "entry"),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zip_path, entry, mountpoint] = args.as_slice() else {
        bail!("usage: fuse_probe ZIP ENTRY MOUNTPOINT");
    };
    let file = File::open(zip_path).with_context(|| format!("opening {zip_path}"))?;
    let mut archive = zip::ZipArchive::new(&file).context("reading the central directory")?;
    let (data_start, size) = {
        let f = archive
            .by_name(entry)
            .with_context(|| format!("no entry {entry}"))?;
        if f.compression() != zip::CompressionMethod::Stored {
            bail!("{entry} is not STORED: the probe serves stored entries only");
        }
        (
            f.data_start().context("entry without data offset")?,
            f.size(),
        )
    };
    drop(archive);
    let probe = Probe {
        zip: file,
        data_start,
        size,
        buf: std::sync::Mutex::new(Vec::new()),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::FSName("fuse_probe".into()),
    ];
    config.n_threads = Some(1);
    fuser::mount(probe, PathBuf::from(mountpoint), &config).context("serving the mount")?;
    Ok(())
}
