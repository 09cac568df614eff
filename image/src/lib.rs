//! Builds the Microdroid guest OS from the guest binaries and a Debian kernel:
//! - `initramfs.img`: a newc cpio with `/init`, the kernel modules the guest needs and their load
//!   order (from `modules.dep`);
//! - `system.img`: an erofs image mounted at /system: `bin/` (microdroid_manager, zipfuse, the
//!   payload), `etc/init/init.rc` (the service configuration), `etc/vm_config.json`;
//! - `vmlinuz`, and `vm_os.json`, the manifest vmctl reads (like AVF's microdroid.json).
//!
//! The same inputs give the same bytes: the cpio is written deterministically and mkfs.erofs runs
//! with a fixed timestamp, UUID and ownership.

pub mod cpio;
pub mod modules;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The system partition's GPT name (slot a, as AOSP names it).
pub const SYSTEM_PARTITION_LABEL: &str = "system_a";
/// Fixed erofs UUID (the one AOSP gives Microdroid's system image), for reproducibility.
pub const SYSTEM_FS_UUID: &str = "5fe079c6-f01a-52be-87d3-d415231a72ad";
pub const MANIFEST_NAME: &str = "vm_os.json";

/// Where the guest binaries go on the system partition.
pub const SYSTEM_BINARIES: &[&str] = &["microdroid_manager", "zipfuse", "hello_payload"];

/// The default service configuration.
pub const DEFAULT_INIT_RC: &str = include_str!("../data/init.rc");
/// The default payload config: the demo payload.
pub const DEFAULT_VM_CONFIG: &str = include_str!("../data/vm_config.json");

/// Everything a guest image is built from.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The directory `make setup` prepared: `vmlinuz`, `release`, `root/lib/modules/<release>`.
    pub kernel_dir: PathBuf,
    /// Where the static guest binaries are (`init` and `SYSTEM_BINARIES`).
    pub bin_dir: PathBuf,
    /// `/system/etc/init/init.rc`.
    pub init_rc: Vec<u8>,
    /// `/system/etc/vm_config.json`.
    pub vm_config: Vec<u8>,
    /// Check `init_rc` and `vm_config` before building. Tests turn this off to build images that
    /// the guest must refuse.
    pub validate: bool,
}

impl ImageSpec {
    pub fn new(kernel_dir: &Path, bin_dir: &Path) -> Self {
        ImageSpec {
            kernel_dir: kernel_dir.to_owned(),
            bin_dir: bin_dir.to_owned(),
            init_rc: DEFAULT_INIT_RC.as_bytes().to_vec(),
            vm_config: DEFAULT_VM_CONFIG.as_bytes().to_vec(),
            validate: true,
        }
    }
}

/// A partition of a disk given to the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    pub label: String,
    /// Relative to the manifest's directory.
    pub path: String,
}

/// `vm_os.json`: what boots, relative to its own directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsManifest {
    pub kernel: String,
    pub initrd: String,
    pub kernel_release: String,
    /// The read-only OS disk, as a GPT with these partitions in this order.
    pub os_disk: Vec<PartitionEntry>,
}

impl OsManifest {
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest: Self = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((manifest, dir))
    }
}

/// What was built, with each output's SHA-256.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_path: PathBuf,
    pub outputs: Vec<(PathBuf, String)>,
    pub modules: Vec<String>,
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn read_binary(bin_dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = bin_dir.join(name);
    fs::read(&path).with_context(|| format!("reading guest binary {} (built by `make build`?)", path.display()))
}

/// Builds the initramfs: `/init`, the modules and `lib/modules/modules.load`.
pub fn build_initramfs(spec: &ImageSpec, out: &Path) -> Result<Vec<String>> {
    let release = kernel_release(&spec.kernel_dir)?;
    let modules_dir = spec.kernel_dir.join("root/lib/modules").join(&release);
    let dep_path = modules_dir.join("modules.dep");
    let dep_text = fs::read_to_string(&dep_path)
        .with_context(|| format!("reading {} (run `make setup`)", dep_path.display()))?;
    let order = modules::ModuleDeps::parse(&dep_text)?.load_order(modules::GUEST_MODULES)?;

    let mut archive = cpio::Archive::new();
    for dir in ["dev", "proc", "sys", "run", "system", "mnt", "data", "tmp"] {
        archive.add_dir(dir, 0o755)?;
    }
    archive.add_file("init", 0o755, read_binary(&spec.bin_dir, "init")?)?;
    let mut load_list = String::from("# Load order computed from modules.dep by the image builder.\n");
    let mut names = Vec::new();
    for rel in &order {
        let file_name = Path::new(rel).file_name().and_then(|n| n.to_str()).context("module path without a file name")?;
        let data = fs::read(modules_dir.join(rel)).with_context(|| format!("reading module {rel}"))?;
        archive.add_file(&format!("lib/modules/{file_name}"), 0o644, data)?;
        load_list.push_str(file_name);
        load_list.push('\n');
        names.push(file_name.to_owned());
    }
    archive.add_file("lib/modules/modules.load", 0o644, load_list.into_bytes())?;
    let mut file = std::io::BufWriter::new(fs::File::create(out).with_context(|| format!("creating {}", out.display()))?);
    archive.write(&mut file)?;
    std::io::Write::flush(&mut file)?;
    Ok(names)
}

/// Builds the erofs system partition from a staging tree with fixed modes.
pub fn build_system(spec: &ImageSpec, staging: &Path, out: &Path) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging).with_context(|| format!("clearing {}", staging.display()))?;
    }
    let put = |rel: &str, data: &[u8], mode: u32| -> Result<()> {
        let path = staging.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        set_mode(&path, mode)
    };
    for name in SYSTEM_BINARIES {
        put(&format!("bin/{name}"), &read_binary(&spec.bin_dir, name)?, 0o755)?;
    }
    put("etc/init/init.rc", &spec.init_rc, 0o644)?;
    put("etc/vm_config.json", &spec.vm_config, 0o644)?;
    for dir in ["", "bin", "etc", "etc/init"] {
        set_mode(&staging.join(dir), 0o755)?;
    }
    if out.exists() {
        fs::remove_file(out)?;
    }
    let status = Command::new("mkfs.erofs")
        .args(["--quiet", "-T0", "-U", SYSTEM_FS_UUID, "--all-root", "-x-1"])
        .arg(out)
        .arg(staging)
        .env_remove("SOURCE_DATE_EPOCH")
        .status()
        .context("running mkfs.erofs (package erofs-utils, installed by `make setup`)")?;
    ensure!(status.success(), "mkfs.erofs failed with {status}");
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", path.display()))
}

pub fn kernel_release(kernel_dir: &Path) -> Result<String> {
    let path = kernel_dir.join("release");
    let release = fs::read_to_string(&path).with_context(|| format!("reading {} (run `make setup`)", path.display()))?;
    let release = release.trim().to_owned();
    if release.is_empty() || release.contains('/') {
        bail!("{} does not name a kernel release", path.display());
    }
    Ok(release)
}

/// Builds everything into `out_dir`.
pub fn build(spec: &ImageSpec, out_dir: &Path) -> Result<BuiltImage> {
    if spec.validate {
        init_config::InitConfig::parse(&spec.init_rc).context("the init configuration is invalid")?;
        payload_config::VmPayloadConfig::from_json(&spec.vm_config)
            .and_then(|c| c.task().map(|_| ()))
            .context("the payload config is invalid")?;
    }
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let release = kernel_release(&spec.kernel_dir)?;
    let kernel = out_dir.join("vmlinuz");
    fs::copy(spec.kernel_dir.join("vmlinuz"), &kernel).context("copying the kernel")?;
    let initrd = out_dir.join("initramfs.img");
    let modules = build_initramfs(spec, &initrd)?;
    let system = out_dir.join("system.img");
    build_system(spec, &out_dir.join("system.staging"), &system)?;
    fs::remove_dir_all(out_dir.join("system.staging")).ok();
    let manifest = OsManifest {
        kernel: "vmlinuz".into(),
        initrd: "initramfs.img".into(),
        kernel_release: release,
        os_disk: vec![PartitionEntry { label: SYSTEM_PARTITION_LABEL.into(), path: "system.img".into() }],
    };
    let manifest_path = out_dir.join(MANIFEST_NAME);
    fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)? + "\n")?;
    let outputs = [kernel, initrd, system, manifest_path.clone()]
        .into_iter()
        .map(|p| sha256_file(&p).map(|h| (p, h)))
        .collect::<Result<_>>()?;
    Ok(BuiltImage { manifest_path, outputs, modules })
}
