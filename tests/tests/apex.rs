//! APEXes in an app VM: built on the host (`libs/apex`), put on the payload disk as
//! `microdroid-apex-<i>`, verified and mounted by the guest's apexd at /apex/<name> through
//! dm-verity before the payload config is loaded.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boot_tests::{boot, build_image, console_text, guest_bin_dir, workspace_root, ImageChanges};
use host_tools::app::{AppPayload, PayloadSpec};
use host_tools::outcome::VmOutcome;
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(90);
const APEX_NAME: &str = "com.example.hello";
/// The payload runs from the APEX, not from the APK.
const CONFIG: &str =
    r#"{"task": {"type": "executable", "command": "/apex/com.example.hello/bin/hello_payload"}}"#;

fn key(bits: u32) -> avb::SigningKey {
    avb::SigningKey::from_pem_file(
        workspace_root().join(format!("libs/avb/testkeys/testkey_rsa{bits}.pem")),
    )
    .unwrap()
}

/// A signed APK whose vm_config.json runs the APEX's executable.
fn make_apk(dir: &Path) -> (PathBuf, PathBuf) {
    let tree = dir.join("apk.tree");
    fs::create_dir_all(tree.join("assets")).unwrap();
    fs::write(tree.join("assets/vm_config.json"), CONFIG).unwrap();
    boot_tests::write_manifest(&tree, "com.example.test", 1);
    boot_tests::sign_tree(&tree, &dir.join("app.apk"), boot_tests::TestSigner::Rsa)
}

/// An APEX holding bin/hello_payload, its payload signed by `signer`, with `apex_pubkey` =
/// `bundled`'s public key.
fn make_apex(dir: &Path, signer: &avb::SigningKey, bundled: &avb::SigningKey) -> PathBuf {
    make_apex_version(dir, signer, bundled, 1, "hello.apex")
}

/// [`make_apex`] with a version, written to `file_name`.
fn make_apex_version(
    dir: &Path,
    signer: &avb::SigningKey,
    bundled: &avb::SigningKey,
    version: i64,
    file_name: &str,
) -> PathBuf {
    let tree = dir.join(format!("{file_name}.tree"));
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::copy(
        guest_bin_dir().join("hello_payload"),
        tree.join("bin/hello_payload"),
    )
    .unwrap();
    let (image, _) = apex::write::build_payload_image(&tree, APEX_NAME, signer).unwrap();
    let manifest = apex::ApexManifest {
        name: APEX_NAME.into(),
        version,
        version_name: version.to_string(),
        ..Default::default()
    };
    let pubkey = bundled.public_key().unwrap().to_avb_bytes();
    let path = dir.join(file_name);
    fs::write(
        &path,
        apex::write::build_apex_zip(&manifest, &pubkey, &image).unwrap(),
    )
    .unwrap();
    path
}

fn run_app(image: &Path, apex: PathBuf) -> host_tools::vm::VmResult {
    let (apk, idsig) = make_apk(image);
    let mut config = boot_tests::vm_config(image, TIMEOUT);
    config.app = Some(AppPayload {
        apk,
        idsig,
        payload: PayloadSpec::ConfigPath("assets/vm_config.json".into()),
        extra_apks: vec![],
        apexes: vec![apex],
    });
    config.instance = Some(image.join("instance.img"));
    boot(&config).unwrap()
}

fn death(result: &host_tools::vm::VmResult) -> (DeathReason, Option<String>) {
    match &result.outcome {
        VmOutcome::GuestError(d) => (d.reason, d.detail.clone()),
        other => panic!(
            "expected a guest error, got {other:?}\n{}",
            console_text(result)
        ),
    }
}

#[test]
fn payload_runs_from_a_verified_apex() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let key = key(4096);
    let apex = make_apex(image.path(), &key, &key);
    let result = run_app(image.path(), apex);
    let console = console_text(&result);
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    for line in [
        "apexd: com.example.hello@1 verified (root digest ",
        "mounted at /apex/com.example.hello",
        "starting payload /apex/com.example.hello/bin/hello_payload",
        "payload: Hello from Microdroid",
    ] {
        assert!(console.contains(line), "{line:?} missing:\n{console}");
    }
}

#[test]
fn one_flipped_byte_of_the_payload_image_is_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let key = key(4096);
    let path = make_apex(image.path(), &key, &key);
    let mut bytes = fs::read(&path).unwrap();
    let payload = apex::ApexFile::parse(bytes.as_slice()).unwrap().payload;
    // Block 0 of the erofs image (before the superblock, which starts at 1024): the mount
    // reads it through dm-verity, which must fail it.
    bytes[payload.offset as usize] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let result = run_app(image.path(), path);
    let console = console_text(&result);
    assert_eq!(
        death(&result).0,
        DeathReason::MicrodroidPayloadVerificationFailed,
        "{console}"
    );
    // The death reason carries no detail; microdroid_manager's message names the APEX and step.
    assert!(
        console.contains(
            "APEX com.example.hello (partition microdroid-apex-0): mounting the verified payload"
        ),
        "{console}"
    );
    assert!(
        console.contains("verity: 7:"),
        "dm-verity must report the block: {console}"
    );
    assert!(
        !console.contains("payload: Hello"),
        "the payload must not run"
    );
}

#[test]
fn apex_signed_by_a_key_other_than_its_apex_pubkey_is_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let apex = make_apex(image.path(), &key(4096), &key(2048));
    let result = run_app(image.path(), apex);
    let console = console_text(&result);
    assert_eq!(
        death(&result).0,
        DeathReason::MicrodroidPayloadVerificationFailed,
        "{console}"
    );
    assert!(
        console
            .contains("verifying the APEX: apex_payload.img is not validly signed by apex_pubkey"),
        "{console}"
    );
    assert!(!console.contains("payload: Hello"));
}

#[test]
fn the_instance_pins_each_apex_key_and_version() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (k4096, k2048) = (key(4096), key(2048));
    let v2 = make_apex_version(dir, &k4096, &k4096, 2, "v2.apex");
    let first = run_app(dir, v2.clone());
    let console = console_text(&first);
    assert_eq!(first.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console.contains("instance image: payload recorded"),
        "{console}"
    );

    // A lower version by the same key: a rollback.
    let v1 = make_apex_version(dir, &k4096, &k4096, 1, "v1.apex");
    let result = run_app(dir, v1);
    let console = console_text(&result);
    assert_eq!(
        death(&result).0,
        DeathReason::MicrodroidPayloadHasChanged,
        "{console}"
    );
    assert!(
        console.contains(
            "APEX com.example.hello: version 1 is a rollback from the recorded version 2"
        ),
        "{console}"
    );
    assert!(!console.contains("payload: Hello"));

    // A higher version by another key.
    let other = make_apex_version(dir, &k2048, &k2048, 3, "other.apex");
    let result = run_app(dir, other);
    let console = console_text(&result);
    assert_eq!(
        death(&result).0,
        DeathReason::MicrodroidPayloadHasChanged,
        "{console}"
    );
    assert!(
        console.contains("APEX com.example.hello is signed by another key than the one recorded"),
        "{console}"
    );

    // A higher version by the same key: an update, recorded.
    let v3 = make_apex_version(dir, &k4096, &k4096, 3, "v3.apex");
    let result = run_app(dir, v3);
    let console = console_text(&result);
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console
            .contains("instance image: update recorded (APEX com.example.hello: version 2 -> 3)"),
        "{console}"
    );
    // ... after which version 2 is a rollback too.
    let result = run_app(dir, v2);
    assert_eq!(death(&result).0, DeathReason::MicrodroidPayloadHasChanged);
}
