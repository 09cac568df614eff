//! The app payload: a signed APK, verified (v4 idsig tree under dm-verity, v3 signature read
//! through it), mounted by zipfuse, configured by its vm_config.json, run as its own user.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boot_tests::{boot, build_image, console_text, ImageChanges};
use host_tools::app::{AppPayload, PayloadSpec};
use host_tools::outcome::VmOutcome;
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(90);
const DEMO_CONFIG: &str =
    r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#;

/// A signed APK with `assets/vm_config.json` = `config` and the demo payload binary, and its
/// idsig.
fn make_apk(dir: &Path, name: &str, config: &str) -> (PathBuf, PathBuf) {
    boot_tests::demo_apk(
        dir,
        name,
        config,
        "com.example.test",
        1,
        boot_tests::TestSigner::Rsa,
    )
}

fn run_app(image: &Path, app: AppPayload) -> host_tools::vm::VmResult {
    let mut config = boot_tests::vm_config(image, TIMEOUT);
    config.app = Some(app);
    config.instance = Some(image.join("instance.img"));
    boot(&config).unwrap()
}

fn app(apk: PathBuf, idsig: PathBuf) -> AppPayload {
    AppPayload::from_config_path(apk, idsig, "assets/vm_config.json")
}

fn death(result: &host_tools::vm::VmResult) -> (DeathReason, String) {
    match &result.outcome {
        VmOutcome::GuestError(d) => (d.reason, d.detail.clone().unwrap_or_default()),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn demo_app_runs_from_its_signed_apk() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "demo", DEMO_CONFIG);
    let result = run_app(image.path(), app(apk, idsig));
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
    let console = console_text(&result);
    for line in [
        "apkdmverity: /dev/block/mapper/microdroid-apk",
        "APK signature verified",
        "zipfuse: APK mounted at /mnt/apk",
        // No APEX in the metadata: the manager writes the empty list, apexd is not started.
        "no APEX in the payload metadata: 0 APEX(es) active, /apex/apex-info-list.xml written",
        "starting payload /mnt/apk/lib/x86_64/hello_payload",
        "payload: Hello from Microdroid",
    ] {
        assert!(console.contains(line), "{line:?} missing:\n{console}");
    }
}

/// Fault matrix row 55: the demo runs with exactly the least memory a Microdroid VM is given
/// (so a kernel or image that outgrows it fails here), and asking for less, as for 10 to 40 MiB,
/// is refused before anything starts, saying why.
#[test]
fn the_least_memory_runs_the_payload_and_less_is_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "small", DEMO_CONFIG);
    let mut config = boot_tests::vm_config(image.path(), TIMEOUT);
    config.app = Some(app(apk, idsig));
    config.instance = Some(image.path().join("instance.img"));
    config.memory_mib = host_tools::vm::MIN_MEMORY_MIB;
    let result = boot(&config).unwrap();
    assert_eq!(
        result.outcome,
        VmOutcome::PayloadFinished(0),
        "{}",
        console_text(&result)
    );
    for mib in [10, 40, host_tools::vm::MIN_MEMORY_MIB - 1] {
        config.memory_mib = mib;
        let started = std::time::Instant::now();
        let err = host_tools::vm::run(&config).unwrap_err();
        assert!(
            err.downcast_ref::<host_tools::vm::MemoryTooSmall>()
                .is_some(),
            "{err:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn payload_binary_name_from_the_metadata() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "demo", "{}");
    let result = run_app(
        image.path(),
        AppPayload {
            payload: PayloadSpec::BinaryName("hello_payload".into()),
            ..app(apk, idsig)
        },
    );
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
}

#[test]
fn one_changed_byte_in_the_apk_fails_verification() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "demo", DEMO_CONFIG);
    let mut bytes = fs::read(&apk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&apk, bytes).unwrap();
    let result = run_app(image.path(), app(apk, idsig));
    let (reason, _) = death(&result);
    assert_eq!(reason, DeathReason::MicrodroidPayloadVerificationFailed);
    assert!(
        !console_text(&result).contains("payload: Hello"),
        "the payload must not run"
    );
}

#[test]
fn changed_idsig_tree_fails_verification() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "demo", DEMO_CONFIG);
    let mut bytes = fs::read(&idsig).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&idsig, bytes).unwrap();
    let result = run_app(image.path(), app(apk, idsig));
    assert_eq!(
        death(&result).0,
        DeathReason::MicrodroidPayloadVerificationFailed
    );
}

#[test]
fn config_without_a_task_is_an_invalid_payload_config() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "notask", r#"{"export_tombstones": true}"#);
    let result = run_app(image.path(), app(apk, idsig));
    let (reason, _) = death(&result);
    assert_eq!(reason, DeathReason::MicrodroidInvalidPayloadConfig);
    assert!(console_text(&result).contains("No task in VM config"));
}

#[test]
fn payload_killed_by_a_signal_is_reported_as_such() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let config = r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload", "args": ["--signal", "9"]}}"#;
    let (apk, idsig) = make_apk(image.path(), "signal", config);
    let result = run_app(image.path(), app(apk, idsig));
    let (reason, detail) = death(&result);
    assert_eq!(reason, DeathReason::MicrodroidUnknownRuntimeError);
    assert!(
        detail.contains("Payload exited due to signal: 9 (SIGKILL)"),
        "{detail}"
    );
}

#[test]
fn extra_apk_is_mounted_noexec() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let extra_binary = "/mnt/extra-apk/0/lib/x86_64/hello_payload";
    let config = format!(
        r#"{{"task": {{"type": "microdroid_launcher", "command": "hello_payload", "args": ["--exec", "{extra_binary}"]}},
            "extra_apks": [{{"path": "extra.apk"}}]}}"#
    );
    let (apk, idsig) = make_apk(image.path(), "main", &config);
    let (extra, _) = make_apk(image.path(), "extra", DEMO_CONFIG);
    let result = run_app(
        image.path(),
        AppPayload {
            extra_apks: vec![extra],
            ..app(apk, idsig)
        },
    );
    let console = console_text(&result);
    assert!(
        console.contains("zipfuse: extra APK 0 mounted noexec at /mnt/extra-apk/0"),
        "{console}"
    );
    assert!(
        console.contains(&format!("cannot execute {extra_binary}: Permission denied")),
        "{console}"
    );
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(126));
}

/// The demo app with `--reach-host-service`.
fn reach_app(dir: &Path) -> AppPayload {
    let (apk, idsig) = make_apk(
        dir,
        "reach",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload", "args": ["--reach-host-service"]}}"#,
    );
    app(apk, idsig)
}

#[test]
fn a_payload_cannot_use_the_hosts_virtual_machine_service() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let result = run_app(image.path(), reach_app(image.path()));
    let console = console_text(&result);
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console.contains("payload: the host service refused the payload"),
        "{console}"
    );
    let events = boot_tests::payload_events(&result);
    assert!(
        !events.contains(&vm_service::VmEventKind::PayloadFinished(77)),
        "the payload's call reached the host: {events:?}"
    );
}

#[test]
fn library_log_lines_stay_off_the_console() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = make_apk(image.path(), "demo", DEMO_CONFIG);
    let result = run_app(image.path(), app(apk, idsig));
    let console = console_text(&result);
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console.contains("zipfuse: APK mounted at /mnt/apk"),
        "{console}"
    );
    // fuser's own "[INFO fuser::session] Mounting ..." is a library's chatter.
    assert!(!console.contains("fuser::session"), "{console}");
}
