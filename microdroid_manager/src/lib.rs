//! microdroid_manager, the guest's payload manager.
//!
//! Today's flow (AOSP's `try_main`, reference/aosp-guest.md §5.2): connect to the host's
//! IVirtualMachineService over vsock binder RPC, load the payload config, tell the host the
//! payload is starting, run it, report its exit (`notifyPayloadFinished`) or why it could not run
//! (`notifyError`, and the death reason on ttyS1), exit so that init powers the VM off. Later
//! steps slot in before the payload runs: the instance partition, APK and APEX verification, and
//! zipfuse.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod apk;
pub mod error;
pub mod host_link;
pub mod payload;
pub mod payload_service;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use vm_status::DEATH_REASON_DEVICE;

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

pub fn run() -> ExitCode {
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

fn try_run(host: &mut dyn HostLink, debuggable: bool) -> Result<i32> {
    let metadata_device = Path::new(apk::BY_NAME).join(PAYLOAD_METADATA_PARTITION);
    if !metadata_device.exists() {
        // No payload disk: the payload named on the system partition.
        let config = payload::load_config(Path::new(PAYLOAD_CONFIG_PATH))?;
        let task = config
            .task()
            .map_err(|e| MicrodroidError::PayloadInvalidConfig(e.to_string()))?;
        let _payload_service = payload_service::start(host.ready_notifier())?;
        host.notify_payload_started()?;
        return payload::run_task(task, debuggable, true).context("running the payload");
    }
    let metadata =
        payload_metadata::read_path(&metadata_device).context("reading the payload metadata")?;
    let _mounts = mount_apk_payload()?;
    run_apexd()?;
    let config = match &metadata.payload {
        Some(payload_metadata::Payload::ConfigPath(path)) => payload::resolve_config(
            payload::PayloadSource::ConfigFile(&config_path_in_apk(path)?),
        )?,
        Some(payload_metadata::Payload::Config(config)) => {
            payload::resolve_config(payload::PayloadSource::Metadata(config))?
        }
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
    let _extra_mounts = mount_extra_apks(config.extra_apks.len())?;
    let _payload_service = payload_service::start(host.ready_notifier())?;
    host.notify_payload_started()?;
    payload::run_task(task, debuggable, true).context("running the payload")
}

/// The main APK: dm-verity from its idsig, its signature checked through the verified device,
/// then mounted at /mnt/apk.
fn mount_apk_payload() -> Result<apk::ZipfuseMount> {
    let by_name = Path::new(apk::BY_NAME);
    let device = apk::apkdmverity(
        &by_name.join(apk::MAIN_APK_PARTITION),
        &by_name.join(apk::MAIN_IDSIG_PARTITION),
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
    Ok(mount)
}

/// apexd, as AOSP's `ctl.start apexd-vm`: verifies the payload disk's APEXes and mounts them at
/// /apex/<name>; any failure is a payload verification failure.
fn run_apexd() -> Result<()> {
    let output = std::process::Command::new(APEXD_BIN)
        .stdin(std::process::Stdio::null())
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
fn mount_extra_apks(count: usize) -> Result<Vec<apk::ZipfuseMount>> {
    let mut mounts = Vec::with_capacity(count);
    for (i, (apk_device, idsig_device)) in apk::extra_apk_partitions(count)?.into_iter().enumerate()
    {
        let device = apk::apkdmverity(&apk_device, &idsig_device, &format!("extra-apk-{i}"))?;
        apk::verify_signature(&device)?;
        let mount_point = Path::new(apk::EXTRA_APK_MOUNT_DIR).join(i.to_string());
        mounts.push(apk::mount_zipfuse(
            &device,
            &mount_point,
            true,
            payload::PAYLOAD_UID,
            payload::PAYLOAD_GID,
        )?);
        log(&format!(
            "zipfuse: extra APK {i} mounted noexec at {}",
            mount_point.display()
        ));
    }
    Ok(mounts)
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
    use super::*;

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
