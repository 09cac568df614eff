//! The VM's disks, assembled from partition files without copying them: for each, a crosvm
//! composite disk (`libs/composite`: GPT header and footer files, 4 KiB alignment, zero filler)
//! and, for QEMU, a VMDK descriptor with FLAT extents over the same files.
//!
//! The disks, in AVF's order: the OS disk (`vbmeta_a`, `super`; read-only), the payload disk of
//! an app (`payload-metadata`, `microdroid-apk`, ...; read-only), and the instance disk
//! (`vm-instance`; writable).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use composite::{create_composite_disk, AuxPaths, CompositeLayout, OutputPaths, Partition};
use image::PartitionEntry;
use nix::fcntl::{Flock, FlockArg};
use uuid::Uuid;

/// Disk GUIDs. Fixed, so that each disk is a function of its partition files.
pub const OS_DISK_GUID: Uuid = Uuid::from_u128(0x6d1c_7a0e_2f4b_4c1e_9a57_0f3e_5b2d_8c41);
pub const PAYLOAD_DISK_GUID: Uuid = Uuid::from_u128(0x2a6f_93c4_51d8_4e07_b3a2_c84e_19f0_7d65);
pub const INSTANCE_DISK_GUID: Uuid = Uuid::from_u128(0x8e4b_0c17_d2a9_4f63_a05c_3b71_e6d8_2f94);
/// The instance partition's label and the size of a new instance image (AVF's default, 10 MiB).
pub const INSTANCE_PARTITION: &str = "vm-instance";
pub const NEW_INSTANCE_SIZE: u64 = instance::DEFAULT_INSTANCE_SIZE;
/// The encrypted storage partition's label (AOSP's), on the instance disk.
pub const STORAGE_PARTITION: &str = "encryptedstore";
/// The size of a new storage image when `--storage-size` is not given.
pub const NEW_STORAGE_SIZE: u64 = 10 << 20;

/// One disk of one VM, in its run directory.
#[derive(Debug)]
pub struct VmDisk {
    /// Names the disk's files in the run directory (`os`, `payload`, `instance`).
    pub name: String,
    pub guid: Uuid,
    /// QEMU's view (`-drive format=vmdk`).
    pub vmdk: PathBuf,
    /// crosvm's composite spec, with absolute paths.
    pub composite: PathBuf,
    pub aux: AuxPaths,
    pub partitions: Vec<Partition>,
}

impl VmDisk {
    /// Whether the guest may write to it (any writable partition makes the drive writable).
    pub fn writable(&self) -> bool {
        self.partitions.iter().any(|p| p.writable)
    }
}

/// Writes the header, footer, zero filler, composite spec and VMDK descriptor of one disk into
/// `dir`, as `<name>-*.img` and `<name>.vmdk`.
pub fn assemble_disk(
    name: &str,
    guid: Uuid,
    partitions: Vec<Partition>,
    dir: &Path,
) -> Result<VmDisk> {
    let aux = AuxPaths {
        header: dir.join(format!("{name}-header.img")),
        footer: dir.join(format!("{name}-footer.img")),
        zero_filler: dir.join(format!("{name}-zero.img")),
    };
    let vmdk = dir.join(format!("{name}.vmdk"));
    let out = OutputPaths {
        composite: dir.join(format!("{name}.img")),
        vmdk: Some(vmdk.clone()),
        aux: aux.clone(),
    };
    create_composite_disk(guid, partitions.clone(), &out)
        .with_context(|| format!("assembling the {name} disk"))?;
    Ok(VmDisk {
        name: name.to_owned(),
        guid,
        vmdk,
        composite: out.composite,
        aux,
        partitions,
    })
}

/// The OS disk: the manifest's partitions (`OsManifest::os_disk`, paths relative to
/// `image_dir`), read-only, in its order.
pub fn assemble_os_disk(
    os_disk: &[PartitionEntry],
    image_dir: &Path,
    dir: &Path,
) -> Result<VmDisk> {
    let image_dir = std::path::absolute(image_dir).context("resolving the image directory")?;
    let partitions = os_disk
        .iter()
        .map(|p| Partition::from_file(&p.label, &image_dir.join(&p.path), false))
        .collect::<Result<Vec<_>, _>>()
        .context("reading the OS partitions")?;
    assemble_disk("os", OS_DISK_GUID, partitions, dir)
}

/// The payload disk of an app (read-only; partitions from `app::payload_disk_partitions`).
pub fn assemble_payload_disk(app: &crate::app::AppPayload, dir: &Path) -> Result<VmDisk> {
    let partitions = crate::app::payload_disk_partitions(app, dir)?
        .into_iter()
        .map(|(label, path)| {
            let path = std::path::absolute(&path)
                .with_context(|| format!("resolving {}", path.display()))?;
            Partition::from_file(&label, &path, false)
                .with_context(|| format!("reading {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    assemble_disk("payload", PAYLOAD_DISK_GUID, partitions, dir)
}

/// Creates a missing instance image in AOSP's format (`vm create-partition --type instance`:
/// the "Android-VM-instance" header, sparse, 10 MiB). An existing one is left as it is.
pub fn ensure_instance_file(instance: &Path) -> Result<()> {
    if !instance.exists() {
        instance::create_instance_file(instance, NEW_INSTANCE_SIZE)
            .with_context(|| format!("creating the instance image {}", instance.display()))?;
    }
    Ok(())
}

/// Creates a missing encrypted-storage image (`encryptedstore`: "UNFORMATTED-STORAGE", sparse,
/// `size` rounded up to 4 KiB); the guest formats it on first use.
pub fn ensure_storage_file(storage: &Path, size: u64) -> Result<()> {
    if !storage.exists() {
        instance::create_storage_file(storage, size)
            .with_context(|| format!("creating the storage image {}", storage.display()))?;
    }
    Ok(())
}

/// Exclusive locks on the VM's instance and storage images, held while it runs: a second VM on
/// the same files is refused (two guests writing one instance would tear it).
pub fn lock_instance_files(config: &crate::vm::VmConfig) -> Result<Vec<Flock<File>>> {
    let mut locks = Vec::new();
    // Created here if missing, so that they can be locked before anything reads them.
    if let Some(instance) = &config.instance {
        ensure_instance_file(instance)?;
    }
    if let Some((storage, size)) = &config.storage {
        ensure_storage_file(storage, *size)?;
    }
    let files = config
        .instance
        .iter()
        .cloned()
        .chain(config.storage.iter().map(|(p, _)| p.clone()));
    for path in files {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => locks.push(lock),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => anyhow::bail!(
                "{} is in use by another running VM: one VM at a time may use an instance",
                path.display()
            ),
            Err((_, e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
    Ok(locks)
}

/// The writable instance disk: `vm-instance`, and `encryptedstore` when the VM has storage.
pub fn assemble_instance_disk(
    instance: &Path,
    storage: Option<&(PathBuf, u64)>,
    dir: &Path,
) -> Result<VmDisk> {
    ensure_instance_file(instance)?;
    let path = std::path::absolute(instance).context("resolving the instance image")?;
    let mut partitions = vec![Partition::from_file(INSTANCE_PARTITION, &path, true)
        .with_context(|| format!("reading {}", path.display()))?];
    if let Some((storage, size)) = storage {
        ensure_storage_file(storage, *size)?;
        let path = std::path::absolute(storage).context("resolving the storage image")?;
        partitions.push(
            Partition::from_file(STORAGE_PARTITION, &path, true)
                .with_context(|| format!("reading {}", path.display()))?,
        );
    }
    assemble_disk("instance", INSTANCE_DISK_GUID, partitions, dir)
}

/// All disks of a VM, in AVF's order: OS, then (for an app) payload and instance.
pub fn assemble_vm_disks(
    config: &crate::vm::VmConfig,
    manifest: &image::OsManifest,
    image_dir: &Path,
    dir: &Path,
) -> Result<Vec<VmDisk>> {
    let mut disks = vec![assemble_os_disk(&manifest.os_disk, image_dir, dir)?];
    if let Some(app) = &config.app {
        disks.push(assemble_payload_disk(app, dir)?);
    }
    if let Some(instance) = &config.instance {
        disks.push(assemble_instance_disk(
            instance,
            config.storage.as_ref(),
            dir,
        )?);
    }
    Ok(disks)
}

/// Files the VMM inherits at the fd numbers written into its command line and disk spec
/// (`/proc/self/fd/N`), as AVF's virtmgr passes them to crosvm. They stay open while this lives.
#[derive(Debug, Default)]
pub struct PreservedFiles {
    files: Vec<File>,
}

impl PreservedFiles {
    /// Opens `path` (read-only, or read-write with `writable`) and returns its `/proc/self/fd/N`.
    pub fn add(&mut self, path: &Path, writable: bool) -> Result<PathBuf> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(self.push(file))
    }

    /// Keeps an already open file and returns its `/proc/self/fd/N`.
    pub fn push(&mut self, file: File) -> PathBuf {
        use std::os::fd::AsRawFd;
        let path = fd_path(file.as_raw_fd());
        self.files.push(file);
        path
    }

    pub fn fds(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        self.files.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

pub fn fd_path(fd: i32) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The composite spec crosvm gets: the same disk, with every component (partitions, header,
/// footer, zero filler) referred to as `/proc/self/fd/N` of a file in `preserved`. Returns the
/// spec's own `/proc/self/fd/N`.
pub fn fd_composite(disk: &VmDisk, dir: &Path, preserved: &mut PreservedFiles) -> Result<PathBuf> {
    let partitions = disk
        .partitions
        .iter()
        .map(|p| {
            Ok(Partition {
                path: preserved.add(&p.path, p.writable)?,
                ..p.clone()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let aux = AuxPaths {
        header: preserved.add(&disk.aux.header, false)?,
        footer: preserved.add(&disk.aux.footer, false)?,
        zero_filler: preserved.add(&disk.aux.zero_filler, false)?,
    };
    let layout =
        CompositeLayout::new(disk.guid, partitions, aux).context("planning the crosvm disk")?;
    let spec = dir.join(format!("{}-crosvm.img", disk.name));
    std::fs::write(&spec, layout.composite_bytes())
        .with_context(|| format!("writing {}", spec.display()))?;
    preserved.add(&spec, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_refers_to_the_partition_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("system.img"), vec![7u8; 10000]).unwrap();
        let os_disk = [PartitionEntry {
            label: "system_a".into(),
            path: "system.img".into(),
        }];
        let disk = assemble_os_disk(&os_disk, dir.path(), dir.path()).unwrap();
        let vmdk = std::fs::read_to_string(&disk.vmdk).unwrap();
        let system = dir.path().join("system.img");
        assert!(
            vmdk.contains(&format!("RW 20 FLAT \"{}\" 0", system.display())),
            "{vmdk}"
        );
        let parsed = composite::ParsedComposite::read(&disk.composite).unwrap();
        assert!(parsed
            .components
            .iter()
            .any(|c| Path::new(&c.file_path) == system));

        let mut preserved = PreservedFiles::default();
        let spec_fd = fd_composite(&disk, dir.path(), &mut preserved).unwrap();
        // Partition, header, footer, zero filler, and the spec itself.
        assert_eq!(preserved.fds().len(), 5);
        assert_eq!(spec_fd, fd_path(*preserved.fds().last().unwrap()));
        let parsed = composite::ParsedComposite::read(&dir.path().join("os-crosvm.img")).unwrap();
        assert!(
            parsed
                .components
                .iter()
                .all(|c| c.file_path.starts_with("/proc/self/fd/")),
            "{parsed:?}"
        );
        assert_eq!(
            parsed.components[1].file_path,
            fd_path(preserved.fds()[0]).to_string_lossy()
        );
    }
}
