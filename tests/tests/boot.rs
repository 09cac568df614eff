//! Boot tests: each builds a fresh guest image and boots it under QEMU (TCG), asserting on what
//! the host sees. Each VM runs under a timeout; none can hang the suite.

use std::process::Command;
use std::time::Duration;

use boot_tests::{
    boot, build_image, console_text, payload_events, vm_config, workspace_root, ImageChanges,
    VmEventKind,
};
use host_tools::outcome::{exit_status, VmOutcome};
use host_tools::registry::{GUEST_CID_MAX, GUEST_CID_MIN};
use vm_service::{ErrorCode, PayloadState};
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn demo_payload_output_and_exit_code_reach_the_host() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
    // The payload's result came over binder RPC, in AOSP's order (microdroid_manager reports
    // started before spawning the payload, which then calls ready through IVmPayloadService),
    // from a CID in AOSP's range.
    assert_eq!(
        payload_events(&result),
        [
            VmEventKind::PayloadStarted,
            VmEventKind::PayloadReady,
            VmEventKind::PayloadFinished(0)
        ]
    );
    assert!(result.events.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(
        (GUEST_CID_MIN..=GUEST_CID_MAX).contains(&result.cid),
        "{}",
        result.cid
    );
    let console = console_text(&result);
    assert!(
        console.contains("] payload: Hello from Microdroid"),
        "{console}"
    );
    // The OS disk is the VMDK view of the composite over the image's partition files.
    assert!(
        console.contains("init: mounted system_a read-only at /system"),
        "{console}"
    );
    // init loads every module the builder put in modules.load.
    let kernel = boot_tests::kernel_dir();
    let release = image::kernel_release(&kernel).unwrap();
    let dep = std::fs::read_to_string(
        kernel
            .join("root/lib/modules")
            .join(release)
            .join("modules.dep"),
    )
    .unwrap();
    let expected = image::modules::ModuleDeps::parse(&dep)
        .unwrap()
        .load_order(image::modules::GUEST_MODULES)
        .unwrap()
        .len();
    assert!(
        console.contains(&format!("init: loaded {expected} kernel modules")),
        "{console}"
    );
    assert!(console.contains("init: power off"), "{console}");
}

#[test]
fn failing_payload_exit_code_reaches_the_host() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "3"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(3));
    assert_eq!(result.outcome.exit_status(), 3);
    assert_eq!(
        payload_events(&result),
        [
            VmEventKind::PayloadStarted,
            VmEventKind::PayloadReady,
            VmEventKind::PayloadFinished(3)
        ]
    );
    assert!(console_text(&result).contains("payload: exiting with status 3 as asked"));
}

#[test]
fn second_ready_is_refused_by_the_host_and_the_payload_is_told() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--ready-twice"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    // The payload exits 0 only if its second ready came back refused.
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
    assert_eq!(
        payload_events(&result),
        [
            VmEventKind::PayloadStarted,
            VmEventKind::PayloadReady,
            VmEventKind::Rejected {
                method: "notifyPayloadReady",
                state: PayloadState::Ready
            },
            VmEventKind::PayloadFinished(0)
        ]
    );
    let console = console_text(&result);
    assert!(
        console.contains(
            "payload: second notifyPayloadReady refused: service error: EX_ILLEGAL_STATE (-5): \
             Invalid payload state transition from Ready to Ready"
        ),
        "{console}"
    );
    assert!(
        console.contains("microdroid_manager: notifyPayloadReady refused by the host"),
        "{console}"
    );
}

#[test]
fn payload_killed_by_a_signal_is_reported_as_such() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--signal", "9"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::GuestError(death) = &result.outcome else {
        panic!("{:?}", result.outcome)
    };
    assert_eq!(death.reason, DeathReason::MicrodroidUnknownRuntimeError);
    assert!(
        death
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("Payload exited due to signal: 9 (SIGKILL)"),
        "{death:?}"
    );
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
    let VmOutcome::GuestError(death) = &result.outcome else {
        panic!("{:?}", result.outcome)
    };
    assert_eq!(death.reason, DeathReason::MicrodroidInvalidPayloadConfig);
    assert!(console_text(&result).contains("No task in VM config"));
    // notifyError carried AOSP's code and the message; the payload never started.
    let events = payload_events(&result);
    let [VmEventKind::Error { code, message }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(*code, ErrorCode::PAYLOAD_INVALID_CONFIG);
    assert!(message.contains("No task in VM config"), "{message}");
}

#[test]
fn guest_that_cannot_reach_the_host_service_says_so_on_ttys1() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = vm_config(image.path(), TIMEOUT);
    config.serve_vm_service = false;
    let result = boot(&config).unwrap();
    let VmOutcome::GuestError(death) = &result.outcome else {
        panic!("{:?}", result.outcome)
    };
    assert_eq!(
        death.reason,
        DeathReason::MicrodroidFailedToConnectToVirtualizationService
    );
    assert!(result.events.is_empty(), "{:?}", result.events);
    // As AOSP: no payload runs without the host link.
    assert!(!console_text(&result).contains("payload: Hello from Microdroid"));
}

const HANG_DEADLINE_SECS: u64 = 15;

#[test]
fn payload_that_never_starts_is_stopped_as_a_hangup() {
    // init runs a service that never calls notifyPayloadStarted (no microdroid_manager).
    let rc = "service stuck /system/bin/hello_payload --hang\n    oneshot\n    console\n    poweroff_on_exit\n";
    let image = build_image(&ImageChanges {
        init_rc: Some(rc),
        ..Default::default()
    })
    .unwrap();
    let mut config = vm_config(image.path(), TIMEOUT);
    // Long enough for the stuck service to start and print while three other VMs boot on the
    // two CPUs (`make test` runs two test groups side by side): in one CI run init itself
    // started only at guest uptime 3.8 s and an 8 s deadline fired before the service ran.
    config.boot_timeout = Some(Duration::from_secs(HANG_DEADLINE_SECS));
    let result = boot(&config).unwrap();
    assert_eq!(
        result.outcome,
        VmOutcome::Hangup {
            seconds: HANG_DEADLINE_SECS
        }
    );
    assert_eq!(result.outcome.death_reason(), DeathReason::Hangup);
    assert_eq!(result.outcome.exit_status(), exit_status::TIMEOUT);
    assert!(
        console_text(&result).contains("stuck: Hello from Microdroid"),
        "{}",
        console_text(&result)
    );
}

#[test]
fn two_vms_at_once_get_distinct_cids_and_cids_are_recycled() {
    let image = build_image(&ImageChanges::default()).unwrap();
    // A private registry, so that VMs of other tests do not take CIDs.
    let registry = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let mut config = vm_config(image.path(), TIMEOUT);
        config.runtime_dir = registry.path().to_owned();
        config.console_log = Some(image.path().join(name));
        config
    };
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| boot(&config("a.log")).unwrap());
        let b = s.spawn(|| boot(&config("b.log")).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(first.outcome, VmOutcome::PayloadFinished(0));
    assert_eq!(second.outcome, VmOutcome::PayloadFinished(0));
    let mut cids = [first.cid, second.cid];
    cids.sort_unstable();
    assert_eq!(cids, [GUEST_CID_MIN, GUEST_CID_MIN + 1]);
    // Both ended: the lowest CID is free again.
    let third = boot(&config("c.log")).unwrap();
    assert_eq!(
        (third.cid, third.outcome),
        (GUEST_CID_MIN, VmOutcome::PayloadFinished(0))
    );
}

#[test]
fn broken_init_configuration_fails_fast_with_a_clear_message() {
    let rc = "service microdroid_manager /system/bin/microdroid_manager\n    oneshot\n    respawn_forever\n";
    let image = build_image(&ImageChanges {
        init_rc: Some(rc),
        unchecked: true,
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::InitFailed(Some(death)) = &result.outcome else {
        panic!("{:?}", result.outcome)
    };
    let detail = death.detail.as_deref().unwrap_or("");
    assert!(
        detail.contains("bad init configuration /system/etc/init/init.rc"),
        "{detail}"
    );
    assert!(
        detail.contains("line 3: unknown option \"respawn_forever\""),
        "{detail}"
    );
    assert!(console_text(&result).contains("init: FATAL: bad init configuration"));
    assert_eq!(result.outcome.exit_status(), exit_status::GUEST_ERROR);
}

#[test]
fn missing_service_binary_fails_the_boot() {
    let rc = "service microdroid_manager /system/bin/no_such_manager\n    oneshot\n    poweroff_on_exit\n";
    let image = build_image(&ImageChanges {
        init_rc: Some(rc),
        unchecked: true,
        ..Default::default()
    })
    .unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let VmOutcome::InitFailed(Some(death)) = &result.outcome else {
        panic!("{:?}", result.outcome)
    };
    assert!(
        death
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("starting service \"microdroid_manager\""),
        "{death:?}"
    );
}

#[test]
fn guest_that_never_finishes_is_stopped_by_the_timeout() {
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    // The payload must start and report ready well inside the overall timeout, even on a loaded
    // machine, for the assertions below to mean something.
    let result = boot(&vm_config(image.path(), Duration::from_secs(20))).unwrap();
    assert_eq!(result.outcome, VmOutcome::Timeout { seconds: 20 });
    assert_eq!(result.outcome.exit_status(), exit_status::TIMEOUT);
    // It did boot, start the payload and report ready before hanging: hang detection (which
    // waits for started) left it alone, the overall timeout stopped it.
    assert!(console_text(&result).contains("payload: Hello from Microdroid"));
    assert_eq!(
        payload_events(&result),
        [VmEventKind::PayloadStarted, VmEventKind::PayloadReady]
    );
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
    assert!(
        vmctl.exists(),
        "{} missing: run `make test`",
        vmctl.display()
    );
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "42"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    let out = Command::new(&vmctl)
        .args(["run", "--timeout", "90", "--os"])
        .arg(image.path().join("vm_os.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(42),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("Hello from Microdroid"), "{stdout}");
    assert!(
        stderr.contains("vmctl: payload exited with status 42"),
        "{stderr}"
    );
    // Each RPC event is printed with its time.
    assert!(stderr.contains("Z notifyPayloadStarted\n"), "{stderr}");
    assert!(stderr.contains("Z notifyPayloadReady\n"), "{stderr}");
    assert!(stderr.contains("Z notifyPayloadFinished(42)\n"), "{stderr}");
}

#[test]
fn debug_none_shows_nothing_from_the_guest_but_its_exit_code() {
    let vmctl = workspace_root().join("target/release/vmctl");
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "42"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    let console = image.path().join("none.log");
    let out = Command::new(&vmctl)
        .args([
            "run",
            "--debug",
            "none",
            "--json",
            "--timeout",
            "90",
            "--os",
        ])
        .arg(image.path().join("vm_os.json"))
        .arg("--console-log")
        .arg(&console)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(42),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Everything the guest printed on its console: nothing at all.
    let guest_console = std::fs::read(&console).unwrap();
    assert!(
        guest_console.is_empty(),
        "{}",
        String::from_utf8_lossy(&guest_console)
    );
    assert!(
        !stdout.contains("Hello") && !stderr.contains("Hello"),
        "{stdout}{stderr}"
    );
    // stdout is JSON lines only: events, then the outcome.
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished = lines
        .iter()
        .find(|l| l["event"] == "notifyPayloadFinished")
        .unwrap();
    assert_eq!(finished["exit_code"], 42);
    let exit = lines.last().unwrap();
    assert_eq!(
        (exit["event"].as_str(), exit["exit_status"].as_u64()),
        (Some("exit"), Some(42))
    );
    assert_eq!(exit["death_reason"], "SHUTDOWN");
}

#[test]
fn vmctl_messages_say_what_happened_and_no_more() {
    let vmctl = workspace_root().join("target/release/vmctl");
    let config = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "42"]}}"#;
    let image = build_image(&ImageChanges {
        vm_config: Some(config),
        ..Default::default()
    })
    .unwrap();
    // A private state directory: the kept logs (and device secret) of this test's VMs.
    let state = image.path().join("state");
    let run = |args: &[&str]| {
        let out = Command::new(&vmctl)
            .arg("run")
            .args(args)
            .args(["--timeout", "90", "--os"])
            .arg(image.path().join("vm_os.json"))
            .env("VMCTL_STATE_DIR", &state)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(42), "{stderr}");
        stderr
    };
    // A payload that chose its exit code did not fail to run: no console dump under --quiet.
    let quiet = run(&["--quiet"]);
    assert!(!quiet.contains("last console lines"), "{quiet}");
    assert!(
        quiet.contains("vmctl: payload exited with status 42"),
        "{quiet}"
    );
    // --accel auto says what it chose (TCG on a host without working KVM).
    assert!(quiet.contains("vmctl: --accel auto: "), "{quiet}");
    // The console path it prints exists after the VM is gone, and `vmctl logs last` shows it.
    let path = quiet
        .rsplit("console: ")
        .next()
        .and_then(|rest| rest.split(']').next())
        .unwrap();
    assert!(
        path.starts_with(&*state.to_string_lossy()) && std::path::Path::new(path).exists(),
        "{path}"
    );
    let logs = Command::new(&vmctl)
        .args(["logs", "last"])
        .env("VMCTL_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(logs.status.success());
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("payload: Hello from Microdroid"),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
    assert!(String::from_utf8_lossy(&logs.stderr).contains("; death reason: "));
    // At debug level none, vmctl says once that the console is off, and names no log file.
    let none = run(&["--quiet", "--debug", "none"]);
    assert_eq!(
        none.matches("debug level none: the guest's console is off")
            .count(),
        1,
        "{none}"
    );
    assert!(none.contains("console: off (--debug none)]"), "{none}");
    assert!(!none.contains("console.log"), "{none}");
}

#[test]
fn make_install_gives_a_vmctl_that_runs_an_app_from_anywhere() {
    let root = workspace_root();
    let prefix = tempfile::tempdir().unwrap();
    let status = Command::new("make")
        .arg("-s")
        .arg("install-files")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "make install-files failed");
    let vmctl = prefix.path().join("bin/vmctl");
    let elsewhere = tempfile::tempdir().unwrap();
    let (apk, idsig) = boot_tests::demo_apk(
        elsewhere.path(),
        "app",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#,
        "com.example.install",
        1,
        boot_tests::TestSigner::Rsa,
    );
    let version = Command::new(&vmctl)
        .arg("--version")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains(&format!(
            "default image: {}",
            prefix
                .path()
                .join("share/microdroid/image/vm_os.json")
                .display()
        )),
        "{version}"
    );
    let out = Command::new(&vmctl)
        .args(["run-app", "--apk"])
        .arg(&apk)
        .arg("--idsig")
        .arg(&idsig)
        .args([
            "--instance",
            "instance.img",
            "--config-path",
            "assets/vm_config.json",
        ])
        .args(["--timeout", "90", "--quiet"])
        .env("VMCTL_STATE_DIR", elsewhere.path().join("state"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("vmctl: payload exited with status 0"),
        "{stderr}"
    );
}

#[test]
fn boot_stages_are_reported_in_order() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0));
    let stages = result.stages.expect("stages of a VM that ran");
    let kernel = stages.kernel_boot_time.expect("kernel_boot_time");
    let userspace = stages.userspace_boot_time.expect("userspace_boot_time");
    let boot_time = stages.boot_time.expect("boot_time");
    println!("{stages:?}");
    assert!(stages.vm_starting_time > 0.0 && kernel > 0.0 && userspace > 0.0);
    // The guest's uptime at the payload's start fits in the host's time from the VMM's start
    // to the payload's notification.
    assert!(stages.vm_starting_time < boot_time);
    assert!(kernel + userspace <= boot_time - stages.vm_starting_time + 0.05);
}
