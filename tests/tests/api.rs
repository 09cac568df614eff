//! The VirtualizationService API end to end: vmclient spawns virtmgr (target/release, built by
//! `make test`), which boots VMs under QEMU. A VM lives while its client holds it: dropping
//! the handle, killing the client, or killing virtmgr ends it with nothing left behind; CIDs are
//! unique across clients and recycled; callbacks arrive in order; the host reaches the
//! payload's vsock server through `connectVsock`; vmctl's AOSP forms work the same way.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use boot_tests::{build_image, workspace_root, ImageChanges, TestSigner};
use hello_payload::HelloProxy;
use vmclient::aidl::{
    CpuTopology, DebugLevel, Payload, VirtualMachineAppConfig, VirtualMachineConfig,
    VirtualMachineState, INSTANCE_ID_SIZE,
};
use vmclient::{
    DeathReason, VirtmgrOptions, VirtualizationService, VmCallback, VmInstance, VmWaitError,
};

const PORT: u32 = 5678;
const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn release_bin(name: &str) -> PathBuf {
    let path = workspace_root().join("target/release").join(name);
    assert!(path.exists(), "{} missing: run `make test`", path.display());
    path
}

fn options(image: &Path) -> VirtmgrOptions {
    VirtmgrOptions {
        program: Some(release_bin("virtmgr")),
        args: [
            "--os".into(),
            image.join(image::MANIFEST_NAME).into_os_string(),
            "--accel".into(),
            "tcg".into(),
            "--device-secret".into(),
            image.join("device_secret").into_os_string(),
            "--logs-dir".into(),
            image.join("logs").into_os_string(),
        ]
        .into(),
    }
}

/// The demo APK with `task` as its vm_config.json, and its idsig.
fn apk(image: &Path, name: &str, task: serde_json::Value) -> (PathBuf, PathBuf) {
    let config = serde_json::json!({ "task": task });
    boot_tests::demo_apk(
        image,
        name,
        &config.to_string(),
        "com.example.api",
        1,
        TestSigner::Rsa,
    )
}

fn serving_task() -> serde_json::Value {
    serde_json::json!({"type": "microdroid_launcher", "command": "hello_payload",
                       "args": ["--serve", PORT.to_string()]})
}

fn open(path: &Path) -> OwnedFd {
    File::open(path).unwrap().into()
}

/// An app config for `apk` with a fresh instance image `instance`.
fn app_config(
    apk: &Path,
    idsig: &Path,
    instance: &Path,
    config_path: &str,
) -> VirtualMachineConfig {
    if !instance.exists() {
        instance::create_instance_file(instance, 10 << 20).unwrap();
    }
    VirtualMachineConfig::AppConfig(Box::new(VirtualMachineAppConfig {
        name: "api-test".into(),
        instance_id: [0; INSTANCE_ID_SIZE],
        apk: open(apk),
        idsig: open(idsig),
        extra_idsigs: vec![],
        instance_image: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(instance)
            .unwrap()
            .into(),
        encrypted_storage_image: None,
        payload: Payload::ConfigPath(config_path.into()),
        os_name: "microdroid".into(),
        debug_level: DebugLevel::FULL,
        protected_vm: false,
        memory_mib: 0,
        cpu_topology: CpuTopology::ONE_CPU,
        custom_config: None,
        huge_pages: false,
        boost_uclamp: false,
    }))
}

/// Records every callback, in order.
struct Recorder(Mutex<mpsc::Sender<String>>);

impl Recorder {
    fn send(&self, s: String) {
        let _ = self.0.lock().unwrap().send(s);
    }
}

impl VmCallback for Recorder {
    fn on_payload_started(&self, _: i32) {
        self.send("started".into());
    }
    fn on_payload_ready(&self, _: i32) {
        self.send("ready".into());
    }
    fn on_payload_finished(&self, _: i32, code: i32) {
        self.send(format!("finished({code})"));
    }
    fn on_error(&self, _: i32, code: vmclient::aidl::ErrorCode, _: &str) {
        self.send(format!("error({code})"));
    }
    fn on_died(&self, _: i32, reason: DeathReason) {
        self.send(format!("died({reason})"));
    }
}

fn recorder() -> (Box<Recorder>, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (Box::new(Recorder(Mutex::new(tx))), rx)
}

fn runtime_dir() -> PathBuf {
    host_tools::registry::default_runtime_dir()
}

fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line mentions `needle` (a VM's run directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !needle.is_empty() && text.contains(needle) {
            found.push(text);
        }
    }
    found
}

fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn host_app_greets_the_payload_through_vmclient() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (apk, idsig) = apk(dir, "serve", serving_task());
    let service = VirtualizationService::new_with(&options(dir)).unwrap();
    let config = app_config(
        &apk,
        &idsig,
        &dir.join("instance.img"),
        "assets/vm_config.json",
    );
    let (callback, events) = recorder();
    let vm = VmInstance::create(&service, &config, None, None, None, Some(callback)).unwrap();
    assert_eq!(vm.state().unwrap(), VirtualMachineState::NOT_STARTED);
    // Only the guest system's ports are below 1024, and nothing runs yet.
    let err = vm.connect_vsock(PORT).unwrap_err().to_string();
    assert!(err.contains("VM is not running"), "{err}");
    vm.start().unwrap();
    vm.wait_until_ready(READY_TIMEOUT).unwrap();
    assert_eq!(vm.state().unwrap(), VirtualMachineState::READY);

    let err = vm.connect_vsock(80).unwrap_err().to_string();
    assert!(err.contains("Can't connect to privileged port 80"), "{err}");
    let err = vm.connect_service(PORT + 7).unwrap_err().to_string();
    assert!(err.contains("Failed to connect to port 5685"), "{err}");

    let (session, root) = vm.connect_service(PORT).unwrap();
    let hello = HelloProxy::from_binder(root).unwrap();
    let greeting = hello.greet("api").unwrap();
    assert_eq!(
        greeting,
        format!("Hello, api! (from the VM, CID {})", vm.cid())
    );

    // 1 MiB each way, in calls within RPC binder's 100 KB command limit; a 1 MiB call is
    // refused on this side before anything is sent.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut back = Vec::new();
    for chunk in big.chunks(64 << 10) {
        back.extend(hello.echo(chunk).unwrap());
    }
    assert!(back == big, "1 MiB echoed in 64 KiB calls differs");
    let err = hello.echo(&big).unwrap_err();
    assert!(
        matches!(
            err,
            rpcbinder::CallError::Rpc(rpcbinder::Error::OutgoingTooLarge(_))
        ),
        "{err:?}"
    );

    // 1,000 calls in a row: no fd or thread left behind per call. The other tests of this
    // binary run beside this one and open their own fds and threads, so the counts may move
    // by a few; a leak per call would add a thousand.
    let fds = count_entries("/proc/self/fd");
    let threads = count_entries("/proc/self/task");
    for i in 0..1000 {
        hello.greet(&format!("call {i}")).unwrap();
    }
    let (fds_after, threads_after) = (
        count_entries("/proc/self/fd"),
        count_entries("/proc/self/task"),
    );
    assert!(
        fds_after < fds + 50,
        "fds {fds} -> {fds_after} over 1,000 calls"
    );
    assert!(
        threads_after < threads + 50,
        "threads {threads} -> {threads_after} over 1,000 calls"
    );

    hello.quit().unwrap();
    drop(hello);
    drop(session);
    let reason = vm
        .wait_for_death_with_timeout(Duration::from_secs(60))
        .unwrap();
    assert_eq!(reason.to_string(), "SHUTDOWN");
    let seen: Vec<String> = events.try_iter().collect();
    assert_eq!(seen, ["started", "ready", "finished(0)", "died(SHUTDOWN)"]);
    assert_eq!(vm.state().unwrap(), VirtualMachineState::DEAD);
}

#[test]
fn a_vm_that_dies_before_ready_says_why() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (apk, idsig) = apk(dir, "app", serving_task());
    let service = VirtualizationService::new_with(&options(dir)).unwrap();
    // A config path the APK does not have.
    let config = app_config(
        &apk,
        &idsig,
        &dir.join("instance.img"),
        "assets/missing.json",
    );
    let (callback, events) = recorder();
    let vm = VmInstance::create(&service, &config, None, None, None, Some(callback)).unwrap();
    vm.start().unwrap();
    // The guest reports the error (notifyError) before it dies: as libvmclient, the wait ends
    // with Finished, or Died if the death came first.
    let err = vm.wait_until_ready(READY_TIMEOUT).unwrap_err();
    assert!(
        matches!(err, VmWaitError::Finished | VmWaitError::Died { .. }),
        "{err:?}"
    );
    let reason = vm
        .wait_for_death_with_timeout(Duration::from_secs(30))
        .unwrap();
    assert_eq!(reason.to_string(), "MICRODROID_INVALID_PAYLOAD_CONFIG");
    let seen: Vec<String> = events.try_iter().collect();
    assert_eq!(
        seen,
        [
            "error(PAYLOAD_INVALID_CONFIG)",
            "died(MICRODROID_INVALID_PAYLOAD_CONFIG)"
        ]
    );
}

/// Starts a serving VM and waits until its payload is ready; returns it with its run directory.
fn ready_vm(service: &VirtualizationService, dir: &Path, name: &str) -> (VmInstance, String) {
    let (apk, idsig) = apk(dir, name, serving_task());
    let config = app_config(
        &apk,
        &idsig,
        &dir.join(format!("{name}.img")),
        "assets/vm_config.json",
    );
    let vm = VmInstance::create(service, &config, None, None, None, None).unwrap();
    vm.start().unwrap();
    vm.wait_until_ready(READY_TIMEOUT).unwrap();
    let record = host_tools::registry::find(&runtime_dir(), vm.cid() as u32).unwrap();
    (vm, record.run_dir.display().to_string())
}

/// Fault matrix row 48: pausing a VM is not supported here (QEMU under TCG, vsock through
/// vhost-device-vsock, whose connections would not survive a snapshot). `suspend` and `resume`
/// are refused with EX_UNSUPPORTED_OPERATION while a host connection is open, and the VM and
/// that connection carry on untouched.
#[test]
fn suspend_and_resume_are_refused_and_the_vm_carries_on() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let service = VirtualizationService::new_with(&options(image.path())).unwrap();
    let (vm, _run_dir) = ready_vm(&service, image.path(), "pause");
    let (session, root) = vm.connect_service(PORT).unwrap();
    let hello = HelloProxy::from_binder(root).unwrap();
    for (what, result) in [("suspend", vm.vm().suspend()), ("resume", vm.vm().resume())] {
        match result {
            Err(rpcbinder::CallError::Service(status)) => {
                assert_eq!(
                    status.exception_code(),
                    rpcbinder::ExceptionCode::UNSUPPORTED_OPERATION,
                    "{what}: {status}"
                );
                assert!(
                    status.message().contains("not supported"),
                    "{what}: {status}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(vm.state().unwrap(), VirtualMachineState::READY);
    // The connection opened before the refusals still answers.
    let greeting = hello.greet("after suspend").unwrap();
    assert!(greeting.starts_with("Hello, after suspend!"), "{greeting}");
    drop(hello);
    drop(session);
    vm.stop().unwrap();
}

#[test]
fn dropping_the_handle_stops_the_vm() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let service = VirtualizationService::new_with(&options(image.path())).unwrap();
    let (vm, run_dir) = ready_vm(&service, image.path(), "drop");
    let cid = vm.cid() as u32;
    assert!(!processes_mentioning(&run_dir).is_empty());
    drop(vm);
    wait_until("the VM's CID is free", Duration::from_secs(20), || {
        !host_tools::registry::is_running(&runtime_dir(), cid)
    });
    assert_eq!(processes_mentioning(&run_dir), Vec::<String>::new());
    // virtmgr itself lives on for its client.
    let pid = service.virtmgr_pid().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_killed_virtmgr_takes_its_vms_and_the_client_hears_it() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let service = VirtualizationService::new_with(&options(image.path())).unwrap();
    let (vm, run_dir) = ready_vm(&service, image.path(), "kill-virtmgr");
    let cid = vm.cid() as u32;
    let pid = service.virtmgr_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let reason = vm
        .wait_for_death_with_timeout(Duration::from_secs(20))
        .unwrap();
    assert_eq!(reason, DeathReason::VirtualizationServiceDied);
    wait_until(
        "QEMU and the vsock backend are gone",
        Duration::from_secs(20),
        || processes_mentioning(&run_dir).is_empty(),
    );
    assert!(!host_tools::registry::is_running(&runtime_dir(), cid));
}

#[test]
fn a_killed_client_takes_its_vms() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (apk, idsig) = apk(dir, "kill-client", serving_task());
    // vmctl's AOSP form is a vmclient client with its own virtmgr.
    let mut vmctl = Command::new(release_bin("vmctl"))
        .args(["run-app"])
        .arg(&apk)
        .arg(&idsig)
        .arg(dir.join("kill-client.img"))
        .args([
            "--config-path",
            "assets/vm_config.json",
            "--accel",
            "tcg",
            "--quiet",
        ])
        .arg("--os")
        .arg(dir.join(image::MANIFEST_NAME))
        .arg("--device-secret")
        .arg(dir.join("device_secret"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(vmctl.stdout.take().unwrap());
    let mut cid = None;
    let (tx, rx) = mpsc::channel();
    let stderr = vmctl.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for line in stdout.lines().map_while(Result::ok) {
        println!("vmctl: {line}");
        // Created debuggable VM from "..."!ConfigPath("...") with CID 2048, state is STARTING.
        if let Some(rest) = line.split(" with CID ").nth(1) {
            cid = rest.split(',').next().and_then(|c| c.parse::<u32>().ok());
            break;
        }
    }
    let cid = cid.expect("vmctl printed no CID");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap();
        println!("vmctl stderr: {line}");
        if line == "payload is ready" {
            break;
        }
    }
    let record = host_tools::registry::find(&runtime_dir(), cid).unwrap();
    let virtmgr = record.pid;
    vmctl.kill().unwrap();
    vmctl.wait().unwrap();
    wait_until("virtmgr has exited", Duration::from_secs(20), || {
        !Path::new(&format!("/proc/{virtmgr}")).exists()
            || std::fs::read_to_string(format!("/proc/{virtmgr}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
    wait_until("the VM is gone", Duration::from_secs(20), || {
        processes_mentioning(&record.run_dir.display().to_string()).is_empty()
            && !host_tools::registry::is_running(&runtime_dir(), cid)
    });
}

#[test]
fn two_clients_four_vms_unique_cids_listed_and_recycled() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (apk, idsig) = apk(dir, "list", serving_task());
    let a = VirtualizationService::new_with(&options(dir)).unwrap();
    let b = VirtualizationService::new_with(&options(dir)).unwrap();
    let create = |service: &VirtualizationService, i: usize| {
        let config = app_config(
            &apk,
            &idsig,
            &dir.join(format!("list-{i}.img")),
            "assets/vm_config.json",
        );
        VmInstance::create(service, &config, None, None, None, None).unwrap()
    };
    let from_a = [create(&a, 0), create(&a, 1)];
    let from_b = [create(&b, 2), create(&b, 3)];
    let mut cids: Vec<i32> = from_a.iter().chain(&from_b).map(VmInstance::cid).collect();
    cids.sort_unstable();
    cids.dedup();
    assert_eq!(cids.len(), 4, "CIDs not unique: {cids:?}");
    // Each client sees every client's VMs.
    let listed: Vec<i32> = a
        .proxy()
        .debug_list_vms()
        .unwrap()
        .iter()
        .map(|v| v.cid)
        .collect();
    for cid in &cids {
        assert!(listed.contains(cid), "{cid} missing from {listed:?}");
    }
    let vmctl_list = Command::new(release_bin("vmctl"))
        .args(["list", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&vmctl_list.stdout);
    for cid in &cids {
        assert!(
            text.contains(&format!("\"cid\": {cid}")) || text.contains(&format!("\"cid\":{cid}")),
            "{text}"
        );
    }
    // The config's name is what `vmctl list` shows.
    let listed: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for cid in &cids {
        let vm = listed.iter().find(|v| v["cid"] == *cid).unwrap();
        assert_eq!(vm["name"], "api-test", "{vm}");
    }
    // B's VMs go with their handles; their CIDs are free for the next VM.
    let freed: Vec<i32> = from_b.iter().map(VmInstance::cid).collect();
    drop(from_b);
    wait_until("B's CIDs are free", Duration::from_secs(10), || {
        freed
            .iter()
            .all(|c| !host_tools::registry::is_running(&runtime_dir(), *c as u32))
    });
    let again = create(&a, 4);
    assert!(
        again.cid() <= *freed.iter().max().unwrap(),
        "CID {} not recycled from {freed:?}",
        again.cid()
    );
}

#[test]
fn vmctl_aosp_forms() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let vmctl = release_bin("vmctl");
    let task = serde_json::json!({"type": "microdroid_launcher", "command": "hello_payload",
                                  "args": ["--exit", "3"]});
    let (apk, _) = apk(dir, "forms", task);
    let idsig = dir.join("forms.made.idsig");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(&vmctl)
            .args(args)
            .arg("--os")
            .arg(dir.join(image::MANIFEST_NAME))
            .arg("--device-secret")
            .arg(dir.join("device_secret"))
            .args(["--accel", "tcg"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // run-app APK IDSIG INSTANCE: the idsig and the instance are made through virtmgr.
    let (code, out, err) = run(&[
        "run-app".as_ref(),
        apk.as_os_str(),
        idsig.as_os_str(),
        dir.join("forms.img").as_os_str(),
        "--config-path".as_ref(),
        "assets/vm_config.json".as_ref(),
        "--console".as_ref(),
        dir.join("forms-console.log").as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("Created debuggable VM from"), "{out}");
    assert!(
        out.contains("!ConfigPath(\"assets/vm_config.json\") with CID"),
        "{out}"
    );
    assert!(out.contains("VM ended: SHUTDOWN"), "{out}");
    assert!(
        err.contains("payload started\npayload is ready\npayload finished with exit code 3"),
        "{err}"
    );
    assert!(std::fs::read_to_string(dir.join("forms-console.log"))
        .unwrap()
        .contains("Hello from Microdroid"));
    assert!(idsig.exists());
    assert_eq!(
        &std::fs::read(dir.join("forms.img")).unwrap()[..19],
        b"Android-VM-instance"
    );

    // --protected is refused by virtmgr.
    let (code, _, err) = run(&[
        "run-app".as_ref(),
        apk.as_os_str(),
        idsig.as_os_str(),
        dir.join("forms.img").as_os_str(),
        "--payload-binary-name".as_ref(),
        "hello_payload".as_ref(),
        "--protected".as_ref(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("EX_UNSUPPORTED_OPERATION") && err.contains("protectedVm"),
        "{err}"
    );

    // run CONFIG.json: a raw VM (the OS's kernel with an init that does not exist panics).
    let config = dir.join("raw.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "name": "raw", "kernel": dir.join("vmlinuz"), "initrd": dir.join("initramfs.img"),
            "params": "console=ttyS0 panic=-1 rdinit=/nonexistent", "memory_mib": 128,
            "cpu_topology": "one_cpu", "platform_version": "~1.0"
        })
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = run(&["run".as_ref(), config.as_os_str(), "--quiet".as_ref()]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("Created debuggable VM from"), "{out}");
    assert!(out.contains("VM ended: CRASH"), "{out}");

    // A bad field is named.
    std::fs::write(
        &config,
        r#"{"kernel": "/k", "platform_version": "~1.0", "disks": [{"image": "/d", "writable": "no"}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["run".as_ref(), config.as_os_str()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("disks[0].writable: invalid type"), "{err}");

    // run-microdroid: an empty payload that waits once ready, until --timeout stops it.
    let work = dir.join("microdroid-work");
    let (code, out, err) = run(&[
        "run-microdroid".as_ref(),
        "--work-dir".as_ref(),
        work.as_os_str(),
        "--timeout".as_ref(),
        "10".as_ref(),
        "--quiet".as_ref(),
    ]);
    assert_eq!(code, Some(124), "{out}\n{err}");
    assert!(err.contains("payload is ready"), "{err}");
    assert!(out.contains("VM ended: KILLED"), "{out}");
    for made in ["empty-payload.apk", "apk.idsig", "instance.img"] {
        assert!(work.join(made).exists(), "{made} missing");
    }

    let out = Command::new(&vmctl)
        .args(["check-feature-enabled", "com.android.kvm.DICE_CHANGES"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Feature com.android.kvm.DICE_CHANGES is enabled\n"
    );
    let out = Command::new(&vmctl)
        .args(["check-feature-enabled", "com.android.kvm.NETWORK"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Feature com.android.kvm.NETWORK is disabled\n"
    );
}
