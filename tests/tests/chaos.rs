//! Chaos: VMs booting the demo app (instance, encrypted storage) while one of vmctl, virtmgr,
//! QEMU or vhost-device-vsock is killed (SIGKILL) at a random moment. After each kill: every
//! process of that run is gone and no CID stays registered; after all of them, a clean run of
//! the same instance and storage works (nothing was torn).
//!
//! The instance is provisioned by one clean run first: an instance whose first boot is killed
//! before the guest records its payload is refused ever after, by design (microdroid_manager's
//! provisioning rule; `tests/tests/identity.rs` kills first boots on their own). The storage is
//! then removed, so that the loop also interrupts its creation and formatting.
//!
//! `CHAOS_RUNS` (default 10) and `CHAOS_SEED` (default: the time) choose the loop; the seed is
//! printed so that a failure can be replayed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boot_tests::{build_image, workspace_root, ImageChanges};

fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut all: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head
            .split_once('(')
            .map(|(_, c)| c.to_owned())
            .unwrap_or_default();
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            all.push((pid, ppid, comm));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, comm) in &all {
            if *ppid == parent {
                out.push((*pid, comm.clone()));
                frontier.push(*pid);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// xorshift64: reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run_app(image: &Path, apk: &Path, idsig: &Path, log: &Path) -> Command {
    let mut c = Command::new(workspace_root().join("target/release/vmctl"));
    c.arg("run-app")
        .arg("--os")
        .arg(image.join("vm_os.json"))
        .arg("--apk")
        .arg(apk)
        .arg("--idsig")
        .arg(idsig)
        .arg("--instance")
        .arg(image.join("instance.img"))
        .arg("--storage")
        .arg(image.join("storage.img"))
        .args([
            "--storage-size",
            "8388608",
            "--config-path",
            "assets/vm_config.json",
        ])
        .args(["--timeout", "60"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    c
}

#[test]
fn random_kills_while_vms_boot_leave_nothing_behind() {
    let runs: u32 = std::env::var("CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("chaos: CHAOS_SEED={seed} CHAOS_RUNS={runs}");
    let mut rng = Rng(seed);
    let image = build_image(&ImageChanges::default()).unwrap();
    let (apk, idsig) = boot_tests::demo_apk(
        image.path(),
        "chaos",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#,
        "com.example.chaos",
        1,
        boot_tests::TestSigner::Rsa,
    );
    let runtime = host_tools::registry::default_runtime_dir();
    let provision = image.path().join("provision.log");
    let status = run_app(image.path(), &apk, &idsig, &provision)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "provisioning run: {}",
        std::fs::read_to_string(provision.with_extension("err")).unwrap_or_default()
    );
    std::fs::remove_file(image.path().join("storage.img")).unwrap();
    let victims = ["vmctl", "virtmgr", "qemu-system-x86", "vhost-device-vs"];
    for i in 0..runs {
        let log = image.path().join(format!("run{i}.log"));
        let mut vmctl = run_app(image.path(), &apk, &idsig, &log).spawn().unwrap();
        let delay = Duration::from_millis(rng.next() % 4000);
        let victim = victims[(rng.next() % victims.len() as u64) as usize];
        std::thread::sleep(delay);
        let family = descendants(vmctl.id());
        let target = family
            .iter()
            .find(|(_, comm)| comm == victim)
            .map(|(pid, _)| *pid)
            .unwrap_or(vmctl.id());
        let killed = if target == vmctl.id() {
            "vmctl"
        } else {
            victim
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(target as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = vmctl.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "run {i}: vmctl did not end after {killed} was killed"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        println!(
            "chaos: run {i}: killed {killed} after {} ms; vmctl {status}",
            delay.as_millis()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while family.iter().any(|(pid, _)| alive(*pid)) {
            assert!(
                Instant::now() < deadline,
                "run {i} ({killed} killed): left behind {:?}",
                family.iter().filter(|(p, _)| alive(*p)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The registry is the host's: other tests boot VMs at the same time, so only the
        // CIDs held by this run's processes count.
        let ours = |r: &host_tools::registry::VmRecord| {
            r.pid == vmctl.id() || family.iter().any(|(pid, _)| *pid == r.pid)
        };
        let held = || {
            host_tools::registry::list(&runtime)
                .into_iter()
                .filter(ours)
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !held().is_empty() {
            assert!(
                Instant::now() < deadline,
                "run {i}: CIDs still registered: {:?}",
                held()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The instance and the storage survived every kill: a clean run boots from them.
    let log = image.path().join("final.log");
    let status = run_app(image.path(), &apk, &idsig, &log).status().unwrap();
    let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "the run after the chaos failed ({status}):\n{err}\n{out}"
    );
}
