//! VM identity and sealed state, end to end: the host's DICE handover over fw_cfg, the
//! instance image's records (the host's pvmfw entry, the guest's sealed MicrodroidData), APK
//! pinning and rollback, VM secrets, encrypted storage, and crash safety of the records.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boot_tests::{boot, build_image, console_text, ImageChanges};
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;
use host_tools::vm::{VmConfig, VmResult};
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(90);
const PACKAGE: &str = "com.example.identity";
const STORAGE_SIZE: u64 = 8 << 20;

use boot_tests::TestSigner as Signer;

/// A signed APK running the demo payload with `args`, at `version_code`, and its idsig.
fn make_apk(
    dir: &Path,
    name: &str,
    args: &[&str],
    version_code: u64,
    signer: Signer,
) -> (PathBuf, PathBuf) {
    let config = serde_json::json!({
        "task": {"type": "microdroid_launcher", "command": "hello_payload", "args": args}
    });
    boot_tests::demo_apk(
        dir,
        name,
        &config.to_string(),
        PACKAGE,
        version_code,
        signer,
    )
}

fn app_config(
    image: &Path,
    apk: &(PathBuf, PathBuf),
    instance: &Path,
    storage: Option<&Path>,
) -> VmConfig {
    let mut config = boot_tests::vm_config(image, TIMEOUT);
    config.app = Some(AppPayload::from_config_path(
        apk.0.clone(),
        apk.1.clone(),
        "assets/vm_config.json",
    ));
    config.instance = Some(instance.to_owned());
    config.storage = storage.map(|s| (s.to_owned(), STORAGE_SIZE));
    config
}

fn run(config: &VmConfig) -> (VmResult, String) {
    let result = boot(config).unwrap();
    let console = console_text(&result);
    (result, console)
}

fn finished(result: &VmResult, console: &str) {
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
}

fn death(result: &VmResult, console: &str) -> (DeathReason, String) {
    match &result.outcome {
        VmOutcome::GuestError(d) => (d.reason, d.detail.clone().unwrap_or_default()),
        other => panic!("expected a guest error, got {other:?}\n{console}"),
    }
}

/// `boot N, secret fingerprint XXXXXXXX` from the demo payload: (N, fingerprint).
fn boot_line(console: &str) -> (u64, String) {
    let line = console
        .lines()
        .find_map(|l| l.split("payload: boot ").nth(1))
        .unwrap_or_else(|| panic!("no boot line:\n{console}"));
    let (count, rest) = line.split_once(", secret fingerprint ").unwrap();
    (count.trim().parse().unwrap(), rest.trim().to_owned())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn first_boot_records_updates_keep_secrets_and_rollbacks_are_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (instance, storage) = (dir.join("instance.img"), dir.join("storage.img"));
    let marker = "microdroid-plaintext-marker-0123456789abcdef";
    let v1 = make_apk(dir, "v1", &["--store", marker], 1, Signer::Rsa);

    // First boot: recorded, storage formatted, boot 1.
    let (result, console) = run(&app_config(dir, &v1, &instance, Some(&storage)));
    finished(&result, &console);
    for line in [
        "DICE handover read; removing the fw_cfg driver",
        "fw_cfg driver removed",
        "instance image: no record (first boot)",
        "APK is package com.example.identity version code 1",
        "instance image: payload recorded",
        "encrypted storage formatted and mounted at /mnt/encryptedstore",
        "payload: stored 44 bytes in /mnt/encryptedstore/stored_text",
    ] {
        assert!(console.contains(line), "{line:?} missing:\n{console}");
    }
    let (count, fingerprint) = boot_line(&console);
    assert_eq!(count, 1);
    // The host's file holds only ciphertext.
    let host_bytes = fs::read(&storage).unwrap();
    assert!(
        !contains(&host_bytes, marker.as_bytes()),
        "plaintext reached the host"
    );
    assert!(!contains(&host_bytes, b"UNFORMATTED-STORAGE"));
    // Both records are in the instance image: the host's (pvmfw) first, then the guest's.
    let bytes = fs::read(&instance).unwrap();
    assert_eq!(&bytes[..19], b"Android-VM-instance");
    assert_eq!(bytes[512..528], instance::PVMFW_UUID);
    assert!(contains(&bytes, &instance::MICRODROID_UUID));

    // Second boot: the record matches; same secret; the count goes on.
    let (result, console) = run(&app_config(dir, &v1, &instance, Some(&storage)));
    finished(&result, &console);
    assert!(
        console.contains("instance image: the payload matches its record"),
        "{console}"
    );
    assert_eq!(boot_line(&console), (2, fingerprint.clone()));

    // An update by the same signer: recorded, same secret, the storage still readable.
    let v2 = make_apk(dir, "v2", &["--show-store"], 2, Signer::Rsa);
    let (result, console) = run(&app_config(dir, &v2, &instance, Some(&storage)));
    finished(&result, &console);
    assert!(
        console.contains(
            "instance image: update recorded (the APK com.example.identity: version code 1 -> 2)"
        ),
        "{console}"
    );
    assert!(
        console.contains(&format!("payload: stored text: {marker}")),
        "{console}"
    );
    assert_eq!(boot_line(&console), (3, fingerprint.clone()));

    // Back to version 1: a rollback, refused before the payload runs.
    let (result, console) = run(&app_config(dir, &v1, &instance, Some(&storage)));
    assert_eq!(
        death(&result, &console).0,
        DeathReason::MicrodroidPayloadHasChanged
    );
    assert!(
        console.contains("version code 1 is a rollback from the recorded version code 2"),
        "{console}"
    );
    assert!(!console.contains("payload: Hello"), "{console}");

    // The same package and a higher version by another signer.
    let other = make_apk(dir, "other", &[], 3, Signer::Ec);
    let (result, console) = run(&app_config(dir, &other, &instance, Some(&storage)));
    assert_eq!(
        death(&result, &console).0,
        DeathReason::MicrodroidPayloadHasChanged
    );
    assert!(
        console
            .contains("the APK is signed by another key than the one recorded for this instance"),
        "{console}"
    );

    // A second instance of the app: its own secret.
    let plain = make_apk(dir, "plain", &[], 2, Signer::Rsa);
    let (result, console) = run(&app_config(dir, &plain, &dir.join("second.img"), None));
    finished(&result, &console);
    assert!(
        console.contains("payload: no encrypted storage; secret fingerprint "),
        "{console}"
    );
    let second = console
        .lines()
        .find_map(|l| l.split("secret fingerprint ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(second, fingerprint);
}

/// Offset of the guest's entry header in an instance image.
fn microdroid_entry(bytes: &[u8]) -> usize {
    (512..bytes.len())
        .step_by(512)
        .find(|&off| bytes[off..off + 16] == instance::MICRODROID_UUID)
        .expect("no microdroid entry")
}

/// A fresh image, and the demo app booted once on `instance.img`: its record is written.
fn recorded_app() -> (tempfile::TempDir, PathBuf, (PathBuf, PathBuf)) {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let instance = dir.join("instance.img");
    let apk = make_apk(dir, "app", &[], 1, Signer::Rsa);
    let (result, console) = run(&app_config(dir, &apk, &instance, None));
    finished(&result, &console);
    (image, instance, apk)
}

#[test]
fn a_tampered_record_is_refused_and_left_as_it_is() {
    let (image, instance, apk) = recorded_app();
    let dir = image.path();

    let mut bytes = fs::read(&instance).unwrap();
    let entry = microdroid_entry(&bytes);
    // A byte of the ciphertext, past the 12-byte nonce.
    bytes[entry + 512 + 20] ^= 0x01;
    fs::write(&instance, &bytes).unwrap();
    let (result, console) = run(&app_config(dir, &apk, &instance, None));
    let (reason, _) = death(&result, &console);
    assert_eq!(
        reason,
        DeathReason::MicrodroidUnknownRuntimeError,
        "{console}"
    );
    assert!(
        console.contains("the instance image's record does not decrypt with this VM's sealing key"),
        "{console}"
    );
    assert!(!console.contains("payload: Hello"), "{console}");
    assert_eq!(
        fs::read(&instance).unwrap(),
        bytes,
        "a refused instance must not be written"
    );
}

/// Fault matrix row 25. An instance records its payload on its first boot and never again:
/// a later boot whose record is gone (the host's file edited) is refused, not taken as a first
/// boot; and a record cannot pass for a first boot's: without the host's entry, the host
/// refuses the image.
#[test]
fn a_record_missing_on_a_later_boot_or_present_on_a_first_boot_is_refused() {
    let (image, instance, apk) = recorded_app();
    let dir = image.path();
    let recorded = fs::read(&instance).unwrap();
    let renamed = |uuid: [u8; 16], to: u8| {
        let mut bytes = recorded.clone();
        let entry = (512..bytes.len())
            .step_by(512)
            .find(|&off| bytes[off..off + 16] == uuid)
            .expect("no such entry");
        // Another UUID: the reader walks over the entry as one it does not know.
        bytes[entry..entry + 16].copy_from_slice(&[to; 16]);
        fs::write(&instance, &bytes).unwrap();
        bytes
    };

    let bytes = renamed(instance::MICRODROID_UUID, 0x5a);
    let (result, console) = run(&app_config(dir, &apk, &instance, None));
    let (reason, _) = death(&result, &console);
    assert_eq!(
        reason,
        DeathReason::MicrodroidInvalidPayloadConfig,
        "{console}"
    );
    assert!(
        console.contains(
            "the instance image has no record of the payload, but this is not its first boot"
        ),
        "{console}"
    );
    assert!(!console.contains("payload: Hello"), "{console}");
    assert_eq!(
        fs::read(&instance).unwrap(),
        bytes,
        "nothing may be recorded"
    );

    // The host's entry gone: the image still holds the guest's record, so this is no first
    // boot either. The host refuses to record an entry behind another one (pvmfw's entry is
    // always the first), and nothing boots; were it recorded, its new salt would be a new
    // sealing key, under which the old record does not open.
    let bytes = renamed(instance::PVMFW_UUID, 0xa5);
    let err = host_tools::vm::run(&app_config(dir, &apk, &instance, None)).unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("the pvmfw entry can only be written as the first entry of an image"),
        "{err:#}"
    );
    assert_eq!(
        fs::read(&instance).unwrap(),
        bytes,
        "nothing may be recorded"
    );
}

#[test]
fn the_os_and_the_debug_level_are_part_of_the_identity() {
    let (image, instance, apk) = recorded_app();
    let dir = image.path();
    let recorded = fs::read(&instance).unwrap();

    let mut other_cmdline = app_config(dir, &apk, &instance, None);
    other_cmdline.extra_kernel_args = vec!["microdroid.test=1".into()];
    let (result, console) = run(&other_cmdline);
    let (reason, detail) = death(&result, &console);
    assert_eq!(reason, DeathReason::PvmFirmwareInstanceImageChanged);
    assert!(
        detail.contains("the instance was created for another OS"),
        "{detail}"
    );
    assert!(result.events.is_empty(), "nothing may boot");

    let mut not_debuggable = app_config(dir, &apk, &instance, None);
    not_debuggable.debuggable = false;
    let (result, console) = run(&not_debuggable);
    let (reason, detail) = death(&result, &console);
    assert_eq!(reason, DeathReason::PvmFirmwareInstanceImageChanged);
    assert!(
        detail.contains("the instance was created for a VM with debug level full (DICE mode Debug); this VM has debug level none"),
        "{detail}"
    );
    assert_eq!(
        fs::read(&instance).unwrap(),
        recorded,
        "refusals write nothing"
    );

    // The VM it was made for still runs.
    let (result, console) = run(&app_config(dir, &apk, &instance, None));
    finished(&result, &console);
}

/// The QEMU process running from `image` (its `-kernel` is there), a child of this process.
fn qemu_of(image: &Path) -> Option<i32> {
    let me = std::process::id().to_string();
    let kernel = image.join("vmlinuz");
    for entry in fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1));
        if ppid != Some(me.as_str()) {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("qemu-system") && cmdline.contains(&*kernel.to_string_lossy()) {
            return Some(pid);
        }
    }
    None
}

/// Boots `config` and SIGKILLs its QEMU `after` its start.
fn boot_and_kill(config: &VmConfig, image: &Path, after: Duration) {
    let config = config.clone();
    let runner = std::thread::spawn(move || host_tools::vm::run(&config));
    let start = Instant::now();
    let pid = loop {
        if let Some(pid) = qemu_of(image) {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(after.saturating_sub(start.elapsed()));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = runner.join().unwrap();
}

/// The guest's record of `instance`, read on the host with the key the guest derives (the host
/// knows the UDS and the measurements). Must never be an error.
fn read_record(
    image: &Path,
    config: &VmConfig,
    instance_path: &Path,
) -> Option<instance::MicrodroidData> {
    let uds =
        host_tools::identity::load_or_create_device_secret(&image.join("device_secret")).unwrap();
    let cmdline = host_tools::qemu::kernel_cmdline(config.debuggable, &config.extra_kernel_args);
    let os = host_tools::identity::measure(
        &image.join("vmlinuz"),
        &image.join("initramfs.img"),
        &cmdline,
        &image.join("vbmeta.img"),
    )
    .unwrap();
    let handover =
        host_tools::identity::make_handover(&uds, &os, config.debuggable, Some(instance_path))
            .unwrap();
    let handover = dice::Handover::parse(&handover.handover).unwrap();
    let key = instance::microdroid_key(&handover.cdis.cdi_seal);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(instance_path)
        .unwrap();
    let mut image = instance::InstanceImage::open(file).unwrap();
    image
        .read_microdroid_data(&key)
        .unwrap_or_else(|e| panic!("a torn record in {}: {e}", instance_path.display()))
}

#[test]
fn qemu_killed_during_first_boot_or_an_update_never_tears_the_record() {
    const RUNS: u32 = 12;
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let v1 = make_apk(dir, "v1", &[], 1, Signer::Rsa);
    let v2 = make_apk(dir, "v2", &[], 2, Signer::Rsa);
    // The guest records its entry about 1 s after QEMU starts under TCG; the kills are spread
    // from well before to well after that.
    let delay = |i: u32| Duration::from_millis(600 + u64::from(i) * 2400 / u64::from(RUNS));
    let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();

    // First boots.
    for i in 0..RUNS {
        let instance = dir.join(format!("first-{i}.img"));
        let config = app_config(dir, &v1, &instance, None);
        boot_and_kill(&config, dir, delay(i));
        let record = read_record(dir, &config, &instance);
        let seen = match &record {
            None => "no record",
            Some(r) if r.apk_data.version_code == 1 => "v1 recorded",
            Some(r) => panic!("unexpected record {r:?}"),
        };
        *outcomes.entry(seen).or_default() += 1;
    }

    // Updates from v1 to v2.
    let base = dir.join("base.img");
    let (result, console) = run(&app_config(dir, &v1, &base, None));
    finished(&result, &console);
    for i in 0..RUNS {
        let instance = dir.join(format!("update-{i}.img"));
        fs::copy(&base, &instance).unwrap();
        let config = app_config(dir, &v2, &instance, None);
        boot_and_kill(&config, dir, delay(i));
        let record = read_record(dir, &config, &instance).expect("the v1 record disappeared");
        let seen = match record.apk_data.version_code {
            1 => "update: still v1",
            2 => "update: v2 recorded",
            other => panic!("version {other}"),
        };
        *outcomes.entry(seen).or_default() += 1;
    }
    println!("kill outcomes: {outcomes:?}");
    // The next boot after all that works.
    let last = dir.join(format!("update-{}.img", RUNS - 1));
    let (result, console) = run(&app_config(dir, &v2, &last, None));
    finished(&result, &console);
}

#[test]
fn an_apk_without_a_manifest_is_refused_and_nothing_is_recorded() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (apk, _) = make_apk(dir, "app", &[], 1, Signer::Rsa);
    // The same APK with its manifest left out, signed again.
    let tree = dir.join("app.tree");
    fs::remove_file(tree.join("AndroidManifest.xml")).unwrap();
    let (apk, idsig) = boot_tests::sign_tree(&tree, &apk, Signer::Rsa);
    let instance = dir.join("instance.img");
    let (result, console) = run(&app_config(dir, &(apk, idsig), &instance, None));
    let (reason, _) = death(&result, &console);
    assert_eq!(
        reason,
        DeathReason::MicrodroidPayloadVerificationFailed,
        "{console}"
    );
    assert!(
        console.contains("the APK has no readable /mnt/apk/AndroidManifest.xml"),
        "{console}"
    );
    let bytes = fs::read(&instance).unwrap();
    assert!(
        !contains(&bytes, &instance::MICRODROID_UUID),
        "nothing may be recorded"
    );
}

#[test]
fn one_vm_at_a_time_per_instance() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let apk = make_apk(dir, "app", &["--hang"], 1, Signer::Rsa);
    let instance = dir.join("instance.img");
    let config = app_config(dir, &apk, &instance, None);
    let first = {
        let mut config = config.clone();
        config.timeout = Duration::from_secs(10);
        std::thread::spawn(move || host_tools::vm::run(&config))
    };
    let start = Instant::now();
    while qemu_of(dir).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first VM did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = host_tools::vm::run(&config).unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("is in use by another running VM: one VM at a time may use an instance"),
        "{err:#}"
    );
    let first = first.join().unwrap().unwrap();
    assert_eq!(first.outcome, VmOutcome::Timeout { seconds: 10 });
}

#[test]
fn the_payload_gets_a_dice_chain_that_verifies_and_names_what_booted() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let apk = make_apk(dir, "app", &["--dice"], 1, Signer::Rsa);
    let instance = dir.join("instance.img");
    let config = app_config(dir, &apk, &instance, None);
    let (result, console) = run(&config);
    finished(&result, &console);
    assert!(console.contains("payload: dice cdi: 32 bytes"), "{console}");
    assert!(
        console.contains("payload: fw_cfg visible: false"),
        "{console}"
    );
    let hex = console
        .lines()
        .find_map(|l| l.split("payload: dice chain: ").nth(1))
        .unwrap_or_else(|| panic!("no chain:\n{console}"))
        .trim();
    let chain: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let entries = dice::verify_chain(&chain).unwrap();
    let names: Vec<_> = entries
        .iter()
        .map(|e| e.component_name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["vm_entry", "Microdroid payload"]);
    assert!(entries.iter().all(|e| e.mode == dice::Mode::Debug));
    // The host's node measures exactly what booted.
    let cmdline = host_tools::qemu::kernel_cmdline(true, &[]);
    let os = host_tools::identity::measure(
        &dir.join("vmlinuz"),
        &dir.join("initramfs.img"),
        &cmdline,
        &dir.join("vbmeta.img"),
    )
    .unwrap();
    assert_eq!(entries[0].code_hash, os.code_hash().to_vec());
    assert_eq!(entries[0].authority_hash, os.authority_hash().to_vec());
    // The payload's node: config path, and the APK as a subcomponent.
    let descriptor = &entries[1].configuration_descriptor;
    assert!(contains(descriptor, b"/mnt/apk/assets/vm_config.json"));
    assert!(contains(descriptor, b"apk:com.example.identity"));
}
