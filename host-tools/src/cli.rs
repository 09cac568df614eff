//! The `vmctl` command line: `run` (foreground or `--detach`), `list`, `stop`, `console`, `info`.

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::app;
use crate::crosvm::find_program;
use crate::outcome::{exit_status, Vmm};
use crate::qemu::Accel;
use crate::registry::{self, VmRecord, GUEST_CID_MAX, GUEST_CID_MIN};
use crate::vm::VmConfig;

#[derive(Parser)]
#[command(
    name = "vmctl",
    about = "Runs Microdroid VMs under QEMU (or crosvm)",
    version = VERSION.as_str(),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DebugLevel {
    /// Not debuggable: nothing from the guest console reaches the host.
    None,
    /// Debuggable: the guest console (kernel, init, payload) is logged and shown on the terminal.
    Full,
}

/// AOSP's `PartitionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartitionType {
    Raw,
    Instance,
    Encryptedstore,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Boot the OS image, run its payload, and exit with the payload's status; or, with a
    /// CONFIG.json (AOSP's `vm run`), run that custom VM through virtmgr.
    ///
    /// Exit status: the payload's exit code when it ran; 124 timeout or hang (payload not
    /// started in time); 125 guest error (death reason printed); 126 guest kernel panic; 127 the
    /// VM could not be run; 130 interrupted or stopped. With --detach: 0 once the VM runs.
    /// With CONFIG.json, as AOSP's `vm`: 0 once the VM ended ("VM ended: <reason>"), 124 past
    /// --timeout, 1 on an error.
    Run(Box<RunCmd>),
    /// Run an app's payload from its signed APK (AVF's `vm run-app`): the APK is verified in the
    /// guest (dm-verity from the idsig, v3 signature), mounted at /mnt/apk, and its task run.
    ///
    /// Two forms. AOSP's: `run-app APK IDSIG INSTANCE --config-path P | --payload-binary-name N`
    /// goes through virtmgr (vmclient) and prints what AOSP's `vm` prints. This project's:
    /// `run-app --apk A --idsig I --instance INST ...` runs the VM in vmctl itself, with
    /// --json, --detach, --apex and `run`'s exit statuses.
    RunApp(Box<RunAppArgs>),
    /// Print whether an AVF feature is enabled on this host (AOSP's `vm check-feature-enabled`).
    CheckFeatureEnabled { feature: String },
    /// Run a Microdroid VM with an empty payload (AOSP's `vm run-microdroid`), through
    /// virtmgr: the payload (the system's `hello_payload --hang`) reports ready and waits, so
    /// the VM runs until Ctrl-C or --timeout. The work directory keeps the APK, its idsig and
    /// the instance, so a second run with the same --work-dir is the same VM instance.
    RunMicrodroid(Box<RunMicrodroidArgs>),
    /// Make the APK Signature Scheme v4 idsig of an APK (what `apksigner` writes as .idsig).
    CreateIdsig { apk: PathBuf, idsig: PathBuf },
    /// Package a directory as an APK (stored entries, page-aligned executables; files under lib/
    /// and bin/ executable) and sign it with APK Signature Schemes v2 and v3.
    PackageApk {
        /// The APK's contents, e.g. assets/vm_config.json and lib/x86_64/<payload>.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// PKCS#8 private key (RSA or EC P-256); default: the public test key in libs/apksig/testkeys.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// X.509 certificate (PEM or DER) of the key.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// The package name written into the APK's binary AndroidManifest.xml (default: from
        /// the output file name, org.microdroid.<name>). Ignored with --manifest.
        #[arg(long)]
        package: Option<String>,
        /// The version code (versionCode | versionCodeMajor << 32): rollback protection
        /// refuses a lower one for the same instance.
        #[arg(long, default_value_t = 1)]
        version_code: u64,
        /// minSdkVersion in the manifest.
        #[arg(long, default_value_t = 34)]
        min_sdk_version: u32,
    },
    /// Create a partition image (AOSP's `vm create-partition`): an instance image
    /// ("Android-VM-instance" header), an encrypted-storage image ("UNFORMATTED-STORAGE"), or a
    /// raw zero-filled one; sparse, the size rounded up to 4 KiB. An existing file is refused.
    CreatePartition {
        path: PathBuf,
        /// Size in bytes.
        size: u64,
        #[arg(long = "type", value_enum, default_value_t = PartitionType::Raw)]
        partition_type: PartitionType,
    },
    /// Package a directory as an APEX: an erofs apex_payload.img with an AVB hashtree footer
    /// signed by the key, its apex_pubkey, and apex_manifest.pb, in a zip of stored entries.
    PackageApex {
        /// The APEX's contents, e.g. bin/<executable>; mounted at /apex/<name> in the guest.
        #[arg(long)]
        dir: PathBuf,
        /// The APEX name (manifest `name`), e.g. com.example.hello.
        #[arg(long)]
        name: String,
        /// The APEX version (manifest `version`).
        #[arg(long)]
        version: i64,
        #[arg(long)]
        out: PathBuf,
        /// AVB signing key (RSA PEM); default: the public test key libs/avb/testkeys/testkey_rsa4096.pem.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign an existing zip or APK with APK Signature Schemes v2 and v3.
    SignApk {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        cert: PathBuf,
    },
    /// List the running VMs (CID, owner pid, state, payload state, uptime).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a running VM (its owner stops the VMM and exits 130, death reason KILLED).
    Stop { cid: u32 },
    /// Forward a loopback TCP port to a debuggable VM's adbd (vsock port 5555), as AOSP's
    /// `adb forward tcp:N vsock:CID:5555`, print the `adb connect` line, and serve until the VM
    /// ends. Then `adb -s 127.0.0.1:PORT shell|push|pull|logcat` reach the VM.
    Adb {
        cid: u32,
        /// The local port (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Also run `adb connect 127.0.0.1:PORT`.
        #[arg(long)]
        connect: bool,
        /// The adb client `--connect` runs.
        #[arg(long, default_value = "adb")]
        adb: PathBuf,
    },
    /// Print a running VM's console log and follow it until the VM ends.
    Console {
        cid: u32,
        /// Print what is there and exit.
        #[arg(long)]
        no_follow: bool,
    },
    /// Print a VM's kept console log and death reason: a running VM's by CID, an ended one's
    /// (the newest with that CID), or `last` (the newest VM). Logs are kept in
    /// <state dir>/logs, the newest 50 VMs (state dir: $VMCTL_STATE_DIR, else /var/lib/vmctl
    /// for root, ~/.local/state/vmctl or $XDG_STATE_HOME/vmctl for other users).
    Logs {
        /// A CID, or `last`.
        which: String,
    },
    /// Describe this host's support for running VMs.
    Info {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["config_path", "payload_binary_name"])))]
pub struct RunAppArgs {
    /// AOSP form: the signed APK (then IDSIG and INSTANCE follow; run through virtmgr).
    #[arg(value_name = "APK", conflicts_with_all = ["apk", "idsig", "instance"], requires = "instance_pos")]
    pub apk_pos: Option<PathBuf>,
    /// AOSP form: the APK's idsig, made or refreshed by virtmgr.
    #[arg(value_name = "IDSIG")]
    pub idsig_pos: Option<PathBuf>,
    /// AOSP form: the instance image, created (10 MiB) if missing.
    #[arg(value_name = "INSTANCE")]
    pub instance_pos: Option<PathBuf>,
    /// The signed APK.
    #[arg(long, required_unless_present = "apk_pos")]
    pub apk: Option<PathBuf>,
    /// Its v4 signature (`vmctl create-idsig`, or apksigner's .idsig).
    #[arg(long, required_unless_present = "apk_pos")]
    pub idsig: Option<PathBuf>,
    /// The VM instance image (partition vm-instance); created if missing.
    #[arg(long, required_unless_present = "apk_pos")]
    pub instance: Option<PathBuf>,
    /// AOSP form: the idsig path of each --extra-apk (made or refreshed by virtmgr).
    #[arg(long = "extra-idsig")]
    pub extra_idsigs: Vec<PathBuf>,
    /// The payload config inside the APK, e.g. assets/vm_config.json.
    #[arg(long)]
    pub config_path: Option<String>,
    /// A payload binary in the APK's lib/x86_64/ (the config is synthesized, as AOSP does).
    #[arg(long)]
    pub payload_binary_name: Option<String>,
    /// Extra APKs, mounted noexec at /mnt/extra-apk/<i>; their idsigs are made here.
    #[arg(long = "extra-apk")]
    pub extra_apks: Vec<PathBuf>,
    /// APEXes (`vmctl package-apex`), verified by the guest's apexd and mounted at
    /// /apex/<name>; repeatable.
    #[arg(long = "apex")]
    pub apexes: Vec<PathBuf>,
    /// Encrypted storage for the payload (AOSP's `--storage`): partition `encryptedstore`,
    /// dm-crypt in the guest with a key from the VM's secret, ext4, at /mnt/encryptedstore.
    /// Created if missing.
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// Size in bytes of a storage image created by --storage (default 10 MiB).
    #[arg(long, requires = "storage")]
    pub storage_size: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `run-microdroid`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct RunMicrodroidArgs {
    /// Where the APK, its idsig and the instance image go (default: a new
    /// $TMPDIR/microdroid/<random> directory, as AOSP's /data/local/tmp/microdroid/<random>).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Encrypted storage (created if missing).
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// Size in bytes of a storage image created by --storage (default 10 MiB).
    #[arg(long, requires = "storage")]
    pub storage_size: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `run`'s arguments: an optional custom-VM config, and the run options.
#[derive(clap::Args, Debug, Clone)]
pub struct RunCmd {
    /// AOSP's custom-VM JSON (kernel, initrd, params, disks, memory_mib, cpu_topology,
    /// platform_version): run through virtmgr. Without it, the OS image's VM runs in vmctl.
    #[arg(value_name = "CONFIG.json")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// AOSP's `--cpu-topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CpuTopologyArg {
    /// AOSP's spelling: `one_cpu`.
    #[default]
    #[value(name = "one_cpu")]
    OneCpu,
    /// `match_host`.
    #[value(name = "match_host")]
    MatchHost,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The OS manifest written by the image builder. Default: build/image/vm_os.json under the
    /// current directory if there is one, else the image `make install` put next to vmctl
    /// (<prefix>/share/microdroid/image/vm_os.json).
    #[arg(long)]
    pub os: Option<PathBuf>,
    /// Kernel to boot instead of the manifest's.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initramfs to boot instead of the manifest's.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB (AOSP: `--mem`, `-m`); default 256.
    #[arg(long, short = 'm', visible_alias = "mem")]
    pub memory_mib: Option<u32>,
    /// AOSP's CPU topology: one_cpu, or match_host (as many vCPUs as host CPUs; overrides
    /// --cpus).
    #[arg(long, value_enum, default_value_t = CpuTopologyArg::OneCpu)]
    pub cpu_topology: CpuTopologyArg,
    /// A protected VM (AOSP's `--protected`): refused, this host has no protected-VM
    /// hypervisor.
    #[arg(long, short = 'p')]
    pub protected: bool,
    /// Expose the guest kernel to gdb on this localhost TCP port (AOSP's `--gdb`; QEMU's gdb
    /// stub): `gdb vmlinux -ex 'target remote :PORT'`. Debuggable VMs only.
    #[arg(long)]
    pub gdb: Option<std::num::NonZeroU16>,
    /// The VM's name, shown by `vmctl list` (AOSP forms: default VmRunApp / VmRun).
    #[arg(long)]
    pub name: Option<String>,
    /// AOSP form: write the guest console here instead of stdout.
    #[arg(long)]
    pub console: Option<PathBuf>,
    /// AOSP form: feed the guest console from this file.
    #[arg(long)]
    pub console_in: Option<PathBuf>,
    /// The guest's log (what logd keeps: services, the payload's output and its liblog
    /// messages, as threadtime lines), written here as it arrives. Debuggable VMs only: a VM at
    /// debug level NONE has no logd and the file stays empty.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Virtual CPUs (under TCG, 1 is fastest).
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// auto: KVM where a probe shows it runs a vCPU on this host (cached per boot), TCG
    /// otherwise; vmctl says which it chose and why.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Stop the VM after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Stop the VM as hung (HANGUP) if its payload has not started after this many seconds
    /// (AOSP: 30); 0 turns the check off.
    #[arg(long, default_value_t = 30)]
    pub boot_timeout: u64,
    /// The guest's vsock context id (default: the lowest free one from 2048).
    #[arg(long)]
    pub cid: Option<u32>,
    #[arg(long, value_enum, default_value_t = DebugLevel::Full)]
    pub debug: DebugLevel,
    /// Write the guest console here (it is always captured; by default in the run directory).
    #[arg(long)]
    pub console_log: Option<PathBuf>,
    /// Do not copy the console to the terminal, even when debuggable.
    #[arg(long)]
    pub quiet: bool,
    /// Copy the guest's console to the terminal byte for byte, escape sequences included
    /// (by default a terminal gets control characters shown, not obeyed: host_tools::terminal).
    #[arg(long)]
    pub raw_console: bool,
    /// Print events and the outcome as JSON lines on stdout (the console is not copied).
    #[arg(long)]
    pub json: bool,
    /// Start the VM, print its CID and return; this vmctl's child owns the VM from then on.
    #[arg(long)]
    pub detach: bool,
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    pub vmm: Vmm,
    /// Print the VMM command line (disks assembled, files open) instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    #[arg(long, default_value = "crosvm")]
    pub crosvm: PathBuf,
    #[arg(long, default_value = "vhost-device-vsock")]
    pub vhost_device_vsock: PathBuf,
    /// Extra kernel command-line arguments.
    #[arg(long = "kernel-arg")]
    pub kernel_args: Vec<String>,
    /// The host's device secret, root of every VM's DICE chain (created on first use, mode
    /// 0600). Default: <state dir>/device_secret (state dir: $VMCTL_STATE_DIR, else
    /// /var/lib/vmctl for root, ~/.local/state/vmctl or $XDG_STATE_HOME/vmctl for others).
    #[arg(long)]
    pub device_secret: Option<PathBuf>,
    /// Testing: do not serve IVirtualMachineService, so that the guest cannot reach the host.
    #[arg(long, hide = true)]
    pub no_vm_service: bool,
    /// Internal (--detach): the fd on which to report the CID once the VM runs.
    #[arg(long, hide = true)]
    pub detached_notify_fd: Option<i32>,
}

pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Cmd::Run(cmd) => {
            if let Some(config) = &cmd.config {
                return crate::aosp::run_config(config, &cmd.run);
            }
            if let Err(err) = refuse_aosp_only_flags(&cmd.run) {
                eprintln!("vmctl: error: {err:#}");
                return ExitCode::from(exit_status::INFRASTRUCTURE);
            }
            let config = vm_config(&cmd.run);
            return run(&cmd.run, config);
        }
        Cmd::RunApp(args) => {
            if args.apk_pos.is_some() {
                return crate::aosp::run_app(&args);
            }
            return run_app(&args);
        }
        Cmd::CheckFeatureEnabled { feature } => {
            return crate::aosp::check_feature_enabled(&feature)
        }
        Cmd::RunMicrodroid(args) => return run_microdroid(&args),
        Cmd::CreateIdsig { apk, idsig } => app::create_idsig(&apk, &idsig),
        Cmd::PackageApk {
            dir,
            out,
            key,
            cert,
            package,
            version_code,
            min_sdk_version,
        } => package_apk(
            &dir,
            &out,
            key.as_deref(),
            cert.as_deref(),
            &app::ManifestOptions {
                package,
                version_code,
                min_sdk_version,
            },
        ),
        Cmd::CreatePartition {
            path,
            size,
            partition_type,
        } => create_partition(&path, size, partition_type),
        Cmd::PackageApex {
            dir,
            name,
            version,
            out,
            key,
        } => package_apex(&dir, &name, version, &out, key.as_deref()),
        Cmd::SignApk {
            input,
            output,
            key,
            cert,
        } => sign_apk(&input, &output, &key, &cert),
        Cmd::List { json } => list(json),
        Cmd::Stop { cid } => stop(cid),
        Cmd::Adb {
            cid,
            port,
            connect,
            adb,
        } => crate::adb::run(cid, port, connect, &adb),
        Cmd::Console { cid, no_follow } => console(cid, !no_follow),
        Cmd::Logs { which } => logs(&which),
        Cmd::Info { json } => info(json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("vmctl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where `make install` puts the OS image, relative to vmctl's own directory.
pub const INSTALLED_IMAGE: &str = "../share/microdroid/image/vm_os.json";
/// The image a build tree has, relative to the current directory.
pub const BUILD_IMAGE: &str = "build/image/vm_os.json";

/// `--os` when none is given: the build tree's image under the current directory, or the one
/// installed next to vmctl, or (neither existing) the build tree's path, whose absence the
/// error names.
pub fn default_os_manifest() -> PathBuf {
    let build = PathBuf::from(BUILD_IMAGE);
    if build.exists() {
        return build;
    }
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(INSTALLED_IMAGE)))
        .and_then(|p| std::fs::canonicalize(p).ok());
    installed.unwrap_or(build)
}

/// `vmctl --version`: the crate version, the commit it was built from, and the OS image the
/// default `--os` resolves to from here.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let os = default_os_manifest();
    let image = if os.exists() {
        std::path::absolute(&os).unwrap_or(os).display().to_string()
    } else {
        "none found (pass --os, or run `make install`)".into()
    };
    format!(
        "{} (commit {}); default image: {image}",
        env!("CARGO_PKG_VERSION"),
        env!("VMCTL_COMMIT")
    )
});

pub fn vm_config(args: &RunArgs) -> VmConfig {
    let debuggable = args.debug == DebugLevel::Full;
    let runtime_dir = registry::default_runtime_dir();
    let accel = match args.accel {
        Accel::Auto => {
            let choice = crate::accel::choose(&args.qemu, &runtime_dir);
            if !args.json && args.detached_notify_fd.is_none() {
                eprintln!("vmctl: --accel auto: {}", choice.reason);
            }
            choice.accel
        }
        accel => accel,
    };
    VmConfig {
        os_manifest: args.os.clone().unwrap_or_else(default_os_manifest),
        kernel: args.kernel.clone(),
        initrd: args.initrd.clone(),
        memory_mib: args.memory_mib.unwrap_or(crate::vm::DEFAULT_MEMORY_MIB),
        cpus: match args.cpu_topology {
            CpuTopologyArg::OneCpu => args.cpus,
            CpuTopologyArg::MatchHost => std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1),
        },
        accel,
        timeout: Duration::from_secs(args.timeout),
        boot_timeout: (args.boot_timeout > 0).then(|| Duration::from_secs(args.boot_timeout)),
        cid: args.cid,
        runtime_dir,
        debuggable,
        console_to_terminal: debuggable
            && !args.quiet
            && !args.json
            && args.detached_notify_fd.is_none(),
        console_log: args.console_log.clone().or_else(|| args.console.clone()),
        logs_dir: Some(crate::logs::default_logs_dir()),
        vmm: args.vmm,
        qemu: args.qemu.clone(),
        crosvm: args.crosvm.clone(),
        vhost_device_vsock: args.vhost_device_vsock.clone(),
        extra_kernel_args: args.kernel_args.clone(),
        serve_vm_service: !args.no_vm_service,
        app: None,
        instance: None,
        storage: None,
        device_secret: args
            .device_secret
            .clone()
            .unwrap_or_else(crate::identity::default_device_secret_path),
        raw: None,
        name: args.name.clone(),
        gdb_port: args.gdb.map(std::num::NonZeroU16::get),
        log_file: args.log.clone(),
        tombstone_dir: None,
        raw_console: args.raw_console,
        console_out: None,
        console_in: None,
    }
}

fn print_json(value: &impl Serialize) {
    if let Ok(line) = serde_json::to_string(value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The app `run-app` runs, from its arguments.
pub fn app_payload(args: &RunAppArgs) -> app::AppPayload {
    let payload = match (&args.config_path, &args.payload_binary_name) {
        (Some(path), _) => app::PayloadSpec::ConfigPath(path.clone()),
        // clap's group requires one of them; an empty name is refused later.
        (None, name) => app::PayloadSpec::BinaryName(name.clone().unwrap_or_default()),
    };
    app::AppPayload {
        apk: args.apk.clone().unwrap_or_default(),
        idsig: args.idsig.clone().unwrap_or_default(),
        payload,
        extra_apks: args.extra_apks.clone(),
        apexes: args.apexes.clone(),
    }
}

/// The VM `run-app` runs: `run`'s config plus the app, its instance and its storage.
pub fn app_vm_config(args: &RunAppArgs) -> VmConfig {
    let mut config = vm_config(&args.run);
    config.app = Some(app_payload(args));
    config.instance = args.instance.clone();
    config.storage = args.storage.clone().map(|path| {
        (
            path,
            args.storage_size.unwrap_or(crate::disk::NEW_STORAGE_SIZE),
        )
    });
    config
}

/// The AOSP form's flags that the in-process forms cannot honour.
fn refuse_aosp_only_flags(args: &RunArgs) -> Result<()> {
    if args.protected {
        bail!("--protected: this host has no protected-VM hypervisor (pKVM); only non-protected VMs run here");
    }
    let mut bad = Vec::new();
    if args.console_in.is_some() {
        bad.push("--console-in");
    }
    if !bad.is_empty() {
        bail!(
            "{} belong to AOSP's forms (run-app APK IDSIG INSTANCE, run CONFIG.json), which run \
             through virtmgr",
            bad.join(", ")
        );
    }
    Ok(())
}

fn run_app(args: &RunAppArgs) -> ExitCode {
    if let Err(err) = refuse_aosp_only_flags(&args.run) {
        eprintln!("vmctl: error: {err:#}");
        return ExitCode::from(exit_status::INFRASTRUCTURE);
    }
    // Mistakes a user can fix, found before a VM starts (the guest checks everything again).
    if let Err(err) = crate::preflight::check(&app_payload(args)) {
        eprintln!("vmctl: {err}");
        return ExitCode::from(err.exit_status());
    }
    run(&args.run, app_vm_config(args))
}

/// The public test key `package-apk` signs with when given none (libs/apksig/testkeys/README.md).
const TEST_APK_KEY: &[u8] = include_bytes!("../../libs/apksig/testkeys/testkey.pk8");
const TEST_APK_CERT: &[u8] = include_bytes!("../../libs/apksig/testkeys/testkey.x509.pem");

fn create_partition(path: &Path, size: u64, partition_type: PartitionType) -> Result<()> {
    match partition_type {
        PartitionType::Instance => instance::create_instance_file(path, size)?,
        PartitionType::Encryptedstore => instance::create_storage_file(path, size)?,
        PartitionType::Raw => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.set_len(size.div_ceil(4096) * 4096)
                .with_context(|| format!("sizing {}", path.display()))?;
        }
    }
    Ok(())
}

fn package_apk(
    dir: &Path,
    out: &Path,
    key: Option<&Path>,
    cert: Option<&Path>,
    manifest: &app::ManifestOptions,
) -> Result<()> {
    let manifest_dir = tempfile::tempdir()?;
    let files = app::apk_files_with_manifest(dir, out, manifest, manifest_dir.path())?;
    match (key, cert) {
        (Some(key), Some(cert)) => app::package_apk(&files, key, cert, out),
        _ => {
            eprintln!("vmctl: signing with the public test key (libs/apksig/testkeys); pass --key and --cert for a real one");
            let tmp = tempfile::tempdir()?;
            let (key, cert) = (tmp.path().join("key.pk8"), tmp.path().join("cert.pem"));
            std::fs::write(&key, TEST_APK_KEY)?;
            std::fs::write(&cert, TEST_APK_CERT)?;
            app::package_apk(&files, &key, &cert, out)
        }
    }
}

/// The empty payload of `run-microdroid`: the system's demo binary, told to wait once ready.
const EMPTY_PAYLOAD_CONFIG: &str = r#"{"task": {"type": "executable", "command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;

fn run_microdroid(args: &RunMicrodroidArgs) -> ExitCode {
    let prepared = (|| -> Result<PathBuf> {
        let work = match &args.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                dir.clone()
            }
            None => {
                let base = std::env::temp_dir().join("microdroid");
                std::fs::create_dir_all(&base)?;
                tempfile::Builder::new()
                    .rand_bytes(17)
                    .prefix("")
                    .tempdir_in(&base)?
                    .keep()
            }
        };
        let apk = work.join("empty-payload.apk");
        if !apk.exists() {
            let tree = tempfile::tempdir()?;
            std::fs::create_dir_all(tree.path().join("assets"))?;
            std::fs::write(
                tree.path().join("assets/vm_config.json"),
                EMPTY_PAYLOAD_CONFIG,
            )?;
            package_apk(
                tree.path(),
                &apk,
                None,
                None,
                &app::ManifestOptions {
                    package: Some("com.android.microdroid.empty_payload".into()),
                    version_code: 1,
                    min_sdk_version: 34,
                },
            )?;
        }
        eprintln!("vmctl: work directory {}", work.display());
        Ok(work)
    })();
    let work = match prepared {
        Ok(w) => w,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let app_args = RunAppArgs {
        apk_pos: Some(work.join("empty-payload.apk")),
        idsig_pos: Some(work.join("apk.idsig")),
        instance_pos: Some(work.join("instance.img")),
        apk: None,
        idsig: None,
        instance: None,
        extra_idsigs: Vec::new(),
        config_path: Some("assets/vm_config.json".into()),
        payload_binary_name: None,
        extra_apks: Vec::new(),
        apexes: Vec::new(),
        storage: args.storage.clone(),
        storage_size: args.storage_size,
        run: args.run.clone(),
    };
    crate::aosp::run_app(&app_args)
}

/// The public test key `package-apex` signs with when given none (libs/avb/testkeys/README.md).
const TEST_APEX_KEY: &str = include_str!("../../libs/avb/testkeys/testkey_rsa4096.pem");

fn package_apex(
    dir: &Path,
    name: &str,
    version: i64,
    out: &Path,
    key: Option<&Path>,
) -> Result<()> {
    let key = match key {
        Some(path) => avb::SigningKey::from_pem_file(path)
            .with_context(|| format!("reading the key {}", path.display()))?,
        None => {
            eprintln!("vmctl: signing with the public AVB test key (libs/avb/testkeys); pass --key for a real one");
            avb::SigningKey::from_pem(TEST_APEX_KEY)?
        }
    };
    apex::write::build_apex(dir, name, version, &key, out)?;
    Ok(())
}

fn sign_apk(input: &Path, output: &Path, key: &Path, cert: &Path) -> Result<()> {
    let zip = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let config = apksig::sign::SigningConfig::from_files(key, cert)?;
    std::fs::write(output, apksig::sign::sign(&zip, &config)?)
        .with_context(|| format!("writing {}", output.display()))
}

fn run(args: &RunArgs, config: VmConfig) -> ExitCode {
    if args.detach {
        return match detach(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("vmctl: error: {err:#}");
                ExitCode::from(exit_status::INFRASTRUCTURE)
            }
        };
    }
    if args.dry_run || (config.vmm == Vmm::Crosvm && find_program(&config.crosvm).is_none()) {
        return show_command_line(&config, args.dry_run);
    }
    // Only a detached owner has this fd; it gets the CID, or why the VM did not start.
    let mut notify = args.detached_notify_fd.map(take_notify_fd);
    let json = args.json;
    let debuggable = config.debuggable;
    let mut observer = |report: Report| match report {
        Report::Started(record) => {
            if let Some(mut pipe) = notify.take() {
                let _ = writeln!(pipe, "{}", record.cid);
            }
            if json {
                print_json(
                    &serde_json::json!({"event": "started", "cid": record.cid, "pid": record.pid,
                    "console_log": record.console_log, "time": record.started_at}),
                );
            } else if debuggable {
                eprintln!(
                    "vmctl: VM {} running (owner pid {}); console: {}",
                    record.cid,
                    record.pid,
                    record.console_log.display()
                );
            } else {
                eprintln!(
                    "vmctl: VM {} running (owner pid {}); debug level none: the guest's console \
                     is off, only its payload events and death reason reach the host",
                    record.cid, record.pid
                );
            }
        }
        Report::Event(line, event_json) => {
            if json {
                print_json(&event_json);
            } else {
                eprintln!("vmctl: event {line}");
            }
        }
    };
    let result = run_in_virtmgr(args, &config, &mut observer);
    match result {
        Ok(summary) => {
            let status = summary.exit_status;
            // The console tail helps when the VM or its payload failed to run, not when the
            // payload chose a non-zero exit code.
            let failed_to_run = summary.payload_exit_code.is_none();
            if status != 0
                && failed_to_run
                && !config.console_to_terminal
                && config.debuggable
                && !json
            {
                let console = std::fs::read(&summary.console_log).unwrap_or_default();
                // Guest bytes, shown and not obeyed.
                let console = crate::terminal::Sanitizer::new().push(&console);
                let text = String::from_utf8_lossy(&console);
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                eprintln!("vmctl: last console lines:");
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
            if json {
                print_json(&serde_json::json!({
                    "event": "exit", "cid": summary.cid, "outcome": summary.outcome,
                    "death_reason": summary.death_reason, "exit_status": status,
                    "payload_exit_code": summary.payload_exit_code,
                    "wall_time_s": summary.wall_time_s, "console_log": summary.console_log,
                    "boot_stages": summary.stages, "tombstones": summary.tombstones,
                }));
            }
            for tombstone in &summary.tombstones {
                eprintln!("vmctl: tombstone: {}", tombstone.display());
            }
            let console = if config.debuggable {
                summary.console_log.display().to_string()
            } else {
                "off (--debug none)".to_owned()
            };
            eprintln!(
                "vmctl: {} [death reason {}; {:.2} s; console: {console}]",
                summary.outcome, summary.death_reason, summary.wall_time_s,
            );
            ExitCode::from(status)
        }
        Err(err) => {
            if let Some(mut pipe) = notify.take() {
                let _ = writeln!(pipe, "error: {err:#}");
            }
            eprintln!("vmctl: error: {err:#}");
            ExitCode::from(exit_status::INFRASTRUCTURE)
        }
    }
}

/// What the VM reports to vmctl while it runs.
enum Report {
    Started(VmRecord),
    /// A guest notification: its line for the terminal, its JSON.
    Event(String, serde_json::Value),
}

/// Messages from virtmgr's callbacks and vmctl's signal handler to `run_in_virtmgr`.
enum FromVm {
    Started(VmRecord),
    Event(String, serde_json::Value),
    Ended(crate::remote::RunSummary),
    Failed(String),
    /// virtmgr's session ended.
    ServiceDied,
    /// vmctl got SIGINT, SIGTERM or SIGHUP: stop the VM (it ends as "interrupted").
    Signal,
}

struct Forwarder(std::sync::Mutex<std::sync::mpsc::Sender<FromVm>>);

impl Forwarder {
    fn send(&self, m: FromVm) {
        if let Ok(tx) = self.0.lock() {
            let _ = tx.send(m);
        }
    }
}

impl crate::remote::VmctlCallback for Forwarder {
    fn on_started(&self, record: VmRecord) {
        self.send(FromVm::Started(record));
    }
    fn on_event(&self, line: String, json: serde_json::Value) {
        self.send(FromVm::Event(line, json));
    }
    fn on_ended(&self, summary: crate::remote::RunSummary) {
        self.send(FromVm::Ended(summary));
    }
    fn on_failed(&self, message: String) {
        self.send(FromVm::Failed(message));
    }
}

/// Runs `config` in this vmctl's own virtmgr (through its `IVmctlService` extension) and
/// reports as the VM runs; the VM is virtmgr's, and lives while this process holds it.
fn run_in_virtmgr(
    args: &RunArgs,
    config: &VmConfig,
    observer: &mut dyn FnMut(Report),
) -> Result<crate::remote::RunSummary> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let service = vmclient::VirtualizationService::new_with(&crate::aosp::virtmgr_options(args))
        .context("starting virtmgr")?;
    let extension =
        crate::remote::VmctlServiceProxy::of(&service).context("virtmgr has no vmctl extension")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let callback = rpcbinder::SpIBinder::local(std::sync::Arc::new(
        crate::remote::BnVmctlCallback(Forwarder(std::sync::Mutex::new(tx.clone()))),
    ));
    // Signals stop the VM (virtmgr reports it as interrupted) instead of ending vmctl.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("signals")?;
    let signal_handle = signals.handle();
    let signal_tx = tx.clone();
    let signal_thread = std::thread::spawn(move || {
        for _ in signals.forever() {
            if signal_tx.send(FromVm::Signal).is_err() {
                return;
            }
        }
    });
    let result = (|| {
        let vm = extension
            .run_vm(config, &callback)
            .context("starting the VM in virtmgr")?;
        if let Some(proxy) = vm.0.as_remote() {
            let died = tx.clone();
            proxy.link_to_death(move || {
                let _ = died.send(FromVm::ServiceDied);
            });
        }
        loop {
            match rx.recv() {
                Ok(FromVm::Started(record)) => observer(Report::Started(record)),
                Ok(FromVm::Event(line, json)) => observer(Report::Event(line, json)),
                Ok(FromVm::Ended(summary)) => return Ok(summary),
                Ok(FromVm::Failed(message)) => bail!("{message}"),
                Ok(FromVm::Signal) => {
                    let _ = vm.stop();
                }
                Ok(FromVm::ServiceDied) | Err(_) => {
                    bail!("virtmgr ended before the VM reported its end")
                }
            }
        }
    })();
    signal_handle.close();
    let _ = signal_thread.join();
    result
}

/// Takes ownership of the `--detach` parent's pipe, and keeps it from the VM's helpers: the
/// parent waits for the pipe to close.
fn take_notify_fd(fd: i32) -> std::fs::File {
    // SAFETY: the fd was created for this process by the `--detach` parent, which passes its
    // number in `--detached-notify-fd`; nothing else in this process uses it.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let _ = nix::fcntl::fcntl(
        file.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    file
}

/// `--dry-run`, or `--vmm crosvm` where crosvm is not installed: print the command line.
fn show_command_line(config: &VmConfig, dry_run: bool) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("vmctl-dry-run-").tempdir() {
        Ok(dir) => dir.keep(),
        Err(e) => {
            eprintln!("vmctl: error: creating a directory for the disks: {e}");
            return ExitCode::from(exit_status::INFRASTRUCTURE);
        }
    };
    match crate::vm::command_line(config, &dir) {
        Ok((argv, _preserved)) => {
            if !dry_run {
                eprintln!(
                    "vmctl: {} is not installed; the command line would be:",
                    config.crosvm.display()
                );
            }
            println!(
                "{}",
                argv.iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            eprintln!(
                "vmctl: disks assembled in {} (fd numbers are this process's)",
                dir.display()
            );
            ExitCode::from(if dry_run {
                0
            } else {
                exit_status::INFRASTRUCTURE
            })
        }
        Err(err) => {
            eprintln!("vmctl: error: {err:#}");
            ExitCode::from(exit_status::INFRASTRUCTURE)
        }
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:@+".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `run --detach`: starts this same command, without `--detach`, as a new session that owns
/// the VM, and returns once it reports the VM running (its CID), or its failure.
fn detach(args: &RunArgs) -> Result<()> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    let write_fd = write_end.as_raw_fd();
    let exe = std::env::current_exe().context("finding vmctl's own path")?;
    let argv: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    let mut command = Command::new(exe);
    command
        .args(argv)
        .arg("--detached-notify-fd")
        .arg(write_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls setsid(2) and fcntl(2),
    // which are async-signal-safe; `write_fd` stays open in the parent until after spawn.
    unsafe {
        command.pre_exec(move || {
            // Out of the terminal's session: Ctrl-C there does not reach the VM's owner.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::fcntl(write_fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the VM's owner")?;
    drop(write_end);
    // One line: the CID, or the error.
    let mut report = String::new();
    std::io::BufReader::new(std::fs::File::from(read_end))
        .read_line(&mut report)
        .context("waiting for the VM to start")?;
    let report = report.trim();
    match report.parse::<u32>() {
        Ok(cid) => {
            if args.json {
                print_json(
                    &serde_json::json!({"event": "detached", "cid": cid, "pid": child.id()}),
                );
            } else {
                println!("{cid}");
                eprintln!("vmctl: VM {cid} running, owned by pid {}; `vmctl console {cid}`, `vmctl stop {cid}`", child.id());
            }
            Ok(())
        }
        Err(_) => {
            let status = child.wait().context("waiting for the VM's owner")?;
            match report.strip_prefix("error: ") {
                Some(message) => bail!("the VM did not start: {message}"),
                None => bail!("the VM's owner exited with {status} before the VM ran"),
            }
        }
    }
}

fn list(json: bool) -> Result<()> {
    let vms = registry::list(&registry::default_runtime_dir());
    if json {
        #[derive(Serialize)]
        struct Listed<'a> {
            #[serde(flatten)]
            record: &'a VmRecord,
            uptime_s: f64,
        }
        let listed: Vec<Listed<'_>> = vms
            .iter()
            .map(|r| Listed {
                record: r,
                uptime_s: r.uptime_secs(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    println!(
        "{:<6} {:<8} {:<11} {:<9} {:>9} {:<5} {:<6} {:<12} CONSOLE",
        "CID", "PID", "STATE", "PAYLOAD", "UPTIME", "DEBUG", "VMM", "NAME"
    );
    for vm in &vms {
        println!(
            "{:<6} {:<8} {:<11} {:<9} {:>8.1}s {:<5} {:<6} {:<12} {}",
            vm.cid,
            vm.pid,
            vm.state,
            vm.payload_state,
            vm.uptime_secs(),
            vm.debug,
            vm.vmm,
            if vm.name.is_empty() { "-" } else { &vm.name },
            vm.console_log.display()
        );
    }
    Ok(())
}

fn find_vm(cid: u32) -> Result<(PathBuf, VmRecord)> {
    let dir = registry::default_runtime_dir();
    match registry::find(&dir, cid) {
        Some(record) => Ok((dir, record)),
        None => bail!("no running VM has CID {cid} (see `vmctl list`)"),
    }
}

/// How long `stop` waits for the owner to end the VM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

fn stop(cid: u32) -> Result<()> {
    let (dir, record) = find_vm(cid)?;
    let pid = i32::try_from(record.pid).context("bad pid in the VM record")?;
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .with_context(|| format!("signalling the VM's owner (pid {pid})"))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    // Host-side polling: the owner's lock is the only signal, and flock has no timeout.
    while registry::is_running(&dir, cid) {
        if Instant::now() > deadline {
            bail!("VM {cid} (owner pid {pid}) did not stop within {STOP_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("vmctl: VM {cid} stopped");
    Ok(())
}

fn console(cid: u32, follow: bool) -> Result<()> {
    let (dir, record) = find_vm(cid)?;
    let mut log = std::fs::File::open(&record.console_log)
        .with_context(|| format!("opening {}", record.console_log.display()))?;
    let mut out = std::io::stdout().lock();
    // Guest bytes: shown, not obeyed, on a terminal.
    let mut sanitizer = crate::terminal::sanitizer_for_stdout(false);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read what is there; when caught up, stop if the VM has ended, else wait for more.
        let running = registry::is_running(&dir, cid);
        loop {
            let n = log.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let data = buf.get(..n).unwrap_or_default();
            match sanitizer.as_mut() {
                Some(s) => out.write_all(&s.push(data))?,
                None => out.write_all(data)?,
            }
        }
        out.flush()?;
        if !follow || !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logs(which: &str) -> Result<()> {
    let logs_dir = crate::logs::default_logs_dir();
    // A running VM's console, wherever it goes.
    if let Ok(cid) = which.parse::<u32>() {
        if let Ok((_, record)) = find_vm(cid) {
            let text = std::fs::read(&record.console_log)
                .with_context(|| format!("reading {}", record.console_log.display()))?;
            crate::terminal::write_guest_bytes_to_stdout(&text)?;
            eprintln!(
                "vmctl: VM {cid} is running; console: {}",
                record.console_log.display()
            );
            return Ok(());
        }
    }
    let dir = crate::logs::find(&logs_dir, which).with_context(|| {
        format!(
            "no kept logs for {which:?} in {} (a CID or `last`)",
            logs_dir.display()
        )
    })?;
    let console = dir.join(crate::logs::CONSOLE_FILE);
    match std::fs::read(&console) {
        Ok(text) => crate::terminal::write_guest_bytes_to_stdout(&text)?,
        Err(_) => eprintln!("vmctl: no console log (debug level none, or --console-log elsewhere)"),
    }
    let death =
        std::fs::read_to_string(dir.join(crate::logs::DEATH_REASON_FILE)).unwrap_or_default();
    let death = death.trim();
    eprintln!(
        "vmctl: logs in {}; death reason: {}",
        dir.display(),
        if death.is_empty() {
            "(none written)"
        } else {
            death
        }
    );
    Ok(())
}

#[derive(Serialize)]
struct HostInfo {
    qemu: Option<String>,
    vhost_device_vsock: Option<String>,
    crosvm: Option<PathBuf>,
    /// Whether KVM runs a vCPU here (the probe of `--accel auto`).
    kvm: bool,
    /// What `--accel auto` chooses, and why.
    accelerator: String,
    runtime_dir: PathBuf,
    cid_range: [u32; 2],
    running_vms: usize,
    /// The guest kernel command line of a debuggable VM given no `--kernel-arg` (part of a VM
    /// instance's identity: an instance made under another one is refused).
    kernel_cmdline: String,
}

fn first_line_of(program: &str, arg: &str) -> Option<String> {
    let out = Command::new(program)
        .arg(arg)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_owned)
}

fn info(json: bool) -> Result<()> {
    let runtime_dir = registry::default_runtime_dir();
    let choice = crate::accel::choose(Path::new("qemu-system-x86_64"), &runtime_dir);
    let info = HostInfo {
        qemu: first_line_of("qemu-system-x86_64", "--version"),
        vhost_device_vsock: first_line_of("vhost-device-vsock", "--version"),
        crosvm: find_program(Path::new("crosvm")),
        kvm: choice.accel == Accel::Kvm,
        accelerator: choice.reason,
        running_vms: registry::list(&runtime_dir).len(),
        runtime_dir,
        cid_range: [GUEST_CID_MIN, GUEST_CID_MAX],
        kernel_cmdline: crate::qemu::kernel_cmdline(true, &[]),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let or_missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "not installed".into());
    println!("QEMU:               {}", or_missing(&info.qemu));
    println!(
        "vhost-device-vsock: {}",
        or_missing(&info.vhost_device_vsock)
    );
    println!(
        "crosvm:             {}",
        info.crosvm
            .as_ref()
            .map_or("not installed".into(), |p| p.display().to_string())
    );
    println!("accelerator:        {} (--accel auto)", info.accelerator);
    println!("runtime directory:  {}", info.runtime_dir.display());
    println!(
        "guest CIDs:         {}..={}",
        info.cid_range[0], info.cid_range[1]
    );
    println!("running VMs:        {}", info.running_vms);
    println!("kernel cmdline:     {}", info.kernel_cmdline);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_partition_writes_aosps_headers_and_refuses_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let instance = dir.path().join("instance.img");
        create_partition(&instance, 2 << 20, PartitionType::Instance).unwrap();
        let bytes = std::fs::read(&instance).unwrap();
        assert_eq!(&bytes[..19], b"Android-VM-instance");
        assert_eq!(&bytes[19..21], &[1u8, 0]);
        assert_eq!(bytes.len(), 2 << 20);
        let storage = dir.path().join("storage.img");
        create_partition(&storage, 5 << 20, PartitionType::Encryptedstore).unwrap();
        assert_eq!(
            &std::fs::read(&storage).unwrap()[..19],
            b"UNFORMATTED-STORAGE"
        );
        let raw = dir.path().join("raw.img");
        create_partition(&raw, 5000, PartitionType::Raw).unwrap();
        assert_eq!(std::fs::read(&raw).unwrap(), vec![0u8; 8192]);
        assert!(create_partition(&raw, 5000, PartitionType::Raw).is_err());
        assert!(create_partition(&instance, 2 << 20, PartitionType::Instance).is_err());
        let small = dir.path().join("small.img");
        assert!(create_partition(&small, 4096, PartitionType::Encryptedstore).is_err());
        assert!(!small.exists(), "a refused size writes nothing");
    }

    fn run_app_args(extra: &[&str]) -> RunAppArgs {
        let mut argv = vec![
            "vmctl",
            "run-app",
            "--apk",
            "a.apk",
            "--idsig",
            "a.idsig",
            "--instance",
            "i.img",
            "--config-path",
            "assets/vm_config.json",
            "--accel",
            "tcg",
        ];
        argv.extend(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Cmd::RunApp(args) => *args,
            _ => panic!("not run-app"),
        }
    }

    #[test]
    fn run_app_flags_reach_the_vm_config() {
        let config = app_vm_config(&run_app_args(&[
            "--storage",
            "s.img",
            "--storage-size",
            "4194304",
            "--device-secret",
            "/secrets/ds",
            "--extra-apk",
            "x.apk",
        ]));
        assert_eq!(config.storage, Some((PathBuf::from("s.img"), 4 << 20)));
        assert_eq!(config.device_secret, PathBuf::from("/secrets/ds"));
        assert_eq!(config.instance, Some(PathBuf::from("i.img")));
        let app = config.app.unwrap();
        assert_eq!(app.extra_apks, [PathBuf::from("x.apk")]);
        assert_eq!(
            app.payload,
            app::PayloadSpec::ConfigPath("assets/vm_config.json".into())
        );
        // --storage without a size gets the default; no --storage, no storage.
        let config = app_vm_config(&run_app_args(&["--storage", "s.img"]));
        assert_eq!(
            config.storage,
            Some((PathBuf::from("s.img"), crate::disk::NEW_STORAGE_SIZE))
        );
        assert_eq!(app_vm_config(&run_app_args(&[])).storage, None);
        // --storage-size alone is refused.
        assert!(Cli::try_parse_from([
            "vmctl",
            "run-app",
            "--apk",
            "a",
            "--idsig",
            "b",
            "--instance",
            "c",
            "--config-path",
            "d",
            "--storage-size",
            "5"
        ])
        .is_err());
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("--disk"), "--disk");
        assert_eq!(
            shell_quote("console=ttyS0 panic=-1"),
            "'console=ttyS0 panic=-1'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn run_flags_map_to_the_vm_config() {
        let cli = Cli::parse_from([
            "vmctl",
            "run",
            "--debug",
            "none",
            "--boot-timeout",
            "0",
            "--vmm",
            "crosvm",
        ]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        let config = vm_config(&cmd.run);
        assert!(!config.debuggable && !config.console_to_terminal);
        assert_eq!(
            (config.boot_timeout, config.vmm, config.cid),
            (None, Vmm::Crosvm, None)
        );
        let cli = Cli::parse_from(["vmctl", "run"]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        assert_eq!(
            vm_config(&cmd.run).boot_timeout,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn aosp_flags_map_to_the_vm_config() {
        let cli = Cli::parse_from([
            "vmctl",
            "run",
            "--mem",
            "300",
            "--cpu-topology",
            "match_host",
            "--gdb",
            "1234",
            "--console",
            "/tmp/c.log",
        ]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        let config = vm_config(&cmd.run);
        let host_cpus = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(
            (config.memory_mib, config.cpus, config.gdb_port),
            (300, host_cpus, Some(1234))
        );
        assert_eq!(config.console_log, Some(PathBuf::from("/tmp/c.log")));
        // --log is the guest's log file in every form; --console-in belongs to AOSP's forms.
        let cli = Cli::parse_from(["vmctl", "run", "--log", "/tmp/l", "--name", "x"]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        assert!(refuse_aosp_only_flags(&cmd.run).is_ok());
        assert_eq!(vm_config(&cmd.run).log_file, Some(PathBuf::from("/tmp/l")));
        assert!(!vm_config(&cmd.run).raw_console);
        let cli = Cli::parse_from(["vmctl", "run", "--raw-console"]);
        let Cmd::Run(raw) = cli.command else {
            unreachable!()
        };
        assert!(vm_config(&raw.run).raw_console);
        assert_eq!(vm_config(&cmd.run).name.as_deref(), Some("x"));
        let cli = Cli::parse_from(["vmctl", "run", "--console-in", "/tmp/i"]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        assert_eq!(
            refuse_aosp_only_flags(&cmd.run).unwrap_err().to_string(),
            "--console-in belong to AOSP's forms (run-app APK IDSIG INSTANCE, run CONFIG.json), \
             which run through virtmgr"
        );
        let cli = Cli::parse_from(["vmctl", "run", "--protected"]);
        let Cmd::Run(cmd) = cli.command else {
            unreachable!()
        };
        assert!(refuse_aosp_only_flags(&cmd.run)
            .unwrap_err()
            .to_string()
            .contains("no protected-VM hypervisor"));
        // AOSP's positional run-app form.
        let cli = Cli::parse_from([
            "vmctl",
            "run-app",
            "a.apk",
            "a.idsig",
            "i.img",
            "--payload-binary-name",
            "libp.so",
            "--extra-apk",
            "e.apk",
            "--extra-idsig",
            "e.idsig",
        ]);
        let Cmd::RunApp(args) = cli.command else {
            unreachable!()
        };
        assert_eq!(args.instance_pos, Some(PathBuf::from("i.img")));
        assert_eq!(args.extra_idsigs, [PathBuf::from("e.idsig")]);
        assert!(args.apk.is_none());
    }
}
