//! The host against a hostile guest (docs/security.md): an image whose init runs
//! `hostile_guest` (tests/hostile_guest) as root in place of microdroid_manager. In each mode it
//! attacks one channel; vmctl must stay small and responsive, keep what it stores bounded, and
//! stop the VM as misbehaving, saying why.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boot_tests::{build_image, workspace_root, ImageChanges};

const HOSTILE_RC: &str = "service hostile /system/bin/hostile_guest
    oneshot
    console
    poweroff_on_exit
";

/// vmctl's documented bound (docs/security.md): its peak RSS while a hostile guest runs.
const VMCTL_RSS_BOUND_KIB: u64 = 64 * 1024;

struct Run {
    status: Option<i32>,
    stderr: String,
    peak_rss_kib: u64,
    list_answered_in: Option<Duration>,
}

/// `VmHWM` of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Runs the image's VM with `hostile=<mode>` through vmctl, sampling vmctl's peak RSS; with
/// `probe_list_after`, also times a `vmctl list` while the VM runs.
fn run(image: &Path, mode: &str, probe_list_after: Option<Duration>) -> Run {
    let vmctl = workspace_root().join("target/release/vmctl");
    let mut child = Command::new(&vmctl)
        .arg("run")
        .arg("--os")
        .arg(image.join("vm_os.json"))
        .args(["--debug", "full", "--timeout", "180"])
        .args(["--kernel-arg", &format!("hostile={mode}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let mut peak = 0;
    let mut list_answered_in = None;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(after) = probe_list_after {
            if list_answered_in.is_none() && started.elapsed() >= after {
                let t = Instant::now();
                let out = Command::new(&vmctl).arg("list").output().unwrap();
                assert!(out.status.success(), "vmctl list failed during the flood");
                list_answered_in = Some(t.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status: status.code(),
        stderr: reader.join().unwrap(),
        peak_rss_kib: peak,
        list_answered_in,
    }
}

fn console_log_of(stderr: &str) -> PathBuf {
    let start = stderr
        .rfind("console: ")
        .expect("vmctl names the console log")
        + 9;
    let rest = &stderr[start..];
    PathBuf::from(rest[..rest.find(']').unwrap()].trim())
}

fn assert_stopped_as_misbehaving(run: &Run, reason: &str) {
    println!("{}", run.stderr);
    assert_eq!(run.status, Some(125), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("the guest misbehaved: it {reason}")),
        "expected {reason:?} in:\n{}",
        run.stderr
    );
    assert!(
        run.peak_rss_kib <= VMCTL_RSS_BOUND_KIB,
        "vmctl peaked at {} KiB",
        run.peak_rss_kib
    );
    println!("vmctl peak RSS: {} KiB", run.peak_rss_kib);
}

#[test]
fn a_hostile_guest_is_bounded_and_stopped() {
    let image = build_image(&ImageChanges {
        init_rc: Some(HOSTILE_RC),
        extra_binaries: &["hostile_guest"],
        ..Default::default()
    })
    .unwrap();

    // 20 s of console flood, then 1 MiB lines on the death-reason port.
    let flood = run(image.path(), "flood", Some(Duration::from_secs(10)));
    assert_stopped_as_misbehaving(
        &flood,
        "wrote more than 64 KiB to its death-reason port (ttyS1)",
    );
    let answered = flood
        .list_answered_in
        .expect("vmctl list ran during the flood");
    assert!(
        answered < Duration::from_secs(5),
        "vmctl list took {answered:?}"
    );
    let console = console_log_of(&flood.stderr);
    let size = std::fs::metadata(&console).unwrap().len();
    assert!(
        size <= host_tools::logs::CONSOLE_CAP + 256,
        "{} is {size} bytes",
        console.display()
    );
    // The flood was real (TCG's serial port takes a few MB/s).
    assert!(size > 1 << 20, "only {size} console bytes");
    println!("console log after the flood: {size} bytes");
    let kept = std::fs::read(console.with_file_name(host_tools::logs::DEATH_REASON_FILE))
        .unwrap_or_default();
    assert!(kept.len() as u64 <= host_tools::vm::DEATH_REASON_CAP + 256);

    let sessions = run(image.path(), "sessions", None);
    assert_stopped_as_misbehaving(
        &sessions,
        "opened more than 64 connections to the host's service beyond the one it may use",
    );
    let big = run(image.path(), "big-message", None);
    assert_stopped_as_misbehaving(
        &big,
        "broke the RPC protocol: command body of 104857600 bytes exceeds the limit",
    );
    let stall = run(image.path(), "stall", None);
    assert_stopped_as_misbehaving(
        &stall,
        "broke the RPC protocol: the peer stalled in the middle of a command (8 of 16 bytes)",
    );
    let rejected = run(image.path(), "rejected", None);
    assert_stopped_as_misbehaving(
        &rejected,
        "made more than 16 notifications the payload state machine refused",
    );
}
