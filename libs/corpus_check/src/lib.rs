//! Test support for the bad-input corpora (`testdata/bad/` of each parser crate): the files are
//! written by a generator in the crate's `tests/bad_corpus.rs`, checked in so that the fuzz
//! targets start from them, and must stay what the generator makes.
//!
//! A crate's `tests/bad_corpus.rs` has `fn dir() -> PathBuf` and
//! `fn corpus() -> Vec<(&'static str, Vec<u8>)>`, then
//! `corpus_check::corpus_tests!(dir(), corpus());`, which adds the two tests: `regenerate`
//! (ignored: `cargo test -p CRATE --test bad_corpus -- --ignored regenerate` rewrites the files)
//! and `corpus_files_are_up_to_date`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test support: failing is the point

use std::collections::BTreeSet;
use std::path::Path;

/// The two tests of a bad-input corpus (see the crate's documentation).
#[macro_export]
macro_rules! corpus_tests {
    ($dir:expr, $corpus:expr) => {
        #[test]
        #[ignore]
        fn regenerate() {
            $crate::regenerate(&$dir, &$corpus);
        }

        #[test]
        fn corpus_files_are_up_to_date() {
            $crate::assert_up_to_date(&$dir, &$corpus);
        }
    };
}

/// Writes every (file name, bytes) of `corpus` into `dir`.
pub fn regenerate(dir: &Path, corpus: &[(&str, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, bytes) in corpus {
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Panics unless each file of `corpus` is in `dir` with the generator's bytes, and `dir` holds
/// no other file with one of the corpus's extensions (a generator case that was removed).
pub fn assert_up_to_date(dir: &Path, corpus: &[(&str, Vec<u8>)]) {
    for (name, bytes) in corpus {
        let on_disk = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; run the regenerate test"));
        assert!(
            &on_disk == bytes,
            "{name} differs from its generator; run the regenerate test"
        );
    }
    let extensions: BTreeSet<&str> = corpus
        .iter()
        .filter_map(|(name, _)| Path::new(name).extension()?.to_str())
        .collect();
    let mut stray: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n)
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| extensions.contains(x))
        })
        .filter(|n| !corpus.iter().any(|(name, _)| name == n))
        .collect();
    stray.sort();
    assert!(
        stray.is_empty(),
        "{} has files no generator makes: {stray:?}",
        dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regenerated_files_are_up_to_date_and_strays_are_named() {
        let dir = tempfile_dir();
        let corpus = vec![("a.bin", vec![1u8, 2]), ("b.bin", vec![3u8])];
        regenerate(&dir, &corpus);
        assert_up_to_date(&dir, &corpus);
        std::fs::write(dir.join("README.md"), b"not a corpus file").unwrap();
        assert_up_to_date(&dir, &corpus);
        std::fs::write(dir.join("old.bin"), b"x").unwrap();
        let err = std::panic::catch_unwind(|| assert_up_to_date(&dir, &corpus)).unwrap_err();
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("old.bin"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("corpus_check_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
