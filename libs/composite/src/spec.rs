//! Reader of composite specs (untrusted bytes): magic, protobuf, and crosvm's checks.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::proto::{CompositeDisk, ReadWriteCapability};
use crate::{Error, CDISK_MAGIC, COMPOSITE_DISK_VERSION};

/// Largest spec accepted (a spec with thousands of components is still a few hundred KiB).
pub const MAX_SPEC_SIZE: usize = 1 << 20;

/// A validated component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedComponent {
    /// File path as written.
    pub file_path: String,
    /// Guest-visible offset.
    pub offset: u64,
    /// Bytes of the disk it covers (up to the next component, or the disk length).
    pub length: u64,
    /// Offset into the host file.
    pub file_offset: u64,
    /// READ_WRITE.
    pub writable: bool,
}

/// A validated composite spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedComposite {
    /// Format version.
    pub version: u64,
    /// Disk length.
    pub length: u64,
    /// Components sorted by offset, contiguous from 0 to `length`.
    pub components: Vec<ParsedComponent>,
}

impl ParsedComposite {
    /// Parses and validates a spec as crosvm's `CompositeDiskFile::from_file` does: magic,
    /// version <= 2, components sorted by offset with no two at the same offset, each inside the
    /// disk, known capabilities; additionally the first component must start at 0 and paths
    /// must be non-empty.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_SPEC_SIZE {
            return Err(Error::SpecTooLarge(bytes.len()));
        }
        let body = bytes
            .strip_prefix(&CDISK_MAGIC[..])
            .ok_or(Error::BadMagic)?;
        let proto = CompositeDisk::decode(body)?;
        if proto.version > COMPOSITE_DISK_VERSION {
            return Err(Error::UnsupportedVersion(proto.version));
        }
        let mut comps = proto.component_disks;
        if comps.is_empty() {
            return Err(Error::NoComponents);
        }
        comps.sort_by_key(|c| c.offset);
        let mut out = Vec::with_capacity(comps.len());
        for (i, c) in comps.iter().enumerate() {
            if c.file_path.is_empty() {
                return Err(Error::EmptyPath(c.offset));
            }
            let writable = match ReadWriteCapability::try_from(c.read_write_capability) {
                Ok(ReadWriteCapability::ReadOnly) => false,
                Ok(ReadWriteCapability::ReadWrite) => true,
                Err(_) => return Err(Error::UnknownCapability(c.read_write_capability)),
            };
            let end = match comps.get(i + 1) {
                Some(next) if next.offset == c.offset => {
                    return Err(Error::DuplicateOffset(c.offset))
                }
                Some(next) => next.offset,
                None => proto.length,
            };
            if c.offset >= end || c.offset >= proto.length {
                return Err(Error::ComponentPastEnd {
                    offset: c.offset,
                    length: proto.length,
                });
            }
            out.push(ParsedComponent {
                file_path: c.file_path.clone(),
                offset: c.offset,
                length: end - c.offset,
                file_offset: c.file_offset,
                writable,
            });
        }
        if out[0].offset != 0 {
            return Err(Error::GapAtStart(out[0].offset));
        }
        Ok(ParsedComposite {
            version: proto.version,
            length: proto.length,
            components: out,
        })
    }

    /// Reads and parses a spec file (bounded read).
    pub fn read(path: &Path) -> Result<Self, Error> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut buf = Vec::new();
        f.take(MAX_SPEC_SIZE as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(&buf)
    }
}

/// Where crosvm opens a component: relative paths are resolved against the directory holding
/// the spec; absolute ones (including `/proc/self/fd/N`) stay as they are.
pub fn resolve_component_path(spec_path: &Path, component: &str) -> PathBuf {
    let c = Path::new(component);
    if c.is_absolute() {
        return c.to_path_buf();
    }
    spec_path.parent().unwrap_or(Path::new("")).join(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ComponentDisk;

    fn spec(comps: Vec<(u64, i32)>, length: u64, version: u64) -> Vec<u8> {
        let mut b = CDISK_MAGIC.to_vec();
        let m = CompositeDisk {
            version,
            component_disks: comps
                .into_iter()
                .map(|(offset, rw)| ComponentDisk {
                    file_path: format!("f{offset}"),
                    offset,
                    read_write_capability: rw,
                    file_offset: 0,
                })
                .collect(),
            length,
        };
        b.extend(m.encode_to_vec());
        b
    }

    #[test]
    fn parses_and_sorts() {
        let p = ParsedComposite::parse(&spec(vec![(100, 1), (0, 0)], 300, 2))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.components[0].length, 100);
        assert_eq!(p.components[1].length, 200);
        assert!(p.components[1].writable);
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            ParsedComposite::parse(b"composite_disk"),
            Err(Error::BadMagic)
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(0, 0)], 10, 3)),
            Err(Error::UnsupportedVersion(3))
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(0, 0), (0, 0)], 10, 2)),
            Err(Error::DuplicateOffset(0))
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(0, 0), (10, 0)], 10, 2)),
            Err(Error::ComponentPastEnd { offset: 10, .. })
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(0, 5)], 10, 2)),
            Err(Error::UnknownCapability(5))
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(4, 0)], 10, 2)),
            Err(Error::GapAtStart(4))
        ));
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![], 10, 2)),
            Err(Error::NoComponents)
        ));
        assert!(matches!(
            ParsedComposite::parse(&vec![0u8; MAX_SPEC_SIZE + 1]),
            Err(Error::SpecTooLarge(_))
        ));
        // Exactly the limit is not too large (it is not a spec either).
        let mut at_limit = CDISK_MAGIC.to_vec();
        at_limit.resize(MAX_SPEC_SIZE, 0);
        assert!(matches!(
            ParsedComposite::parse(&at_limit),
            Err(Error::Decode(_))
        ));
        // A component past the disk's length that is not the last one.
        assert!(matches!(
            ParsedComposite::parse(&spec(vec![(0, 0), (20, 0), (30, 0)], 10, 2)),
            Err(Error::ComponentPastEnd {
                offset: 20,
                length: 10
            })
        ));
    }

    /// `read` takes the file as `parse` takes bytes, and a file past the limit is too large
    /// without being read whole.
    #[test]
    fn reads_spec_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let good = dir.path().join("good.img");
        std::fs::write(&good, spec(vec![(0, 0)], 10, 2)).unwrap_or_else(|e| unreachable!("{e}"));
        let p = ParsedComposite::read(&good).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.components.len(), 1);
        let big = dir.path().join("big.img");
        std::fs::write(&big, vec![0u8; MAX_SPEC_SIZE + 10]).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(matches!(
            ParsedComposite::read(&big),
            Err(Error::SpecTooLarge(n)) if n == MAX_SPEC_SIZE + 1
        ));
        assert!(matches!(
            ParsedComposite::read(&dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn resolves_paths_like_crosvm() {
        let s = Path::new("/run/vm/composite.img");
        assert_eq!(
            resolve_component_path(s, "/proc/self/fd/7"),
            PathBuf::from("/proc/self/fd/7")
        );
        assert_eq!(
            resolve_component_path(s, "hdr.img"),
            PathBuf::from("/run/vm/hdr.img")
        );
    }
}
