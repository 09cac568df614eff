//! Boot tests: each builds a fresh guest image and boots it under QEMU (TCG), asserting on what
//! the host sees. Each VM runs under a timeout; none can hang the suite.

use std::process::Command;
use std::time::Duration;

use boot_tests::{boot, build_image, console_text, vm_config, workspace_root, ImageChanges};
use host_tools::outcome::{exit_status, VmOutcome};
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn demo_payload_output_and_exit_code_reach_the_host() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
    let console = console_text(&result);
    assert!(console.contains("] payload: Hello from Microdroid"), "{console}");
    assert!(console.contains("init: loaded 19 kernel modules"), "{console}");
    assert!(console.contains("init: power off"), "{console}");
}

#[test]
fn failing_payload_exit_code_reaches_the_host() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "3"]}}"#;
    let image = build_image(&ImageChanges { vm_config: Some(config), ..Default::default() }).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(3));
    assert_eq!(result.outcome.exit_status(), 3);
    assert!(console_text(&result).contains("payload: exiting with status 3 as asked"));
}

#[test]
fn payload_killed_by_a_signal_is_reported_as_such() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--signal", "9"]}}"#;
    let image = build_image(&ImageChanges { vm_config: Some(config), ..Default::default() }).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::GuestError(death) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(death.reason, DeathReason::MicrodroidUnknownRuntimeError);
    assert!(death.detail.as_deref().unwrap_or("").contains("Payload exited due to signal: 9 (SIGKILL)"), "{death:?}");
    assert_eq!(result.outcome.exit_status(), exit_status::GUEST_ERROR);
}

#[test]
fn config_without_task_is_an_invalid_payload_config() {
    let image = build_image(&ImageChanges {
        vm_config: Some(r#"{"export_tombstones": true}"#),
        unchecked: true,
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::GuestError(death) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert_eq!(death.reason, DeathReason::MicrodroidInvalidPayloadConfig);
    assert!(console_text(&result).contains("No task in VM config"));
}

#[test]
fn broken_init_configuration_fails_fast_with_a_clear_message() {
    let rc = "service microdroid_manager /system/bin/microdroid_manager\n    oneshot\n    respawn_forever\n";
    let image = build_image(&ImageChanges { init_rc: Some(rc), unchecked: true, ..Default::default() }).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::InitFailed(Some(death)) = &result.outcome else { panic!("{:?}", result.outcome) };
    let detail = death.detail.as_deref().unwrap_or("");
    assert!(detail.contains("bad init configuration /system/etc/init/init.rc"), "{detail}");
    assert!(detail.contains("line 3: unknown option \"respawn_forever\""), "{detail}");
    assert!(console_text(&result).contains("init: FATAL: bad init configuration"));
    assert_eq!(result.outcome.exit_status(), exit_status::GUEST_ERROR);
}

#[test]
fn missing_service_binary_fails_the_boot() {
    let rc = "service microdroid_manager /system/bin/no_such_manager\n    oneshot\n    poweroff_on_exit\n";
    let image = build_image(&ImageChanges { init_rc: Some(rc), unchecked: true, ..Default::default() }).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::InitFailed(Some(death)) = &result.outcome else { panic!("{:?}", result.outcome) };
    assert!(death.detail.as_deref().unwrap_or("").contains("starting service \"microdroid_manager\""), "{death:?}");
}

#[test]
fn guest_that_never_finishes_is_stopped_by_the_timeout() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;
    let image = build_image(&ImageChanges { vm_config: Some(config), ..Default::default() }).unwrap();
    let result = boot(&vm_config(image.path(), Duration::from_secs(15))).unwrap();
    assert_eq!(result.outcome, VmOutcome::Timeout { seconds: 15 });
    assert_eq!(result.outcome.exit_status(), exit_status::TIMEOUT);
    // It did boot and start the payload before hanging.
    assert!(console_text(&result).contains("payload: Hello from Microdroid"));
}

#[test]
fn kernel_panic_is_reported_as_a_crash() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = vm_config(image.path(), TIMEOUT);
    // No init at this path: the kernel panics before any module is loaded.
    config.extra_kernel_args = vec!["rdinit=/no/such/init".into()];
    let result = boot(&config).unwrap();
    assert_eq!(result.outcome, VmOutcome::KernelPanic);
    assert_eq!(result.outcome.exit_status(), exit_status::KERNEL_PANIC);
}

#[test]
fn vmctl_binary_exits_with_the_payload_status() {
    let vmctl = workspace_root().join("target/release/vmctl");
    assert!(vmctl.exists(), "{} missing: run `make test`", vmctl.display());
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "42"]}}"#;
    let image = build_image(&ImageChanges { vm_config: Some(config), ..Default::default() }).unwrap();
    let out = Command::new(&vmctl)
        .args(["run", "--timeout", "90", "--os"])
        .arg(image.path().join("vm_os.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("Hello from Microdroid"), "{stdout}");
    assert!(stderr.contains("vmctl: payload exited with status 42"), "{stderr}");
}
