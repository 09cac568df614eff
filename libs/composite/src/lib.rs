//! crosvm composite disks and their QEMU equivalent.
//!
//! A composite disk is a spec file (`"composite_disk\x1d"` + protobuf `CompositeDisk`) listing
//! the host files that make up a GPT disk: a 20480-byte header file (protective MBR, primary GPT
//! header, entries, padding), each partition file rounded up to 4 KiB (read-only partitions with
//! a 4096-byte zero filler file for the gap; writable ones must already be aligned), and a
//! 20480-byte footer file (padding, backup entries, backup header) — crosvm's
//! `create_composite_disk` (`disk/src/composite.rs`, new footer variant), with the GPT from
//! `gpt_disk`. Paths are written as given, so `/proc/self/fd/N` works as in AVF.
//!
//! QEMU cannot read composite specs; [`CompositeLayout::vmdk_descriptor`] gives a
//! `monolithicFlat` VMDK descriptor with one FLAT extent per component over the same files
//! (QEMU's `block/vmdk.c` format). See `docs/formats/composite-disk.md`.

pub mod fuzzing;
pub mod proto;
mod spec;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use gpt_disk::{
    GptError, GptLayout, PartitionSpec, LINUX_FILESYSTEM_GUID, PARTITION_ALIGNMENT, SECTOR_SIZE,
};
use prost::Message;
use thiserror::Error;
use uuid::Uuid;

pub use spec::{resolve_component_path, ParsedComponent, ParsedComposite, MAX_SPEC_SIZE};

/// Magic at offset 0 of a composite spec.
pub const CDISK_MAGIC: &[u8; 15] = b"composite_disk\x1d";
/// Version we write; readers reject newer ones.
pub const COMPOSITE_DISK_VERSION: u64 = 2;
/// Size of the zero filler file.
pub const ZERO_FILLER_SIZE: u64 = 4096;
/// Size of the GPT header file.
pub const HEADER_SIZE: u64 = gpt_disk::GPT_BEGINNING_SIZE;

/// Errors.
#[derive(Debug, Error)]
pub enum Error {
    /// GPT layout refused the partitions (labels, count, size).
    #[error("GPT: {0}")]
    Gpt(#[from] GptError),
    /// A writable partition whose size is not a multiple of 4 KiB (crosvm `UnalignedReadWrite`).
    #[error("writable partition {label:?} has size {size}, not a multiple of 4096")]
    UnalignedReadWrite {
        /// Label.
        label: String,
        /// Size.
        size: u64,
    },
    /// I/O on a named file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A path that a VMDK descriptor or a proto string cannot carry.
    #[error("path {0:?} is not UTF-8 or contains a quote or newline")]
    UnrepresentablePath(PathBuf),
    /// The spec does not start with the composite magic.
    #[error("not a composite disk spec (bad magic)")]
    BadMagic,
    /// Spec file larger than [`MAX_SPEC_SIZE`].
    #[error("composite spec of {0} bytes is too large")]
    SpecTooLarge(usize),
    /// Protobuf decoding failed.
    #[error("bad CompositeDisk protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Version newer than we understand.
    #[error("unsupported composite disk version {0}")]
    UnsupportedVersion(u64),
    /// No components.
    #[error("composite disk has no components")]
    NoComponents,
    /// Two components at the same offset.
    #[error("two components at offset {0}")]
    DuplicateOffset(u64),
    /// A component starting at or past the disk length.
    #[error("component at offset {offset} is not inside the disk length {length}")]
    ComponentPastEnd {
        /// Offset.
        offset: u64,
        /// Disk length.
        length: u64,
    },
    /// Unknown ReadWriteCapability value.
    #[error("unknown read/write capability {0}")]
    UnknownCapability(i32),
    /// A component with an empty file path.
    #[error("component at offset {0} has an empty file path")]
    EmptyPath(u64),
    /// The first component does not start at 0 (the disk would have a hole).
    #[error("first component starts at {0}, not 0")]
    GapAtStart(u64),
    /// A partition file that is itself a disk image format, not raw bytes: its file size is
    /// not its disk size, and the guest would read the format's own headers as the partition.
    #[error("{path}: is {format}, not a raw partition image ({hint})")]
    NotRawImage {
        /// File.
        path: PathBuf,
        /// The format found.
        format: &'static str,
        /// How to make a raw image of it.
        hint: &'static str,
    },
}

/// Disk image formats a partition file must not be, by their magic at offset 0: (magic,
/// format, how to get a raw image). Android sparse images (`ext4`/`erofs` build outputs),
/// QEMU qcow2, VMware VMDK (binary and descriptor) and crosvm composite specs.
const NOT_RAW: &[(&[u8], &str, &str)] = &[
    (
        &[0x3a, 0xff, 0x26, 0xed],
        "an Android sparse image",
        "unsparse it with simg2img",
    ),
    (
        b"QFI\xfb",
        "a qcow2 image",
        "convert it with qemu-img convert -O raw",
    ),
    (
        b"KDMV",
        "a VMDK image",
        "convert it with qemu-img convert -O raw",
    ),
    (
        b"# Disk DescriptorFile",
        "a VMDK descriptor",
        "give the raw image it names",
    ),
    (
        CDISK_MAGIC,
        "a composite disk",
        "give its partitions one by one",
    ),
];

/// The format `head` (a file's first bytes) starts like, if it is one of [`NOT_RAW`].
fn disk_image_format(head: &[u8]) -> Option<(&'static str, &'static str)> {
    NOT_RAW
        .iter()
        .find(|(magic, _, _)| head.starts_with(magic))
        .map(|&(_, format, hint)| (format, hint))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A partition of a composite disk, as AVF's `PartitionInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// GPT partition name (Microdroid finds partitions by it).
    pub label: String,
    /// Path written into the spec / VMDK (e.g. `/proc/self/fd/7` or an absolute path).
    pub path: PathBuf,
    /// Logical size in bytes.
    pub size: u64,
    /// Opened read-write by the VMM.
    pub writable: bool,
    /// Unique partition GUID; None derives one from the disk GUID and the label (crosvm uses a
    /// random v4; a fixed one keeps images reproducible).
    pub part_guid: Option<Uuid>,
}

impl Partition {
    /// A partition backed by `path`, its size taken from the file, which must be a raw image
    /// (not sparse, qcow2, VMDK or composite: [`Error::NotRawImage`]).
    pub fn from_file(label: &str, path: &Path, writable: bool) -> Result<Self, Error> {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        let mut head = Vec::with_capacity(32);
        file.take(32).read_to_end(&mut head).map_err(io_err(path))?;
        if let Some((format, hint)) = disk_image_format(&head) {
            return Err(Error::NotRawImage {
                path: path.to_path_buf(),
                format,
                hint,
            });
        }
        Ok(Partition {
            label: label.to_string(),
            path: path.to_path_buf(),
            size,
            writable,
            part_guid: None,
        })
    }
}

/// The three generated files a composite refers to, by the paths written into the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxPaths {
    /// GPT header file (20480 bytes).
    pub header: PathBuf,
    /// GPT footer file (20480 bytes).
    pub footer: PathBuf,
    /// Zero filler (4096 bytes of zeros).
    pub zero_filler: PathBuf,
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// The GPT header file.
    Header,
    /// Partition `i` (index into the partition list).
    Partition(usize),
    /// Zero filler after partition `i`.
    ZeroFiller(usize),
    /// The GPT footer file.
    Footer,
}

/// One contiguous range of the disk and the file that backs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// What it is.
    pub kind: ComponentKind,
    /// Backing file path (as written into the spec).
    pub path: PathBuf,
    /// Guest-visible offset.
    pub offset: u64,
    /// Bytes of the disk this component covers.
    pub length: u64,
    /// Read-write.
    pub writable: bool,
}

/// The planned composite disk: GPT, component list, and the bytes of every generated file.
#[derive(Debug, Clone)]
pub struct CompositeLayout {
    gpt: GptLayout,
    partitions: Vec<Partition>,
    aux: AuxPaths,
    components: Vec<Component>,
}

fn check_path(p: &Path) -> Result<&str, Error> {
    match p.to_str() {
        Some(s) if !s.is_empty() && !s.contains(['"', '\n', '\r']) => Ok(s),
        _ => Err(Error::UnrepresentablePath(p.to_path_buf())),
    }
}

impl CompositeLayout {
    /// Plans the disk as crosvm's `create_composite_disk`: header at 0, partitions from 20480 on
    /// 4 KiB boundaries (read-only ones padded by the zero filler), footer after the last.
    pub fn new(disk_guid: Uuid, partitions: Vec<Partition>, aux: AuxPaths) -> Result<Self, Error> {
        for p in [&aux.header, &aux.footer, &aux.zero_filler] {
            check_path(p)?;
        }
        let mut specs = Vec::with_capacity(partitions.len());
        for p in &partitions {
            check_path(&p.path)?;
            if p.writable && p.size % PARTITION_ALIGNMENT != 0 {
                return Err(Error::UnalignedReadWrite {
                    label: p.label.clone(),
                    size: p.size,
                });
            }
            let mut spec = PartitionSpec::new(disk_guid, &p.label, p.size);
            spec.type_guid = LINUX_FILESYSTEM_GUID;
            if let Some(g) = p.part_guid {
                spec.unique_guid = g;
            }
            specs.push(spec);
        }
        let gpt = GptLayout::new(disk_guid, specs)?;
        let mut components = vec![Component {
            kind: ComponentKind::Header,
            path: aux.header.clone(),
            offset: 0,
            length: HEADER_SIZE,
            writable: false,
        }];
        for (i, (placed, p)) in gpt.partitions().iter().zip(&partitions).enumerate() {
            components.push(Component {
                kind: ComponentKind::Partition(i),
                path: p.path.clone(),
                offset: placed.offset,
                length: p.size,
                writable: p.writable,
            });
            let pad = placed.padding();
            if pad > 0 {
                components.push(Component {
                    kind: ComponentKind::ZeroFiller(i),
                    path: aux.zero_filler.clone(),
                    offset: placed.offset + p.size,
                    length: pad,
                    writable: false,
                });
            }
        }
        components.push(Component {
            kind: ComponentKind::Footer,
            path: aux.footer.clone(),
            offset: gpt.footer_offset(),
            length: gpt.disk_size() - gpt.footer_offset(),
            writable: false,
        });
        // A zero-size partition would sit at the same offset as its successor.
        for w in components.windows(2) {
            if w[0].offset == w[1].offset {
                return Err(Error::DuplicateOffset(w[0].offset));
            }
        }
        Ok(CompositeLayout {
            gpt,
            partitions,
            aux,
            components,
        })
    }

    /// Total disk size.
    pub fn disk_size(&self) -> u64 {
        self.gpt.disk_size()
    }

    /// The GPT layout.
    pub fn gpt(&self) -> &GptLayout {
        &self.gpt
    }

    /// The partitions as given.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    /// Components in offset order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The generated files' paths.
    pub fn aux_paths(&self) -> &AuxPaths {
        &self.aux
    }

    /// Bytes of the header file (20480).
    pub fn header_bytes(&self) -> Vec<u8> {
        self.gpt.header()
    }

    /// Bytes of the footer file (20480).
    pub fn footer_bytes(&self) -> Vec<u8> {
        self.gpt.footer()
    }

    /// Bytes of the zero filler file.
    pub fn zero_filler_bytes() -> Vec<u8> {
        vec![0u8; ZERO_FILLER_SIZE as usize]
    }

    /// The `CompositeDisk` message.
    pub fn spec(&self) -> proto::CompositeDisk {
        proto::CompositeDisk {
            version: COMPOSITE_DISK_VERSION,
            component_disks: self
                .components
                .iter()
                .map(|c| proto::ComponentDisk {
                    // Checked UTF-8 in `new`.
                    file_path: c.path.to_string_lossy().into_owned(),
                    offset: c.offset,
                    read_write_capability: if c.writable {
                        proto::ReadWriteCapability::ReadWrite as i32
                    } else {
                        proto::ReadWriteCapability::ReadOnly as i32
                    },
                    file_offset: 0,
                })
                .collect(),
            length: self.disk_size(),
        }
    }

    /// The composite spec file: magic + protobuf.
    pub fn composite_bytes(&self) -> Vec<u8> {
        let mut out = CDISK_MAGIC.to_vec();
        out.extend_from_slice(&self.spec().encode_to_vec());
        out
    }

    /// True when some partition is read-only: QEMU ignores non-`RW` VMDK extents, so every
    /// extent says RW and read-only must be enforced on the whole drive
    /// (`-blockdev ...,read-only=on` / `-drive ...,readonly=on`).
    pub fn needs_readonly_drive(&self) -> bool {
        self.partitions.iter().any(|p| !p.writable)
    }

    /// The QEMU VMDK descriptor (`monolithicFlat`, one FLAT extent per component over the same
    /// files). Granularity is 512 bytes: a partition whose size is not a sector multiple maps
    /// `ceil(size/512)` sectors of its file (QEMU reads zeros past EOF) and the rest of its 4 KiB
    /// padding to zero-filler sectors.
    pub fn vmdk_descriptor(&self) -> String {
        let mut extents = String::new();
        let mut line = |sectors: u64, path: &Path| {
            // Paths were checked in `new`.
            let _ = writeln!(
                extents,
                "RW {sectors} FLAT \"{}\" 0",
                path.to_string_lossy()
            );
        };
        for c in &self.components {
            match c.kind {
                ComponentKind::Partition(_) => line(c.length.div_ceil(SECTOR_SIZE), &c.path),
                ComponentKind::ZeroFiller(i) => {
                    let data_sectors = self.partitions[i].size.div_ceil(SECTOR_SIZE);
                    let aligned = self.gpt.partitions()[i].aligned_size;
                    let zero = aligned / SECTOR_SIZE - data_sectors;
                    if zero > 0 {
                        line(zero, &c.path);
                    }
                }
                ComponentKind::Header | ComponentKind::Footer => {
                    line(c.length / SECTOR_SIZE, &c.path)
                }
            }
        }
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
             # Extent description\n{extents}\n\
             # The Disk Data Base\n#DDB\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n"
        )
    }

    /// Writes the header, footer and zero filler to `dir`-independent locations given by
    /// `out` (which may differ from the paths written into the spec, e.g. when the spec refers
    /// to them as `/proc/self/fd/N`).
    pub fn write_aux_files(&self, out: &AuxPaths) -> Result<(), Error> {
        write_file(&out.header, &self.header_bytes())?;
        write_file(&out.footer, &self.footer_bytes())?;
        write_file(&out.zero_filler, &Self::zero_filler_bytes())
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Where [`create_composite_disk`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    /// Composite spec (`composite.img`).
    pub composite: PathBuf,
    /// VMDK descriptor for QEMU, if wanted.
    pub vmdk: Option<PathBuf>,
    /// Header, footer, zero filler: written here and referred to by these paths.
    pub aux: AuxPaths,
}

/// Plans the disk and writes the header, footer, zero filler, composite spec and (optionally)
/// the VMDK descriptor. Partition files are referenced, never copied.
pub fn create_composite_disk(
    disk_guid: Uuid,
    partitions: Vec<Partition>,
    out: &OutputPaths,
) -> Result<CompositeLayout, Error> {
    let layout = CompositeLayout::new(disk_guid, partitions, out.aux.clone())?;
    layout.write_aux_files(&out.aux)?;
    write_file(&out.composite, &layout.composite_bytes())?;
    if let Some(vmdk) = &out.vmdk {
        write_file(vmdk, layout.vmdk_descriptor().as_bytes())?;
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aux() -> AuxPaths {
        AuxPaths {
            header: "hdr.img".into(),
            footer: "ftr.img".into(),
            zero_filler: "zero.img".into(),
        }
    }

    fn reference_layout() -> CompositeLayout {
        let disk = Uuid::from_u128(0x12345678_1234_5678_abcd_12345678abcd);
        let parts = vec![
            Partition {
                label: "vbmeta_a".into(),
                path: "p1.img".into(),
                size: 10000,
                writable: false,
                part_guid: Some(Uuid::from_u128(1)),
            },
            Partition {
                label: "super".into(),
                path: "p2.img".into(),
                size: 8192,
                writable: true,
                part_guid: Some(Uuid::from_u128(2)),
            },
        ];
        CompositeLayout::new(disk, parts, aux()).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// The two-partition example of docs/formats/composite-disk.md (10000-byte read-only p1,
    /// 8192-byte writable p2), as crosvm lays it out.
    #[test]
    fn components_match_reference() {
        let l = reference_layout();
        let got: Vec<(String, u64, bool)> = l
            .spec()
            .component_disks
            .iter()
            .map(|c| (c.file_path.clone(), c.offset, c.read_write_capability == 1))
            .collect();
        assert_eq!(
            got,
            vec![
                ("hdr.img".into(), 0, false),
                ("p1.img".into(), 20480, false),
                ("zero.img".into(), 30480, false),
                ("p2.img".into(), 32768, true),
                ("ftr.img".into(), 40960, false),
            ]
        );
        assert_eq!(l.disk_size(), 61440);
        assert_eq!(l.spec().version, 2);
    }

    /// Exact protobuf bytes, encoded by hand from the proto rules (field order, defaults
    /// omitted), for the reference example.
    #[test]
    fn spec_bytes_by_hand() {
        fn comp(path: &str, offset: Option<u32>, rw: bool) -> Vec<u8> {
            let mut m = vec![0x0a, path.len() as u8];
            m.extend_from_slice(path.as_bytes());
            if let Some(o) = offset {
                m.push(0x10);
                let mut v = o;
                loop {
                    let b = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        m.push(b);
                        break;
                    }
                    m.push(b | 0x80);
                }
            }
            if rw {
                m.extend_from_slice(&[0x18, 0x01]);
            }
            let mut out = vec![0x12, m.len() as u8];
            out.extend(m);
            out
        }
        let mut want = CDISK_MAGIC.to_vec();
        want.extend_from_slice(&[0x08, 0x02]);
        want.extend(comp("hdr.img", None, false));
        want.extend(comp("p1.img", Some(20480), false));
        want.extend(comp("zero.img", Some(30480), false));
        want.extend(comp("p2.img", Some(32768), true));
        want.extend(comp("ftr.img", Some(40960), false));
        want.extend_from_slice(&[0x18, 0x80, 0xe0, 0x03]); // length 61440
        assert_eq!(reference_layout().composite_bytes(), want);
    }

    /// The VMDK descriptor (docs/formats/composite-disk.md, QEMU view) for the same disk.
    #[test]
    fn vmdk_matches_reference() {
        let want = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
# Extent description\nRW 40 FLAT \"hdr.img\" 0\nRW 20 FLAT \"p1.img\" 0\nRW 4 FLAT \"zero.img\" 0\nRW 16 FLAT \"p2.img\" 0\nRW 40 FLAT \"ftr.img\" 0\n\n\
# The Disk Data Base\n#DDB\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";
        assert_eq!(reference_layout().vmdk_descriptor(), want);
        assert!(reference_layout().needs_readonly_drive());
        // All writable: the drive stays writable. The partitions are kept as given.
        let writable: Vec<Partition> = reference_layout()
            .partitions()
            .iter()
            .map(|p| Partition {
                writable: true,
                size: p.size.next_multiple_of(4096),
                ..p.clone()
            })
            .collect();
        let layout = CompositeLayout::new(Uuid::nil(), writable.clone(), aux()).unwrap();
        assert!(!layout.needs_readonly_drive());
        assert_eq!(layout.partitions(), writable.as_slice());
        assert_eq!(reference_layout().partitions().len(), 2);
    }

    /// Fault matrix row 42: each file the assembly writes (header, footer, zero filler, spec,
    /// VMDK descriptor) failing with ENOSPC (`/dev/full` in its place) fails the assembly with
    /// an error naming that file; nothing is reported as assembled.
    #[test]
    fn a_write_error_on_any_output_fails_the_assembly_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("p.img");
        std::fs::write(&part, vec![0u8; 8192]).unwrap();
        let parts = vec![Partition::from_file("super", &part, false).unwrap()];
        let good = OutputPaths {
            composite: dir.path().join("d.img"),
            vmdk: Some(dir.path().join("d.vmdk")),
            aux: AuxPaths {
                header: dir.path().join("h.img"),
                footer: dir.path().join("f.img"),
                zero_filler: dir.path().join("z.img"),
            },
        };
        create_composite_disk(Uuid::nil(), parts.clone(), &good).unwrap();
        let full = PathBuf::from("/dev/full");
        let mut cases = Vec::new();
        for which in 0..5 {
            let mut out = good.clone();
            match which {
                0 => out.aux.header = full.clone(),
                1 => out.aux.footer = full.clone(),
                2 => out.aux.zero_filler = full.clone(),
                3 => out.composite = full.clone(),
                _ => out.vmdk = Some(full.clone()),
            }
            cases.push(out);
        }
        for out in cases {
            let err = create_composite_disk(Uuid::nil(), parts.clone(), &out).unwrap_err();
            match &err {
                Error::Io { path, source } => {
                    assert_eq!(path, &full);
                    assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err}");
                }
                other => panic!("{other}"),
            }
        }
    }

    /// Fault matrix rows 38 and 39: partition files in another disk format are refused by
    /// name (here each format's header as the real tools write it: `qemu-img` makes the qcow2
    /// and VMDK ones when it is installed), raw files of any content are accepted.
    #[test]
    fn partition_files_in_another_disk_format_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let mut sparse = vec![0x3a, 0xff, 0x26, 0xed, 1, 0, 0, 0, 28, 0, 12, 0];
        sparse.resize(4096, 0);
        let mut cases = vec![
            (write("system.simg", &sparse), "an Android sparse image"),
            (
                write("nested.cdisk", &[&CDISK_MAGIC[..], &[0u8; 64]].concat()),
                "a composite disk",
            ),
            (
                write("d.vmdk", b"# Disk DescriptorFile\nversion=1\n"),
                "a VMDK descriptor",
            ),
        ];
        for (format, extension, found) in [
            ("qcow2", "qcow2", "a qcow2 image"),
            ("vmdk", "vmdk", "a VMDK image"),
        ] {
            let path = dir.path().join(format!("made.{extension}"));
            match std::process::Command::new("qemu-img")
                .args(["create", "-f", format])
                .arg(&path)
                .arg("1M")
                .output()
            {
                Ok(out) if out.status.success() => cases.push((path, found)),
                _ => eprintln!("qemu-img not available: {format} written by hand only"),
            }
        }
        cases.push((write("h.qcow2", b"QFI\xfb\0\0\0\x03"), "a qcow2 image"));
        for (path, format) in cases {
            let err = Partition::from_file("p", &path, false).unwrap_err();
            assert!(
                matches!(&err, Error::NotRawImage { format: f, .. } if *f == format),
                "{}: {err}",
                path.display()
            );
            assert!(
                err.to_string().contains("not a raw partition image"),
                "{err}"
            );
        }
        // Raw files: empty, zeros, and bytes that merely contain a magic further in.
        for (name, bytes) in [
            ("empty", vec![]),
            ("zeros", vec![0u8; 8192]),
            ("later", [&[0u8; 512][..], b"QFI\xfb"].concat()),
        ] {
            let path = write(name, &bytes);
            let p = Partition::from_file("p", &path, false).unwrap();
            assert_eq!(p.size, bytes.len() as u64);
        }
    }

    #[test]
    fn rejects_unaligned_writable_and_bad_paths() {
        let p = Partition {
            label: "a".into(),
            path: "a".into(),
            size: 100,
            writable: true,
            part_guid: None,
        };
        assert!(matches!(
            CompositeLayout::new(Uuid::nil(), vec![p.clone()], aux()),
            Err(Error::UnalignedReadWrite { size: 100, .. })
        ));
        let q = Partition {
            path: "a\"b".into(),
            writable: false,
            ..p.clone()
        };
        assert!(matches!(
            CompositeLayout::new(Uuid::nil(), vec![q], aux()),
            Err(Error::UnrepresentablePath(_))
        ));
        let dup = Partition {
            writable: false,
            ..p.clone()
        };
        assert!(matches!(
            CompositeLayout::new(Uuid::nil(), vec![dup.clone(), dup], aux()),
            Err(Error::Gpt(_))
        ));
        let empty = Partition {
            size: 0,
            writable: false,
            ..p
        };
        assert!(matches!(
            CompositeLayout::new(Uuid::nil(), vec![empty], aux()),
            Err(Error::DuplicateOffset(20480))
        ));
    }

    #[test]
    fn sub_sector_partition_vmdk() {
        // 1000 bytes: 2 sectors of the file (QEMU zero-fills past EOF) + 6 zero-filler sectors.
        let p = Partition {
            label: "x".into(),
            path: "x.img".into(),
            size: 1000,
            writable: false,
            part_guid: None,
        };
        let l = CompositeLayout::new(Uuid::nil(), vec![p], aux())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let d = l.vmdk_descriptor();
        assert!(
            d.contains("RW 2 FLAT \"x.img\" 0\nRW 6 FLAT \"zero.img\" 0\n"),
            "{d}"
        );
        // 4096 aligned: no filler.
        let p = Partition {
            label: "y".into(),
            path: "y.img".into(),
            size: 8192,
            writable: false,
            part_guid: None,
        };
        let l = CompositeLayout::new(Uuid::nil(), vec![p], aux())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(l.components().len(), 3);
        // 4000 bytes: 8 sectors of the file already reach 4096; the 96-byte filler has no
        // whole sector, so the descriptor has no line for it.
        let p = Partition {
            label: "z".into(),
            path: "z.img".into(),
            size: 4000,
            writable: false,
            part_guid: None,
        };
        let l = CompositeLayout::new(Uuid::nil(), vec![p], aux())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let d = l.vmdk_descriptor();
        assert!(
            d.contains("RW 8 FLAT \"z.img\" 0\nRW 40 FLAT \"ftr.img\" 0\n"),
            "{d}"
        );
    }
}
