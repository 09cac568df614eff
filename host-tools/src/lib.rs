//! The host side of Microdroid: `vmctl` and the pieces it is made of.
//!
//! - `cli`: the command line (`run`, `list`, `stop`, `console`, `info`);
//! - `vm`: one VM's lifecycle: CID, run directory, disks, vsock backend, the host's
//!   IVirtualMachineService, the VMM, console, hang detection, waiting;
//! - `registry`: the running VMs shared by every vmctl process (CIDs, owners, states);
//! - `disk`: the OS disk as a composite (crosvm spec, VMDK view for QEMU, `/proc/self/fd/N` form);
//! - `qemu`, `crosvm`: the VMM command lines, as pure functions of the VM's configuration;
//! - `outcome`: how a VM ended, from the VMM's status, ttyS1 and the guest's RPC events, and the
//!   exit status vmctl gives for it;
//! - `children`: child processes that die with vmctl, whatever way it ends;
//! - `adb`: `vmctl adb CID`, a loopback TCP port forwarded to the guest adbd's vsock port.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod accel;
pub mod adb;
pub mod aosp;
pub mod app;
pub mod children;
pub mod cli;
pub mod crosvm;
pub mod disk;
pub mod identity;
pub mod logs;
pub mod outcome;
pub mod preflight;
pub mod qemu;
pub mod registry;
pub mod remote;
pub mod stages;
pub mod terminal;
pub mod tombstones;
pub mod vm;
pub mod vsock;
