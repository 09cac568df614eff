//! Builds the Microdroid guest OS from the guest binaries and a Debian kernel:
//! - `system.img`: erofs, mounted at /system: `bin/` (microdroid_manager, zipfuse, the payload),
//!   `etc/init/init.rc` (the service configuration), `etc/vm_config.json`; with an AVB hashtree
//!   footer;
//! - `vendor.img`: erofs, mounted at /vendor, with its hashtree footer;
//! - `vbmeta.img`: signed vbmeta with the hashtree descriptors of both;
//! - `super.img`: the logical partitions `system_a` and `vendor_a` (liblp);
//! - `initramfs.img`: a newc cpio with `/init`, the kernel modules the guest needs in their load
//!   order (from `modules.dep`), and the trust anchor: the vbmeta public key and a bootconfig
//!   holding the expected vbmeta digest;
//! - `vmlinuz`, and `vm_os.json`, the manifest vmctl reads (like AVF's microdroid.json): the OS
//!   disk has the partitions `vbmeta_a` and `super`.
//!
//! The same inputs give the same bytes: the cpio is written deterministically, mkfs.erofs runs
//! with a fixed timestamp, UUID and ownership, hash-tree salts are fixed, RSA PKCS#1 v1.5
//! signatures are deterministic.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod cpio;
pub mod elfdeps;
pub mod modules;
pub mod sepolicy;
pub mod verified;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// GPT names of the OS disk's partitions, as AOSP's microdroid.json names them.
pub const VBMETA_PARTITION_LABEL: &str = "vbmeta_a";
pub const SUPER_PARTITION_LABEL: &str = "super";
/// Fixed erofs UUIDs (system: the one AOSP gives Microdroid's system image), for
/// reproducibility.
pub const SYSTEM_FS_UUID: &str = "5fe079c6-f01a-52be-87d3-d415231a72ad";
pub const VENDOR_FS_UUID: &str = "0b8f8a2c-1f3e-5d4b-9c6a-7e2d4f1a3b5c";
/// The documented test key vbmeta is signed with unless the user passes their own
/// (libs/avb/testkeys/README.md: public, never for production).
pub const TEST_AVB_KEY_PEM: &str = include_str!("../../libs/avb/testkeys/testkey_rsa4096.pem");
pub const MANIFEST_NAME: &str = "vm_os.json";

/// Where the guest binaries go on the system partition.
pub const SYSTEM_BINARIES: &[&str] = &[
    "microdroid_manager",
    "zipfuse",
    "apexd",
    "hello_payload",
    "adbd",
    "logd",
    "logcat",
];

/// The payload runtime, built dynamic (glibc) into `dyn_bin_dir`: `bin/microdroid_launcher`,
/// and in `lib64/` the payload API libraries; their own libraries follow from DT_NEEDED.
pub const PAYLOAD_RUNTIME_PROGRAMS: &[&str] = &["microdroid_launcher"];
pub const PAYLOAD_RUNTIME_LIBRARIES: &[&str] =
    &["libvm_payload.so", "libbinder_ndk.so", "liblog.so"];
/// The C runtime a payload may link besides the payload API, as the NDK's libc, libm and libdl
/// (glibc splits them further): from Debian's library directories, into `lib64/`.
pub const PAYLOAD_C_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
];
/// Where the libraries of the system's own programs (mke2fs, busybox, gdbserver) go when the
/// payload may not link them: AOSP's linker namespaces keep a payload to the public libraries,
/// here the payload's library path and sandbox hold `lib64/` only.
pub const PRIVATE_LIB_DIR: &str = "private/lib64";

/// Symlinks of the initramfs that let Debian's dynamically linked programs run by name: their
/// ELF interpreter, and glibc's two default library directories, the public and the private
/// libraries (the payload's sandbox has only the first).
pub const ELF_RUNTIME_LINKS: &[(&str, &str)] = &[
    (
        "lib64/ld-linux-x86-64.so.2",
        "/system/lib64/ld-linux-x86-64.so.2",
    ),
    ("lib/x86_64-linux-gnu", "/system/lib64"),
    ("usr/lib/x86_64-linux-gnu", "/system/private/lib64"),
];

/// Where the dynamic guest build puts its output, for a static build's `bin_dir`
/// (`target/x86_64-unknown-linux-gnu/release` → `target/guest-dyn/x86_64-unknown-linux-gnu/release`).
pub fn default_dyn_bin_dir(bin_dir: &Path) -> PathBuf {
    let mut parts: Vec<_> = bin_dir.components().collect();
    // .../target/<triple>/<profile>: insert guest-dyn after target.
    if parts.len() >= 3 {
        let at = parts.len() - 2;
        let mut out = PathBuf::new();
        for c in parts.drain(..at) {
            out.push(c);
        }
        out.push("guest-dyn");
        for c in parts {
            out.push(c);
        }
        return out;
    }
    bin_dir.join("guest-dyn")
}

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
    /// Where the dynamic ones are (the payload runtime: launcher and API libraries).
    pub dyn_bin_dir: PathBuf,
    /// `/system/etc/init/init.rc`.
    pub init_rc: Vec<u8>,
    /// `/system/etc/vm_config.json`.
    pub vm_config: Vec<u8>,
    /// Check `init_rc` and `vm_config` before building. Tests turn this off to build images that
    /// the guest must refuse.
    pub validate: bool,
    /// PEM private key that signs vbmeta.
    pub avb_key_pem: String,
    /// PEM public key the initramfs trusts; by default the signing key's. Tests set another to
    /// build an image whose vbmeta the guest must refuse.
    pub trusted_key_pem: Option<String>,
    /// Debian programs carried on the system partition (host file, name in `bin/`), with the
    /// shared libraries only they need in [`PRIVATE_LIB_DIR`] ([`runtime_files`]).
    pub host_programs: Vec<(PathBuf, String)>,
    /// More guest binaries from `bin_dir` for `bin/` (benchmarks build images with theirs).
    pub extra_binaries: Vec<String>,
}

/// The host programs the guest needs: mke2fs formats the encrypted store on first use; adb
/// shells run busybox's `sh` (built with its applets standalone: `ls`, `cat`… need no links);
/// gdbserver debugs a payload through adb (docs/debugging.md).
pub const DEFAULT_HOST_PROGRAMS: &[(&str, &str)] = &[
    ("/sbin/mke2fs", "mke2fs"),
    ("/usr/bin/busybox", "sh"),
    ("/usr/bin/gdbserver", "gdbserver"),
];

impl ImageSpec {
    pub fn new(kernel_dir: &Path, bin_dir: &Path) -> Self {
        ImageSpec {
            kernel_dir: kernel_dir.to_owned(),
            bin_dir: bin_dir.to_owned(),
            dyn_bin_dir: default_dyn_bin_dir(bin_dir),
            init_rc: DEFAULT_INIT_RC.as_bytes().to_vec(),
            vm_config: DEFAULT_VM_CONFIG.as_bytes().to_vec(),
            validate: true,
            avb_key_pem: TEST_AVB_KEY_PEM.to_owned(),
            trusted_key_pem: None,
            host_programs: DEFAULT_HOST_PROGRAMS
                .iter()
                .map(|(path, name)| (PathBuf::from(path), (*name).to_owned()))
                .collect(),
            extra_binaries: Vec::new(),
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
        let manifest: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((manifest, dir))
    }
}

/// What was built, with each output's SHA-256 and the measurements of the verified OS.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_path: PathBuf,
    pub outputs: Vec<(PathBuf, String)>,
    pub modules: Vec<String>,
    pub vbmeta_digest: String,
    /// (partition, hash-tree root digest).
    pub root_digests: Vec<(String, String)>,
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn read_binary(bin_dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = bin_dir.join(name);
    fs::read(&path).with_context(|| {
        format!(
            "reading guest binary {} (built by `make build`?)",
            path.display()
        )
    })
}

/// Builds the initramfs: `/init`, the modules, `lib/modules/modules.load`, and `extra_files`
/// (path in the initramfs, contents), which carry the trust anchor.
pub fn build_initramfs(
    spec: &ImageSpec,
    extra_files: &[(&str, &[u8])],
    out: &Path,
) -> Result<Vec<String>> {
    let release = kernel_release(&spec.kernel_dir)?;
    let modules_dir = spec.kernel_dir.join("root/lib/modules").join(&release);
    let dep_path = modules_dir.join("modules.dep");
    let dep_text = fs::read_to_string(&dep_path)
        .with_context(|| format!("reading {} (run `make setup`)", dep_path.display()))?;
    let order = modules::ModuleDeps::parse(&dep_text)?.load_order(modules::GUEST_MODULES)?;

    let mut archive = cpio::Archive::new();
    for dir in [
        "dev", "proc", "sys", "run", "system", "vendor", "mnt", "data", "tmp",
    ] {
        archive.add_dir(dir, 0o755)?;
    }
    for (path, data) in extra_files {
        archive.add_file(path, 0o644, data.to_vec())?;
    }
    // Debian's dynamic programs on the system partition (gdbserver in an adb shell) run by
    // name: their ELF interpreter and glibc's default library directories lead to the system
    // partition's libraries.
    for (link, target) in ELF_RUNTIME_LINKS {
        if let Some((parent, _)) = link.rsplit_once('/') {
            archive.add_dir(parent, 0o755)?;
        }
        archive.add_symlink(link, target)?;
    }
    archive.add_file("init", 0o755, read_binary(&spec.bin_dir, "init")?)?;
    let mut load_list =
        String::from("# Load order computed from modules.dep by the image builder.\n");
    let mut names = Vec::new();
    for rel in &order {
        let file_name = Path::new(rel)
            .file_name()
            .and_then(|n| n.to_str())
            .context("module path without a file name")?;
        let data =
            fs::read(modules_dir.join(rel)).with_context(|| format!("reading module {rel}"))?;
        archive.add_file(&format!("lib/modules/{file_name}"), 0o644, data)?;
        load_list.push_str(file_name);
        load_list.push('\n');
        names.push(file_name.to_owned());
    }
    archive.add_file("lib/modules/modules.load", 0o644, load_list.into_bytes())?;
    let mut file = std::io::BufWriter::new(
        fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    archive.write(&mut file)?;
    std::io::Write::flush(&mut file)?;
    Ok(names)
}

/// A file of a filesystem image: path inside it, contents, mode.
pub type FsFile = (String, Vec<u8>, u32);

/// Builds an erofs image from `files`, staged in `staging` with fixed modes (directories 0755),
/// every file labelled (`security.selinux`) as `file_contexts` says.
pub fn build_erofs(
    files: &[FsFile],
    file_contexts: &str,
    uuid: &str,
    staging: &Path,
    out: &Path,
) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging).with_context(|| format!("clearing {}", staging.display()))?;
    }
    fs::create_dir_all(staging)?;
    for (rel, data, mode) in files {
        let path = staging.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        set_mode(&path, *mode)?;
    }
    set_dir_modes(staging)?;
    if out.exists() {
        fs::remove_file(out)?;
    }
    let contexts = staging.with_extension("file_contexts");
    fs::write(&contexts, file_contexts)
        .with_context(|| format!("writing {}", contexts.display()))?;
    let status = Command::new("mkfs.erofs")
        .args(["--quiet", "-T0", "-U", uuid, "--all-root"])
        .arg(format!("--file-contexts={}", contexts.display()))
        .arg(out)
        .arg(staging)
        .env_remove("SOURCE_DATE_EPOCH")
        .status()
        .context("running mkfs.erofs (package erofs-utils, installed by `make setup`)")?;
    ensure!(status.success(), "mkfs.erofs failed with {status}");
    fs::remove_dir_all(staging).ok();
    fs::remove_file(&contexts).ok();
    Ok(())
}

fn set_dir_modes(dir: &Path) -> Result<()> {
    set_mode(dir, 0o755)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            set_dir_modes(&path)?;
        }
    }
    Ok(())
}

/// The system partition's files.
pub fn system_files(spec: &ImageSpec) -> Result<Vec<FsFile>> {
    let mut files = Vec::new();
    for name in SYSTEM_BINARIES
        .iter()
        .copied()
        .chain(spec.extra_binaries.iter().map(String::as_str))
    {
        files.push((
            format!("bin/{name}"),
            read_binary(&spec.bin_dir, name)?,
            0o755,
        ));
    }
    for (dest, source) in runtime_files(spec)? {
        let data = fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        files.push((dest, data, 0o755));
    }
    files.push(("etc/init/init.rc".into(), spec.init_rc.clone(), 0o644));
    files.push(("etc/vm_config.json".into(), spec.vm_config.clone(), 0o644));
    Ok(files)
}

/// The dynamic programs of the system partition and their libraries, as (path on the
/// partition, host file): the payload runtime with the public libraries in `lib64/`, Debian's
/// programs with the libraries only they need in [`PRIVATE_LIB_DIR`].
pub fn runtime_files(spec: &ImageSpec) -> Result<Vec<(String, PathBuf)>> {
    let lib = elfdeps::SYSTEM_LIB_DIR;
    let mut public_roots: Vec<(PathBuf, String)> = Vec::new();
    for name in PAYLOAD_RUNTIME_PROGRAMS {
        public_roots.push((spec.dyn_bin_dir.join(name), format!("bin/{name}")));
    }
    for name in PAYLOAD_RUNTIME_LIBRARIES {
        public_roots.push((spec.dyn_bin_dir.join(name), format!("{lib}/{name}")));
    }
    for name in PAYLOAD_C_LIBRARIES {
        let source = elfdeps::DEFAULT_LIBRARY_DIRS
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
            .with_context(|| format!("{name} not found in {:?}", elfdeps::DEFAULT_LIBRARY_DIRS))?;
        public_roots.push((source, format!("{lib}/{name}")));
    }
    let program_roots: Vec<(PathBuf, String)> = spec
        .host_programs
        .iter()
        .map(|(source, name)| (source.clone(), format!("bin/{name}")))
        .collect();
    for (source, _) in public_roots.iter().chain(&program_roots) {
        anyhow::ensure!(
            source.exists(),
            "{} missing: build the guest (make build)",
            source.display()
        );
    }
    let public = elfdeps::resolve_roots(&public_roots, elfdeps::DEFAULT_LIBRARY_DIRS)?;
    let mut files: std::collections::BTreeMap<String, PathBuf> = public.into_iter().collect();
    for (dest, source) in elfdeps::resolve_roots(&program_roots, elfdeps::DEFAULT_LIBRARY_DIRS)? {
        let dest = match dest.strip_prefix(&format!("{lib}/")) {
            // A library the payload may link too (and the loader, which every PT_INTERP names)
            // stays where it is.
            Some(_) if files.contains_key(&dest) => dest,
            Some(name) => format!("{PRIVATE_LIB_DIR}/{name}"),
            None => dest,
        };
        files.entry(dest).or_insert(source);
    }
    Ok(files.into_iter().collect())
}

/// The vendor partition's files: its build properties.
pub fn vendor_files(release: &str) -> Vec<FsFile> {
    let props =
        format!("ro.vendor.product.cpu.abilist=x86_64\nro.vendor.kernel.release={release}\n");
    vec![("etc/build.prop".into(), props.into_bytes(), 0o644)]
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

pub fn kernel_release(kernel_dir: &Path) -> Result<String> {
    let path = kernel_dir.join("release");
    let release = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `make setup`)", path.display()))?;
    let release = release.trim().to_owned();
    if release.is_empty() || release.contains('/') {
        bail!("{} does not name a kernel release", path.display());
    }
    Ok(release)
}

/// Builds everything into `out_dir`.
pub fn build(spec: &ImageSpec, out_dir: &Path) -> Result<BuiltImage> {
    if spec.validate {
        init_config::InitConfig::parse(&spec.init_rc)
            .context("the init configuration is invalid")?;
        payload_config::VmPayloadConfig::from_json(&spec.vm_config)
            .and_then(|c| c.task().map(|_| ()))
            .context("the payload config is invalid")?;
    }
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let release = kernel_release(&spec.kernel_dir)?;
    let kernel = out_dir.join("vmlinuz");
    fs::copy(spec.kernel_dir.join("vmlinuz"), &kernel).context("copying the kernel")?;

    let system = out_dir.join("system.img");
    let mut files = system_files(spec)?;
    let policy = sepolicy::compile(sepolicy::POLICY_CIL, &out_dir.join("sepolicy.work"))?;
    files.push((sepolicy::POLICY_PATH_IN_SYSTEM.into(), policy, 0o644));
    build_erofs(
        &files,
        sepolicy::SYSTEM_FILE_CONTEXTS,
        SYSTEM_FS_UUID,
        &out_dir.join("system.staging"),
        &system,
    )?;
    let vendor = out_dir.join("vendor.img");
    build_erofs(
        &vendor_files(&release),
        sepolicy::VENDOR_FILE_CONTEXTS,
        VENDOR_FS_UUID,
        &out_dir.join("vendor.staging"),
        &vendor,
    )?;

    let signing_key =
        avb::SigningKey::from_pem(&spec.avb_key_pem).context("reading the vbmeta signing key")?;
    let trusted_key = match &spec.trusted_key_pem {
        Some(pem) => avb::PublicKey::from_pem(pem).context("reading the trusted vbmeta key")?,
        None => signing_key.public_key()?,
    };
    let super_img = out_dir.join("super.img");
    let partitions = [
        verified::VerifiedPartition {
            name: "system",
            image: &system,
        },
        verified::VerifiedPartition {
            name: "vendor",
            image: &vendor,
        },
    ];
    let os = verified::build_verified_os(&partitions, &signing_key, &trusted_key, &super_img)?;
    let vbmeta = out_dir.join("vbmeta.img");
    fs::write(&vbmeta, &os.vbmeta)?;

    let initrd = out_dir.join("initramfs.img");
    let anchor: [(&str, &[u8]); 2] = [
        (verified::BOOTCONFIG_PATH, os.bootconfig.as_bytes()),
        (verified::TRUSTED_KEY_PATH, &os.trusted_key),
    ];
    let modules = build_initramfs(spec, &anchor, &initrd)?;

    let manifest = OsManifest {
        kernel: "vmlinuz".into(),
        initrd: "initramfs.img".into(),
        kernel_release: release,
        os_disk: vec![
            PartitionEntry {
                label: VBMETA_PARTITION_LABEL.into(),
                path: "vbmeta.img".into(),
            },
            PartitionEntry {
                label: SUPER_PARTITION_LABEL.into(),
                path: "super.img".into(),
            },
        ],
    };
    let manifest_path = out_dir.join(MANIFEST_NAME);
    fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let outputs = [kernel, initrd, vbmeta, super_img, manifest_path.clone()]
        .into_iter()
        .map(|p| sha256_file(&p).map(|h| (p, h)))
        .collect::<Result<_>>()?;
    Ok(BuiltImage {
        manifest_path,
        outputs,
        modules,
        vbmeta_digest: verity::to_hex(&os.vbmeta_digest),
        root_digests: os.root_digests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_partition_has_the_binaries_host_programs_and_extras() {
        let bins = tempfile::tempdir().unwrap();
        for name in SYSTEM_BINARIES.iter().chain(["storage_bench"].iter()) {
            fs::write(bins.path().join(name), name.as_bytes()).unwrap();
        }
        let mut spec = ImageSpec::new(Path::new("/nonexistent"), bins.path());
        // Real ELF files stand in for the payload runtime: their DT_NEEDED are followed.
        let dyn_bins = tempfile::tempdir().unwrap();
        fs::copy("/bin/true", dyn_bins.path().join("microdroid_launcher")).unwrap();
        for lib in PAYLOAD_RUNTIME_LIBRARIES {
            fs::copy("/lib/x86_64-linux-gnu/libz.so.1", dyn_bins.path().join(lib)).unwrap();
        }
        spec.dyn_bin_dir = dyn_bins.path().to_owned();
        let names = |spec: &ImageSpec| -> Vec<String> {
            system_files(spec)
                .unwrap()
                .into_iter()
                .map(|(p, _, _)| p)
                .collect()
        };
        let default = names(&spec);
        assert!(default.contains(&"bin/microdroid_manager".to_owned()));
        assert!(default.contains(&"bin/mke2fs".to_owned()));
        assert!(default.contains(&"lib64/ld-linux-x86-64.so.2".to_owned()));
        assert!(default.contains(&"bin/microdroid_launcher".to_owned()));
        assert!(default.contains(&"lib64/libvm_payload.so".to_owned()));
        assert!(default.contains(&"lib64/libbinder_ndk.so".to_owned()));
        // The C runtime is public; what only Debian's programs need is private.
        for lib in ["libc.so.6", "libm.so.6", "libdl.so.2"] {
            assert!(default.contains(&format!("lib64/{lib}")), "{lib}");
            assert!(!default.contains(&format!("private/lib64/{lib}")), "{lib}");
        }
        assert!(default.contains(&"private/lib64/libext2fs.so.2".to_owned()));
        assert!(!default.contains(&"lib64/libext2fs.so.2".to_owned()));
        assert!(!default
            .iter()
            .any(|p| p.ends_with("/ld-linux-x86-64.so.2") && p != "lib64/ld-linux-x86-64.so.2"));
        assert!(!default.contains(&"bin/storage_bench".to_owned()));
        spec.extra_binaries = vec!["storage_bench".into()];
        assert!(names(&spec).contains(&"bin/storage_bench".to_owned()));
        spec.host_programs.clear();
        let without = names(&spec);
        assert!(!without.contains(&"bin/mke2fs".to_owned()));
        assert!(!without.iter().any(|p| p.starts_with("private/")));
        assert!(without.contains(&"lib64/libc.so.6".to_owned()));
    }

    #[test]
    fn dynamic_build_dir_sits_beside_the_static_one() {
        assert_eq!(
            default_dyn_bin_dir(Path::new("/w/target/x86_64-unknown-linux-gnu/release")),
            PathBuf::from("/w/target/guest-dyn/x86_64-unknown-linux-gnu/release")
        );
    }
}
