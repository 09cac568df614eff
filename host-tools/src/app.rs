//! App payloads on the host (AVF's `vm run-app`): the payload disk, and the developer's tools
//! to package, sign and make the idsig of an APK.
//!
//! The payload disk is a GPT whose partitions come in AOSP's order
//! (`make_payload_disk`, AOSP `virtualizationmanager/src/payload.rs`): `payload-metadata` first,
//! then `microdroid-apex-<i>`,
//! `microdroid-apk`, `microdroid-apk-idsig`, `extra-apk-<i>`, `extra-idsig-<i>`; every partition
//! is zero-padded to 4 KiB by the disk layout (`libs/gpt`, `libs/composite`), which dm-verity
//! and the v4 tree both expect.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use payload_metadata::{Metadata, Payload, PayloadConfig};

/// The Android SDK level the idsig and signatures are made for (the guest's, Android 15).
pub const SDK_VERSION: u32 = 35;
/// Where the guest mounts the APK; a config path names a file under it.
pub const APK_MOUNT_POINT: &str = "/mnt/apk";

/// What the payload runs: a config file in the APK, or a binary from its `lib/x86_64/`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PayloadSpec {
    ConfigPath(String),
    BinaryName(String),
}

/// An app to run: its APK and idsig, and extra APKs (their idsigs are made here).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppPayload {
    pub apk: PathBuf,
    pub idsig: PathBuf,
    pub payload: PayloadSpec,
    pub extra_apks: Vec<PathBuf>,
    /// APEXes, activated by the guest's apexd at /apex/<name> (`microdroid-apex-<i>`).
    pub apexes: Vec<PathBuf>,
}

impl AppPayload {
    /// An APK whose payload config is the file `config_path` inside it (AOSP's
    /// `--config-path`), with no extra APKs and no APEXes.
    pub fn from_config_path(apk: PathBuf, idsig: PathBuf, config_path: &str) -> Self {
        AppPayload {
            apk,
            idsig,
            payload: PayloadSpec::ConfigPath(config_path.into()),
            extra_apks: Vec::new(),
            apexes: Vec::new(),
        }
    }
}

/// An APEX of the payload disk: its file and its manifest's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadApex {
    pub name: String,
    pub path: PathBuf,
    pub last_update_seconds: u64,
}

/// The app's APEXes in partition order: sorted by name (AOSP's order), names unique. Each file
/// is parsed (not verified: the guest does that) for its manifest name.
pub fn payload_apexes(app: &AppPayload) -> Result<Vec<PayloadApex>> {
    let mut apexes = Vec::with_capacity(app.apexes.len());
    for path in &app.apexes {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let parsed =
            apex::ApexFile::parse(&file).with_context(|| format!("reading {}", path.display()))?;
        let last_update_seconds = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        apexes.push(PayloadApex {
            name: parsed.manifest.name,
            path: path.clone(),
            last_update_seconds,
        });
    }
    apexes.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = apexes.windows(2).find(|w| w[0].name == w[1].name) {
        bail!("two APEXes are named {}", pair[0].name);
    }
    Ok(apexes)
}

/// The payload metadata the guest reads, as AOSP's `make_metadata_file` fills it in.
pub fn payload_metadata(app: &AppPayload) -> Result<Metadata> {
    let payload = match &app.payload {
        PayloadSpec::ConfigPath(path) => {
            ensure!(
                !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
                "config path {path:?} must be relative to the APK root"
            );
            Payload::ConfigPath(format!("{APK_MOUNT_POINT}/{path}"))
        }
        PayloadSpec::BinaryName(name) => {
            ensure!(
                !name.is_empty() && !name.contains('/'),
                "payload binary name {name:?} must be a file name"
            );
            Payload::Config(PayloadConfig {
                payload_binary_name: name.clone(),
                extra_apk_count: u32::try_from(app.extra_apks.len())
                    .context("too many extra APKs")?,
            })
        }
    };
    let apexes = payload_apexes(app)?;
    let listed: Vec<(&str, u64, bool)> = apexes
        .iter()
        .map(|a| (a.name.as_str(), a.last_update_seconds, false))
        .collect();
    Ok(Metadata::for_app(&listed, payload))
}

/// Writes what the payload disk needs into `work_dir` and returns its partitions, in order.
pub fn payload_disk_partitions(
    app: &AppPayload,
    work_dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    for path in [&app.apk, &app.idsig] {
        ensure!(path.is_file(), "{} is not a file", path.display());
    }
    let metadata_path = work_dir.join("payload-metadata.img");
    let bytes = payload_metadata::to_bytes_padded(&payload_metadata(app)?, 4096)?;
    fs::write(&metadata_path, bytes)
        .with_context(|| format!("writing {}", metadata_path.display()))?;
    let mut partitions = vec![("payload-metadata".to_owned(), metadata_path)];
    for (i, apex) in payload_apexes(app)?.into_iter().enumerate() {
        partitions.push((format!("microdroid-apex-{i}"), apex.path));
    }
    partitions.push(("microdroid-apk".to_owned(), app.apk.clone()));
    partitions.push(("microdroid-apk-idsig".to_owned(), app.idsig.clone()));
    for (i, extra) in app.extra_apks.iter().enumerate() {
        let idsig = work_dir.join(format!("extra-idsig-{i}.idsig"));
        create_idsig(extra, &idsig)
            .with_context(|| format!("making the idsig of extra APK {}", extra.display()))?;
        partitions.push((format!("extra-apk-{i}"), extra.clone()));
        partitions.push((format!("extra-idsig-{i}"), idsig));
    }
    Ok(partitions)
}

/// `apksigner`'s v4 idsig of an APK (unsigned, as AVF makes them for the VM).
pub fn create_idsig(apk: &Path, out: &Path) -> Result<()> {
    let mut file = File::open(apk).with_context(|| format!("opening {}", apk.display()))?;
    let (signature, tree) = idsig::create(&mut file, SDK_VERSION, None)
        .with_context(|| format!("hashing {}", apk.display()))?;
    fs::write(out, signature.to_bytes(&tree)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// A file to put in an APK: path inside it, source file, Unix mode.
#[derive(Debug, Clone)]
pub struct ApkFile {
    pub path: String,
    pub source: PathBuf,
    pub mode: u32,
}

/// Packages files into a zip (stored, `.so` and executables page aligned) and signs it with
/// APK Signature Schemes v2 and v3. Files under `lib/` and `bin/` keep mode 0755 so that the
/// guest can run them from the zipfuse mount.
pub fn package_apk(files: &[ApkFile], key: &Path, cert: &Path, out: &Path) -> Result<()> {
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        ensure!(
            !file.path.starts_with('/') && !file.path.split('/').any(|c| c == ".." || c.is_empty()),
            "bad APK path {:?}",
            file.path
        );
        let data =
            fs::read(&file.source).with_context(|| format!("reading {}", file.source.display()))?;
        let mut entry =
            ziparchive::write::ZipEntry::new(file.path.clone(), data).with_mode(file.mode);
        if file.mode & 0o111 != 0 {
            entry.align = Some(4096);
        }
        entries.push(entry);
    }
    let zip = ziparchive::write::build_zip(&entries)?;
    let config = apksig::sign::SigningConfig::from_files(key, cert)?;
    fs::write(out, apksig::sign::sign(&zip, &config)?)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// The APK manifest `package-apk` writes.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Package name; `None`: `org.microdroid.<output file stem>`.
    pub package: Option<String>,
    pub version_code: u64,
    pub min_sdk_version: u32,
}

/// File name of the binary manifest inside an APK.
pub const MANIFEST_ENTRY: &str = "AndroidManifest.xml";

/// The package name `package-apk` uses when none is given: `org.microdroid.<stem>` with the
/// stem's characters that a Java package name cannot hold replaced by `_`.
pub fn default_package_name(out: &Path) -> String {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'p');
    }
    format!("org.microdroid.{name}")
}

/// The binary AndroidManifest.xml of an APK: package, version code (split into versionCode and
/// versionCodeMajor), minSdkVersion and targetSdkVersion, no code (the payload is native).
pub fn manifest_bytes(package: &str, options: &ManifestOptions) -> Result<Vec<u8>> {
    ensure!(
        !package.is_empty()
            && package.split('.').count() >= 2
            && package
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
        "package name {package:?} is not a Java package name (e.g. com.example.app)"
    );
    let mut spec = axml::ManifestSpec::new(package, options.version_code);
    spec.min_sdk_version = Some(options.min_sdk_version);
    spec.target_sdk_version = Some(SDK_VERSION);
    spec.has_code = Some(false);
    Ok(axml::write_manifest(&spec))
}

/// The files of `dir` as APK entries, plus a binary AndroidManifest.xml written into
/// `scratch` from `options`, unless `dir` has its own (which is then checked to parse).
pub fn apk_files_with_manifest(
    dir: &Path,
    out: &Path,
    options: &ManifestOptions,
    scratch: &Path,
) -> Result<Vec<ApkFile>> {
    let mut files = apk_files_from_dir(dir)?;
    if let Some(own) = files.iter().find(|f| f.path == MANIFEST_ENTRY) {
        let bytes = fs::read(&own.source)?;
        let info = axml::parse_manifest(&bytes).with_context(|| {
            format!(
                "{} is not a binary AndroidManifest.xml",
                own.source.display()
            )
        })?;
        eprintln!(
            "vmctl: using {} (package {}, version code {})",
            own.source.display(),
            info.package,
            info.version_code
        );
        return Ok(files);
    }
    let package = options
        .package
        .clone()
        .unwrap_or_else(|| default_package_name(out));
    let path = scratch.join(MANIFEST_ENTRY);
    fs::write(&path, manifest_bytes(&package, options)?)
        .with_context(|| format!("writing {}", path.display()))?;
    files.push(ApkFile {
        path: MANIFEST_ENTRY.to_owned(),
        source: path,
        mode: 0o644,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The files under `dir`, in sorted order, as APK entries: executables under `lib/` and `bin/`
/// get 0755, the rest 0644.
pub fn apk_files_from_dir(dir: &Path) -> Result<Vec<ApkFile>> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.is_empty() {
        bail!("{} has no files", dir.display());
    }
    Ok(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<ApkFile>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root)?.to_string_lossy().into_owned();
            let executable = rel.starts_with("lib/") || rel.starts_with("bin/");
            out.push(ApkFile {
                path: rel,
                source: path,
                mode: if executable { 0o755 } else { 0o644 },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> (PathBuf, PathBuf) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../libs/apksig/testkeys");
        (dir.join("testkey.pk8"), dir.join("testkey.x509.pem"))
    }

    #[test]
    fn metadata_matches_aosp() {
        let app =
            AppPayload::from_config_path("a.apk".into(), "a.idsig".into(), "assets/vm_config.json");
        let md = payload_metadata(&app).unwrap();
        assert_eq!(md.version, 1);
        assert_eq!(
            md.payload,
            Some(Payload::ConfigPath("/mnt/apk/assets/vm_config.json".into()))
        );
        let apk = md.apk.unwrap();
        assert_eq!(
            (
                apk.payload_partition_name.as_str(),
                apk.idsig_partition_name.as_str()
            ),
            ("microdroid-apk", "microdroid-apk-idsig")
        );
        let bad = AppPayload {
            payload: PayloadSpec::ConfigPath("../x".into()),
            ..app.clone()
        };
        assert!(payload_metadata(&bad).is_err());
        let bin = AppPayload {
            payload: PayloadSpec::BinaryName("hello".into()),
            extra_apks: vec!["x.apk".into()],
            ..app
        };
        let Some(Payload::Config(config)) = payload_metadata(&bin).unwrap().payload else {
            panic!()
        };
        assert_eq!(
            (config.payload_binary_name.as_str(), config.extra_apk_count),
            ("hello", 1)
        );
    }

    #[test]
    fn packaged_apk_verifies_and_disk_partitions_are_in_aosp_order() {
        let (key, cert) = test_key();
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("lib/x86_64")).unwrap();
        fs::create_dir_all(tree.join("assets")).unwrap();
        fs::write(tree.join("lib/x86_64/payload"), vec![0x7f; 10000]).unwrap();
        fs::write(tree.join("assets/vm_config.json"), b"{}").unwrap();
        let files = apk_files_from_dir(&tree).unwrap();
        assert_eq!(
            files
                .iter()
                .map(|f| (f.path.as_str(), f.mode))
                .collect::<Vec<_>>(),
            [
                ("assets/vm_config.json", 0o644),
                ("lib/x86_64/payload", 0o755)
            ]
        );
        let apk = dir.path().join("app.apk");
        package_apk(&files, &key, &cert, &apk).unwrap();
        apksig::verify(&mut File::open(&apk).unwrap(), SDK_VERSION).unwrap();
        let idsig = dir.path().join("app.apk.idsig");
        create_idsig(&apk, &idsig).unwrap();
        idsig::V4Signature::read_from(&mut File::open(&idsig).unwrap()).unwrap();
        let app = AppPayload {
            apk: apk.clone(),
            idsig,
            payload: PayloadSpec::BinaryName("payload".into()),
            extra_apks: vec![apk],
            apexes: vec![],
        };
        let key = avb::SigningKey::from_pem_file(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../libs/avb/testkeys/testkey_rsa2048.pem"),
        )
        .unwrap();
        let (apex_b, apex_a) = (dir.path().join("b.apex"), dir.path().join("a.apex"));
        apex::write::build_apex(&tree, "com.example.b", 1, &key, &apex_b).unwrap();
        apex::write::build_apex(&tree, "com.example.a", 2, &key, &apex_a).unwrap();
        let app = AppPayload {
            apexes: vec![apex_b.clone(), apex_a.clone()],
            ..app
        };
        let names: Vec<String> = payload_metadata(&app)
            .unwrap()
            .apexes
            .iter()
            .map(|a| format!("{} {}", a.name, a.partition_name))
            .collect();
        assert_eq!(
            names,
            [
                "com.example.a microdroid-apex-0",
                "com.example.b microdroid-apex-1"
            ]
        );
        let parts = payload_disk_partitions(&app, dir.path()).unwrap();
        assert_eq!((&parts[1].1, &parts[2].1), (&apex_a, &apex_b));
        let labels: Vec<&str> = parts.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "payload-metadata",
                "microdroid-apex-0",
                "microdroid-apex-1",
                "microdroid-apk",
                "microdroid-apk-idsig",
                "extra-apk-0",
                "extra-idsig-0"
            ]
        );
    }

    #[test]
    fn package_apk_writes_a_manifest_the_guest_reads() {
        let (key, cert) = test_key();
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("assets")).unwrap();
        fs::write(tree.join("assets/vm_config.json"), b"{}").unwrap();
        let out = dir.path().join("my-app.apk");
        let options = ManifestOptions {
            package: None,
            version_code: (3 << 32) | 7,
            min_sdk_version: 34,
        };
        let files = apk_files_with_manifest(&tree, &out, &options, dir.path()).unwrap();
        assert_eq!(
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["AndroidManifest.xml", "assets/vm_config.json"]
        );
        package_apk(&files, &key, &cert, &out).unwrap();
        let zip = fs::read(&out).unwrap();
        let manifest_file = files.iter().find(|f| f.path == MANIFEST_ENTRY).unwrap();
        let info = axml::parse_manifest(&fs::read(&manifest_file.source).unwrap()).unwrap();
        assert_eq!(info.package, "org.microdroid.my_app");
        assert_eq!(info.version_code, (3 << 32) | 7);
        // --min-sdk-version and the target SDK land in <uses-sdk>.
        let doc = axml::parse_document(&fs::read(&manifest_file.source).unwrap()).unwrap();
        let uses_sdk = doc.child("uses-sdk").unwrap();
        let value = |name| {
            uses_sdk
                .attribute(Some(axml::ANDROID_NS), name)
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(value("minSdkVersion"), axml::Value::IntDec(34));
        assert_eq!(value("targetSdkVersion"), axml::Value::IntDec(SDK_VERSION));
        assert!(zip.windows(19).any(|w| w == b"AndroidManifest.xml"));
        let bad = ManifestOptions {
            package: Some("nodots".into()),
            ..options
        };
        let err = apk_files_with_manifest(&tree, &out, &bad, dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("is not a Java package name"),
            "{err:#}"
        );
    }
}
