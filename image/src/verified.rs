//! The verified OS: system and vendor filesystems with AVB hashtree footers, a signed
//! `vbmeta.img` describing both, the logical partitions packed into `super.img`, and the trust
//! anchor for the initramfs (the vbmeta public key and an AOSP-style bootconfig with the expected
//! vbmeta digest). Formats: `libs/avb`, `libs/liblp`, `libs/bootconfig`, `libs/verity`.

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Slot suffix of the logical partitions (AOSP boots Microdroid from slot a).
pub const SLOT_SUFFIX: &str = "_a";
/// Path of the bootconfig in the initramfs (the guest kernel lacks CONFIG_BOOT_CONFIG).
pub const BOOTCONFIG_PATH: &str = "etc/bootconfig";
/// Path of the trusted vbmeta key (AVB public key format) in the initramfs.
pub const TRUSTED_KEY_PATH: &str = "etc/avb/vbmeta.avbpubkey";

/// A filesystem image that becomes a verified logical partition.
pub struct VerifiedPartition<'a> {
    /// Name without slot suffix, as in the hashtree descriptor (`system`, `vendor`).
    pub name: &'a str,
    /// The filesystem image; its hashtree, vbmeta and footer are appended in place.
    pub image: &'a Path,
}

/// What the verified OS build produced, for the builder's report and the initramfs.
pub struct VerifiedOs {
    pub vbmeta: Vec<u8>,
    pub vbmeta_digest: [u8; 32],
    /// (partition name, root digest hex) for each hashtree.
    pub root_digests: Vec<(String, String)>,
    pub trusted_key: Vec<u8>,
    pub bootconfig: String,
}

/// The fixed salt of a partition's hash tree: reproducible images need a fixed salt, and a
/// per-partition one keeps trees of identical content distinct.
pub fn partition_salt(name: &str) -> [u8; 32] {
    Sha256::digest(format!("microdroid-{name}").as_bytes()).into()
}

/// Adds hashtree footers, builds and signs vbmeta, and writes `super_out`.
pub fn build_verified_os(
    partitions: &[VerifiedPartition<'_>],
    signing_key: &avb::SigningKey,
    trusted_key: &avb::PublicKey,
    super_out: &Path,
) -> Result<VerifiedOs> {
    let mut descriptors = Vec::new();
    let mut root_digests = Vec::new();
    for part in partitions {
        let salt = partition_salt(part.name);
        let info = avb::add_hashtree_footer(
            part.image,
            &avb::HashtreeFooterOptions::new(part.name, &salt, Some(signing_key)),
        )
        .with_context(|| format!("adding the hashtree footer to {}", part.image.display()))?;
        root_digests.push((part.name.to_owned(), info.root_hex()));
        descriptors.push(avb::Descriptor::Hashtree(info.descriptor));
    }
    let vbmeta = avb::build_vbmeta(
        &avb::VbmetaOptions::default(),
        &descriptors,
        Some(signing_key),
    )
    .context("building vbmeta")?;
    let vbmeta_digest = avb::vbmeta_digest(&[&vbmeta]);

    // lpmake's defaults are Microdroid's: 64 KiB metadata, 2 slots, 1 MiB alignment.
    let mut builder = liblp::SuperBuilder::new();
    for part in partitions {
        let name = format!("{}{SLOT_SUFFIX}", part.name);
        let source = liblp::ImageSource::file(part.image)?;
        builder
            .add_partition(&name, "default", liblp::PARTITION_ATTR_READONLY, source)
            .with_context(|| format!("adding partition {name}"))?;
    }
    builder
        .write(super_out)
        .with_context(|| format!("writing {}", super_out.display()))?;

    let vbmeta_image = avb::VbmetaImage::parse(&vbmeta)?;
    let bootconfig = vbmeta_bootconfig(&vbmeta_image, &vbmeta_digest)?;
    Ok(VerifiedOs {
        vbmeta,
        vbmeta_digest,
        root_digests,
        trusted_key: trusted_key.to_avb_bytes(),
        bootconfig,
    })
}

/// The vbmeta part of the bootconfig, as AOSP's `gen_vbmeta_bootconfig.py` writes it, plus
/// `bootconfig.common`.
fn vbmeta_bootconfig(image: &avb::VbmetaImage, digest: &[u8; 32]) -> Result<String> {
    let mut config = bootconfig::Bootconfig::new();
    let pairs = [
        ("androidboot.hardware", "microdroid".to_owned()),
        ("androidboot.vbmeta.size", image.blob().len().to_string()),
        ("androidboot.vbmeta.digest", verity::to_hex(digest)),
        ("androidboot.vbmeta.hash_alg", "sha256".to_owned()),
        ("androidboot.vbmeta.avb_version", image.avb_version()),
        ("androidboot.veritymode", "enforcing".to_owned()),
        ("androidboot.vbmeta.invalidate_on_error", "yes".to_owned()),
        ("androidboot.vbmeta.device_state", "locked".to_owned()),
        (
            "androidboot.vbmeta.device",
            "/dev/block/by-name/vbmeta_a".to_owned(),
        ),
        ("androidboot.slot_suffix", SLOT_SUFFIX.to_owned()),
        ("androidboot.force_normal_boot", "1".to_owned()),
        ("androidboot.verifiedbootstate", "green".to_owned()),
    ];
    for (key, value) in pairs {
        config.set(key, &value)?;
    }
    Ok(config.to_text()?)
}
