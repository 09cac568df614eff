//! The host side of Microdroid: `vmctl` and the pieces it is made of.
//!
//! - `cli`: the command line;
//! - `vm`: one VM's lifecycle: run directory, disks, vsock backend, QEMU, console, waiting;
//! - `qemu`: the QEMU command line, as a pure function of the VM's configuration;
//! - `outcome`: how a VM ended, from QEMU's status and what the guest wrote, and the exit status
//!   vmctl gives for it;
//! - `children`: child processes that die with vmctl, whatever way it ends.

pub mod children;
pub mod cli;
pub mod outcome;
pub mod qemu;
pub mod vm;
