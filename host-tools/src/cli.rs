//! The `vmctl` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::outcome::exit_status;
use crate::qemu::Accel;
use crate::vm::{self, VmConfig};

#[derive(Parser)]
#[command(name = "vmctl", about = "Runs Microdroid VMs under QEMU", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DebugLevel {
    /// Not debuggable: the payload's output stays in the guest.
    None,
    /// Debuggable: the guest console, payload output included, is shown on the terminal.
    Full,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Boot the OS image, run its payload, and exit with the payload's status.
    ///
    /// Exit status: the payload's exit code when it ran; 124 timeout; 125 guest error (death
    /// reason printed); 126 guest kernel panic; 127 the VM could not be run; 130 interrupted.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The OS manifest written by the image builder.
    #[arg(long, default_value = "build/image/vm_os.json")]
    pub os: PathBuf,
    /// Kernel to boot instead of the manifest's.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initramfs to boot instead of the manifest's.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: u32,
    /// Virtual CPUs (under TCG, 1 is fastest).
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Stop the VM after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// The guest's vsock context id.
    #[arg(long, default_value_t = 3)]
    pub cid: u32,
    #[arg(long, value_enum, default_value_t = DebugLevel::Full)]
    pub debug: DebugLevel,
    /// Write the guest console here (it is always captured; by default in a temporary directory).
    #[arg(long)]
    pub console_log: Option<PathBuf>,
    /// Do not copy the console to the terminal, even when debuggable.
    #[arg(long)]
    pub quiet: bool,
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    #[arg(long, default_value = "vhost-device-vsock")]
    pub vhost_device_vsock: PathBuf,
    /// Extra kernel command-line arguments.
    #[arg(long = "kernel-arg")]
    pub kernel_args: Vec<String>,
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Cmd::Run(args) => run(args),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let debuggable = args.debug == DebugLevel::Full;
    let config = VmConfig {
        os_manifest: args.os,
        kernel: args.kernel,
        initrd: args.initrd,
        memory_mib: args.memory_mib,
        cpus: args.cpus,
        accel: args.accel,
        timeout: Duration::from_secs(args.timeout),
        cid: args.cid,
        debuggable,
        console_to_terminal: debuggable && !args.quiet,
        console_log: args.console_log,
        qemu: args.qemu,
        vhost_device_vsock: args.vhost_device_vsock,
        extra_kernel_args: args.kernel_args,
    };
    match vm::run(&config) {
        Ok(result) => {
            let status = result.outcome.exit_status();
            if status != 0 && !config.console_to_terminal && debuggable {
                let text = String::from_utf8_lossy(&result.console);
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                eprintln!("vmctl: last console lines:");
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
            eprintln!(
                "vmctl: {} [death reason {}; {:.2} s; console: {}]",
                result.outcome,
                result.outcome.death_reason(),
                result.wall_time.as_secs_f64(),
                result.console_log.display()
            );
            ExitCode::from(status)
        }
        Err(err) => {
            eprintln!("vmctl: error: {err:#}");
            ExitCode::from(exit_status::INFRASTRUCTURE)
        }
    }
}
