//! apexd in VM mode (AOSP system/apex `apexd/apexd.cpp` `OnStartInVmMode`), for the block
//! APEXes of the payload disk:
//!
//! 1. read `/apex/vm-payload-metadata`: the payload metadata as microdroid_manager rewrote it
//!    after verifying each APEX and checking it against the instance's record, every APEX
//!    pinned (public key, root digest, name, version); an unpinned APEX is refused, so apexd
//!    trusts only what the manager verified and recorded (AOSP's TOCTOU fix, b/199371341).
//!    APEX *i* is on partition `microdroid-apex-<i>`;
//! 2. verify each APEX (`libs/apex`): its payload image's vbmeta is signed by its bundled
//!    `apex_pubkey`, and the key, root digest, name and version the metadata pins match;
//! 3. a read-only loop device over the `apex_payload.img` entry's bytes, dm-verity on top with the
//!    signed hashtree descriptor (device `<name>@<version>`), the file system mounted read-only at
//!    `/apex/<name>@<version>` and bind-mounted at `/apex/<name>`;
//! 4. `/apex/apex-info-list.xml` lists them.
//!
//! Nothing from the APEX is read unverified except the zip directory and the superblock magic
//! that chooses the file system type; every data block is checked by dm-verity when read.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use apex::{ApexFile, Expectations, VerifiedApex};
use devmapper::{DeviceMapper, Target};
use nix::mount::{mount, MsFlags};
use payload_metadata::ApexPayload;

/// Where things are; [`Config::default`] is the guest's layout.
#[derive(Clone, Debug)]
pub struct Config {
    /// The pinned payload metadata microdroid_manager wrote.
    pub metadata: PathBuf,
    /// Refuse an APEX whose key or root digest the metadata does not pin.
    pub require_pins: bool,
    /// `/dev/block/by-name`.
    pub by_name: PathBuf,
    /// `/apex`.
    pub apex_root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            metadata: PathBuf::from(PINNED_METADATA),
            require_pins: true,
            by_name: PathBuf::from("/dev/block/by-name"),
            apex_root: PathBuf::from(APEX_ROOT),
        }
    }
}

/// Where APEXes are mounted and the info list is written.
pub const APEX_ROOT: &str = "/apex";
/// Where microdroid_manager writes the pinned metadata (AOSP's path).
pub const PINNED_METADATA: &str = "/apex/vm-payload-metadata";

/// The list apexd writes, AOSP's file name.
pub const INFO_LIST: &str = "apex-info-list.xml";
/// dm-verity option apexd uses for APEXes: blocks whose hash is that of a zero block are
/// returned as zeros without reading them.
const VERITY_OPTIONAL_ARGS: &[&str] = &["ignore_zero_blocks"];

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// Reading, parsing or verifying the APEX file.
    #[error(transparent)]
    Apex(#[from] apex::Error),
    /// The hashtree descriptor cannot become a dm-verity table.
    #[error(transparent)]
    Avb(#[from] avb::Error),
    /// A file or directory operation.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The loop device.
    #[error(transparent)]
    Loop(#[from] loopdev::Error),
    /// Device mapper.
    #[error(transparent)]
    DeviceMapper(#[from] devmapper::Error),
    /// mount(2).
    #[error(transparent)]
    Mount(#[from] nix::Error),
    /// The metadata or the APEX set is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

/// Errors of apexd: each names the APEX and the step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The payload metadata could not be read.
    #[error("reading the payload metadata {}: {source}", path.display())]
    Metadata {
        /// The partition.
        path: PathBuf,
        /// Why.
        #[source]
        source: payload_metadata::Error,
    },
    /// An APEX could not be verified or activated.
    #[error("APEX {apex} (partition {partition}): {step}: {cause}")]
    Activation {
        /// The APEX's name (from the metadata until its manifest is read).
        apex: String,
        /// Its partition.
        partition: String,
        /// What was being done.
        step: &'static str,
        /// Why it failed (boxed: it is large, and errors are rare).
        cause: Box<Cause>,
    },
    /// The info list could not be written.
    #[error("writing {}: {source}", path.display())]
    InfoList {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A verified APEX, ready to mount.
#[derive(Debug)]
pub struct VerifiedBlockApex {
    /// `/dev/block/by-name/microdroid-apex-<i>`.
    pub device: PathBuf,
    /// Partition name.
    pub partition: String,
    /// The parsed APEX.
    pub apex: ApexFile,
    /// What verification gave.
    pub verified: VerifiedApex,
    /// From the metadata.
    pub last_update_seconds: u64,
    /// From the metadata.
    pub is_factory: bool,
}

/// An active APEX.
#[derive(Debug)]
pub struct ActiveApex {
    /// The verified APEX.
    pub apex: VerifiedBlockApex,
    /// `/apex/<name>@<version>`.
    pub versioned_mount: PathBuf,
    /// `/apex/<name>`.
    pub mount: PathBuf,
}

fn non_empty(bytes: &[u8]) -> Option<&[u8]> {
    (!bytes.is_empty()).then_some(bytes)
}

/// Verifies APEX `index` of the metadata (steps 1–2).
pub fn verify_block_apex(
    by_name: &Path,
    index: usize,
    entry: &ApexPayload,
) -> Result<VerifiedBlockApex, Error> {
    let fail = |apex: &str, step: &'static str, cause: Cause| Error::Activation {
        apex: apex.to_owned(),
        partition: entry.partition_name.clone(),
        step,
        cause: Box::new(cause),
    };
    let expected_partition = format!("microdroid-apex-{index}");
    if entry.partition_name != expected_partition {
        return Err(fail(
            &entry.name,
            "checking the metadata",
            Cause::Invalid(format!(
                "APEX {index} must be on partition {expected_partition}"
            )),
        ));
    }
    let device = by_name.join(&entry.partition_name);
    let file =
        File::open(&device).map_err(|e| fail(&entry.name, "opening the partition", e.into()))?;
    let apex =
        ApexFile::parse(&file).map_err(|e| fail(&entry.name, "reading the APEX", e.into()))?;
    let name = apex.manifest.name.clone();
    let expected = Expectations {
        public_key: non_empty(&entry.public_key),
        root_digest: non_empty(&entry.root_digest),
        name: Some(entry.manifest_name.as_str()),
        version: Some(entry.manifest_version),
    };
    let verified = apex
        .verify(&file, &expected)
        .map_err(|e| fail(&name, "verifying the APEX", e.into()))?;
    Ok(VerifiedBlockApex {
        device,
        partition: entry.partition_name.clone(),
        apex,
        verified,
        last_update_seconds: entry.last_update_seconds,
        is_factory: entry.is_factory,
    })
}

/// Verifies every APEX of `apexes`; names must be unique.
pub fn verify_all(by_name: &Path, apexes: &[ApexPayload]) -> Result<Vec<VerifiedBlockApex>, Error> {
    verify_all_checked(by_name, apexes, false)
}

/// [`verify_all`], refusing unpinned APEXes when `require_pins`.
pub fn verify_all_checked(
    by_name: &Path,
    apexes: &[ApexPayload],
    require_pins: bool,
) -> Result<Vec<VerifiedBlockApex>, Error> {
    let mut names = HashSet::new();
    let mut verified = Vec::with_capacity(apexes.len());
    for (index, entry) in apexes.iter().enumerate() {
        if require_pins && (entry.public_key.is_empty() || entry.root_digest.is_empty()) {
            return Err(Error::Activation {
                apex: entry.name.clone(),
                partition: entry.partition_name.clone(),
                step: "checking the metadata",
                cause: Box::new(Cause::Invalid(
                    "its key and root digest are not pinned by microdroid_manager".into(),
                )),
            });
        }
        let apex = verify_block_apex(by_name, index, entry)?;
        if !names.insert(apex.apex.manifest.name.clone()) {
            return Err(Error::Activation {
                apex: apex.apex.manifest.name.clone(),
                partition: apex.partition,
                step: "checking the metadata",
                cause: Box::new(Cause::Invalid("another APEX has the same name".into())),
            });
        }
        verified.push(apex);
    }
    Ok(verified)
}

/// An empty directory to mount on (AOSP: the mount point must be empty).
fn empty_dir(path: &Path) -> Result<(), Cause> {
    fs::create_dir_all(path)?;
    if fs::read_dir(path)?.next().is_some() {
        return Err(Cause::Invalid(format!("{} is not empty", path.display())));
    }
    Ok(())
}

/// Step 3 for one verified APEX.
pub fn activate(apex: VerifiedBlockApex, apex_root: &Path) -> Result<ActiveApex, Error> {
    let manifest = &apex.apex.manifest;
    let package_id = manifest.package_id();
    let fail = |step: &'static str, cause: Cause| Error::Activation {
        apex: manifest.name.clone(),
        partition: apex.partition.clone(),
        step,
        cause: Box::new(cause),
    };
    let payload = apex.apex.payload;
    let loop_device =
        loopdev::LoopDevice::attach_read_only(&apex.device, payload.offset, payload.size)
            .map_err(|e| fail("attaching a loop device to apex_payload.img", e.into()))?;
    let loop_dev = devmapper::block_device_numbers(loop_device.path())
        .map_err(|e| fail("attaching a loop device to apex_payload.img", e.into()))?;
    let mut target = apex
        .verified
        .hashtree
        .dm_target(&loop_dev)
        .map_err(|e| fail("making the dm-verity table", e.into()))?;
    target.optional_args = VERITY_OPTIONAL_ARGS.iter().map(|s| s.to_string()).collect();
    let dm = DeviceMapper::open().map_err(|e| fail("opening device mapper", e.into()))?;
    let device = dm
        .create(&package_id, None, &[Target::from(&target)], true)
        .map_err(|e| fail("creating the dm-verity device", e.into()))?;
    // The verity table holds the loop device open now; ours can go.
    drop(loop_device);

    let versioned_mount = apex_root.join(&package_id);
    empty_dir(&versioned_mount).map_err(|e| fail("creating the mount point", e))?;
    let mut flags =
        MsFlags::MS_RDONLY | MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_DIRSYNC;
    if manifest.no_code {
        flags |= MsFlags::MS_NOEXEC;
    }
    // Under SELinux every file of the APEX is `apex_file` (what the payload may read and run);
    // the image's own labels, if any, are not trusted.
    let context =
        selinux::is_enforcing().map(|_| format!("context={}", selinux::contexts::APEX_FILE));
    mount(
        Some(&device.path()),
        &versioned_mount,
        Some(apex.verified.fs_type.name()),
        flags,
        context.as_deref(),
    )
    .map_err(|e| fail("mounting the verified payload", e.into()))?;
    let plain_mount = apex_root.join(&manifest.name);
    empty_dir(&plain_mount).map_err(|e| fail("creating the mount point", e))?;
    mount(
        Some(&versioned_mount),
        &plain_mount,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| fail("bind-mounting the APEX", e.into()))?;
    Ok(ActiveApex {
        apex,
        versioned_mount,
        mount: plain_mount,
    })
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// AOSP's `apex-info-list.xml` (`ApexInfoList.xsd`): one `apex-info` per active APEX.
/// `lastUpdateMillis` holds seconds, as AOSP writes it for block APEXes.
pub fn info_list_xml(active: &[&VerifiedBlockApex]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<apex-info-list>\n");
    for apex in active {
        let manifest = &apex.apex.manifest;
        let path = xml_escape(&apex.device.to_string_lossy());
        let preinstalled = if apex.is_factory {
            format!(" preinstalledModulePath=\"{path}\"")
        } else {
            String::new()
        };
        xml.push_str(&format!(
            "    <apex-info moduleName=\"{}\" modulePath=\"{path}\"{preinstalled} versionCode=\"{}\" versionName=\"{}\" isFactory=\"{}\" isActive=\"true\" lastUpdateMillis=\"{}\" provideSharedApexLibs=\"{}\"/>\n",
            xml_escape(&manifest.name),
            manifest.version,
            xml_escape(&manifest.version_name),
            apex.is_factory,
            apex.last_update_seconds,
            manifest.provide_shared_apex_libs,
        ));
    }
    xml.push_str("</apex-info-list>\n");
    xml
}

/// Writes `<apex_root>/apex-info-list.xml`, mode 0644, replacing it atomically.
pub fn write_info_list(apex_root: &Path, xml: &str) -> Result<PathBuf, Error> {
    let path = apex_root.join(INFO_LIST);
    let tmp = apex_root.join(format!(".{INFO_LIST}.tmp"));
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(apex_root)?;
        let mut file = File::create(&tmp)?;
        file.write_all(xml.as_bytes())?;
        file.set_permissions(fs::Permissions::from_mode(0o644))?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| Error::InfoList {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Everything: read the metadata, verify every APEX, activate each, write the info list.
/// Nothing is mounted unless every APEX verifies.
pub fn run(config: &Config) -> Result<Vec<ActiveApex>, Error> {
    let metadata =
        payload_metadata::read_path(&config.metadata).map_err(|source| Error::Metadata {
            path: config.metadata.clone(),
            source,
        })?;
    let verified = verify_all_checked(&config.by_name, &metadata.apexes, config.require_pins)?;
    let mut active = Vec::with_capacity(verified.len());
    for apex in verified {
        let activated = activate(apex, &config.apex_root)?;
        println!(
            "apexd: {} verified (root digest {}) and mounted at {}",
            activated.apex.apex.manifest.package_id(),
            verity::to_hex(&activated.apex.verified.hashtree.root_digest),
            activated.mount.display()
        );
        active.push(activated);
    }
    let list: Vec<&VerifiedBlockApex> = active.iter().map(|a| &a.apex).collect();
    write_info_list(&config.apex_root, &info_list_xml(&list))?;
    Ok(active)
}

#[cfg(test)]
mod tests;
