//! First-stage mount: what Android's first-stage init does for Microdroid, with the trust anchor
//! carried by the initramfs (there is no pvmfw or bootloader on this host).
//!
//! 1. The anchor: `/etc/bootconfig` (AOSP keys; the expected vbmeta digest is
//!    `androidboot.vbmeta.digest`) and the trusted vbmeta key `/etc/avb/vbmeta.avbpubkey`.
//! 2. `vbmeta_a`: its signature must verify, its key must be the trusted one, verification must
//!    not be disabled, and its digest must equal the bootconfig's.
//! 3. `super`: the liblp metadata (checksums checked) gives each logical partition's extents;
//!    each becomes a dm-linear device, and dm-verity from the partition's hashtree descriptor in
//!    vbmeta goes on top. Only the verity device is mounted: every block read from /system or
//!    /vendor is checked against a root digest signed in vbmeta.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use devmapper::{DeviceMapper, Target};

use crate::console::log;

pub const BOOTCONFIG_PATH: &str = "/etc/bootconfig";
pub const TRUSTED_KEY_PATH: &str = "/etc/avb/vbmeta.avbpubkey";
pub const MAPPER_DIR: &str = "/dev/block/mapper";
/// A vbmeta image is at most 64 KiB (libavb's limit).
const VBMETA_READ_SIZE: usize = 64 * 1024;

/// The verified-boot trust anchor from the initramfs.
pub struct TrustAnchor {
    pub trusted_key: Vec<u8>,
    pub expected_digest: Vec<u8>,
    pub slot_suffix: String,
}

pub fn load_anchor(root: &Path) -> Result<TrustAnchor> {
    let rel = |p: &str| root.join(p.trim_start_matches('/'));
    let text = std::fs::read(rel(BOOTCONFIG_PATH))
        .with_context(|| format!("reading {BOOTCONFIG_PATH}"))?;
    let config = bootconfig::Bootconfig::parse_bytes(&text)
        .with_context(|| format!("parsing {BOOTCONFIG_PATH}"))?;
    let digest_hex = config
        .get("androidboot.vbmeta.digest")
        .ok_or_else(|| anyhow!("{BOOTCONFIG_PATH} has no androidboot.vbmeta.digest"))?;
    let expected_digest =
        verity::from_hex(digest_hex).context("androidboot.vbmeta.digest is not hex")?;
    let slot_suffix = config
        .get("androidboot.slot_suffix")
        .unwrap_or("_a")
        .to_owned();
    let trusted_key = std::fs::read(rel(TRUSTED_KEY_PATH))
        .with_context(|| format!("reading {TRUSTED_KEY_PATH}"))?;
    Ok(TrustAnchor {
        trusted_key,
        expected_digest,
        slot_suffix,
    })
}

/// Reads and verifies vbmeta from its partition.
pub fn verify_vbmeta(device: &Path, anchor: &TrustAnchor) -> Result<avb::VbmetaImage> {
    let mut bytes = Vec::with_capacity(VBMETA_READ_SIZE);
    File::open(device)
        .with_context(|| format!("opening {}", device.display()))?
        .take(VBMETA_READ_SIZE as u64)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", device.display()))?;
    avb::verify_vbmeta(&bytes, &anchor.trusted_key, Some(&anchor.expected_digest)).map_err(|e| match e {
        // AOSP's message, which its host tests look for.
        avb::Error::DigestMismatch { expected, actual } => {
            anyhow!("[libfs_avb] Failed to verify vbmeta digest: bootconfig says {expected}, vbmeta_a hashes to {actual}")
        }
        avb::Error::PublicKeyMismatch => anyhow!("vbmeta_a is not signed by the trusted key"),
        other => anyhow!("vbmeta_a failed verification: {other}"),
    })
}

/// The logical partitions of `super`, ready to map.
pub struct SuperPartitions {
    metadata: liblp::Metadata,
    super_dev: String,
    dm: DeviceMapper,
}

impl SuperPartitions {
    pub fn open(super_device: &Path) -> Result<Self> {
        let file = File::open(super_device)
            .with_context(|| format!("opening {}", super_device.display()))?;
        let metadata =
            liblp::read_metadata(&file, 0).context("reading the super partition's metadata")?;
        let super_dev = devmapper::block_device_numbers(super_device)
            .with_context(|| format!("device numbers of {}", super_device.display()))?;
        let dm = DeviceMapper::open().context("opening /dev/mapper/control")?;
        Ok(SuperPartitions {
            metadata,
            super_dev,
            dm,
        })
    }

    /// Maps logical partition `name` + slot suffix with dm-linear, puts dm-verity from its
    /// hashtree descriptor on top, and returns the verity device.
    pub fn map_verified(
        &self,
        vbmeta: &avb::VbmetaImage,
        name: &str,
        slot_suffix: &str,
    ) -> Result<PathBuf> {
        let logical = format!("{name}{slot_suffix}");
        let table: Vec<Target> = self
            .metadata
            .dm_linear_table(&logical, &self.super_dev)
            .with_context(|| format!("logical partition {logical}"))?
            .into_iter()
            .map(|t| match t.source {
                Some((dev, sector)) => Target::linear(t.start_sector, t.num_sectors, &dev, sector),
                None => Target::zero(t.start_sector, t.num_sectors),
            })
            .collect();
        let linear = self
            .dm
            .create(&logical, None, &table, true)
            .with_context(|| format!("creating dm-linear {logical}"))?;
        linear.link_by_name(Path::new(MAPPER_DIR))?;
        let descriptor = vbmeta
            .hashtree(name)
            .ok_or_else(|| anyhow!("vbmeta has no hashtree descriptor for {name}"))?;
        let target = descriptor
            .dm_target(&linear.dev_string())
            .with_context(|| format!("hashtree descriptor of {name}"))?;
        let verity_name = format!("{logical}-verity");
        let verity = self
            .dm
            .create(&verity_name, None, &[Target::from(&target)], true)
            .with_context(|| format!("creating dm-verity {verity_name}"))?;
        verity.link_by_name(Path::new(MAPPER_DIR))?;
        log(&format!(
            "{logical}: dm-verity {} over dm-linear {} (root {})",
            verity.path().display(),
            linear.path().display(),
            verity::to_hex(&descriptor.root_digest)
        ));
        Ok(verity.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_needs_digest_and_key() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/avb")).unwrap();
        std::fs::write(
            root.path().join("etc/bootconfig"),
            "androidboot.slot_suffix = \"_a\"\n",
        )
        .unwrap();
        let err = load_anchor(root.path()).err().unwrap();
        assert!(
            format!("{err:#}").contains("no androidboot.vbmeta.digest"),
            "{err:#}"
        );
        std::fs::write(
            root.path().join("etc/bootconfig"),
            "androidboot.vbmeta.digest = \"00ff\"\n",
        )
        .unwrap();
        assert!(
            format!("{:#}", load_anchor(root.path()).err().unwrap()).contains("vbmeta.avbpubkey")
        );
        std::fs::write(root.path().join("etc/avb/vbmeta.avbpubkey"), b"key").unwrap();
        let anchor = load_anchor(root.path()).unwrap();
        assert_eq!(
            (anchor.expected_digest, anchor.slot_suffix.as_str()),
            (vec![0, 0xff], "_a")
        );
    }

    #[test]
    fn vbmeta_errors_name_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let key =
            avb::SigningKey::from_pem(include_str!("../../libs/avb/testkeys/testkey_rsa2048.pem"))
                .unwrap();
        let vbmeta = avb::build_vbmeta(&avb::VbmetaOptions::default(), &[], Some(&key)).unwrap();
        let device = dir.path().join("vbmeta");
        std::fs::write(&device, &vbmeta).unwrap();
        let trusted = key.public_key().unwrap().to_avb_bytes();
        let good = TrustAnchor {
            trusted_key: trusted.clone(),
            expected_digest: avb::vbmeta_digest(&[&vbmeta]).to_vec(),
            slot_suffix: "_a".into(),
        };
        assert!(verify_vbmeta(&device, &good).is_ok());
        let wrong_digest = TrustAnchor {
            expected_digest: vec![0; 32],
            ..good
        };
        let err = verify_vbmeta(&device, &wrong_digest)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("[libfs_avb] Failed to verify vbmeta digest"),
            "{err}"
        );
        let other =
            avb::SigningKey::from_pem(include_str!("../../libs/avb/testkeys/testkey_rsa4096.pem"))
                .unwrap();
        let wrong_key = TrustAnchor {
            trusted_key: other.public_key().unwrap().to_avb_bytes(),
            expected_digest: vec![],
            slot_suffix: "_a".into(),
        };
        assert_eq!(
            verify_vbmeta(&device, &wrong_key)
                .err()
                .unwrap()
                .to_string(),
            "vbmeta_a is not signed by the trusted key"
        );
        let mut tampered = vbmeta.clone();
        let last = tampered.len() - 70;
        tampered[last] ^= 1;
        std::fs::write(&device, &tampered).unwrap();
        let err = verify_vbmeta(
            &device,
            &TrustAnchor {
                trusted_key: trusted,
                expected_digest: vec![],
                slot_suffix: "_a".into(),
            },
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().starts_with("vbmeta_a failed verification"),
            "{err}"
        );
    }
}
