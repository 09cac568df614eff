//! The VM's measured identity, made on the host: the role pvmfw and the DICE driver play on a
//! device (docs/identity.md; google/open-dice `src/android.c`, and pvmfw's instance entry in AOSP
//! packages/modules/Virtualization `pvmfw/src/instance.rs`).
//!
//! * The host keeps a **device secret** (32 random bytes, mode 0600, created once in its state
//!   directory). It is the UDS of every chain this host makes: the chain's root key is
//!   `keypair(KDF(UDS))`, so two hosts give the same VM different identities.
//! * Each boot is **measured**: the kernel, the initramfs, the kernel command line (which carries
//!   the debug level), the OS vbmeta (its digest, and its public key as the authority), the DICE
//!   mode, and the instance's salt. They become the `vm_entry` DICE node, as pvmfw makes it.
//! * The instance image keeps **pvmfw's entry** (code hash, authority hash, salt, mode; sealed
//!   under a key from the UDS): the first boot of an instance records them with a fresh random
//!   salt; a later boot must match, or it is refused before the VM starts, as pvmfw refuses with
//!   `PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED`. The salt is the instance's identity: two instances of
//!   the same app get different CDIs, hence different secrets.
//! * The **handover** (CDI_Attest, CDI_Seal, the chain `[root key, vm_entry]`) goes to the guest
//!   once, through QEMU's fw_cfg file [`dice::FW_CFG_HANDOVER_NAME`]; microdroid_manager reads it
//!   and removes the fw_cfg driver before the payload runs.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

/// Size of the device secret (the UDS).
pub const DEVICE_SECRET_SIZE: usize = 32;
/// File name of the device secret in the state directory.
pub const DEVICE_SECRET_FILE: &str = "device_secret";
/// The component name of the host's node, as pvmfw names its own.
pub const VM_ENTRY_COMPONENT: &str = "vm_entry";

/// Why the host refuses to boot an instance: its pvmfw entry records another OS or debug level.
/// The VM ends with `PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED` and this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstanceRefusal {
    #[error(
        "the instance was created for a VM with debug level {recorded}; this VM has debug level \
         {now}: the debug level is part of the VM's identity (create a new instance to switch)"
    )]
    DebugLevelChanged {
        recorded: &'static str,
        now: &'static str,
    },
    #[error(
        "the instance was created for another OS: the kernel, initramfs, kernel command line or \
         OS vbmeta differ from those it recorded (recorded code hash {recorded}, now {now})"
    )]
    CodeChanged { recorded: String, now: String },
    #[error("the instance was created for an OS signed by another vbmeta key")]
    AuthorityChanged,
}

/// The host's state directory (the device secret, kept logs): `$VMCTL_STATE_DIR`; for root
/// `/var/lib/vmctl`; for other users `$XDG_STATE_HOME/vmctl` or `~/.local/state/vmctl`
/// (the XDG base directory rules), or `/tmp/vmctl-state-<uid>` with no home.
pub fn default_state_dir() -> PathBuf {
    state_dir_for(
        std::env::var_os("VMCTL_STATE_DIR"),
        nix::unistd::getuid().is_root(),
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
        nix::unistd::getuid().as_raw(),
    )
}

fn state_dir_for(
    explicit: Option<std::ffi::OsString>,
    root: bool,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(dir) = explicit {
        return PathBuf::from(dir);
    }
    if root {
        return PathBuf::from("/var/lib/vmctl");
    }
    match (xdg_state_home, home) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg).join("vmctl"),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".local/state/vmctl"),
        _ => PathBuf::from(format!("/tmp/vmctl-state-{uid}")),
    }
}

/// The default device secret path: `<state dir>/device_secret`.
pub fn default_device_secret_path() -> PathBuf {
    default_state_dir().join(DEVICE_SECRET_FILE)
}

/// Reads the device secret at `path`, creating it (32 random bytes, mode 0600, its directory
/// 0700) if it does not exist. An existing secret of the wrong size, or readable by others, is
/// refused rather than used or replaced.
pub fn load_or_create_device_secret(path: &Path) -> Result<Zeroizing<[u8; DEVICE_SECRET_SIZE]>> {
    let mut secret = Zeroizing::new([0u8; DEVICE_SECRET_SIZE]);
    match File::open(path) {
        Ok(mut file) => {
            let mode = file.metadata()?.permissions().mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "device secret {} has mode {:o}: it must be readable by its owner only (chmod 600)",
                path.display(),
                mode & 0o777
            );
            let mut bytes = Zeroizing::new(Vec::new());
            file.read_to_end(&mut bytes)
                .with_context(|| format!("reading {}", path.display()))?;
            anyhow::ensure!(
                bytes.len() == DEVICE_SECRET_SIZE,
                "device secret {} is {} bytes, not {DEVICE_SECRET_SIZE}",
                path.display(),
                bytes.len()
            );
            secret.copy_from_slice(&bytes);
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            getrandom::getrandom(&mut secret[..]).context("reading random bytes")?;
            // Written whole under a private name, then linked into place: link(2) never
            // replaces a file, so of two racing processes one secret wins and the other reads
            // it; nobody ever sees a partial file.
            let mut nonce = [0u8; 8];
            getrandom::getrandom(&mut nonce).context("reading random bytes")?;
            let tmp = path.with_extension(format!("tmp.{}", u64::from_le_bytes(nonce)));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            file.write_all(&secret[..])?;
            file.sync_all()?;
            drop(file);
            let linked = fs::hard_link(&tmp, path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(secret),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_device_secret(path)
                }
                Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// What the host measures of the OS it boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsMeasurement {
    /// SHA-256 of the kernel image (AOSP: the kernel's AVB hash descriptor digest).
    pub kernel_digest: [u8; 32],
    /// SHA-256 of the initramfs.
    pub initrd_digest: [u8; 32],
    /// SHA-256 of the kernel command line (and so of the bootconfig-style flags on it).
    pub cmdline_digest: [u8; 32],
    /// The OS vbmeta image's digest (`androidboot.vbmeta.digest`).
    pub vbmeta_digest: [u8; 32],
    /// The AVB public key blob that signs the OS vbmeta: the OS's authority.
    pub vbmeta_public_key: Vec<u8>,
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize().into())
}

/// Measures what boots. The vbmeta is measured, not verified: the guest's first stage verifies
/// it against the trust anchor in the initramfs (which is measured too), so a vbmeta it would
/// refuse still gets an identity of its own here and then fails to boot in the guest. One that
/// does not even parse is measured as its file's SHA-256 with no authority key.
pub fn measure(
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    vbmeta_partition: &Path,
) -> Result<OsMeasurement> {
    let vbmeta_bytes = fs::read(vbmeta_partition)
        .with_context(|| format!("reading {}", vbmeta_partition.display()))?;
    let (vbmeta_digest, vbmeta_public_key) = match avb::VbmetaImage::parse(&vbmeta_bytes) {
        Ok(vbmeta) => (vbmeta.digest(), vbmeta.public_key.clone()),
        Err(_) => (Sha256::digest(&vbmeta_bytes).into(), Vec::new()),
    };
    Ok(OsMeasurement {
        kernel_digest: sha256_file(kernel)?,
        initrd_digest: sha256_file(initrd)?,
        cmdline_digest: Sha256::digest(cmdline.as_bytes()).into(),
        vbmeta_digest,
        vbmeta_public_key,
    })
}

impl OsMeasurement {
    /// The `vm_entry` code hash: `SHA-512(kernel ‖ initrd ‖ cmdline ‖ vbmeta digests)`. pvmfw
    /// hashes the kernel and initrd digests only, because its command line and vbmeta are
    /// inside the signed boot image; here they are separate inputs, so they are measured too.
    pub fn code_hash(&self) -> dice::Hash {
        let mut h = Sha512::new();
        h.update(self.kernel_digest);
        h.update(self.initrd_digest);
        h.update(self.cmdline_digest);
        h.update(self.vbmeta_digest);
        h.finalize().into()
    }

    /// The `vm_entry` authority hash: `SHA-512(vbmeta public key)`, as pvmfw.
    pub fn authority_hash(&self) -> dice::Hash {
        Sha512::digest(&self.vbmeta_public_key).into()
    }
}

/// pvmfw's hidden input: `SHA-512(rkp_vm_marker ‖ salt ‖ deferred_rollback_protection)`.
fn hidden_input(salt: &[u8; 64]) -> dice::Hidden {
    let mut h = Sha512::new();
    h.update([0u8]);
    h.update(salt);
    h.update([0u8]);
    h.finalize().into()
}

fn mode_name(mode: u8) -> &'static str {
    match mode {
        m if m == dice::Mode::Debug as u8 => "full (DICE mode Debug)",
        m if m == dice::Mode::Normal as u8 => "none (DICE mode Normal)",
        _ => "unknown",
    }
}

/// The instance's entry as this boot found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceSalt {
    /// The instance salt (the `vm_entry` node's hidden input).
    pub salt: [u8; 64],
    /// The entry was recorded by this boot: the instance's first boot (pvmfw's
    /// `avf,new-instance`, passed to the guest as fw_cfg `dice::FW_CFG_NEW_INSTANCE_NAME`).
    pub new_instance: bool,
}

/// The instance's pvmfw entry: read and checked against this boot, or recorded on its first
/// boot. Returns the instance salt. Errors that are refusals carry an [`InstanceRefusal`].
pub fn check_or_record_instance(
    instance: &Path,
    uds: &[u8; DEVICE_SECRET_SIZE],
    code_hash: &dice::Hash,
    authority_hash: &dice::Hash,
    mode: dice::Mode,
) -> Result<InstanceSalt> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(instance)
        .with_context(|| format!("opening the instance image {}", instance.display()))?;
    let mut image = instance::InstanceImage::open(file)
        .with_context(|| format!("reading the instance image {}", instance.display()))?;
    let key = Zeroizing::new(instance::pvmfw_key(uds));
    let entry = image
        .read_pvmfw_entry(&key)
        .with_context(|| format!("reading the host's entry of {}", instance.display()))?;
    match entry {
        Some(entry) => {
            if entry.mode != mode as u8 {
                return Err(InstanceRefusal::DebugLevelChanged {
                    recorded: mode_name(entry.mode),
                    now: mode_name(mode as u8),
                }
                .into());
            }
            if entry.auth_hash != *authority_hash {
                return Err(InstanceRefusal::AuthorityChanged.into());
            }
            if entry.code_hash != *code_hash {
                return Err(InstanceRefusal::CodeChanged {
                    recorded: short_hex(&entry.code_hash),
                    now: short_hex(code_hash),
                }
                .into());
            }
            Ok(InstanceSalt {
                salt: entry.salt,
                new_instance: false,
            })
        }
        None => {
            let mut salt = [0u8; 64];
            getrandom::getrandom(&mut salt).context("reading random bytes")?;
            image
                .write_pvmfw_entry(
                    &key,
                    &instance::PvmfwEntry {
                        code_hash: *code_hash,
                        auth_hash: *authority_hash,
                        salt,
                        mode: mode as u8,
                    },
                )
                .with_context(|| format!("recording the instance in {}", instance.display()))?;
            Ok(InstanceSalt {
                salt,
                new_instance: true,
            })
        }
    }
}

fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What the host hands the guest at boot.
pub struct GuestIdentity {
    /// The DICE handover (fw_cfg `dice::FW_CFG_HANDOVER_NAME`).
    pub handover: Zeroizing<Vec<u8>>,
    /// This boot recorded the instance (its first boot): the guest must find no record of a
    /// payload in it, and on every later boot it must find one.
    pub new_instance: bool,
}

/// Derives the `vm_entry` node for this boot and returns the handover bytes for the guest.
/// Without an instance (a VM that runs a system payload), the salt is zeros: such a VM has an
/// identity per OS and debug level, but nothing per instance.
pub fn make_handover(
    uds: &[u8; DEVICE_SECRET_SIZE],
    os: &OsMeasurement,
    debuggable: bool,
    instance: Option<&Path>,
) -> Result<GuestIdentity> {
    let mode = if debuggable {
        dice::Mode::Debug
    } else {
        dice::Mode::Normal
    };
    let code_hash = os.code_hash();
    let authority_hash = os.authority_hash();
    let InstanceSalt { salt, new_instance } = match instance {
        Some(path) => check_or_record_instance(path, uds, &code_hash, &authority_hash, mode)?,
        None => InstanceSalt {
            salt: [0u8; 64],
            new_instance: false,
        },
    };
    let config = dice::ConfigDescriptor {
        component_name: Some(VM_ENTRY_COMPONENT.to_owned()),
        component_version: None,
        resettable: false,
        security_version: None,
        rkp_vm_marker: false,
    };
    let input = dice::InputValues {
        code_hash,
        code_descriptor: Vec::new(),
        config: dice::Config::Descriptor(config.to_bytes()),
        authority_hash,
        authority_descriptor: Vec::new(),
        mode,
        hidden: hidden_input(&salt),
    };
    let (cdis, chain) = dice::new_chain(uds, &input);
    let handover = dice::Handover {
        cdis,
        chain: Some(chain),
    };
    Ok(GuestIdentity {
        handover: Zeroizing::new(handover.to_bytes()),
        new_instance,
    })
}

/// Writes the handover where QEMU reads it (mode 0600; the run directory is private).
pub fn write_handover(path: &Path, handover: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(handover)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_follows_root_and_xdg_rules() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            state_dir_for(os("/x"), true, None, None, 0),
            PathBuf::from("/x")
        );
        assert_eq!(
            state_dir_for(None, true, os("/xdg"), None, 0),
            PathBuf::from("/var/lib/vmctl")
        );
        assert_eq!(
            state_dir_for(None, false, os("/xdg"), os("/home/u"), 1000),
            PathBuf::from("/xdg/vmctl")
        );
        assert_eq!(
            state_dir_for(None, false, None, os("/home/u"), 1000),
            PathBuf::from("/home/u/.local/state/vmctl")
        );
        assert_eq!(
            state_dir_for(None, false, None, None, 1000),
            PathBuf::from("/tmp/vmctl-state-1000")
        );
    }

    #[test]
    fn racing_creators_all_read_one_whole_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device_secret");
        let secrets: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| *load_or_create_device_secret(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(secrets.iter().all(|s| *s == secrets[0]));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn device_secret_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/device_secret");
        let first = load_or_create_device_secret(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create_device_secret(&path).unwrap();
        assert_eq!(*first, *again);
        assert_ne!(*first, [0u8; 32]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_device_secret(&path).unwrap_err();
        assert!(
            format!("{err:#}").contains("readable by its owner only"),
            "{err:#}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, [1u8; 31]).unwrap();
        let err = load_or_create_device_secret(&path).unwrap_err();
        assert!(format!("{err:#}").contains("31 bytes"), "{err:#}");
    }

    fn measurement(kernel: u8) -> OsMeasurement {
        OsMeasurement {
            kernel_digest: [kernel; 32],
            initrd_digest: [2; 32],
            cmdline_digest: [3; 32],
            vbmeta_digest: [4; 32],
            vbmeta_public_key: vec![5; 8],
        }
    }

    #[test]
    fn instance_records_then_checks_the_boot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instance.img");
        instance::create_instance_file(&path, instance::DEFAULT_INSTANCE_SIZE).unwrap();
        let uds = [7u8; 32];
        let os = measurement(1);
        let (code, auth) = (os.code_hash(), os.authority_hash());
        let first = check_or_record_instance(&path, &uds, &code, &auth, dice::Mode::Debug).unwrap();
        let again = check_or_record_instance(&path, &uds, &code, &auth, dice::Mode::Debug).unwrap();
        assert_eq!(first.salt, again.salt);
        // Only the boot that recorded the entry is the instance's first.
        assert!(first.new_instance);
        assert!(!again.new_instance);

        let refusal =
            |r: Result<InstanceSalt>| r.unwrap_err().downcast::<InstanceRefusal>().unwrap();
        assert!(matches!(
            refusal(check_or_record_instance(
                &path,
                &uds,
                &code,
                &auth,
                dice::Mode::Normal
            )),
            InstanceRefusal::DebugLevelChanged { .. }
        ));
        let other = measurement(9).code_hash();
        assert!(matches!(
            refusal(check_or_record_instance(
                &path,
                &uds,
                &other,
                &auth,
                dice::Mode::Debug
            )),
            InstanceRefusal::CodeChanged { .. }
        ));
        assert_eq!(
            refusal(check_or_record_instance(
                &path,
                &uds,
                &code,
                &[0; 64],
                dice::Mode::Debug
            )),
            InstanceRefusal::AuthorityChanged
        );
        // Another host (device secret) cannot read the entry at all.
        let err = check_or_record_instance(&path, &[8u8; 32], &code, &auth, dice::Mode::Debug)
            .unwrap_err();
        assert!(err.downcast_ref::<InstanceRefusal>().is_none());
    }

    #[test]
    fn handover_differs_per_instance_and_debug_level_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let uds = [7u8; 32];
        let os = measurement(1);
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        for p in [&a, &b] {
            instance::create_instance_file(p, instance::DEFAULT_INSTANCE_SIZE).unwrap();
        }
        let parse = |bytes: &[u8]| dice::Handover::parse(bytes).unwrap();
        let first = make_handover(&uds, &os, true, Some(&a)).unwrap();
        assert!(first.new_instance);
        let ha = parse(&first.handover);
        let second = make_handover(&uds, &os, true, Some(&a)).unwrap();
        assert!(!second.new_instance);
        let ha2 = parse(&second.handover);
        let hb = parse(&make_handover(&uds, &os, true, Some(&b)).unwrap().handover);
        assert!(ha.cdis == ha2.cdis);
        assert!(ha.cdis.cdi_seal != hb.cdis.cdi_seal);
        let none = make_handover(&uds, &os, false, None).unwrap();
        assert!(!none.new_instance);
        let none = parse(&none.handover);
        let entries = dice::verify_chain(none.chain.as_deref().unwrap()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].component_name.as_deref(),
            Some(VM_ENTRY_COMPONENT)
        );
        assert_eq!(entries[0].mode, dice::Mode::Normal);
        assert_eq!(entries[0].code_hash, os.code_hash().to_vec());
    }
}
