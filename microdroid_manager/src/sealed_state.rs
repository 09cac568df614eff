//! The instance partition's record of this payload (AOSP `MicrodroidData`, sealed with a key
//! from the host's CDI_Seal) and the rules that pin the payload to it
//! (AOSP packages/modules/Virtualization `microdroid_manager/src/instance.rs`, `verify.rs` and
//! `main.rs` `verify_payload_with_instance_img`; docs/formats/instance-image.md):
//!
//! * first boot: what was verified is recorded, with a fresh 64-byte salt (the payload DICE
//!   node's hidden input, so each instance has its own secrets);
//! * later boots: each APK and APEX must be signed by the key recorded for it
//!   (`MICRODROID_PAYLOAD_CHANGED` otherwise); a lower version is a rollback and is refused
//!   the same way, naming both versions; the same version with other contents is refused too;
//!   a higher version is an update: it runs and the record moves forward, keeping the salt, so
//!   that the secrets stay the same.
//!
//! AOSP refuses every update ("Detected an update of the payload which isn't supported yet");
//! this Microdroid implements the update rule its issue asks for.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use instance::{ApexData, ApkData, InstanceImage, MicrodroidData};

use crate::error::MicrodroidError;

/// The instance partition on the instance disk.
pub const INSTANCE_PARTITION: &str = "vm-instance";

/// What [`reconcile`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No record: this one is written.
    FirstBoot,
    /// The record matches.
    Unchanged,
    /// Newer versions by the same signers: the record moves forward. Says what was updated.
    Update(Vec<String>),
}

fn changed(message: String) -> anyhow::Error {
    MicrodroidError::PayloadChanged(message).into()
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn check_apk(what: &str, saved: &ApkData, now: &ApkData, updates: &mut Vec<String>) -> Result<()> {
    if saved.cert_hash != now.cert_hash {
        return Err(changed(format!(
            "{what} is signed by another key than the one recorded for this instance \
             (certificate hash {} recorded, {} now)",
            hex_prefix(&saved.cert_hash),
            hex_prefix(&now.cert_hash)
        )));
    }
    if saved.package_name != now.package_name {
        return Err(changed(format!(
            "{what} is package {:?}; this instance recorded {:?}",
            now.package_name, saved.package_name
        )));
    }
    if now.version_code < saved.version_code {
        return Err(changed(format!(
            "{what} {}: version code {} is a rollback from the recorded version code {}",
            now.package_name, now.version_code, saved.version_code
        )));
    }
    if now.version_code == saved.version_code && now.root_hash != saved.root_hash {
        return Err(changed(format!(
            "{what} {} changed without a new version code (still {})",
            now.package_name, now.version_code
        )));
    }
    if now.version_code > saved.version_code {
        updates.push(format!(
            "{what} {}: version code {} -> {}",
            now.package_name, saved.version_code, now.version_code
        ));
    }
    Ok(())
}

fn check_apex(saved: &ApexData, now: &ApexData, updates: &mut Vec<String>) -> Result<()> {
    let name = &now.name;
    if saved.public_key != now.public_key {
        return Err(changed(format!(
            "APEX {name} is signed by another key than the one recorded for this instance"
        )));
    }
    let (old, new) = (
        saved.manifest_version.unwrap_or(0),
        now.manifest_version.unwrap_or(0),
    );
    if new < old {
        return Err(changed(format!(
            "APEX {name}: version {new} is a rollback from the recorded version {old}"
        )));
    }
    if new == old && saved.root_digest != now.root_digest {
        return Err(changed(format!(
            "APEX {name} changed without a new version (still {new})"
        )));
    }
    if new > old {
        updates.push(format!("APEX {name}: version {old} -> {new}"));
    }
    Ok(())
}

/// The provisioning rule (AOSP microdroid_manager's strict boot): an instance records its
/// payload on its first boot and never again. On the first boot (the host recorded the
/// instance's entry this boot) there must be no record; on any later boot there must be one. A
/// record missing later means the first boot never finished or the record was removed from the
/// host's file; taking that as a first boot would re-provision the instance silently, with
/// new secrets and no rollback protection, so it is refused.
pub fn check_provisioning(new_instance: bool, has_record: bool) -> Result<()> {
    match (new_instance, has_record) {
        (true, true) => Err(MicrodroidError::PayloadInvalidConfig(
            "found a payload record in the instance image on its first boot".into(),
        )
        .into()),
        (false, false) => Err(MicrodroidError::PayloadInvalidConfig(
            "the instance image has no record of the payload, but this is not its first boot: \
             the first boot did not finish or the record was removed; an instance is provisioned \
             once (create a new instance image)"
                .into(),
        )
        .into()),
        _ => Ok(()),
    }
}

/// Compares what was verified this boot (`now`, whose salt is ignored) with the record. Returns
/// the record to keep (the salt is always the recorded one) and the decision.
pub fn reconcile(
    saved: Option<&MicrodroidData>,
    now: &MicrodroidData,
) -> Result<(MicrodroidData, Decision)> {
    let Some(saved) = saved else {
        return Ok((now.clone(), Decision::FirstBoot));
    };
    let mut updates = Vec::new();
    check_apk("the APK", &saved.apk_data, &now.apk_data, &mut updates)?;
    if saved.extra_apks_data.len() != now.extra_apks_data.len() {
        return Err(changed(format!(
            "the payload has {} extra APKs; this instance recorded {}",
            now.extra_apks_data.len(),
            saved.extra_apks_data.len()
        )));
    }
    for (i, (old, new)) in saved
        .extra_apks_data
        .iter()
        .zip(&now.extra_apks_data)
        .enumerate()
    {
        check_apk(&format!("extra APK {i}"), old, new, &mut updates)?;
    }
    let names = |d: &MicrodroidData| {
        d.apex_data
            .iter()
            .map(|a| a.name.clone())
            .collect::<Vec<_>>()
    };
    if names(saved) != names(now) {
        return Err(changed(format!(
            "the payload's APEXes are {:?}; this instance recorded {:?}",
            names(now),
            names(saved)
        )));
    }
    for (old, new) in saved.apex_data.iter().zip(&now.apex_data) {
        check_apex(old, new, &mut updates)?;
    }
    let record = MicrodroidData {
        salt: saved.salt.clone(),
        ..now.clone()
    };
    if updates.is_empty() {
        // Same versions, same contents: keep the record byte for byte (nothing is written).
        Ok((saved.clone(), Decision::Unchanged))
    } else {
        Ok((record, Decision::Update(updates)))
    }
}

/// The instance partition, opened for reading and writing. Every flush syncs it; on a block
/// device (the VM's partition) it also empties the kernel's buffer cache for it (AOSP's
/// `BLKFLSBUF`), so that what the host sees is what was written. A regular file (tests, tools)
/// is only synced; anything else (a character device, a FIFO) is refused when opened, since
/// neither a flush nor a sector layout means anything there.
pub struct InstanceDisk {
    file: File,
    block_device: bool,
}

impl InstanceDisk {
    pub fn open(path: &Path) -> Result<InstanceImage<InstanceDisk>> {
        use std::os::unix::fs::FileTypeExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let kind = file
            .metadata()
            .with_context(|| format!("reading the type of {}", path.display()))?
            .file_type();
        anyhow::ensure!(
            kind.is_block_device() || kind.is_file(),
            "the instance partition {} is neither a block device nor a file",
            path.display()
        );
        let disk = InstanceDisk {
            file,
            block_device: kind.is_block_device(),
        };
        InstanceImage::open(disk)
            .with_context(|| format!("reading the instance image on {}", path.display()))
    }
}

impl std::io::Read for InstanceDisk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl std::io::Write for InstanceDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl std::io::Seek for InstanceDisk {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

nix::ioctl_none!(blkflsbuf, 0x12, 97);

impl instance::Disk for InstanceDisk {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        if !self.block_device {
            return Ok(());
        }
        // SAFETY: BLKFLSBUF takes no argument; the fd is a block device we own (checked when
        // it was opened).
        unsafe { blkflsbuf(self.file.as_raw_fd()) }
            .map(|_| ())
            .map_err(std::io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::failure_class;
    use vm_status::FailureClass;

    fn apk(version_code: u64, cert: u8, root: u8) -> ApkData {
        ApkData {
            root_hash: vec![root; 32],
            cert_hash: vec![cert; 64],
            package_name: "com.example.app".into(),
            version_code,
        }
    }

    fn apex(version: i64, key: u8, root: u8) -> ApexData {
        ApexData {
            name: "com.example.apex".into(),
            manifest_name: Some("com.example.apex".into()),
            manifest_version: Some(version),
            public_key: vec![key; 16],
            root_digest: vec![root; 32],
            last_update_seconds: 0,
            is_factory: false,
        }
    }

    fn data(apk_data: ApkData, apex_data: Vec<ApexData>) -> MicrodroidData {
        MicrodroidData {
            salt: vec![1; 64],
            apk_data,
            extra_apks_data: vec![],
            apex_data,
        }
    }

    fn refused(result: Result<(MicrodroidData, Decision)>) -> String {
        let err = result.unwrap_err();
        assert_eq!(failure_class(&err), FailureClass::PayloadChanged, "{err:#}");
        format!("{err:#}")
    }

    /// Fault matrix row 29: the record written and flushed on a regular file (synced only), on
    /// a block device (synced and BLKFLSBUF; root, with losetup), and refused on anything else.
    #[test]
    fn the_instance_is_flushed_on_a_file_or_a_block_device_and_refused_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.img");
        instance::create_instance_file(&path, instance::DEFAULT_INSTANCE_SIZE).unwrap();
        let key = [3u8; 32];
        let record = data(apk(1, 1, 1), vec![]);
        let write_and_read_back = |target: &Path| {
            let mut image = InstanceDisk::open(target).unwrap();
            image.write_microdroid_data(&key, &record).unwrap();
            drop(image);
            let mut image = InstanceDisk::open(target).unwrap();
            assert_eq!(
                image.read_microdroid_data(&key).unwrap(),
                Some(record.clone())
            );
        };
        write_and_read_back(&path);

        let err = InstanceDisk::open(Path::new("/dev/null")).err().unwrap();
        assert!(
            format!("{err:#}").contains("is neither a block device nor a file"),
            "{err:#}"
        );

        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping the block device half: not root");
            return;
        }
        let fresh = dir.path().join("block.img");
        instance::create_instance_file(&fresh, instance::DEFAULT_INSTANCE_SIZE).unwrap();
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&fresh)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let device = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        write_and_read_back(Path::new(&device));
        let detached = std::process::Command::new("losetup")
            .args(["-d", &device])
            .status()
            .unwrap();
        assert!(detached.success());
        // What the block device flushed is in the file.
        let mut image = InstanceDisk::open(&fresh).unwrap();
        assert_eq!(image.read_microdroid_data(&key).unwrap(), Some(record));
    }

    #[test]
    fn an_instance_is_provisioned_on_its_first_boot_only() {
        assert!(check_provisioning(true, false).is_ok());
        assert!(check_provisioning(false, true).is_ok());
        for (new_instance, has_record, words) in [
            (true, true, "on its first boot"),
            (false, false, "not its first boot"),
        ] {
            let err = check_provisioning(new_instance, has_record).unwrap_err();
            assert!(
                matches!(
                    err.downcast_ref::<MicrodroidError>(),
                    Some(MicrodroidError::PayloadInvalidConfig(m)) if m.contains(words)
                ),
                "{err:#}"
            );
        }
    }

    #[test]
    fn first_boot_then_unchanged() {
        let now = data(apk(1, 1, 1), vec![apex(1, 1, 1)]);
        assert_eq!(reconcile(None, &now).unwrap().1, Decision::FirstBoot);
        let mut again = now.clone();
        again.salt = vec![9; 64];
        let (kept, decision) = reconcile(Some(&now), &again).unwrap();
        assert_eq!(decision, Decision::Unchanged);
        assert_eq!(kept, now);
    }

    #[test]
    fn other_signer_rollback_and_silent_change_are_refused() {
        let saved = data(apk(5, 1, 1), vec![apex(3, 1, 1)]);
        let msg = refused(reconcile(
            Some(&saved),
            &data(apk(5, 2, 1), vec![apex(3, 1, 1)]),
        ));
        assert!(msg.contains("signed by another key"), "{msg}");
        let msg = refused(reconcile(
            Some(&saved),
            &data(apk(4, 1, 2), vec![apex(3, 1, 1)]),
        ));
        assert!(
            msg.contains("version code 4 is a rollback from the recorded version code 5"),
            "{msg}"
        );
        let msg = refused(reconcile(
            Some(&saved),
            &data(apk(5, 1, 2), vec![apex(3, 1, 1)]),
        ));
        assert!(msg.contains("without a new version code"), "{msg}");
        let msg = refused(reconcile(
            Some(&saved),
            &data(apk(5, 1, 1), vec![apex(3, 2, 1)]),
        ));
        assert!(
            msg.contains("APEX com.example.apex is signed by another key"),
            "{msg}"
        );
        let msg = refused(reconcile(
            Some(&saved),
            &data(apk(5, 1, 1), vec![apex(2, 1, 2)]),
        ));
        assert!(
            msg.contains("version 2 is a rollback from the recorded version 3"),
            "{msg}"
        );
        let msg = refused(reconcile(Some(&saved), &data(apk(5, 1, 1), vec![])));
        assert!(msg.contains("APEXes"), "{msg}");
    }

    #[test]
    fn update_moves_the_record_forward_and_keeps_the_salt() {
        let saved = data(apk(5, 1, 1), vec![apex(3, 1, 1)]);
        let mut now = data(apk(6, 1, 2), vec![apex(4, 1, 2)]);
        now.salt = vec![7; 64];
        let (record, decision) = reconcile(Some(&saved), &now).unwrap();
        assert_eq!(
            decision,
            Decision::Update(vec![
                "the APK com.example.app: version code 5 -> 6".into(),
                "APEX com.example.apex: version 3 -> 4".into()
            ])
        );
        assert_eq!(record.salt, saved.salt);
        assert_eq!(record.apk_data, now.apk_data);
        assert_eq!(record.apex_data, now.apex_data);
    }
}
