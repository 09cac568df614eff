//! The inode table: a directory tree built once, at mount, from the central directory.
//!
//! Inode 1 is the root; every other inode is allocated in central-directory order, with
//! intermediate directories synthesised on first use (APKs carry no directory entries). Each
//! directory keeps its children sorted by name, so lookups are binary searches and `readdir`
//! order is stable across mounts. Nothing here changes after construction, so the table is
//! shared between FUSE worker threads without locks.

use std::collections::HashMap;

use crate::archive::Entry;
use crate::error::ZipError;

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

/// Permission defaults (AOSP zipfuse, b/264668376 and b/265261525).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModePolicy {
    /// Default for regular files without a Unix mode.
    pub file: u32,
    /// Default for files under `bin/` without a Unix mode.
    pub exec_file: u32,
    /// Default for directories without a Unix mode.
    pub dir: u32,
}

impl Default for ModePolicy {
    fn default() -> Self {
        ModePolicy {
            file: 0o400,
            exec_file: 0o500,
            dir: 0o500,
        }
    }
}

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory; children are inode numbers sorted by name.
    Dir {
        /// Children, sorted by name.
        children: Vec<u64>,
        /// How many of the children are directories (for `st_nlink`).
        subdirs: u32,
    },
    /// A regular file backed by archive entry `entry`.
    File {
        /// Index into the archive's entries.
        entry: usize,
    },
}

/// One inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Parent inode (the root is its own parent).
    pub parent: u64,
    /// The last path component (empty for the root).
    pub name: Box<[u8]>,
    /// Permission bits (no file-type bits, no setuid/setgid/sticky).
    pub perm: u32,
    /// Size in bytes (uncompressed size for files, 0 for directories).
    pub size: u64,
    /// File or directory.
    pub kind: NodeKind,
}

impl Node {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir { .. })
    }
}

/// The whole tree.
#[derive(Debug)]
pub struct InodeTable {
    /// Index 0 is unused; index 1 is the root.
    nodes: Vec<Node>,
}

impl InodeTable {
    /// Builds the tree; refuses invalid paths, duplicates and file/directory conflicts.
    pub fn build(entries: &[Entry], policy: ModePolicy) -> Result<InodeTable, ZipError> {
        // Inode 0 does not exist in FUSE; an empty directory node fills the slot so that inode
        // numbers index `nodes` directly.
        let unused_slot = Node {
            parent: 0,
            name: Box::default(),
            perm: 0,
            size: 0,
            kind: NodeKind::Dir {
                children: Vec::new(),
                subdirs: 0,
            },
        };
        let root = Node {
            parent: ROOT,
            perm: policy.dir,
            ..unused_slot.clone()
        };
        let mut nodes = Vec::with_capacity(entries.len() + 2);
        nodes.push(unused_slot);
        nodes.push(root);
        // (parent, name) -> inode, used only while building.
        let mut index: HashMap<(u64, &[u8]), u64> = HashMap::with_capacity(entries.len() * 2);
        // Directories that came from an explicit `name/` entry.
        let mut explicit = vec![false; 2];

        for (i, e) in entries.iter().enumerate() {
            let name = e.name.as_slice();
            let invalid = |reason| ZipError::InvalidPath {
                name: e.display_name(),
                reason,
            };
            if name.is_empty() {
                return Err(invalid("empty name"));
            }
            if name.contains(&0) {
                return Err(invalid("NUL byte"));
            }
            if name[0] == b'/' {
                return Err(invalid("absolute path"));
            }
            let is_dir = e.is_dir();
            let path = if is_dir {
                &name[..name.len() - 1]
            } else {
                name
            };
            let components: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            for c in &components {
                match *c {
                    b"" => return Err(invalid("empty path component")),
                    b"." => return Err(invalid("'.' component")),
                    b".." => return Err(invalid("'..' component")),
                    _ => {}
                }
            }
            let Some((&leaf, dirs)) = components.split_last() else {
                return Err(invalid("empty name"));
            };
            let mut parent = ROOT;
            for &c in dirs {
                parent = match index.get(&(parent, c)) {
                    Some(&ino) if nodes[ino as usize].is_dir() => ino,
                    Some(_) => {
                        return Err(ZipError::PathConflict {
                            name: e.display_name(),
                        })
                    }
                    None => {
                        let ino = nodes.len() as u64;
                        nodes.push(Node {
                            parent,
                            name: c.into(),
                            perm: policy.dir,
                            size: 0,
                            kind: NodeKind::Dir {
                                children: Vec::new(),
                                subdirs: 0,
                            },
                        });
                        explicit.push(false);
                        index.insert((parent, c), ino);
                        ino
                    }
                };
            }
            let mode_bits = e.unix_mode.map(|m| m & 0o777).filter(|&m| m != 0);
            if is_dir {
                match index.get(&(parent, leaf)) {
                    Some(&ino) if nodes[ino as usize].is_dir() => {
                        if explicit[ino as usize] {
                            return Err(ZipError::DuplicateName {
                                name: e.display_name(),
                            });
                        }
                        explicit[ino as usize] = true;
                        nodes[ino as usize].perm = mode_bits.unwrap_or(policy.dir);
                    }
                    Some(_) => {
                        return Err(ZipError::PathConflict {
                            name: e.display_name(),
                        })
                    }
                    None => {
                        let ino = nodes.len() as u64;
                        nodes.push(Node {
                            parent,
                            name: leaf.into(),
                            perm: mode_bits.unwrap_or(policy.dir),
                            size: 0,
                            kind: NodeKind::Dir {
                                children: Vec::new(),
                                subdirs: 0,
                            },
                        });
                        explicit.push(true);
                        index.insert((parent, leaf), ino);
                    }
                }
            } else {
                match index.get(&(parent, leaf)) {
                    Some(&ino) if nodes[ino as usize].is_dir() => {
                        return Err(ZipError::PathConflict {
                            name: e.display_name(),
                        })
                    }
                    Some(_) => {
                        return Err(ZipError::DuplicateName {
                            name: e.display_name(),
                        })
                    }
                    None => {}
                }
                let default = if components.first() == Some(&&b"bin"[..]) {
                    policy.exec_file
                } else {
                    policy.file
                };
                let ino = nodes.len() as u64;
                nodes.push(Node {
                    parent,
                    name: leaf.into(),
                    perm: mode_bits.unwrap_or(default),
                    size: e.size,
                    kind: NodeKind::File { entry: i },
                });
                explicit.push(false);
                index.insert((parent, leaf), ino);
            }
        }
        drop(index);

        // Attach children to their parents, then sort each directory by name.
        let mut children: Vec<Vec<u64>> = vec![Vec::new(); nodes.len()];
        for (ino, node) in nodes.iter().enumerate().skip(2) {
            children[node.parent as usize].push(ino as u64);
        }
        for (ino, mut list) in children.into_iter().enumerate() {
            if let NodeKind::Dir { .. } = nodes[ino].kind {
                list.sort_unstable_by(|&a, &b| nodes[a as usize].name.cmp(&nodes[b as usize].name));
                let subdirs = list.iter().filter(|&&c| nodes[c as usize].is_dir()).count();
                nodes[ino].kind = NodeKind::Dir {
                    children: list,
                    subdirs: u32::try_from(subdirs).unwrap_or(u32::MAX),
                };
            }
        }
        Ok(InodeTable { nodes })
    }

    /// The node for `ino`, if valid.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        if ino == 0 {
            return None;
        }
        self.nodes.get(usize::try_from(ino).ok()?)
    }

    /// Looks up `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Option<u64> {
        let NodeKind::Dir { children, .. } = &self.get(parent)?.kind else {
            return None;
        };
        children
            .binary_search_by(|&c| self.nodes[c as usize].name.as_ref().cmp(name))
            .ok()
            .map(|i| children[i])
    }

    /// Number of inodes including the root (for `statfs`).
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Always false: the root exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Resolves a slash-separated path from the root (for tests and tools).
    pub fn resolve(&self, path: &str) -> Option<u64> {
        let mut ino = ROOT;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            ino = self.lookup(ino, c.as_bytes())?;
        }
        Some(ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Method;

    fn entry(name: &str, mode: Option<u32>) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            method: Method::Stored,
            crc32: 0,
            compressed_size: 3,
            size: 3,
            local_header_offset: 0,
            data_offset: 0,
            unix_mode: mode,
        }
    }

    fn build(names: &[&str]) -> Result<InodeTable, ZipError> {
        let entries: Vec<Entry> = names.iter().map(|n| entry(n, None)).collect();
        InodeTable::build(&entries, ModePolicy::default())
    }

    #[test]
    fn empty_zip_has_only_root() {
        let t = build(&[]).unwrap();
        assert_eq!(t.len(), 1);
        let root = t.get(ROOT).unwrap();
        assert!(root.is_dir());
        assert_eq!(root.perm, 0o500);
        assert!(t.get(0).is_none());
        assert!(t.get(2).is_none());
    }

    #[test]
    fn one_file_in_subdirs() {
        let t = build(&["a/b/c/file"]).unwrap();
        assert_eq!(t.len(), 5);
        let f = t.resolve("a/b/c/file").unwrap();
        let n = t.get(f).unwrap();
        assert_eq!(n.kind, NodeKind::File { entry: 0 });
        assert_eq!(n.perm, 0o400);
        assert_eq!(n.size, 3);
        assert_eq!(t.get(t.resolve("a/b").unwrap()).unwrap().perm, 0o500);
        assert_eq!(t.get(t.resolve("a").unwrap()).unwrap().parent, ROOT);
    }

    #[test]
    fn complex_hierarchy_is_sorted_and_counts_subdirs() {
        let t = build(&["z", "b/x", "a/", "b/y/", "a/q", "c"]).unwrap();
        let NodeKind::Dir { children, subdirs } = &t.get(ROOT).unwrap().kind else {
            panic!("root is a dir")
        };
        let names: Vec<&[u8]> = children.iter().map(|&c| &*t.get(c).unwrap().name).collect();
        assert_eq!(names, vec![&b"a"[..], b"b", b"c", b"z"]);
        assert_eq!(*subdirs, 2);
        assert!(t.lookup(ROOT, b"nope").is_none());
        assert!(t.resolve("b/y").is_some());
    }

    #[test]
    fn unix_mode_wins_and_bin_is_executable() {
        let entries = vec![
            entry("bin/tool", None),
            entry("lib/x.so", Some(0o100755)),
            entry("etc/conf", Some(0o100000)),
            entry("dir/", Some(0o40750)),
            entry("s", Some(0o104755)),
        ];
        let t = InodeTable::build(&entries, ModePolicy::default()).unwrap();
        assert_eq!(t.get(t.resolve("bin/tool").unwrap()).unwrap().perm, 0o500);
        assert_eq!(t.get(t.resolve("lib/x.so").unwrap()).unwrap().perm, 0o755);
        // Mode 0 falls back to the default.
        assert_eq!(t.get(t.resolve("etc/conf").unwrap()).unwrap().perm, 0o400);
        assert_eq!(t.get(t.resolve("dir").unwrap()).unwrap().perm, 0o750);
        // setuid is dropped.
        assert_eq!(t.get(t.resolve("s").unwrap()).unwrap().perm, 0o755);
    }

    #[test]
    fn explicit_dir_after_implicit_sets_mode() {
        let entries = vec![entry("d/f", None), entry("d/", Some(0o40711))];
        let t = InodeTable::build(&entries, ModePolicy::default()).unwrap();
        assert_eq!(t.get(t.resolve("d").unwrap()).unwrap().perm, 0o711);
    }

    #[test]
    fn rejects_invalid_paths() {
        for bad in [
            "a/../../b",
            "a/..",
            "a/../../b/c",
            "a/b/../c",
            "..",
            "/abs",
            "a//b",
            "./a",
            "a/./b",
            "",
        ] {
            assert!(
                matches!(build(&[bad]), Err(ZipError::InvalidPath { .. })),
                "{bad:?} should be rejected"
            );
        }
        assert!(matches!(
            build(&["a\0b"]),
            Err(ZipError::InvalidPath { .. })
        ));
    }

    #[test]
    fn rejects_duplicates_and_conflicts() {
        assert!(matches!(
            build(&["a", "a"]),
            Err(ZipError::DuplicateName { .. })
        ));
        assert!(matches!(
            build(&["d/", "d/"]),
            Err(ZipError::DuplicateName { .. })
        ));
        assert!(matches!(
            build(&["a", "a/b"]),
            Err(ZipError::PathConflict { .. })
        ));
        assert!(matches!(
            build(&["a/b", "a"]),
            Err(ZipError::PathConflict { .. })
        ));
        assert!(matches!(
            build(&["a", "a/"]),
            Err(ZipError::PathConflict { .. })
        ));
    }

    #[test]
    fn large_directory() {
        let names: Vec<String> = (0..5000).map(|i| format!("dir/{:0100}", i)).collect();
        let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let t = build(&refs).unwrap();
        let d = t.resolve("dir").unwrap();
        let NodeKind::Dir { children, .. } = &t.get(d).unwrap().kind else {
            panic!()
        };
        assert_eq!(children.len(), 5000);
        assert_eq!(
            t.lookup(d, format!("{:0100}", 4321).as_bytes()),
            Some(children[4321])
        );
    }
}
