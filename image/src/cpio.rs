//! The "newc" cpio archive the kernel unpacks as the initramfs, written deterministically:
//! entries sorted by path with parents first, inode numbers in that order, every time zero and
//! every owner root, so the same files always give the same bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CpioError {
    #[error("cpio path {0:?} must be relative, without '.', '..' or empty components")]
    BadPath(String),
    #[error("cpio entry {0:?} is larger than the 4 GiB newc limit")]
    TooLarge(String),
    #[error("{0:?} is both a file and a directory's parent")]
    Conflict(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// An initramfs under construction.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    fn check_path(path: &str) -> Result<(), CpioError> {
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(CpioError::BadPath(path.to_owned()));
        }
        Ok(())
    }

    /// Adds the missing parent directories of `path` (mode 0755).
    fn add_parents(&mut self, path: &str) -> Result<(), CpioError> {
        let mut prefix = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for component in components.iter().take(components.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            match self.nodes.get(&prefix) {
                None => {
                    self.nodes.insert(prefix.clone(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => return Err(CpioError::Conflict(prefix)),
            }
        }
        Ok(())
    }

    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        Self::check_path(path)?;
        self.add_parents(path)?;
        self.nodes.insert(
            path.to_owned(),
            Node::Dir {
                mode: mode & 0o7777,
            },
        );
        Ok(())
    }

    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), CpioError> {
        Self::check_path(path)?;
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge(path.to_owned()));
        }
        self.add_parents(path)?;
        self.nodes.insert(
            path.to_owned(),
            Node::File {
                mode: mode & 0o7777,
                data,
            },
        );
        Ok(())
    }

    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        Self::check_path(path)?;
        self.add_parents(path)?;
        self.nodes.insert(
            path.to_owned(),
            Node::Symlink {
                target: target.to_owned(),
            },
        );
        Ok(())
    }

    /// Writes the archive. BTreeMap order puts every directory before its contents.
    pub fn write<W: Write>(&self, out: &mut W) -> Result<u64, CpioError> {
        let mut written = 0u64;
        for (index, (path, node)) in self.nodes.iter().enumerate() {
            let ino = u32::try_from(index + 1).map_err(|_| CpioError::TooLarge(path.clone()))?;
            let (mode, nlink, data): (u32, u32, &[u8]) = match node {
                Node::Dir { mode } => (S_IFDIR | mode, 2, &[]),
                Node::File { mode, data } => (S_IFREG | mode, 1, data),
                Node::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes()),
            };
            written += write_entry(out, ino, mode, nlink, path, data)?;
        }
        written += write_entry(out, 0, 0, 1, "TRAILER!!!", &[])?;
        Ok(written)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, CpioError> {
        let mut out = Vec::new();
        self.write(&mut out)?;
        Ok(out)
    }
}

fn pad4<W: Write>(out: &mut W, len: u64) -> io::Result<u64> {
    let pad = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..pad as usize])?;
    Ok(pad)
}

fn write_entry<W: Write>(
    out: &mut W,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
) -> Result<u64, CpioError> {
    let filesize = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(name.to_owned()))?;
    let namesize =
        u32::try_from(name.len() + 1).map_err(|_| CpioError::TooLarge(name.to_owned()))?;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check
    let header = format!(
        "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{:08X}{filesize:08X}{:08X}{:08X}{:08X}{:08X}{namesize:08X}{:08X}",
        0, 0, 0, 0, 0, 0, 0, 0
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let mut len = header.len() as u64 + u64::from(namesize);
    len += pad4(out, len)?;
    out.write_all(data)?;
    len += u64::from(filesize);
    len += pad4(out, len)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sorted_newc_with_parents() {
        let mut archive = Archive::new();
        archive
            .add_file("lib/modules/a.ko", 0o644, b"abc".to_vec())
            .unwrap();
        archive
            .add_file("init", 0o755, b"\x7fELF".to_vec())
            .unwrap();
        archive.add_symlink("bin", "system/bin").unwrap();
        let bytes = archive.to_bytes().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        let order: Vec<usize> = [
            "bin\0",
            "init\0",
            "lib\0",
            "lib/modules\0",
            "lib/modules/a.ko\0",
            "TRAILER!!!\0",
        ]
        .iter()
        .map(|n| text.find(n).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(text.starts_with("070701"));
    }

    #[test]
    fn cpio_tool_lists_and_extracts_it() {
        let mut archive = Archive::new();
        archive
            .add_file("etc/hello.txt", 0o644, b"hello\n".to_vec())
            .unwrap();
        archive.add_dir("dev", 0o755).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, archive.to_bytes().unwrap()).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-idm", "--quiet", "-F"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .expect("cpio (installed by make setup)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/hello.txt")).unwrap(),
            b"hello\n"
        );
        assert!(dir.path().join("dev").is_dir());
    }

    #[test]
    fn rejects_bad_paths() {
        let mut archive = Archive::new();
        for bad in ["", "/abs", "a/../b", "a//b", "./a"] {
            assert!(
                matches!(
                    archive.add_file(bad, 0o644, vec![]),
                    Err(CpioError::BadPath(_))
                ),
                "{bad}"
            );
        }
        archive.add_file("f", 0o644, vec![]).unwrap();
        assert!(matches!(
            archive.add_file("f/g", 0o644, vec![]),
            Err(CpioError::Conflict(_))
        ));
    }
}
