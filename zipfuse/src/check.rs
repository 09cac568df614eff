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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testzip;

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
