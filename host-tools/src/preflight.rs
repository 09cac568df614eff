//! Checks `vmctl run-app` makes on the host before any VM starts, so that a mistake costs a
//! line instead of a boot: the APK is signed, its idsig is its own, its payload config parses
//! and names files the APK has, and the payload binary can run in this guest. Each failure is
//! one clear message and its own exit status ([`PreflightError::exit_status`]).
//!
//! The guest verifies all of it again (that is the security boundary: dm-verity, the v3
//! signature, the config); this is for the user.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use payload_config::{TaskType, VmPayloadConfig};

use crate::app::{AppPayload, PayloadSpec, SDK_VERSION};

/// vmctl's exit statuses for preflight failures.
pub mod exit_status {
    /// The APK (or an extra APK) is not validly signed.
    pub const UNSIGNED_APK: u8 = 65;
    /// The idsig is not the APK's.
    pub const IDSIG_MISMATCH: u8 = 66;
    /// The payload config does not parse, or names a file the APK does not have.
    pub const BAD_CONFIG: u8 = 67;
    /// The payload binary cannot run in this guest.
    pub const BAD_PAYLOAD_BINARY: u8 = 68;
}

/// The largest config or binary read from an APK for these checks.
const MAX_ENTRY: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("{} is not a validly signed APK (APK Signature Scheme v2/v3): {reason}", apk.display())]
    Unsigned { apk: PathBuf, reason: String },
    #[error(
        "{} is not the idsig of {}: {reason} (make it again: vmctl create-idsig {} {})",
        idsig.display(), apk.display(), apk.display(), idsig.display()
    )]
    IdsigMismatch {
        apk: PathBuf,
        idsig: PathBuf,
        reason: String,
    },
    #[error("payload config {config} of {}: {reason}", apk.display())]
    BadConfig {
        apk: PathBuf,
        config: String,
        reason: String,
    },
    #[error(
        "payload binary {entry} in {} cannot run in this guest: {reason}; a payload is an \
         x86-64 shared library lib<name>.so exporting AVmPayload_main (docs/payloads.md), or a \
         static x86-64 executable",
        apk.display()
    )]
    BadPayloadBinary {
        apk: PathBuf,
        entry: String,
        reason: String,
    },
}

impl PreflightError {
    pub fn exit_status(&self) -> u8 {
        match self {
            PreflightError::Unsigned { .. } => exit_status::UNSIGNED_APK,
            PreflightError::IdsigMismatch { .. } => exit_status::IDSIG_MISMATCH,
            PreflightError::BadConfig { .. } => exit_status::BAD_CONFIG,
            PreflightError::BadPayloadBinary { .. } => exit_status::BAD_PAYLOAD_BINARY,
        }
    }
}

fn read_entry(apk: &Path, name: &str) -> Result<Option<Vec<u8>>, String> {
    let file = File::open(apk).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut entry = match zip.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if entry.size() > MAX_ENTRY {
        return Err(format!("{name} is {} bytes", entry.size()));
    }
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

fn check_signed(apk: &Path) -> Result<(), PreflightError> {
    let unsigned = |reason: String| PreflightError::Unsigned {
        apk: apk.to_owned(),
        reason,
    };
    let mut file = File::open(apk).map_err(|e| unsigned(e.to_string()))?;
    apksig::verify(&mut file, SDK_VERSION).map_err(|e| unsigned(e.to_string()))?;
    Ok(())
}

/// Why an ELF file named `name` cannot be a payload here, if it cannot: a `.so` must be a
/// shared library exporting `AVmPayload_main` (the guest's launcher loads it); anything else a
/// static executable (the guest runs it).
pub fn payload_binary_problem(name: &str, bytes: &[u8]) -> Option<String> {
    use goblin::elf::header::EM_X86_64;
    let elf = match goblin::elf::Elf::parse(bytes) {
        Ok(elf) => elf,
        Err(_) => return Some("it is not an ELF file".into()),
    };
    if !elf.is_64 || elf.header.e_machine != EM_X86_64 {
        return Some("it is not an x86-64 ELF file".into());
    }
    if name.ends_with(".so") {
        if elf.header.e_type != goblin::elf::header::ET_DYN {
            return Some("it is not a shared library".into());
        }
        let exports_main = elf.dynsyms.iter().any(|sym| {
            sym.st_shndx != 0 && elf.dynstrtab.get_at(sym.st_name) == Some("AVmPayload_main")
        });
        if !exports_main {
            return Some("it does not export AVmPayload_main".into());
        }
        return None;
    }
    if let Some(interp) = elf.interpreter {
        return Some(format!(
            "it is dynamically linked (its ELF interpreter {interp} is not in the guest)"
        ));
    }
    // A static executable is ET_EXEC, or ET_DYN marked PIE (static-pie, what Rust's
    // crt-static builds); an ET_DYN without the PIE flag is a shared library (an AOSP
    // `AVmPayload_main` payload), which this guest cannot load yet.
    const DF_1_PIE: u64 = 0x0800_0000;
    if elf.header.e_type == goblin::elf::header::ET_DYN {
        let pie = elf
            .dynamic
            .as_ref()
            .is_some_and(|d| d.info.flags_1 & DF_1_PIE != 0);
        if !pie {
            return Some("it is a shared library, not an executable".into());
        }
    }
    None
}

/// All checks, in the order a user would fix them.
pub fn check(app: &AppPayload) -> Result<(), PreflightError> {
    check_signed(&app.apk)?;
    for extra in &app.extra_apks {
        check_signed(extra)?;
    }
    let mismatch = |reason: String| PreflightError::IdsigMismatch {
        apk: app.apk.clone(),
        idsig: app.idsig.clone(),
        reason,
    };
    let idsig = std::fs::read(&app.idsig).map_err(|e| mismatch(e.to_string()))?;
    let mut apk = File::open(&app.apk).map_err(|e| mismatch(e.to_string()))?;
    idsig::verify(&idsig, &mut apk, SDK_VERSION, false).map_err(|e| mismatch(e.to_string()))?;

    let (config_name, task, config_extra_apks) = match &app.payload {
        PayloadSpec::ConfigPath(path) => {
            let bad = |reason: String| PreflightError::BadConfig {
                apk: app.apk.clone(),
                config: path.clone(),
                reason,
            };
            let bytes = read_entry(&app.apk, path)
                .map_err(bad)?
                .ok_or_else(|| bad("the APK has no such file".into()))?;
            let config = VmPayloadConfig::from_json(&bytes).map_err(|e| bad(e.to_string()))?;
            let task = config.task().map_err(|e| bad(e.to_string()))?.clone();
            (path.clone(), task, Some(config.extra_apks.len()))
        }
        PayloadSpec::BinaryName(name) => (
            format!("--payload-binary-name {name}"),
            payload_config::Task {
                type_: TaskType::MicrodroidLauncher,
                command: name.clone(),
                args: Vec::new(),
            },
            None,
        ),
    };
    if let Some(wanted) = config_extra_apks.filter(|n| *n != app.extra_apks.len()) {
        return Err(PreflightError::BadConfig {
            apk: app.apk.clone(),
            config: config_name,
            reason: format!(
                "it lists {wanted} extra APKs, and {} were given with --extra-apk",
                app.extra_apks.len()
            ),
        });
    }
    if task.type_ != TaskType::MicrodroidLauncher {
        // An executable path in the guest's own file systems: nothing to check here.
        return Ok(());
    }
    let entry = format!("lib/x86_64/{}", task.command);
    let bad_config = |reason: String| PreflightError::BadConfig {
        apk: app.apk.clone(),
        config: config_name.clone(),
        reason,
    };
    let binary = read_entry(&app.apk, &entry)
        .map_err(&bad_config)?
        .ok_or_else(|| bad_config(format!("it names {entry}, which the APK does not have")))?;
    match payload_binary_problem(&entry, &binary) {
        None => Ok(()),
        Some(reason) => Err(PreflightError::BadPayloadBinary {
            apk: app.apk.clone(),
            entry,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::app::{apk_files_from_dir, create_idsig, package_apk};

    fn keys() -> (PathBuf, PathBuf) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../libs/apksig/testkeys");
        (dir.join("testkey.pk8"), dir.join("testkey.x509.pem"))
    }

    /// An APK with `config` and `binary` as lib/x86_64/payload, signed, with its idsig.
    fn app(dir: &Path, name: &str, config: Option<&str>, binary: &Path) -> AppPayload {
        let tree = dir.join(format!("{name}.tree"));
        fs::create_dir_all(tree.join("lib/x86_64")).unwrap();
        fs::create_dir_all(tree.join("assets")).unwrap();
        fs::copy(binary, tree.join("lib/x86_64/payload")).unwrap();
        if let Some(config) = config {
            fs::write(tree.join("assets/vm_config.json"), config).unwrap();
        }
        let (key, cert) = keys();
        let apk = dir.join(format!("{name}.apk"));
        package_apk(&apk_files_from_dir(&tree).unwrap(), &key, &cert, &apk).unwrap();
        let idsig = dir.join(format!("{name}.apk.idsig"));
        create_idsig(&apk, &idsig).unwrap();
        AppPayload::from_config_path(apk, idsig, "assets/vm_config.json")
    }

    const CONFIG: &str = r#"{"task": {"type": "microdroid_launcher", "command": "payload"}}"#;

    /// busybox-static (installed by make setup) is a static x86-64 executable.
    fn static_binary() -> PathBuf {
        PathBuf::from("/bin/busybox")
    }

    #[test]
    fn a_good_app_passes() {
        let dir = tempfile::tempdir().unwrap();
        check(&app(dir.path(), "good", Some(CONFIG), &static_binary())).unwrap();
    }

    #[test]
    fn each_mistake_has_its_message_and_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let status = |app: &AppPayload| {
            let err = check(app).unwrap_err();
            (err.exit_status(), err.to_string())
        };

        let dynamic = app(d, "dynamic", Some(CONFIG), Path::new("/bin/true"));
        let (code, msg) = status(&dynamic);
        assert_eq!(code, exit_status::BAD_PAYLOAD_BINARY, "{msg}");
        assert!(
            msg.contains(
                "it is dynamically linked (its ELF interpreter /lib64/ld-linux-x86-64.so.2"
            ),
            "{msg}"
        );

        let script = d.join("script");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        let (code, msg) = status(&app(d, "script", Some(CONFIG), &script));
        assert_eq!(code, exit_status::BAD_PAYLOAD_BINARY);
        assert!(msg.contains("it is not an ELF file"), "{msg}");

        let (code, msg) = status(&app(d, "noconfig", None, &static_binary()));
        assert_eq!(code, exit_status::BAD_CONFIG);
        assert!(msg.contains("assets/vm_config.json"), "{msg}");
        assert!(msg.contains("the APK has no such file"), "{msg}");

        let (code, msg) = status(&app(d, "badjson", Some("{\"task\": "), &static_binary()));
        assert_eq!(code, exit_status::BAD_CONFIG, "{msg}");

        let extras = r#"{"task": {"type": "microdroid_launcher", "command": "payload"},
            "extra_apks": [{"path": "/data/extra.apk"}]}"#;
        let (code, msg) = status(&app(d, "extras", Some(extras), &static_binary()));
        assert_eq!(code, exit_status::BAD_CONFIG);
        assert!(
            msg.contains("it lists 1 extra APKs, and 0 were given with --extra-apk"),
            "{msg}"
        );

        let library = std::fs::read_dir("/lib/x86_64-linux-gnu")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libz.so.1."))
            })
            .unwrap();
        let (code, msg) = status(&app(d, "library", Some(CONFIG), &library));
        assert_eq!(code, exit_status::BAD_PAYLOAD_BINARY);
        assert!(
            msg.contains("it is a shared library, not an executable"),
            "{msg}"
        );

        let other = r#"{"task": {"type": "microdroid_launcher", "command": "other"}}"#;
        let (code, msg) = status(&app(d, "missing", Some(other), &static_binary()));
        assert_eq!(code, exit_status::BAD_CONFIG);
        assert!(
            msg.contains("it names lib/x86_64/other, which the APK does not have"),
            "{msg}"
        );

        let good = app(d, "good", Some(CONFIG), &static_binary());
        let swapped = AppPayload {
            idsig: dynamic.idsig.clone(),
            ..good.clone()
        };
        let (code, msg) = status(&swapped);
        assert_eq!(code, exit_status::IDSIG_MISMATCH, "{msg}");
        assert!(msg.contains("vmctl create-idsig"), "{msg}");

        let unsigned = d.join("unsigned.apk");
        let zip = ziparchive::write::build_zip(&[ziparchive::write::ZipEntry::new(
            "assets/vm_config.json",
            CONFIG.as_bytes().to_vec(),
        )])
        .unwrap();
        fs::write(&unsigned, zip).unwrap();
        let (code, msg) = status(&AppPayload {
            apk: unsigned,
            ..good
        });
        assert_eq!(code, exit_status::UNSIGNED_APK, "{msg}");
    }
}
