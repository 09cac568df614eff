//! Least privilege in the guest (docs/security.md): SELinux enforcing with the payload in its
//! domain, and a payload that tries to get out of its confinement and is refused every time,
//! each refusal with the error that says which layer stopped it.

use std::path::Path;
use std::time::Duration;

use boot_tests::{boot, build_image, console_text, ImageChanges};
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Each attempt of `hello_payload --try-escape` (examples/hello-app/src/escape.rs) and the
/// errno that must refuse it: EPERM from the seccomp filter, ENOENT where the sandbox does not
/// show the thing, EROFS from the read-only bind, EACCES from SELinux.
const REFUSALS: &[(&str, &str)] = &[
    ("mount", "EPERM"),
    ("init_module", "EPERM"),
    ("kexec_load", "EPERM"),
    ("read /dev/block/by-name/vm-instance", "ENOENT"),
    ("read /dev/vda", "ENOENT"),
    ("write /system", "EROFS"),
    ("connect to the host's IVirtualMachineService", "EACCES"),
    ("ptrace microdroid_manager", "EPERM"),
    ("read microdroid_manager's /proc entries", "ENOENT"),
    ("read init's /proc entries", "ENOENT"),
    ("unshare a user namespace", "EPERM"),
    ("bpf", "EPERM"),
    ("read /dev/kmsg", "ENOENT"),
    ("read SELinux's state in /sys", "ENOENT"),
];

fn escape_app(dir: &Path) -> AppPayload {
    let (apk, idsig) = boot_tests::demo_apk(
        dir,
        "escape",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload", "args": ["--try-escape"]}}"#,
        "com.example.escape",
        1,
        boot_tests::TestSigner::Rsa,
    );
    AppPayload::from_config_path(apk, idsig, "assets/vm_config.json")
}

#[test]
fn a_kernel_started_without_selinux_fails_the_boot_saying_so() {
    // The command line's last `lsm=` wins: SELinux is left out.
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = boot_tests::vm_config(image.path(), TIMEOUT);
    config.extra_kernel_args.push("lsm=landlock,yama".into());
    let result = boot(&config).unwrap();
    match &result.outcome {
        VmOutcome::InitFailed(Some(death)) => {
            let detail = death.detail.clone().unwrap_or_default();
            assert!(
                detail
                    .contains("SELinux is not enabled in this kernel (its command line needs lsm="),
                "{detail}"
            );
        }
        other => panic!(
            "expected init to fail, got {other:?}\n{}",
            console_text(&result)
        ),
    }
}

#[test]
fn a_debuggable_vm_asked_for_permissive_mode_logs_but_does_not_refuse() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = boot_tests::vm_config(image.path(), TIMEOUT);
    config.app = Some(escape_app(image.path()));
    config.instance = Some(image.path().join("instance.img"));
    config.debuggable = true;
    config
        .extra_kernel_args
        .push("androidboot.selinux=permissive".into());
    let log = image.path().join("permissive.log");
    config.log_file = Some(log.clone());
    let result = boot(&config).unwrap();
    let console = console_text(&result);
    assert!(
        console.contains("), permissive (androidboot.selinux=permissive)"),
        "{console}"
    );
    // SELinux lets the connect through (nothing listens on that port, so it still fails, but
    // not with EACCES); the denial is logged all the same, marked permissive.
    let connect = console
        .lines()
        .find(|l| l.contains("escape: connect to the host's IVirtualMachineService"))
        .unwrap_or_else(|| panic!("{console}"));
    assert!(!connect.contains("EACCES"), "{connect}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines().any(|l| l.contains("avc:  denied  { connect }")
            && l.contains("scontext=u:r:payload:s0")
            && l.contains("permissive=1")),
        "{log}"
    );
}

#[test]
fn a_hostile_payload_is_refused_everything_and_selinux_logs_the_denial() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = boot_tests::vm_config(image.path(), TIMEOUT);
    config.app = Some(escape_app(image.path()));
    config.instance = Some(image.path().join("instance.img"));
    config.debuggable = true;
    let log = image.path().join("escape.log");
    config.log_file = Some(log.clone());
    let result = boot(&config).unwrap();
    let console = console_text(&result);
    assert!(
        console.contains("init: SELinux: policy loaded (") && console.contains("), enforcing"),
        "{console}"
    );
    assert!(
        console.contains("payload: escape: running as uid 6000 in u:r:payload:s0"),
        "{console}"
    );
    for (attempt, errno) in REFUSALS {
        let line = format!("payload: escape: {attempt}: refused ({errno}, ");
        assert!(console.contains(&line), "{line:?} missing:\n{console}");
    }
    assert!(
        console.contains(&format!(
            "payload: escape: all {} attempts refused",
            REFUSALS.len()
        )),
        "{console}"
    );
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    // The SELinux refusal is an AVC denial, logged by logd (tag auditd) into the host's file.
    let log = std::fs::read_to_string(&log).unwrap();
    let denial = log
        .lines()
        .find(|l| l.contains(" auditd  : ") && l.contains("avc:  denied  { connect }"))
        .unwrap_or_else(|| panic!("no AVC denial of the vsock connect in the log:\n{log}"));
    assert!(
        denial.contains("scontext=u:r:payload:s0") && denial.contains("tclass=vsock_socket"),
        "{denial}"
    );
    // Nothing the system itself does is denied: every AVC in the log is the payload's.
    for line in log.lines().filter(|l| l.contains("avc:  denied")) {
        assert!(
            line.contains("scontext=u:r:payload:s0"),
            "a system denial: {line}"
        );
    }
}
