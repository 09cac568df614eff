//! vmctl leaves no process behind: its VM runs in its own virtmgr (vmctl → virtmgr → QEMU and
//! vhost-device-vsock). On Ctrl-C vmctl stops the VM and exits 130; when vmctl is killed
//! outright, virtmgr sees its client's socket close, stops the VM and exits.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use boot_tests::{build_image, workspace_root, ImageChanges};
use host_tools::outcome::exit_status;

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, ...
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(pid)
        {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; only count processes that are not yet reaped zombies.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Starts vmctl on a payload that hangs and waits until the payload runs.
fn start_hanging_vm(image: &Path, console: &Path) -> Child {
    let vmctl = workspace_root().join("target/release/vmctl");
    assert!(
        vmctl.exists(),
        "{} missing: run `make test`",
        vmctl.display()
    );
    let child = Command::new(vmctl)
        .args(["run", "--quiet", "--timeout", "120", "--os"])
        .arg(image.join("vm_os.json"))
        .arg("--console-log")
        .arg(console)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(console)
        .unwrap_or_default()
        .contains("payload: Hello from Microdroid")
    {
        assert!(Instant::now() < deadline, "the payload did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// vmctl's virtmgr and, under it, QEMU and vhost-device-vsock.
fn vm_processes(vmctl: u32) -> Vec<u32> {
    let virtmgr = children_of(vmctl);
    assert_eq!(virtmgr.len(), 1, "expected virtmgr, got {virtmgr:?}");
    let helpers = children_of(virtmgr[0]);
    assert_eq!(
        helpers.len(),
        2,
        "expected QEMU and vhost-device-vsock, got {helpers:?}"
    );
    [virtmgr, helpers].concat()
}

fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "children still alive: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const HANG: &str = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;

#[test]
fn ctrl_c_stops_the_vm_and_its_helpers() {
    let image = build_image(&ImageChanges {
        vm_config: Some(HANG),
        ..Default::default()
    })
    .unwrap();
    let mut vmctl = start_hanging_vm(image.path(), &image.path().join("console.log"));
    let children = vm_processes(vmctl.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vmctl.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = vmctl.wait().unwrap();
    assert_eq!(status.code(), Some(i32::from(exit_status::INTERRUPTED)));
    wait_gone(&children);
}

#[test]
fn killing_vmctl_kills_its_children() {
    let image = build_image(&ImageChanges {
        vm_config: Some(HANG),
        ..Default::default()
    })
    .unwrap();
    let mut vmctl = start_hanging_vm(image.path(), &image.path().join("console.log"));
    let children = vm_processes(vmctl.id());
    vmctl.kill().unwrap();
    vmctl.wait().unwrap();
    // Orphans are reparented (to us or init) and reaped there; they must be gone.
    wait_gone(&children);
}
