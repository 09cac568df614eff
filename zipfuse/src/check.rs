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
/// and every listed inode exists; lookup and getattr agree. Returns what ran: the operations
/// and the bytes the reads returned, which tests compare with what a program must do.
pub fn fuzz_ops(data: &[u8]) -> Result<OpsRun, ZipError> {
    use crate::fs::{FsOptions, ZipFs, MAX_READ};
    use std::io::Write;

    let (ops, archive) = match data {
        [a, b, rest @ ..] => {
            let k = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
            rest.split_at(k)
        }
        _ => return Ok(OpsRun::default()),
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
    let bytes_read = std::cell::Cell::new(0u64);
    let reads = std::cell::Cell::new(0usize);
    let mut answered = 0usize;
    let mut answer = |ok: bool| answered += usize::from(ok);

    let read = |ino: u64, offset: u64, len: usize| {
        let size = fs.attr_of(ino).map(|a| a.size).unwrap_or(0);
        if let Ok(n) = fs.read_with(ino, offset, len, |d| d.len()) {
            reads.set(reads.get() + 1);
            bytes_read.set(bytes_read.get() + n as u64);
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
                answer(fs.lookup_attr(parent, &name).is_ok());
            }
            1 => {
                answer(fs.attr_of(pick(byte())).is_ok());
            }
            2 => {
                let ino = pick(byte());
                let flags = i32::from(byte().unwrap_or(0) % 4);
                answer(fs.open_file(ino, flags).is_ok());
            }
            3 => {
                let ino = pick(byte());
                let mut offset = [0u8; 8];
                offset.iter_mut().for_each(|b| *b = byte().unwrap_or(0));
                let len = 1usize << (byte().unwrap_or(0) % 22);
                read(ino, u64::from_le_bytes(offset), len);
            }
            4 => {
                answer(fs.open_dir(pick(byte())).is_ok());
            }
            5 => {
                let ino = pick(byte());
                list(ino, u64::from(byte().unwrap_or(0)));
            }
            6 => {
                let _ = fs.stats();
                answer(true);
            }
            _ => {
                // A sequential read of one file to its end, in the chunk size asked for: the
                // path that checks stored entries' CRCs.
                let ino = pick(byte());
                let chunk = 512usize << (byte().unwrap_or(0) % 12);
                let size = fs.attr_of(ino).map(|a| a.size).unwrap_or(0);
                let mut offset = 0u64;
                while offset < size.min(1 << 20) {
                    let read = fs.read_with(ino, offset, chunk, |d| d.len());
                    if read.is_ok() {
                        reads.set(reads.get() + 1);
                    }
                    match read {
                        Ok(n) if n > 0 => {
                            offset += n as u64;
                            bytes_read.set(bytes_read.get() + n as u64);
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(OpsRun {
        operations: count,
        answered,
        reads: reads.get(),
        bytes_read: bytes_read.get(),
    })
}

/// What one [`fuzz_ops`] input ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpsRun {
    /// The inodes the walk visited plus the operations decoded from the program.
    pub operations: usize,
    /// The program's lookups, getattrs, opens, opendirs and statfs that succeeded.
    pub answered: usize,
    /// The reads that succeeded (end of file included), the walk's and the program's.
    pub reads: usize,
    /// The bytes every read returned, the walk's and the program's.
    pub bytes_read: u64,
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

    /// The walk over the good seed's archive: 7 inodes, of which 3 files (libpayload.so, 9000
    /// bytes; config.json, 6000; AndroidManifest.xml, 8), each read 7 ways: 4096 at 0, 0 at 0,
    /// 65536 at the middle, 2 at the last byte, 1 at the end and at 2^64 - 1, and the whole.
    const GOOD_WALK: OpsRun = OpsRun {
        operations: 7,
        answered: 0,
        reads: 3 * 7,
        bytes_read: (4096 + 4500 + 1 + 9000) + (4096 + 3000 + 1 + 6000) + (8 + 4 + 1 + 8),
    };
    /// The walk, then the seed program's 8 operations, none of which reads a file.
    const GOOD_WITH_OPS: OpsRun = OpsRun {
        operations: 7 + 8,
        answered: 3,
        ..GOOD_WALK
    };

    fn good_archive() -> Vec<u8> {
        let mut good = testzip::ZipBuilder::new();
        good.stored("lib/x86_64/libpayload.so", &[7u8; 9000]);
        good.deflated("assets/config.json", &b"{\"task\": 1} ".repeat(500));
        good.stored("AndroidManifest.xml", b"manifest");
        good.finish()
    }

    /// `program` run by `fuzz_ops` over the good archive, less what the walk does: operations,
    /// answered, reads and bytes read.
    fn run_program(program: &[u8]) -> (usize, usize, usize, u64) {
        let mut input = (program.len() as u16).to_le_bytes().to_vec();
        input.extend_from_slice(program);
        input.extend_from_slice(&good_archive());
        let run = fuzz_ops(&input).unwrap();
        (
            run.operations - GOOD_WALK.operations,
            run.answered,
            run.reads - GOOD_WALK.reads,
            run.bytes_read - GOOD_WALK.bytes_read,
        )
    }

    /// Each operation takes the bytes it should from the program, and does what they say.
    #[test]
    fn fuzz_ops_runs_the_program_it_is_given() {
        // Inodes are picked modulo the table's 7 plus 3 unknown ones.
        let payload = (0..10u8)
            .find(|&i| run_program(&[7, i, 0]).3 == 9000)
            .unwrap();
        // Sequential reads of every inode, 4096 bytes at a time, until each file's end: the
        // three files whole, in 3, 2 and 1 reads.
        let all: Vec<u8> = (0..10).flat_map(|i| [7, i, 3]).collect();
        assert_eq!(run_program(&all), (10, 0, 3 + 2 + 1, 15008));
        // Chunks of 512 << 11: each file in one read.
        let big: Vec<u8> = (0..10).flat_map(|i| [7, i, 11]).collect();
        assert_eq!(run_program(&big), (10, 0, 3, 15008));
        // 16 bytes at offset 100 of every inode: the two files that long.
        let at_100: Vec<u8> = (0..10)
            .flat_map(|i| [3, i, 100, 0, 0, 0, 0, 0, 0, 0, 4])
            .collect();
        assert_eq!(run_program(&at_100), (10, 0, 3, 32));
        // Getattr (1 byte), statfs (none), opendir (1), readdir (2), opens for writing (flags
        // byte 1) and reading (flags byte 0), a lookup of "x"
        // (3 + 1): 4 answered, none reads. Then a read of the payload's first 2 bytes, its
        // inode given as itself plus 10 (the table's 7 and 3 unknown ones), which only lands
        // there if every operation before took its own bytes.
        let mixed = [
            1, payload, 6, 4, 1, 5, payload, 0, 2, payload, 1, 2, payload, 0, 0, 1, 1, b'x',
        ];
        let mut program = mixed.to_vec();
        program.extend_from_slice(&[3, payload + 10, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(run_program(&program), (8, 4, 1, 2));
    }

    /// The ops target over its seeds and their mutations: no assertion fires, and a good
    /// archive runs its whole program.
    #[test]
    fn fuzz_ops_survives_its_seeds_and_mutations() {
        for (name, bytes) in ops_seeds() {
            let result = fuzz_ops(&bytes);
            // The good archive has 7 inodes, each visited by the walk, then one count per
            // operation decoded from the program: how many tells that each operation took
            // the bytes it should.
            match name.as_str() {
                "good-with-ops.bin" => assert_eq!(result.unwrap(), GOOD_WITH_OPS, "{name}"),
                "good-no-ops.bin" => assert_eq!(result.unwrap(), GOOD_WALK, "{name}"),
                _ => {}
            }
            for i in (2..bytes.len()).step_by(bytes.len() / 97 + 1) {
                let mut m = bytes.clone();
                m[i] ^= 0x5a;
                let _ = fuzz_ops(&m);
                let _ = fuzz_ops(&bytes[..i]);
            }
        }
    }

    /// The walk's whole-file read asks for one byte more than a FUSE read may return: a file
    /// larger than that gets exactly `MAX_READ` bytes from it.
    #[test]
    fn the_walk_reads_at_most_max_read_at_once() {
        use crate::fs::MAX_READ;
        let mut big = testzip::ZipBuilder::new();
        big.stored("big", &vec![1u8; MAX_READ + 5000]);
        let mut input = 0u16.to_le_bytes().to_vec();
        input.extend_from_slice(&big.finish());
        let run = fuzz_ops(&input).unwrap();
        assert_eq!(run.operations, 2);
        // 4096 at 0, 65536 at the middle, 1 at the last byte, then MAX_READ.
        assert_eq!(run.bytes_read, 4096 + 65536 + 1 + MAX_READ as u64);
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

    /// The fuzz entry reads entries to their end (up to 4 MiB), so it sees a stored entry's bad
    /// CRC as the bad-corpus check does.
    #[test]
    fn fuzz_entry_checks_crcs() {
        assert!(matches!(
            fuzz_one(&load("bad_crc_stored.zip")),
            Err(ZipError::CrcMismatch { .. })
        ));
    }

    /// A stored entry read only in part (the limit) has no CRC to compare: not an error.
    /// Deflated entries are checked by the inflater, which reads to the end of the stream.
    #[test]
    fn entries_read_in_part_are_not_crc_checked() {
        let z = testzip::zip_crate_archive(
            &[
                ("stored", vec![3u8; 70000], false),
                ("deflated", b"text ".repeat(5000), true),
            ],
            false,
        );
        assert_eq!(
            check_archive(z.as_slice(), z.len() as u64, 1000).unwrap(),
            2
        );
        assert_eq!(check_archive(z.as_slice(), z.len() as u64, 0).unwrap(), 2);
        let bad = load("bad_crc_stored.zip");
        assert_eq!(
            check_archive(bad.as_slice(), bad.len() as u64, 10).unwrap(),
            1
        );
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
