//! Helpers for the boot tests in `tests/`: build a guest image from the workspace's static guest
//! binaries and the kernel `make setup` prepared, and boot it.
//!
//! The boot tests need `make image` (or `make test`, which runs it) to have built the guest
//! binaries; they fail with a message saying so otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use host_tools::qemu::Accel;
use host_tools::vm::{self, VmConfig, VmResult};
use tempfile::TempDir;
pub use vm_service::VmEventKind;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn kernel_dir() -> PathBuf {
    workspace_root().join("build/kernel")
}

pub fn guest_bin_dir() -> PathBuf {
    workspace_root().join("target/x86_64-unknown-linux-gnu/release")
}

/// What to change from the default image.
#[derive(Default, Clone)]
pub struct ImageChanges<'a> {
    pub init_rc: Option<&'a str>,
    pub vm_config: Option<&'a str>,
    /// Skip the builder's checks, to build images the guest must refuse.
    pub unchecked: bool,
    /// PEM public key the initramfs trusts instead of the signing key's.
    pub trusted_key_pem: Option<&'a str>,
    /// More guest binaries for the system partition's `bin/`.
    pub extra_binaries: &'a [&'a str],
}

/// Builds a guest image in a fresh temporary directory.
pub fn build_image(changes: &ImageChanges<'_>) -> Result<TempDir> {
    ensure!(
        guest_bin_dir().join("init").exists() && kernel_dir().join("vmlinuz").exists(),
        "guest binaries or kernel missing: run `make image` (or `make test`) first"
    );
    let dir = tempfile::Builder::new().prefix("boot-test-").tempdir()?;
    let mut spec = image::ImageSpec::new(&kernel_dir(), &guest_bin_dir());
    if let Some(rc) = changes.init_rc {
        spec.init_rc = rc.as_bytes().to_vec();
    }
    if let Some(config) = changes.vm_config {
        spec.vm_config = config.as_bytes().to_vec();
    }
    spec.validate = !changes.unchecked;
    spec.trusted_key_pem = changes.trusted_key_pem.map(str::to_owned);
    spec.extra_binaries = changes
        .extra_binaries
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    image::build(&spec, dir.path()).context("building the guest image")?;
    Ok(dir)
}

/// vmctl's defaults (QEMU under TCG, a free CID from the host's registry, hang detection after
/// 30 s), with the console kept in the image directory.
pub fn vm_config(image_dir: &Path, timeout: Duration) -> VmConfig {
    VmConfig {
        accel: Accel::Tcg,
        timeout,
        debuggable: true,
        console_to_terminal: false,
        console_log: Some(image_dir.join("console.log")),
        logs_dir: Some(image_dir.join("logs")),
        // Each test image has its own host identity, kept beside it.
        device_secret: image_dir.join("device_secret"),
        ..VmConfig::new(&image_dir.join(image::MANIFEST_NAME))
    }
}

/// Boots an image and returns what happened, printing the console for the test log.
pub fn boot(config: &VmConfig) -> Result<VmResult> {
    let result = vm::run(config)?;
    println!(
        "--- console ---\n{}--- events:",
        String::from_utf8_lossy(&result.console)
    );
    for event in &result.events {
        println!("  {}", event.describe());
    }
    println!(
        "--- outcome: {} (CID {}, {:.2} s)",
        result.outcome,
        result.cid,
        result.wall_time.as_secs_f64()
    );
    Ok(result)
}

/// The guest's notifications, without session bookkeeping (disconnects).
pub fn payload_events(result: &VmResult) -> Vec<VmEventKind> {
    result
        .events
        .iter()
        .map(|e| e.kind.clone())
        .filter(|k| !matches!(k, VmEventKind::Disconnected { .. }))
        .collect()
}

pub fn console_text(result: &VmResult) -> String {
    String::from_utf8_lossy(&result.console).into_owned()
}

/// Writes a binary AndroidManifest.xml (package, version code) into an APK tree, as
/// `vmctl package-apk` does: the guest pins the APK by them.
pub fn write_manifest(tree: &Path, package: &str, version_code: u64) {
    let options = host_tools::app::ManifestOptions {
        package: Some(package.to_owned()),
        version_code,
        min_sdk_version: 34,
    };
    let bytes = host_tools::app::manifest_bytes(package, &options)
        .unwrap_or_else(|e| panic!("writing the manifest of {package}: {e:#}"));
    std::fs::write(tree.join(host_tools::app::MANIFEST_ENTRY), bytes)
        .unwrap_or_else(|e| panic!("writing the manifest into {}: {e}", tree.display()));
}

/// The test keys an APK can be signed with (libs/apksig/testkeys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestSigner {
    Rsa,
    Ec,
}

/// Packages and signs an APK tree (as `vmctl package-apk` with the given key, without adding a
/// manifest) and makes its idsig: (APK, idsig).
pub fn sign_tree(tree: &Path, apk: &Path, signer: TestSigner) -> (PathBuf, PathBuf) {
    let keys = workspace_root().join("libs/apksig/testkeys");
    let (key, cert) = match signer {
        TestSigner::Rsa => ("testkey.pk8", "testkey.x509.pem"),
        TestSigner::Ec => ("testkey_ec.pk8", "testkey_ec.x509.pem"),
    };
    let files = host_tools::app::apk_files_from_dir(tree)
        .unwrap_or_else(|e| panic!("listing {}: {e:#}", tree.display()));
    host_tools::app::package_apk(&files, &keys.join(key), &keys.join(cert), apk)
        .unwrap_or_else(|e| panic!("packaging {}: {e:#}", apk.display()));
    let idsig = apk.with_extension("apk.idsig");
    host_tools::app::create_idsig(apk, &idsig)
        .unwrap_or_else(|e| panic!("making the idsig of {}: {e:#}", apk.display()));
    (apk.to_owned(), idsig)
}

/// A signed APK in `dir` named `<name>.apk`: the demo payload in `lib/x86_64/hello_payload`,
/// `config` as `assets/vm_config.json`, a manifest for `package` at `version_code`; and its
/// idsig. The tree stays at `<dir>/<name>.tree`.
pub fn demo_apk(
    dir: &Path,
    name: &str,
    config: &str,
    package: &str,
    version_code: u64,
    signer: TestSigner,
) -> (PathBuf, PathBuf) {
    let tree = dir.join(format!("{name}.tree"));
    let lib = tree.join("lib/x86_64");
    std::fs::create_dir_all(&lib)
        .and_then(|_| std::fs::create_dir_all(tree.join("assets")))
        .unwrap_or_else(|e| panic!("creating {}: {e}", tree.display()));
    std::fs::copy(
        guest_bin_dir().join("hello_payload"),
        lib.join("hello_payload"),
    )
    .unwrap_or_else(|e| panic!("copying hello_payload (run `make image`): {e}"));
    std::fs::write(tree.join("assets/vm_config.json"), config)
        .unwrap_or_else(|e| panic!("writing the config: {e}"));
    write_manifest(&tree, package, version_code);
    sign_tree(&tree, &dir.join(format!("{name}.apk")), signer)
}

/// Runs the VM and, once its payload is ready, `host_side` on a thread of its own with the VM's
/// guest vsock socket (where `host_tools::vsock::connect` reaches the payload's ports). Returns
/// the VM's result and, if the payload became ready, what `host_side` returned.
pub fn run_with_ready_payload<T: Send + 'static>(
    config: &VmConfig,
    host_side: impl FnOnce(PathBuf) -> T + Send + 'static,
) -> Result<(VmResult, Option<T>)> {
    let mut uds = None;
    let mut host_side = Some(host_side);
    let mut worker = None;
    let result = vm::run_observed(config, &mut |notice| match notice {
        vm::Notice::Started(record) => {
            uds = Some(host_tools::vsock::guest_vsock_socket(&record.run_dir))
        }
        vm::Notice::Event(event) if event.kind == VmEventKind::PayloadReady => {
            if let (Some(uds), Some(f)) = (uds.clone(), host_side.take()) {
                worker = Some(std::thread::spawn(move || f(uds)));
            }
        }
        vm::Notice::Event(_) => {}
    })?;
    let answer = match worker {
        Some(worker) => Some(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("the host side panicked"))?,
        ),
        None => None,
    };
    Ok((result, answer))
}

/// Where the dynamic guest build (the payload runtime: libvm_payload.so, libbinder_ndk.so,
/// microdroid_launcher) is.
pub fn guest_dyn_dir() -> PathBuf {
    workspace_root().join("target/guest-dyn/x86_64-unknown-linux-gnu/release")
}

/// Compiles C `source` into the shared library `out` with `cc` (against include/, linked with
/// `libs` from `out`'s directory or the payload runtime), as a payload developer would.
pub fn cc_shared(out: &Path, source: &str, libs: &[&str]) {
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
    let mut cc = std::process::Command::new("cc");
    cc.args([
        "-shared",
        "-fPIC",
        "-Wall",
        "-Werror",
        "-std=c11",
        "-D_GNU_SOURCE",
    ])
    .arg("-I")
    .arg(workspace_root().join("include"))
    .arg("-o")
    .arg(out)
    .arg(&src)
    .arg("-L")
    .arg(out.parent().unwrap_or(Path::new(".")))
    .arg("-L")
    .arg(guest_dyn_dir());
    for lib in libs {
        cc.arg(format!("-l{lib}"));
    }
    let status = cc.status().unwrap_or_else(|e| panic!("running cc: {e}"));
    assert!(status.success(), "cc {}", out.display());
}

/// Debian's stock `adb` client with a private server (its own port and `HOME`), killed when
/// dropped: the oracle the adbd tests drive.
pub struct AdbClient {
    home: TempDir,
    server_port: u16,
    pub serial: String,
}

impl Drop for AdbClient {
    fn drop(&mut self) {
        let _ = self.adb(&["kill-server"]);
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

impl AdbClient {
    /// `adb connect 127.0.0.1:PORT`; panics unless it says "connected to".
    pub fn connect(port: u16) -> AdbClient {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let c = AdbClient {
            home,
            server_port: free_port(),
            serial: format!("127.0.0.1:{port}"),
        };
        // The exit status of `adb connect` is 0 either way: its words say how it went.
        let out = c.adb(&["connect", &c.serial.clone()]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("connected to"),
            "adb connect: {out:?}"
        );
        c
    }

    /// Runs `adb ARGS` (60 s at most).
    pub fn adb(&self, args: &[&str]) -> std::process::Output {
        self.adb_with_input(args, None)
    }

    pub fn adb_with_input(&self, args: &[&str], input: Option<&[u8]>) -> std::process::Output {
        use std::process::Stdio;
        let mut child = std::process::Command::new("timeout")
            .arg("60")
            .arg("adb")
            .arg("-P")
            .arg(self.server_port.to_string())
            .args(args)
            .env("HOME", self.home.path())
            .env("TERM", "dumb")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running adb (Debian package adb, from make setup): {e}"));
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            std::io::Write::write_all(&mut stdin, data)
                .unwrap_or_else(|e| panic!("adb stdin: {e}"));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for adb: {e}"))
    }

    /// `adb -s SERIAL ARGS`.
    pub fn on(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["-s", self.serial.as_str()];
        all.extend_from_slice(args);
        self.adb(&all)
    }
}
