//! AOSP's `vm` forms of vmctl, as thin clients of `vmclient`: `run-app APK IDSIG INSTANCE`,
//! `run CONFIG.json`, `check-feature-enabled`. Each spawns its own virtmgr, creates the VM
//! through `IVirtualizationService`, prints what AOSP's `vm` prints, and waits for the VM's
//! death; the VM ends with this process (its reference goes with the session).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vmclient::aidl::{
    features, CpuTopology, CustomConfig, DebugLevel as AidlDebugLevel, PartitionType, Payload,
    VirtualMachineAppConfig, VirtualMachineConfig, VirtualMachinePayloadConfig, INSTANCE_ID_SIZE,
};
use vmclient::{VirtmgrOptions, VirtualizationService, VmCallback, VmInstance};

use crate::cli::{CpuTopologyArg, DebugLevel, RunAppArgs, RunArgs};
use crate::outcome::exit_status;

/// AOSP's default size of a new instance image, and of a new storage image.
const NEW_PARTITION_SIZE: i64 = 10 << 20;

/// The host settings of `args` as virtmgr flags.
pub fn virtmgr_options(args: &RunArgs) -> VirtmgrOptions {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    if let Some(os) = &args.os {
        a.extend(["--os".into(), os.clone().into()]);
    }
    a.extend([
        "--accel".into(),
        match args.accel {
            crate::qemu::Accel::Auto => "auto",
            crate::qemu::Accel::Tcg => "tcg",
            crate::qemu::Accel::Kvm => "kvm",
        }
        .into(),
        "--vmm".into(),
        args.vmm.name().into(),
        "--qemu".into(),
        args.qemu.clone().into(),
        "--crosvm".into(),
        args.crosvm.clone().into(),
        "--vhost-device-vsock".into(),
        args.vhost_device_vsock.clone().into(),
        "--boot-timeout".into(),
        args.boot_timeout.to_string().into(),
    ]);
    if let Some(secret) = &args.device_secret {
        a.extend(["--device-secret".into(), secret.clone().into()]);
    }
    VirtmgrOptions {
        program: None,
        args: a,
    }
}

/// Flags of the in-process forms that the AOSP forms do not take.
fn refuse_legacy_flags(args: &RunArgs) -> Result<()> {
    let mut bad = Vec::new();
    if args.json {
        bad.push("--json");
    }
    if args.detach {
        bad.push("--detach");
    }
    if args.dry_run {
        bad.push("--dry-run");
    }
    if args.cid.is_some() {
        bad.push("--cid");
    }
    if args.initrd.is_some() {
        bad.push("--initrd");
    }
    if args.no_vm_service {
        bad.push("--no-vm-service");
    }
    if !bad.is_empty() {
        bail!(
            "{} are options of the --apk/--idsig/--instance form (run in vmctl itself), not of \
             AOSP's positional form (run through virtmgr)",
            bad.join(", ")
        );
    }
    Ok(())
}

/// Prints the callbacks on stderr in AOSP `vm`'s words.
struct Printer;

impl VmCallback for Printer {
    fn on_payload_started(&self, _cid: i32) {
        eprintln!("payload started");
    }
    fn on_payload_ready(&self, _cid: i32) {
        eprintln!("payload is ready");
    }
    fn on_payload_finished(&self, _cid: i32, exit_code: i32) {
        eprintln!("payload finished with exit code {exit_code}");
    }
    fn on_error(&self, _cid: i32, code: vmclient::aidl::ErrorCode, message: &str) {
        eprintln!("VM encountered an error: code={code}, message={message}");
    }
}

fn open_rw(path: &Path) -> Result<OwnedFd> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .into())
}

fn open_ro(path: &Path) -> Result<OwnedFd> {
    Ok(File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .into())
}

/// An image made with `initializeWritablePartition` if it does not exist yet.
fn ensure_partition(
    service: &VirtualizationService,
    path: &Path,
    size: i64,
    kind: PartitionType,
) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let file = File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
    service
        .proxy()
        .initialize_writable_partition(file.into(), size, kind)
        .with_context(|| format!("initializing {}", path.display()))?;
    Ok(())
}

/// The idsig of `apk` at `idsig`, made or refreshed by virtmgr (`createOrUpdateIdsigFile`).
fn update_idsig(service: &VirtualizationService, apk: &Path, idsig: &Path) -> Result<()> {
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(idsig)
        .with_context(|| format!("opening {}", idsig.display()))?;
    service
        .proxy()
        .create_or_update_idsig_file(open_ro(apk)?, out.into())
        .with_context(|| format!("making the idsig of {}", apk.display()))?;
    Ok(())
}

fn cpu_topology(arg: CpuTopologyArg) -> CpuTopology {
    match arg {
        CpuTopologyArg::OneCpu => CpuTopology::ONE_CPU,
        CpuTopologyArg::MatchHost => CpuTopology::MATCH_HOST,
    }
}

/// `vmctl run-app APK IDSIG INSTANCE ...` (AOSP's `vm run-app`).
pub fn run_app(args: &RunAppArgs) -> ExitCode {
    exit(run_app_inner(args))
}

fn run_app_inner(args: &RunAppArgs) -> Result<ExitCode> {
    let run = &args.run;
    refuse_legacy_flags(run)?;
    let (Some(apk), Some(idsig), Some(instance)) =
        (&args.apk_pos, &args.idsig_pos, &args.instance_pos)
    else {
        bail!("run-app needs APK, IDSIG and INSTANCE");
    };
    if !args.apexes.is_empty() {
        bail!("--apex is not part of AOSP's app config; use the --apk/--idsig/--instance form");
    }
    if args.extra_apks.len() != args.extra_idsigs.len() {
        bail!(
            "{} --extra-apk but {} --extra-idsig: give one idsig path per extra APK",
            args.extra_apks.len(),
            args.extra_idsigs.len()
        );
    }
    if !args.extra_apks.is_empty() && args.config_path.is_some() {
        bail!(
            "--extra-apk goes with --payload-binary-name (AOSP: it conflicts with --config-path)"
        );
    }
    let service =
        VirtualizationService::new_with(&virtmgr_options(run)).context("starting virtmgr")?;
    for (extra, extra_idsig) in args.extra_apks.iter().zip(&args.extra_idsigs) {
        update_idsig(&service, extra, extra_idsig)?;
    }
    update_idsig(&service, apk, idsig)?;
    ensure_partition(
        &service,
        instance,
        NEW_PARTITION_SIZE,
        PartitionType::ANDROID_VM_INSTANCE,
    )?;
    let storage = match &args.storage {
        Some(path) => {
            let size = args
                .storage_size
                .map_or(NEW_PARTITION_SIZE, |s| i64::try_from(s).unwrap_or(i64::MAX));
            ensure_partition(&service, path, size, PartitionType::ENCRYPTEDSTORE)?;
            Some(open_rw(path)?)
        }
        None => None,
    };
    let payload = match (&args.config_path, &args.payload_binary_name) {
        (Some(path), None) => Payload::ConfigPath(path.clone()),
        (None, Some(name)) => Payload::PayloadConfig(VirtualMachinePayloadConfig {
            payload_binary_name: name.clone(),
            extra_apks: args
                .extra_apks
                .iter()
                .map(|p| open_ro(p))
                .collect::<Result<_>>()?,
        }),
        _ => bail!("exactly one of --config-path and --payload-binary-name is required"),
    };
    let payload_text = match &payload {
        Payload::ConfigPath(p) => format!("ConfigPath({p:?})"),
        Payload::PayloadConfig(c) => format!("PayloadBinaryName({:?})", c.payload_binary_name),
    };
    let mut custom = CustomConfig {
        want_updatable: true,
        ..CustomConfig::default()
    };
    if let Some(kernel) = &run.kernel {
        custom.custom_kernel_image = Some(open_ro(kernel)?);
    }
    custom.extra_kernel_cmdline_params = run.kernel_args.clone();
    custom.gdb_port = run.gdb.map_or(0, |p| i32::from(p.get()));
    let config = VirtualMachineConfig::AppConfig(Box::new(VirtualMachineAppConfig {
        name: run.name.clone().unwrap_or_else(|| "VmRunApp".into()),
        instance_id: [0; INSTANCE_ID_SIZE],
        apk: open_ro(apk)?,
        idsig: open_ro(idsig)?,
        extra_idsigs: args
            .extra_idsigs
            .iter()
            .map(|p| open_ro(p))
            .collect::<Result<_>>()?,
        instance_image: open_rw(instance)?,
        encrypted_storage_image: storage,
        payload,
        os_name: "microdroid".into(),
        debug_level: match run.debug {
            DebugLevel::None => AidlDebugLevel::NONE,
            DebugLevel::Full => AidlDebugLevel::FULL,
        },
        protected_vm: run.protected,
        // AOSP: --mem, else 0 (the OS's default).
        memory_mib: run
            .memory_mib
            .map_or(0, |m| i32::try_from(m).unwrap_or(i32::MAX)),
        cpu_topology: cpu_topology(run.cpu_topology),
        // AOSP's `vm run-app` always sends one, which makes every run-app VM "custom".
        custom_config: Some(custom),
        huge_pages: false,
        boost_uclamp: false,
    }));
    let description = format!("{:?}!{payload_text}", apk);
    run_vm(
        &service,
        &config,
        run,
        &description,
        run.debug == DebugLevel::Full,
    )
}

/// `vmctl run CONFIG.json` (AOSP's `vm run`).
pub fn run_config(path: &Path, run: &RunArgs) -> ExitCode {
    exit(run_config_inner(path, run))
}

fn run_config_inner(path: &Path, run: &RunArgs) -> Result<ExitCode> {
    refuse_legacy_flags(run)?;
    let json = vmconfig::VmConfig::load(path).with_context(|| format!("{}", path.display()))?;
    let mut raw = json
        .to_parcelable(run.name.as_deref().unwrap_or("VmRun"))
        .with_context(|| format!("{}", path.display()))?;
    // As AOSP's `vm run`: the command line overrides memory (if given) and the CPU topology.
    if let Some(mib) = run.memory_mib {
        raw.memory_mib = i32::try_from(mib).unwrap_or(i32::MAX);
    }
    raw.cpu_topology = cpu_topology(run.cpu_topology);
    if let Some(port) = run.gdb {
        raw.gdb_port = i32::from(port.get());
    }
    if run.protected {
        raw.protected_vm = true;
    }
    let service =
        VirtualizationService::new_with(&virtmgr_options(run)).context("starting virtmgr")?;
    let config = VirtualMachineConfig::RawConfig(Box::new(raw));
    run_vm(&service, &config, run, &format!("{path:?}"), true)
}

/// The console's copier to a terminal: it ends once virtmgr closes the pipe.
type ConsoleCopier = std::sync::mpsc::Receiver<()>;

fn console_fds(run: &RunArgs) -> Result<(Option<File>, Option<File>, Option<ConsoleCopier>)> {
    let mut copier = None;
    let out = match (&run.console, &run.console_log) {
        (Some(path), _) | (None, Some(path)) => {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        (None, None) if run.quiet => None,
        // A terminal gets the guest's bytes through the sanitizer (crate::terminal).
        (None, None) if crate::terminal::sanitizer_for_stdout(run.raw_console).is_some() => {
            let (reader, writer) = std::io::pipe().context("creating the console pipe")?;
            let (done, copied) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = crate::terminal::copy_sanitized(reader, std::io::stdout());
                let _ = done.send(());
            });
            copier = Some(copied);
            Some(File::from(std::os::fd::OwnedFd::from(writer)))
        }
        (None, None) => Some(File::from(std::io::stdout().as_fd().try_clone_to_owned()?)),
    };
    let input = match &run.console_in {
        Some(path) => {
            Some(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        }
        None => None,
    };
    Ok((out, input, copier))
}

fn run_vm(
    service: &VirtualizationService,
    config: &VirtualMachineConfig,
    run: &RunArgs,
    description: &str,
    debuggable: bool,
) -> Result<ExitCode> {
    let (console_out, console_in, console_copier) = console_fds(run)?;
    let log = match &run.log {
        Some(path) => {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let vm = VmInstance::create(
        service,
        config,
        console_out,
        console_in,
        log,
        Some(Box::new(Printer)),
    )
    .context("creating the VM")?;
    vm.start().context("starting the VM")?;
    let state = vm
        .state()
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string());
    println!(
        "Created {} from {description} with CID {}, state is {state}.",
        if debuggable { "debuggable VM" } else { "VM" },
        vm.cid()
    );
    let reason = match vm.wait_for_death_with_timeout(Duration::from_secs(run.timeout)) {
        Some(r) => r,
        None => {
            eprintln!(
                "vmctl: the VM ran past --timeout {} s; stopping it",
                run.timeout
            );
            let _ = vm.stop();
            let reason = vm.wait_for_death_with_timeout(Duration::from_secs(30));
            println!(
                "VM ended: {}",
                reason.map_or("(no report)".to_owned(), |r| r.to_string())
            );
            return Ok(ExitCode::from(exit_status::TIMEOUT));
        }
    };
    // The last console lines: virtmgr closes the console pipe once it let go of the VM.
    drop(vm);
    if let Some(copied) = console_copier {
        let _ = copied.recv_timeout(Duration::from_secs(2));
    }
    println!("VM ended: {reason}");
    Ok(ExitCode::SUCCESS)
}

/// `vmctl check-feature-enabled FEATURE` (local, as AOSP's).
pub fn check_feature_enabled(feature: &str) -> ExitCode {
    let state = if features::ENABLED.contains(&feature) {
        "enabled"
    } else {
        "disabled"
    };
    println!("Feature {feature} is {state}");
    ExitCode::SUCCESS
}

fn exit(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
