//! VMs that outlive the command that started them: `vmctl run --detach`, `list`, `console`,
//! `stop`, and the rule that a VM dies with its owner. Each test has its own registry
//! (`VMCTL_RUNTIME_DIR`), so that CIDs and listings are its own.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use boot_tests::{build_image, workspace_root, ImageChanges};
use host_tools::registry::{GUEST_CID_MIN, RUNTIME_DIR_ENV};

const HANG: &str = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;

fn vmctl(registry: &Path, args: &[&str]) -> Output {
    let vmctl = workspace_root().join("target/release/vmctl");
    assert!(
        vmctl.exists(),
        "{} missing: run `make test`",
        vmctl.display()
    );
    Command::new(vmctl)
        .env(RUNTIME_DIR_ENV, registry)
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn list(registry: &Path) -> Vec<serde_json::Value> {
    let out = vmctl(registry, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

/// Starts a detached VM whose payload hangs; returns its CID once the payload runs.
fn start_detached(registry: &Path, image: &Path) -> u32 {
    let os = image.join("vm_os.json");
    let out = vmctl(
        registry,
        &[
            "run",
            "--detach",
            "--timeout",
            "120",
            "--os",
            os.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cid: u32 = text(&out.stdout).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The payload reports ready right after it starts, so either state means it runs.
    let has_started = |registry: &Path| {
        list(registry)
            .iter()
            .find(|vm| vm["cid"] == cid)
            .is_some_and(|vm| vm["payload_state"] == "started" || vm["payload_state"] == "ready")
    };
    while !has_started(registry) {
        assert!(
            Instant::now() < deadline,
            "the payload did not start: {:?}",
            list(registry)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cid
}

fn processes_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let running = !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            running && text(&cmdline).contains(name)
        })
        .collect()
}

#[test]
fn detached_vm_is_listed_followed_and_stopped() {
    let image = build_image(&ImageChanges {
        vm_config: Some(HANG),
        ..Default::default()
    })
    .unwrap();
    let registry = tempfile::tempdir().unwrap();
    let cid = start_detached(registry.path(), image.path());
    assert_eq!(cid, GUEST_CID_MIN);
    let vms = list(registry.path());
    let [vm] = vms.as_slice() else {
        panic!("{vms:?}")
    };
    assert_eq!(
        (vm["state"].as_str(), vm["debug"].as_str()),
        (Some("running"), Some("full"))
    );
    assert!(vm["uptime_s"].as_f64().unwrap() > 0.0);
    let table = text(&vmctl(registry.path(), &["list"]).stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&cid.to_string())
                && (l.contains("started") || l.contains("ready"))),
        "{table}"
    );

    // The console travels by serial port and log file, not with the RPC events, so it may
    // trail the payload state by a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let console = vmctl(
            registry.path(),
            &["console", &cid.to_string(), "--no-follow"],
        );
        let console = text(&console.stdout);
        if console.contains("payload: Hello from Microdroid") {
            break;
        }
        assert!(Instant::now() < deadline, "{console}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let stop = vmctl(registry.path(), &["stop", &cid.to_string()]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(list(registry.path()).is_empty());
    let again = vmctl(registry.path(), &["stop", &cid.to_string()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no running VM has CID 2048"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn killing_a_detached_owner_kills_its_vm() {
    let image = build_image(&ImageChanges {
        vm_config: Some(HANG),
        ..Default::default()
    })
    .unwrap();
    let registry = tempfile::tempdir().unwrap();
    let cid = start_detached(registry.path(), image.path());
    let vm = list(registry.path())
        .into_iter()
        .find(|vm| vm["cid"] == cid)
        .unwrap();
    let owner = vm["pid"].as_u64().unwrap() as i32;
    // This VM's QEMU and vsock backend are the ones using its run directory.
    let run_dir = vm["run_dir"].as_str().unwrap().to_owned();
    let helpers = processes_named(&run_dir);
    assert_eq!(
        helpers.len(),
        2,
        "expected QEMU and vhost-device-vsock: {helpers:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_named(&run_dir).is_empty() || !list(registry.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            processes_named(&run_dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
