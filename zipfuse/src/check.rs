//! Whole-archive checks: everything the mount does at mount time, plus reading every entry to
//! its end (which verifies every CRC). Used by the bad-corpus tests and the fuzz target.

use crate::archive::{self, Method, Source};
use crate::error::ZipError;
use crate::inode::{InodeTable, ModePolicy};
use crate::zran::{DeflateOptions, DeflateReader};

/// Validates `src` as the mount would, then reads every entry completely (at most `limit`
/// bytes of each), checking CRCs of entries read to their end. Returns the number of entries.
pub fn check_archive<S: Source + ?Sized>(src: &S, len: u64, limit: u64) -> Result<usize, ZipError> {
    let a = archive::parse(src, len)?;
    let _table = InodeTable::build(&a.entries, ModePolicy::default())?;
    let opts = DeflateOptions {
        min_spacing: 64 * 1024,
        index_budget: 1 << 20,
        max_cursors: 2,
        cache_bytes: 256 * 1024,
    };
    let reader = DeflateReader::new(a.entries.len(), opts, None);
    let mut buf = vec![0u8; 64 * 1024];
    for (i, e) in a.entries.iter().enumerate() {
        let end = e.size.min(limit);
        let mut off = 0u64;
        let mut crc = crc32fast::Hasher::new();
        while off < end {
            let want = usize::try_from((end - off).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = match e.method {
                Method::Stored => {
                    let at = e
                        .data_offset
                        .checked_add(off)
                        .ok_or(ZipError::EntryOutOfBounds {
                            name: e.display_name(),
                        })?;
                    src.read_exact_at(&mut buf[..want], at)
                        .map_err(|source| ZipError::Io {
                            what: "reading a stored entry",
                            source,
                        })?;
                    want
                }
                Method::Deflated => reader.read(src, i, e, off, &mut buf[..want])?,
            };
            if n == 0 {
                return Err(ZipError::CorruptDeflate {
                    name: e.display_name(),
                    reason: "short read",
                });
            }
            crc.update(&buf[..n]);
            off += n as u64;
        }
        if end == e.size && e.method == Method::Stored {
            let actual = crc.finalize();
            if actual != e.crc32 {
                return Err(ZipError::CrcMismatch {
                    name: e.display_name(),
                    expected: e.crc32,
                    actual,
                });
            }
        }
    }
    Ok(a.entries.len())
}

/// The fuzz entry point: archive bytes to the inode table and reads. Never panics; the result
/// is ignored by the fuzzer (errors are expected for most inputs).
pub fn fuzz_one(data: &[u8]) -> Result<usize, ZipError> {
    check_archive(data, data.len() as u64, 4 << 20)
}

/// The `ops` fuzz target: FUSE operation sequences against a hostile archive.
///
/// Input: a little-endian `u16` K, then K bytes of operations, then the archive. The archive is
/// parsed as the mount parses it (most mutations stop there, like [`fuzz_one`]); when it mounts,
/// every operation runs against the same [`ZipFs`](crate::fs::ZipFs) the kernel would talk to,
/// first a walk of the whole tree (lookup, getattr, readdir and readdirplus at every offset,
/// reads of every file at the start, the middle, the end, past the end, of length zero and
/// larger than any FUSE read), then the K bytes decoded as operations on inodes chosen from the
/// table and beyond it. Asserts what the kernel relies on: reads never return more than asked,
/// than `MAX_READ` or than the file holds past the offset; directory offsets strictly increase
/// and every listed inode exists; lookup and getattr agree. Returns the number of operations
/// run.
pub fn fuzz_ops(data: &[u8]) -> Result<usize, ZipError> {
    use crate::fs::{FsOptions, ZipFs, MAX_READ};
    use std::io::Write;

    let (ops, archive) = match data {
        [a, b, rest @ ..] => {
            let k = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
            rest.split_at(k)
        }
        _ => return Ok(0),
    };
    let mut file = memfd().map_err(|source| ZipError::Io {
        what: "creating the archive's memfd",
        source,
    })?;
    file.write_all(archive).map_err(|source| ZipError::Io {
        what: "writing the archive",
        source,
    })?;
    let len = archive.len() as u64;
    let a = archive::parse(&file, len)?;
    let table = InodeTable::build(&a.entries, ModePolicy::default())?;
    let opts = FsOptions {
        deflate: DeflateOptions {
            min_spacing: 16 * 1024,
            index_budget: 64 * 1024,
            max_cursors: 2,
            cache_bytes: 64 * 1024,
        },
        ..FsOptions::default()
    };
    let fs = ZipFs::new(file, a.entries, table, opts);
    let inodes = fs.table().len() as u64;
    let mut count = 0usize;

    let read = |ino: u64, offset: u64, len: usize| {
        let size = fs.attr_of(ino).map(|a| a.size).unwrap_or(0);
        if let Ok(n) = fs.read_with(ino, offset, len, |d| d.len()) {
            assert!(
                n <= len && n <= MAX_READ,
                "read returned {n} bytes for {len}"
            );
            assert!(n as u64 <= size.saturating_sub(offset), "read past the end");
        }
    };
    let list = |ino: u64, offset: u64| {
        if let Ok(entries) = fs.dir_entries(ino, offset) {
            let mut last = offset;
            for e in entries.take(4096) {
                assert!(e.next_offset > last, "directory offsets go backwards");
                last = e.next_offset;
                assert!(fs.attr_of(e.ino).is_ok(), "readdir lists inode {}", e.ino);
                if e.name != b"." && e.name != b".." {
                    let by_name = fs.lookup_attr(ino, e.name).map(|a| a.ino.0);
                    assert_eq!(by_name, Ok(e.ino), "lookup and readdir disagree");
                }
            }
        }
    };

    // The walk: every inode, as `find` and `cat` would see it.
    for ino in 1..=inodes {
        count += 1;
        let Ok(attr) = fs.attr_of(ino) else {
            continue;
        };
        if fs.open_dir(ino).is_ok() {
            for offset in [0, 1, 2, 3, u64::MAX] {
                list(ino, offset);
            }
            assert_eq!(fs.open_file(ino, libc::O_RDONLY), Err(fuser::Errno::EISDIR));
        } else {
            assert!(fs.open_file(ino, libc::O_RDONLY).is_ok());
            assert_eq!(fs.open_file(ino, libc::O_RDWR), Err(fuser::Errno::EROFS));
            let size = attr.size;
            for (offset, len) in [
                (0, 4096),
                (0, 0),
                (size / 2, 65536),
                (size.saturating_sub(1), 2),
                (size, 1),
                (u64::MAX, 1),
                (0, MAX_READ + 1),
            ] {
                read(ino, offset, len);
            }
        }
    }
    let _ = fs.stats();

    // Then the operations the input asks for; inodes up to 2 past the table (unknown ones).
    let mut r = ops;
    let mut byte = || match r.split_first() {
        Some((b, rest)) => {
            r = rest;
            Some(*b)
        }
        None => None,
    };
    while let Some(op) = byte() {
        count += 1;
        let pick = |b: Option<u8>| u64::from(b.unwrap_or(0)) % (inodes + 3);
        match op % 8 {
            0 => {
                let parent = pick(byte());
                let len = usize::from(byte().unwrap_or(0) % 8);
                let name: Vec<u8> = (0..len).filter_map(|_| byte()).collect();
                let _ = fs.lookup_attr(parent, &name);
            }
            1 => {
                let _ = fs.attr_of(pick(byte()));
            }
            2 => {
                let ino = pick(byte());
                let flags = i32::from(byte().unwrap_or(0) % 4);
                let _ = fs.open_file(ino, flags);
            }
            3 => {
                let ino = pick(byte());
                let mut offset = [0u8; 8];
                offset.iter_mut().for_each(|b| *b = byte().unwrap_or(0));
                let len = 1usize << (byte().unwrap_or(0) % 22);
                read(ino, u64::from_le_bytes(offset), len);
            }
            4 => {
                let _ = fs.open_dir(pick(byte()));
            }
            5 => {
                let ino = pick(byte());
                list(ino, u64::from(byte().unwrap_or(0)));
            }
            6 => {
                let _ = fs.stats();
            }
            _ => {
                // A sequential read of one file to its end, in the chunk size asked for: the
                // path that checks stored entries' CRCs.
                let ino = pick(byte());
                let chunk = 512usize << (byte().unwrap_or(0) % 12);
                let size = fs.attr_of(ino).map(|a| a.size).unwrap_or(0);
                let mut offset = 0u64;
                while offset < size.min(1 << 20) {
                    match fs.read_with(ino, offset, chunk, |d| d.len()) {
                        Ok(n) if n > 0 => offset += n as u64,
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(count)
}

fn memfd() -> std::io::Result<std::fs::File> {
    let fd =
        nix::sys::memfd::memfd_create(c"zipfuse-fuzz", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ziparchive::testzip;

    fn corpus_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
    }

    fn load(name: &str) -> Vec<u8> {
        std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn check(name: &str) -> Result<usize, ZipError> {
        let d = load(name);
        check_archive(d.as_slice(), d.len() as u64, u64::MAX)
    }

    /// The committed corpus is exactly what the generator makes (set ZIPFUSE_REGEN_BAD_CORPUS=1
    /// to rewrite it).
    #[test]
    fn bad_corpus_is_reproducible() {
        let regen = std::env::var_os("ZIPFUSE_REGEN_BAD_CORPUS").is_some();
        for (name, bytes, _) in testzip::bad_corpus() {
            let path = corpus_dir().join(name);
            if regen {
                std::fs::create_dir_all(corpus_dir()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    bytes,
                    "{name} differs from the generator"
                );
            }
        }
    }

    /// Seeds of the `ops` fuzz target (fuzz/seeds/ops): well-formed archives with an operation
    /// program, and the bad corpus with none. Set ZIPFUSE_REGEN_BAD_CORPUS=1 to rewrite them.
    fn ops_seeds() -> Vec<(String, Vec<u8>)> {
        let with_ops = |ops: &[u8], archive: &[u8]| {
            let mut v = (ops.len() as u16).to_le_bytes().to_vec();
            v.extend_from_slice(ops);
            v.extend_from_slice(archive);
            v
        };
        let mut good = testzip::ZipBuilder::new();
        good.stored("lib/x86_64/libpayload.so", &[7u8; 9000]);
        good.deflated("assets/config.json", &b"{\"task\": 1} ".repeat(500));
        good.stored("AndroidManifest.xml", b"manifest");
        // lookup, getattr, open rw, read at 4 KiB, readdir, sequential read, unknown inode.
        let program = [
            0, 1, 3, b'l', b'i', b'b', 1, 2, 2, 1, 3, 4, 0, 16, 0, 0, 0, 0, 0, 0, 12, 5, 1, 0, 7,
            4, 3, 1, 255,
        ];
        let mut seeds = vec![
            (
                "good-with-ops.bin".to_owned(),
                with_ops(&program, &good.finish()),
            ),
            ("good-no-ops.bin".to_owned(), with_ops(&[], &good.finish())),
        ];
        for (name, bytes, _) in testzip::bad_corpus() {
            seeds.push((format!("bad-{name}.bin"), with_ops(&[], &bytes)));
        }
        seeds
    }

    #[test]
    fn ops_seeds_are_reproducible() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ops");
        let regen = std::env::var_os("ZIPFUSE_REGEN_BAD_CORPUS").is_some();
        for (name, bytes) in ops_seeds() {
            let path = dir.join(&name);
            if regen {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} differs");
            }
        }
    }

    /// The ops target over its seeds and their mutations: no assertion fires, and a good
    /// archive runs its whole program.
    #[test]
    fn fuzz_ops_survives_its_seeds_and_mutations() {
        for (name, bytes) in ops_seeds() {
            let result = fuzz_ops(&bytes);
            if name.starts_with("good") {
                assert!(result.unwrap() >= 6, "{name}");
            }
            for i in (2..bytes.len()).step_by(bytes.len() / 97 + 1) {
                let mut m = bytes.clone();
                m[i] ^= 0x5a;
                let _ = fuzz_ops(&m);
                let _ = fuzz_ops(&bytes[..i]);
            }
        }
    }

    #[test]
    fn fuzz_entry_survives_the_corpus_and_mutations() {
        for (name, bytes, _) in testzip::bad_corpus() {
            let _ = fuzz_one(&bytes);
            // Cheap deterministic mutations: truncations and bit flips.
            for cut in [1usize, 7, 22, 23, 50, 100] {
                if cut < bytes.len() {
                    let _ = fuzz_one(&bytes[..bytes.len() - cut]);
                }
            }
            for i in (0..bytes.len()).step_by(bytes.len() / 64 + 1) {
                let mut m = bytes.clone();
                m[i] ^= 0x41;
                let _ = fuzz_one(&m);
            }
            let _ = name;
        }
    }

    #[test]
    fn good_archive_passes() {
        let z = testzip::zip_crate_archive(
            &[
                ("a/b", b"hello".to_vec(), true),
                ("c", vec![3u8; 70000], false),
            ],
            false,
        );
        assert_eq!(fuzz_one(&z).unwrap(), 2);
    }

    #[test]
    fn truncated() {
        assert!(matches!(
            check("truncated.zip"),
            Err(ZipError::NoEndOfCentralDirectory)
        ));
    }

    #[test]
    fn bad_crc() {
        assert!(matches!(
            check("bad_crc.zip"),
            Err(ZipError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn bad_crc_stored() {
        assert!(matches!(
            check("bad_crc_stored.zip"),
            Err(ZipError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn overlapping_entries() {
        assert!(matches!(
            check("overlapping_entries.zip"),
            Err(ZipError::OverlappingEntries { .. })
        ));
    }

    #[test]
    fn duplicate_names() {
        assert!(matches!(
            check("duplicate_names.zip"),
            Err(ZipError::DuplicateName { .. })
        ));
    }

    #[test]
    fn traversal() {
        assert!(matches!(
            check("traversal.zip"),
            Err(ZipError::InvalidPath {
                reason: "'..' component",
                ..
            })
        ));
    }

    #[test]
    fn absolute_path() {
        assert!(matches!(
            check("absolute_path.zip"),
            Err(ZipError::InvalidPath {
                reason: "absolute path",
                ..
            })
        ));
    }

    #[test]
    fn zip_bomb() {
        assert!(matches!(
            check("zip_bomb.zip"),
            Err(ZipError::AbsurdCompressionRatio { .. })
        ));
    }

    #[test]
    fn huge_entry_count() {
        assert!(matches!(
            check("huge_entry_count.zip"),
            Err(ZipError::TooManyEntries { .. })
        ));
    }

    #[test]
    fn entry_count_exceeds_directory() {
        assert!(matches!(
            check("entry_count_exceeds_directory.zip"),
            Err(ZipError::EntryCountExceedsDirectory { .. })
        ));
    }

    #[test]
    fn central_directory_past_eof() {
        assert!(matches!(
            check("central_directory_past_eof.zip"),
            Err(ZipError::CentralDirectoryOutOfBounds { .. })
        ));
    }

    #[test]
    fn local_header_mismatch() {
        assert!(matches!(
            check("local_header_mismatch.zip"),
            Err(ZipError::LocalHeaderMismatch { field: "name", .. })
        ));
    }

    #[test]
    fn file_dir_conflict() {
        assert!(matches!(
            check("file_dir_conflict.zip"),
            Err(ZipError::PathConflict { .. })
        ));
    }

    #[test]
    fn unsupported_method() {
        assert!(matches!(
            check("unsupported_method.zip"),
            Err(ZipError::UnsupportedMethod { method: 12, .. })
        ));
    }

    #[test]
    fn corrupt_deflate() {
        assert!(matches!(
            check("corrupt_deflate.zip"),
            Err(ZipError::CorruptDeflate { .. })
        ));
    }

    #[test]
    fn entry_out_of_bounds() {
        assert!(matches!(
            check("entry_out_of_bounds.zip"),
            Err(ZipError::EntryOutOfBounds { .. })
        ));
    }

    #[test]
    fn every_corpus_file_has_a_test() {
        let names: Vec<&str> = testzip::bad_corpus().iter().map(|(n, _, _)| *n).collect();
        let src = include_str!("check.rs");
        for n in names {
            assert!(src.contains(&format!("check(\"{n}\")")), "{n} has no test");
        }
    }
}
