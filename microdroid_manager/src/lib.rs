//! microdroid_manager, the guest's payload manager.
//!
//! The flow (AOSP's `try_main`, packages/modules/Virtualization microdroid_manager/src/main.rs):
//! connect to the host's IVirtualMachineService over vsock binder RPC; for an app, take the
//! host's DICE handover (fw_cfg), open the sealed instance record, verify the APK (dm-verity
//! from its idsig, v3 signature) and mount it with zipfuse, load the payload config, verify
//! extra APKs and APEXes, pin all of them against the record (signers, versions, rollback),
//! have apexd mount the pinned APEXes, derive the payload's DICE node and secrets, open the
//! encrypted storage; then serve IVmPayloadService, tell the host the payload is starting, run
//! it, report its exit (`notifyPayloadFinished`) or why it could not run (`notifyError`, and the
//! death reason on ttyS1), and exit so that init powers the VM off. See docs/architecture.md.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod apk;
pub mod encrypted_store;
pub mod error;
pub mod host_link;
pub mod identity;
pub mod memory;
pub mod payload;
pub mod payload_service;
pub mod privileges;
pub mod sandbox;
pub mod sealed_state;
pub mod tombstones;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use vm_status::DEATH_REASON_DEVICE;
use zeroize::Zeroizing;

use crate::error::{failure_class, MicrodroidError};
use crate::host_link::{write_death_reason, HostLink, RpcHostLink, RPC_TIMEOUT};

/// The payload config on the system partition, for VMs without a payload disk.
pub const PAYLOAD_CONFIG_PATH: &str = "/system/etc/vm_config.json";
/// The payload disk's metadata partition; its presence means the payload is an APK.
pub const PAYLOAD_METADATA_PARTITION: &str = "payload-metadata";
/// Kernel command line flag set by the host for debuggable VMs.
pub const DEBUGGABLE_FLAG: &str = "androidboot.microdroid.debuggable=1";
/// apexd on the system partition (crate apexd_lite).
pub const APEXD_BIN: &str = "/system/bin/apexd";

/// Whether `log` writes to the console: only in debuggable VMs (AOSP logs to /dev/null at
/// debug level NONE).
static CONSOLE_LOG: AtomicBool = AtomicBool::new(true);

/// The death reason of a panic (a bug): what the host shows instead of a bare SIGABRT.
pub fn report_panic(device: &str, info: &std::panic::PanicHookInfo<'_>) {
    let message = format!("microdroid_manager panicked: {info}");
    log(&message);
    let _ = write_death_reason(
        device,
        vm_status::FailureClass::UnknownRuntimeError,
        &message,
    );
}

pub fn run() -> ExitCode {
    // A panic aborts (the release profile): first the host hears why.
    std::panic::set_hook(Box::new(|info| report_panic(DEATH_REASON_DEVICE, info)));
    let debuggable = is_debuggable(Path::new("/proc/cmdline"));
    CONSOLE_LOG.store(debuggable, Ordering::Relaxed);
    log("starting");
    // Failing to connect is reported on ttyS1 only: there is no link to send notifyError on.
    let result = RpcHostLink::connect(RPC_TIMEOUT)
        .map_err(anyhow::Error::from)
        .and_then(|mut host| run_and_report(&mut host, debuggable));
    match result {
        Ok(code) => {
            log(&format!("payload exited with status {code}"));
            ExitCode::SUCCESS
        }
        Err(err) => {
            log(&format!("failed: {err:#}"));
            if let Err(e) = write_death_reason(
                DEATH_REASON_DEVICE,
                failure_class(&err),
                &format!("{err:#}"),
            ) {
                log(&format!(
                    "cannot write the death reason to {DEATH_REASON_DEVICE}: {e}"
                ));
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the payload and reports how it ended over the host link: `notifyPayloadFinished(code)`,
/// or `notifyError(code, message)` for a failure, which is then returned for ttyS1.
pub fn run_and_report(host: &mut dyn HostLink, debuggable: bool) -> Result<i32> {
    match try_run(host, debuggable) {
        Ok(code) => {
            host.notify_payload_finished(code)
                .context("reporting the payload's exit to the host")?;
            Ok(code)
        }
        Err(err) => {
            if let Err(e) = host.notify_error(failure_class(&err), &format!("{err:#}")) {
                log(&format!("cannot report the error to the host: {e:#}"));
            }
            Err(err)
        }
    }
}

/// What the VM's disks say it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSource {
    /// The payload metadata partition is there: an app (APK) payload.
    App,
    /// No payload disk and no instance: the payload named on the system partition.
    System,
}

/// Decides from the partitions in `by_name` what the VM runs. Only a VM with none of an app
/// VM's partitions runs the system payload: the metadata partition missing while the payload
/// disk's APK or the instance partition is there is a broken app VM, refused rather than
/// silently run as something else (fault matrix row 30). The disks are all probed when the
/// virtio-blk module is loaded, before init's coldplug, so "not there yet" cannot happen here.
pub fn payload_source(by_name: &Path) -> Result<PayloadSource> {
    if by_name.join(PAYLOAD_METADATA_PARTITION).exists() {
        return Ok(PayloadSource::App);
    }
    let app_partitions: Vec<&str> = [
        apk::MAIN_APK_PARTITION,
        apk::MAIN_IDSIG_PARTITION,
        sealed_state::INSTANCE_PARTITION,
    ]
    .into_iter()
    .filter(|name| by_name.join(name).exists())
    .collect();
    if app_partitions.is_empty() {
        return Ok(PayloadSource::System);
    }
    Err(MicrodroidError::PayloadInvalidConfig(format!(
        "the VM has an app's partitions ({}) but no {PAYLOAD_METADATA_PARTITION} partition",
        app_partitions.join(", ")
    ))
    .into())
}

fn try_run(host: &mut dyn HostLink, debuggable: bool) -> Result<i32> {
    let metadata_device = Path::new(apk::BY_NAME).join(PAYLOAD_METADATA_PARTITION);
    if payload_source(Path::new(apk::BY_NAME))? == PayloadSource::System {
        // No payload disk: the payload named on the system partition. It has no instance, so
        // no secrets; the handover is still taken, so that fw_cfg is gone before it runs.
        match identity::take_handover(Path::new(identity::FW_CFG_SYSFS_BY_NAME)) {
            Ok((_handover, removal)) => removal.finish()?,
            Err(err) => {
                log(&format!("no DICE identity for a system payload: {err:#}"));
                identity::remove_fw_cfg_driver()?;
            }
        }
        let config = payload::load_config(Path::new(PAYLOAD_CONFIG_PATH))?;
        let task = config
            .task()
            .map_err(|e| MicrodroidError::PayloadInvalidConfig(e.to_string()))?;
        log(&memory::cpu_report());
        let _payload_service = payload_service::start(host.ready_notifier(), None)?;
        start_tombstone_export(&config, debuggable);
        host.notify_payload_started()?;
        return run_confined(task, debuggable);
    }
    let metadata =
        payload_metadata::read_path(&metadata_device).context("reading the payload metadata")?;
    // The host's DICE handover, taken before anything of the payload is read.
    let (
        identity::HostHandover {
            handover,
            new_instance,
        },
        fw_cfg_removal,
    ) = identity::take_handover(Path::new(identity::FW_CFG_SYSFS_BY_NAME))
        .context("taking the VM's DICE identity from the host")?;
    log("DICE handover read; removing the fw_cfg driver");
    let instance_path = Path::new(apk::BY_NAME).join(sealed_state::INSTANCE_PARTITION);
    let mut instance_image = sealed_state::InstanceDisk::open(&instance_path)?;
    let instance_key = Zeroizing::new(instance::microdroid_key(&handover.cdis.cdi_seal));
    let saved = instance_image
        .read_microdroid_data(&instance_key)
        .map_err(|e| match e {
            instance::Error::Decrypt => anyhow::anyhow!(
                "the instance image's record does not decrypt with this VM's sealing key: it was \
                 sealed for another OS, debug level or host, or it was tampered with"
            ),
            other => anyhow::Error::from(other).context("reading the instance image"),
        })?;
    sealed_state::check_provisioning(new_instance, saved.is_some())?;
    log(match &saved {
        Some(_) => "instance image: record found",
        None => "instance image: no record (first boot)",
    });

    let (apk_mount, apk_data) = mount_apk_payload()?;
    // The config, and how the payload's DICE node names it.
    let (config, payload_identity) = match &metadata.payload {
        Some(payload_metadata::Payload::ConfigPath(path)) => (
            payload::resolve_config(payload::PayloadSource::ConfigFile(&config_path_in_apk(
                path,
            )?))?,
            identity::PayloadIdentity::ConfigPath(path.clone()),
        ),
        Some(payload_metadata::Payload::Config(config)) => (
            payload::resolve_config(payload::PayloadSource::Metadata(config))?,
            identity::PayloadIdentity::BinaryName(config.payload_binary_name.clone()),
        ),
        None => {
            return Err(MicrodroidError::PayloadInvalidConfig(
                "No payload config in metadata".into(),
            )
            .into())
        }
    };
    let task = config
        .task()
        .map_err(|e| MicrodroidError::PayloadInvalidConfig(e.to_string()))?;
    let (extra_mounts, extra_apks_data) = mount_extra_apks(config.extra_apks.len())?;
    let apex_data = verify_apexes(&metadata)?;
    let mut salt = vec![0u8; dice::HIDDEN_SIZE];
    getrandom::getrandom(&mut salt).context("reading random bytes")?;
    let now = instance::MicrodroidData {
        salt,
        apk_data,
        extra_apks_data,
        apex_data,
    };
    let (record, decision) = sealed_state::reconcile(saved.as_ref(), &now)?;
    match &decision {
        sealed_state::Decision::Unchanged => log("instance image: the payload matches its record"),
        sealed_state::Decision::FirstBoot => {
            instance_image
                .write_microdroid_data(&instance_key, &record)
                .context("recording the payload in the instance image")?;
            log("instance image: payload recorded");
        }
        sealed_state::Decision::Update(updates) => {
            instance_image
                .write_microdroid_data(&instance_key, &record)
                .context("recording the update in the instance image")?;
            log(&format!(
                "instance image: update recorded ({})",
                updates.join("; ")
            ));
        }
    }
    drop(instance_image);
    pin_apexes(&metadata, &record.apex_data)?;
    if metadata.apexes.is_empty() {
        write_empty_apex_list()?;
    } else {
        run_apexd()?;
    }

    let node = identity::payload_node(&handover, &payload_identity, &record, debuggable)?;
    drop(handover);
    let vm_secret = identity::VmSecret::new(&node.cdis);
    let storage_device = Path::new(apk::BY_NAME).join(encrypted_store::STORAGE_PARTITION);
    let store = if storage_device.exists() {
        let key = vm_secret.encrypted_store_key()?;
        let store = encrypted_store::open(
            &storage_device,
            Path::new(encrypted_store::MOUNT_POINT),
            &key,
            payload::PAYLOAD_UID,
            payload::PAYLOAD_GID,
        )
        .map_err(|e| anyhow::anyhow!("encrypted storage: {e:#}"))?;
        log(&format!(
            "encrypted storage {} at {}",
            if store.formatted_now {
                "formatted and mounted"
            } else {
                "mounted"
            },
            encrypted_store::MOUNT_POINT
        ));
        Some(store)
    } else {
        None
    };
    let secrets = Arc::new(payload_service::PayloadSecrets {
        vm_secret,
        dice_chain: node.chain.clone(),
        cdi_attest: Zeroizing::new(node.cdis.cdi_attest),
        allow_restricted_apis: matches!(payload_identity, identity::PayloadIdentity::ConfigPath(_)),
    });
    drop(node);
    fw_cfg_removal.finish()?;
    log("fw_cfg driver removed");
    let zipfuse_pids: Vec<u32> = std::iter::once(&apk_mount)
        .chain(&extra_mounts)
        .map(|m| m.daemon.id())
        .collect();
    log(&memory::report(&zipfuse_pids));
    log(&memory::cpu_report());
    let _payload_service = payload_service::start(host.ready_notifier(), Some(secrets))?;
    start_tombstone_export(&config, debuggable);
    host.notify_payload_started()?;
    let result = run_confined(task, debuggable);
    if let Some(store) = &store {
        if let Err(err) = store.sync() {
            log(&format!("syncing the encrypted storage: {err:#}"));
        }
    }
    result
}

/// Runs the payload in its sandbox (sandbox.rs) and waits for it; a crash's tombstone reaches
/// the host before the result is reported (and the VM powers off).
fn run_confined(task: &payload_config::Task, debuggable: bool) -> Result<i32> {
    let confinement = sandbox::Confinement::microdroid()?;
    let result =
        payload::run_task(task, debuggable, Some(&confinement)).context("running the payload");
    tombstones::wait_for_exports(std::time::Duration::from_secs(5));
    result
}

/// Serves the crash socket when the config (or the debug level) asks for tombstones. A failure
/// costs the tombstones, not the payload: it is logged.
fn start_tombstone_export(config: &payload_config::VmPayloadConfig, debuggable: bool) {
    if tombstones::should_export(config, debuggable) {
        if let Err(e) = tombstones::start() {
            log(&format!("tombstones will not be exported: {e:#}"));
        }
    }
}

/// The main APK: dm-verity from its idsig, its signature checked through the verified device,
/// then mounted at /mnt/apk. Returns the mount and what the instance records of the APK.
fn mount_apk_payload() -> Result<(apk::ZipfuseMount, instance::ApkData)> {
    let by_name = Path::new(apk::BY_NAME);
    let idsig_path = by_name.join(apk::MAIN_IDSIG_PARTITION);
    let device = apk::apkdmverity(
        &by_name.join(apk::MAIN_APK_PARTITION),
        &idsig_path,
        apk::MAIN_APK_PARTITION,
    )?;
    log(&format!(
        "apkdmverity: {} is verified by its idsig's tree",
        device.display()
    ));
    let signer = apk::verify_signature(&device)?;
    log(&format!(
        "APK signature verified ({:?}, {:?})",
        signer.scheme, signer.algorithm
    ));
    let mount = apk::mount_zipfuse(
        &device,
        Path::new(apk::APK_MOUNT_POINT),
        false,
        payload::PAYLOAD_UID,
        payload::PAYLOAD_GID,
    )?;
    log(&format!("zipfuse: APK mounted at {}", apk::APK_MOUNT_POINT));
    let data = apk::apk_data(&idsig_path, &signer, Path::new(apk::APK_MOUNT_POINT))?;
    log(&format!(
        "APK is package {} version code {}",
        data.package_name, data.version_code
    ));
    Ok((mount, data))
}

/// Verifies each APEX of the metadata (as apexd will, again, against these values) and returns
/// what the instance records of them, in metadata order.
fn verify_apexes(metadata: &payload_metadata::Metadata) -> Result<Vec<instance::ApexData>> {
    let verified = apexd_lite::verify_all(Path::new(apk::BY_NAME), &metadata.apexes)
        .map_err(|e| MicrodroidError::PayloadVerificationFailed(format!("{e:#}")))?;
    Ok(metadata
        .apexes
        .iter()
        .zip(verified)
        .map(|(entry, apex)| instance::ApexData {
            name: entry.name.clone(),
            manifest_name: Some(apex.apex.manifest.name.clone()),
            manifest_version: Some(apex.apex.manifest.version),
            public_key: apex.apex.public_key.clone(),
            root_digest: apex.verified.hashtree.root_digest.clone(),
            last_update_seconds: entry.last_update_seconds,
            is_factory: entry.is_factory,
        })
        .collect())
}

/// Writes `/apex/vm-payload-metadata`: the metadata with every APEX pinned to what the
/// instance recorded, for apexd.
fn pin_apexes(
    metadata: &payload_metadata::Metadata,
    recorded: &[instance::ApexData],
) -> Result<()> {
    let mut pinned = metadata.clone();
    for (entry, apex) in pinned.apexes.iter_mut().zip(recorded) {
        entry.public_key = apex.public_key.clone();
        entry.root_digest = apex.root_digest.clone();
        entry.manifest_name = apex.manifest_name.clone().unwrap_or_default();
        entry.manifest_version = apex.manifest_version.unwrap_or(0);
    }
    let path = Path::new(apexd_lite::PINNED_METADATA);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, payload_metadata::to_bytes(&pinned)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// A payload without APEXes: apexd would verify and mount nothing and only write an empty
/// `/apex/apex-info-list.xml`, yet starting it costs ~0.07 s of a TCG boot (a static binary
/// paged in through dm-verity). The manager writes the same empty list itself.
fn write_empty_apex_list() -> Result<()> {
    let path = apexd_lite::write_info_list(
        Path::new(apexd_lite::APEX_ROOT),
        &apexd_lite::info_list_xml(&[]),
    )
    .map_err(|e| MicrodroidError::PayloadVerificationFailed(format!("{e:#}")))?;
    log(&format!(
        "no APEX in the payload metadata: 0 APEX(es) active, {} written, apexd not started",
        path.display()
    ));
    Ok(())
}

/// apexd, as AOSP's `ctl.start apexd-vm`: verifies the payload disk's APEXes against the pinned
/// metadata and mounts them at /apex/<name>; any failure is a payload verification failure.
fn run_apexd() -> Result<()> {
    let mut command = std::process::Command::new(APEXD_BIN);
    command.stdin(std::process::Stdio::null());
    privileges::limit(&mut command, privileges::APEXD);
    let output = command
        .output()
        .with_context(|| format!("starting {APEXD_BIN}"))
        .map_err(|e| MicrodroidError::PayloadVerificationFailed(format!("{e:#}")))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .for_each(log);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(MicrodroidError::PayloadVerificationFailed(format!(
            "APEX verification failed ({}): {}",
            output.status,
            stderr.trim()
        ))
        .into());
    }
    Ok(())
}

/// Extra APKs: verified the same way, mounted noexec at /mnt/extra-apk/<i>.
fn mount_extra_apks(count: usize) -> Result<(Vec<apk::ZipfuseMount>, Vec<instance::ApkData>)> {
    let mut mounts = Vec::with_capacity(count);
    let mut data = Vec::with_capacity(count);
    for (i, (apk_device, idsig_device)) in apk::extra_apk_partitions(count)?.into_iter().enumerate()
    {
        let device = apk::apkdmverity(&apk_device, &idsig_device, &format!("extra-apk-{i}"))?;
        let signer = apk::verify_signature(&device)?;
        let mount_point = Path::new(apk::EXTRA_APK_MOUNT_DIR).join(i.to_string());
        mounts.push(apk::mount_zipfuse(
            &device,
            &mount_point,
            true,
            payload::PAYLOAD_UID,
            payload::PAYLOAD_GID,
        )?);
        data.push(apk::apk_data(&idsig_device, &signer, &mount_point)?);
        log(&format!(
            "zipfuse: extra APK {i} mounted noexec at {}",
            mount_point.display()
        ));
    }
    Ok((mounts, data))
}

/// The config path from the metadata must name a file inside the mounted APK.
fn config_path_in_apk(path: &str) -> Result<std::path::PathBuf> {
    let inside = path
        .strip_prefix(apk::APK_MOUNT_POINT)
        .filter(|rest| rest.starts_with('/') && !rest.split('/').any(|c| c == ".."));
    match inside {
        Some(_) => Ok(std::path::PathBuf::from(path)),
        None => Err(MicrodroidError::PayloadInvalidConfig(format!(
            "config path {path:?} is not inside {}",
            apk::APK_MOUNT_POINT
        ))
        .into()),
    }
}

/// Whether the host started this VM as debuggable (payload output goes to the console).
pub fn is_debuggable(cmdline: &Path) -> bool {
    std::fs::read_to_string(cmdline)
        .map(|text| text.split_whitespace().any(|word| word == DEBUGGABLE_FLAG))
        .unwrap_or(false)
}

/// Logs a line. microdroid_manager runs as an init service with `console`: init stamps and tags
/// each line of its stdout, so the line is printed as is.
pub(crate) fn log(text: &str) {
    use std::io::Write;
    if !CONSOLE_LOG.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    /// Fault matrix row 30: no metadata partition is the system payload only on a VM without
    /// any app partition; with one, it is an invalid config naming what is there.
    #[test]
    fn a_missing_metadata_partition_is_the_system_payload_only_without_app_partitions() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let by_name = dir.path();
        assert_eq!(payload_source(by_name).unwrap(), PayloadSource::System);
        std::fs::write(by_name.join(sealed_state::INSTANCE_PARTITION), b"").unwrap();
        std::fs::write(by_name.join(apk::MAIN_APK_PARTITION), b"").unwrap();
        let err = payload_source(by_name).unwrap_err();
        assert_eq!(
            crate::error::failure_class(&err),
            vm_status::FailureClass::PayloadInvalidConfig,
            "{err:#}"
        );
        assert!(
            format!("{err:#}").contains(
                "the VM has an app's partitions (microdroid-apk, vm-instance) but no \
                 payload-metadata partition"
            ),
            "{err:#}"
        );
        std::fs::write(by_name.join(PAYLOAD_METADATA_PARTITION), b"").unwrap();
        assert_eq!(payload_source(by_name).unwrap(), PayloadSource::App);
    }

    use super::*;

    #[test]
    fn a_panic_writes_its_death_reason() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("ttyS1");
        std::fs::write(&device, b"").unwrap();
        let device_str = device.to_str().unwrap().to_owned();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| report_panic(&device_str, info)));
        let result = std::panic::catch_unwind(|| panic!("an impossible state"));
        std::panic::set_hook(previous);
        assert!(result.is_err());
        let line = std::fs::read_to_string(&device).unwrap();
        assert!(
            line.starts_with("MICRODROID_UNKNOWN_RUNTIME_ERROR|microdroid_manager panicked: "),
            "{line}"
        );
        assert!(line.contains("an impossible state"), "{line}");
    }

    #[test]
    fn debuggable_flag_from_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        std::fs::write(
            &path,
            "console=ttyS0 androidboot.microdroid.debuggable=1 quiet\n",
        )
        .unwrap();
        assert!(is_debuggable(&path));
        std::fs::write(&path, "androidboot.microdroid.debuggable=0\n").unwrap();
        assert!(!is_debuggable(&path));
        assert!(!is_debuggable(&dir.path().join("missing")));
    }
}
