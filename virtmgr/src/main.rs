//! virtmgr, as AOSP's: `--rpc-server-fd N --ready-fd M` when a client (vmclient) spawns it, or
//! `--socket PATH` to serve any local client. The host settings flags say where the OS image and
//! the host programs are.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use host_tools::outcome::Vmm;
use host_tools::qemu::Accel;
use host_tools::vm::VmConfig;
use virtmgr::VirtualizationService;

#[derive(Parser, Debug)]
#[command(version, about = "Serves IVirtualizationService (AOSP's virtmgr)")]
struct Args {
    /// The bootstrap socket inherited from the client (a socketpair end).
    #[arg(long, conflicts_with = "socket", required_unless_present = "socket")]
    rpc_server_fd: Option<RawFd>,
    /// Where to write the readiness byte "o" once serving.
    #[arg(long, requires = "rpc_server_fd")]
    ready_fd: Option<RawFd>,
    /// Serve on this Unix socket path instead.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The OS manifest (vm_os.json) app VMs boot (default as vmctl's --os).
    #[arg(long)]
    os: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    accel: Accel,
    #[arg(long, value_enum, default_value_t = Vmm::Qemu)]
    vmm: Vmm,
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    #[arg(long, default_value = "crosvm")]
    crosvm: PathBuf,
    #[arg(long, default_value = "vhost-device-vsock")]
    vhost_device_vsock: PathBuf,
    /// The host's device secret (default as vmctl's).
    #[arg(long)]
    device_secret: Option<PathBuf>,
    /// Where VM logs are kept (default as vmctl's).
    #[arg(long)]
    logs_dir: Option<PathBuf>,
    /// An app VM whose payload has not started after this many seconds is stopped as HANGUP
    /// (AOSP: 30); 0 turns the check off.
    #[arg(long, default_value_t = 30)]
    boot_timeout: u64,
    /// Say on stderr how each VM ended.
    #[arg(long, short)]
    verbose: bool,
}

/// Takes an inherited fd by number.
fn inherited(fd: RawFd) -> OwnedFd {
    // SAFETY: the parent passed this fd number for this process to own (`--rpc-server-fd`,
    // `--ready-fd`); nothing else in the process uses it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn main() -> ExitCode {
    let args = Args::parse();
    virtmgr::VERBOSE.store(args.verbose, std::sync::atomic::Ordering::Relaxed);
    let os = args.os.unwrap_or_else(host_tools::cli::default_os_manifest);
    let mut base = VmConfig::new(&os);
    base.accel = match args.accel {
        Accel::Auto => host_tools::accel::choose(&args.qemu, &base.runtime_dir).accel,
        a => a,
    };
    base.vmm = args.vmm;
    base.qemu = args.qemu;
    base.crosvm = args.crosvm;
    base.vhost_device_vsock = args.vhost_device_vsock;
    if let Some(secret) = args.device_secret {
        base.device_secret = secret;
    }
    if let Some(logs) = args.logs_dir {
        base.logs_dir = Some(logs);
    }
    base.boot_timeout = (args.boot_timeout > 0).then(|| Duration::from_secs(args.boot_timeout));
    // A VM runs until it ends, is stopped, or its client lets go (no overall time limit).
    base.timeout = Duration::from_secs(100 * 365 * 24 * 3600);
    base.console_to_terminal = false;
    let service = VirtualizationService::new(base);
    let result = match (args.rpc_server_fd, args.socket) {
        (Some(fd), _) => {
            virtmgr::serve_bootstrap(service, inherited(fd), args.ready_fd.map(inherited))
        }
        (None, Some(path)) => virtmgr::serve_path(service, &path),
        (None, None) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtmgr: {e:#}");
            ExitCode::FAILURE
        }
    }
}
