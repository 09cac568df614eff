//! Host programs carried into the guest's system partition with what they need to run: their
//! shared libraries, found by following each ELF's `DT_NEEDED` entries (and `DT_RUNPATH` /
//! `DT_RPATH`) through Debian's library directories as the dynamic loader would, and the loader
//! named by `PT_INTERP`. Nothing is listed by hand: a library a new Debian release adds to
//! mke2fs is picked up, one that is missing fails the build with its name.
//!
//! Layout on the system partition: programs in `bin/`, the loader and every library in
//! `lib64/` under its `DT_NEEDED` name; `image::runtime_files` then moves the libraries that
//! only the system's own programs need to `private/lib64/`, out of the payload's reach.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use goblin::elf::Elf;

/// Where Debian (multiarch x86-64) keeps shared libraries, in the loader's search order.
pub const DEFAULT_LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Directory of libraries and the loader on the system partition.
pub const SYSTEM_LIB_DIR: &str = "lib64";

/// What one ELF file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`, for an executable.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` and `DT_RPATH` directories.
    pub search_path: Vec<String>,
}

/// Parses what an ELF file needs; refuses anything but a 64-bit x86-64 ELF.
pub fn elf_needs(bytes: &[u8], what: &Path) -> Result<ElfNeeds> {
    let elf =
        Elf::parse(bytes).with_context(|| format!("{} is not an ELF file", what.display()))?;
    if !elf.is_64 || elf.header.e_machine != goblin::elf::header::EM_X86_64 {
        bail!("{} is not an x86-64 ELF file", what.display());
    }
    let mut search_path = Vec::new();
    for path in elf.runpaths.iter().chain(elf.rpaths.iter()) {
        search_path.extend(path.split(':').filter(|p| !p.is_empty()).map(str::to_owned));
    }
    Ok(ElfNeeds {
        interpreter: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
        search_path,
    })
}

/// The closure of a set of programs: every file to install, as (path on the system partition,
/// host file), sorted by path.
pub fn resolve(
    programs: &[(PathBuf, String)],
    library_dirs: &[&str],
) -> Result<Vec<(String, PathBuf)>> {
    let roots: Vec<(PathBuf, String)> = programs
        .iter()
        .map(|(source, name)| (source.clone(), format!("bin/{name}")))
        .collect();
    resolve_roots(&roots, library_dirs)
}

/// As [`resolve`], for roots given with their path on the system partition (programs in
/// `bin/`, libraries in `lib64/`).
pub fn resolve_roots(
    roots: &[(PathBuf, String)],
    library_dirs: &[&str],
) -> Result<Vec<(String, PathBuf)>> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut queue: VecDeque<(PathBuf, String)> = VecDeque::new();
    for (source, dest) in roots {
        files.insert(dest.clone(), source.clone());
        queue.push_back((source.clone(), source.display().to_string()));
    }
    while let Some((path, who)) = queue.pop_front() {
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let needs = elf_needs(&bytes, &path)?;
        if let Some(interp) = &needs.interpreter {
            let name = file_name(interp)?;
            let dest = format!("{SYSTEM_LIB_DIR}/{name}");
            if let std::collections::btree_map::Entry::Vacant(slot) = files.entry(dest) {
                let source = PathBuf::from(interp);
                anyhow::ensure!(
                    source.exists(),
                    "the loader {interp} of {who} is not on this host"
                );
                slot.insert(source.clone());
                queue.push_back((source, interp.clone()));
            }
        }
        for lib in &needs.needed {
            let dest = format!("{SYSTEM_LIB_DIR}/{}", file_name(lib)?);
            if files.contains_key(&dest) {
                continue;
            }
            let dirs = needs
                .search_path
                .iter()
                .map(String::as_str)
                .chain(library_dirs.iter().copied());
            let found = dirs
                .map(|d| Path::new(d).join(lib))
                .find(|p| p.is_file())
                .with_context(|| {
                    format!("library {lib} (needed by {who}) not found in {library_dirs:?}")
                })?;
            files.insert(dest, found.clone());
            queue.push_back((found, lib.clone()));
        }
    }
    Ok(files.into_iter().collect())
}

fn file_name(path: &str) -> Result<String> {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != ".." && n != ".")
        .with_context(|| format!("{path:?} names no file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mke2fs_closure_is_found_from_dt_needed() {
        let files = resolve(
            &[(PathBuf::from("/sbin/mke2fs"), "mke2fs".into())],
            DEFAULT_LIBRARY_DIRS,
        )
        .unwrap();
        let names: Vec<&str> = files.iter().map(|(d, _)| d.as_str()).collect();
        for expected in [
            "bin/mke2fs",
            "lib64/ld-linux-x86-64.so.2",
            "lib64/libc.so.6",
            "lib64/libext2fs.so.2",
            "lib64/libcom_err.so.2",
            "lib64/libblkid.so.1",
            "lib64/libuuid.so.1",
            "lib64/libe2p.so.2",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        // The same as the host's own loader says, nothing listed by hand.
        let ldd = std::process::Command::new("ldd")
            .arg("/sbin/mke2fs")
            .output()
            .unwrap();
        let ldd = String::from_utf8_lossy(&ldd.stdout);
        let from_ldd = ldd
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.contains(".so") && !n.starts_with("linux-vdso"))
            .map(|n| format!("lib64/{}", n.rsplit('/').next().unwrap()))
            .collect::<std::collections::BTreeSet<_>>();
        let ours = names
            .iter()
            .filter(|n| n.starts_with("lib64/"))
            .map(|n| n.to_string())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(ours, from_ldd);
    }

    #[test]
    fn non_elf_and_missing_libraries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        fs::write(&script, b"#!/bin/sh\n").unwrap();
        let err = resolve(&[(script, "script".into())], DEFAULT_LIBRARY_DIRS).unwrap_err();
        assert!(format!("{err:#}").contains("is not an ELF file"), "{err:#}");
        let err = resolve(&[(PathBuf::from("/sbin/mke2fs"), "mke2fs".into())], &[]).unwrap_err();
        assert!(format!("{err:#}").contains("not found"), "{err:#}");
    }
}
