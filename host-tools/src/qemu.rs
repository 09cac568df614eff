//! The QEMU command line for a Microdroid VM, built as a pure function of its configuration so
//! that it can be tested and shown (`vmctl run --dry-run`).
//!
//! Devices: the OS disk (virtio-blk, read-only, a VMDK descriptor with FLAT extents over the
//! composite disk's files); vsock through `vhost-user-vsock-pci` (the backend is
//! vhost-device-vsock, which needs guest RAM in shared memfd memory; the guest's binder RPC link
//! to the host goes through it); three serial ports (ttyS0 console, ttyS1 death reason, ttyS2
//! the guest's log, AOSP's hvc2); pvpanic,
//! so that a guest kernel panic ends QEMU with a failure; and `isa-debug-exit`, through which
//! PID 1 reports a fatal error.

use std::path::PathBuf;

use vm_status::DEBUG_EXIT_PORT;

/// The firmware that boots a Linux kernel fastest under QEMU (Debian's qemu-system-data).
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Accel {
    /// KVM where a probe shows it runs a vCPU here, TCG otherwise (`host_tools::accel`).
    Auto,
    /// Software emulation: works everywhere.
    Tcg,
    /// Hardware virtualization, where /dev/kvm works.
    Kvm,
}

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Each disk's VMDK and whether the guest may write to it.
    pub disks: Vec<(PathBuf, bool)>,
    /// Whole-image disks (raw format) after them: a raw VM's `DiskImage.image`s.
    pub raw_disks: Vec<(PathBuf, bool)>,
    pub vhost_vsock_socket: PathBuf,
    pub console_socket: PathBuf,
    /// The socket QEMU connects ttyS1 (death reason) to; the host reads it with a cap.
    pub death_reason_socket: PathBuf,
    /// `Some` when the firmware exists on this host.
    pub bios: Option<PathBuf>,
    /// fw_cfg files (name, host file): the DICE handover.
    pub fw_cfg_files: Vec<(String, PathBuf)>,
    /// QEMU's gdb stub on this localhost TCP port (AOSP's `--gdb`: the guest kernel, for gdb).
    pub gdb_port: Option<u16>,
    /// The guest's log port (ttyS2, where logd tees its records): a socket the host reads with
    /// a cap into the `--log` file, or nowhere.
    pub log_socket: Option<PathBuf>,
}

impl QemuConfig {
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        // `Auto` is resolved before a VM starts (vm::run); here it can only mean software.
        let accel = match self.accel {
            Accel::Tcg | Accel::Auto => "tcg",
            Accel::Kvm => "kvm",
        };
        push(&["-accel", accel]);
        // Under TCG: QEMU's default model plus AES-NI (and the SSSE3/SSE4/PCLMULQDQ every CPU
        // with AES-NI has, which the kernel's AES-NI code assumes), which the encrypted store's
        // dm-crypt uses (about twice the generic C AES). Not `max`: its wider vector features make the
        // emulated kernel slower everywhere else. Under KVM: the host's CPU.
        push(&[
            "-cpu",
            match self.accel {
                Accel::Tcg | Accel::Auto => "qemu64,+ssse3,+sse4.1,+sse4.2,+aes,+pclmulqdq",
                Accel::Kvm => "host",
            },
        ]);
        // q35, not i440fx ("pc"): on i440fx the kernel routes each PCI device's interrupt through
        // ACPI link devices, whose AML costs about 0.1 s per virtio device under TCG when
        // virtio_pci probes it (0.4-0.6 s of a boot with 5 disks); q35's fixed routing and
        // memory-mapped config space make the same probe ~0.04 s in all (docs/performance.md).
        push(&["-machine", "q35,memory-backend=mem"]);
        push(&["-m", &format!("{}M", self.memory_mib)]);
        push(&["-smp", &self.cpus.to_string()]);
        push(&[
            "-object",
            &format!(
                "memory-backend-memfd,id=mem,size={}M,share=on",
                self.memory_mib
            ),
        ]);
        push(&[
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-no-reboot",
            "-display",
            "none",
        ]);
        if let Some(bios) = &self.bios {
            push(&["-bios", &bios.to_string_lossy()]);
        }
        push(&["-kernel", &self.kernel.to_string_lossy()]);
        if let Some(initrd) = &self.initrd {
            push(&["-initrd", &initrd.to_string_lossy()]);
        }
        push(&["-append", &self.cmdline]);
        push(&[
            "-chardev",
            &format!("socket,id=console,path={}", self.console_socket.display()),
        ]);
        push(&["-serial", "chardev:console"]);
        push(&[
            "-chardev",
            &format!(
                "socket,id=deathreason,path={}",
                self.death_reason_socket.display()
            ),
        ]);
        push(&["-serial", "chardev:deathreason"]);
        match &self.log_socket {
            Some(path) => {
                push(&[
                    "-chardev",
                    &format!("socket,id=guestlog,path={}", path.display()),
                ]);
                push(&["-serial", "chardev:guestlog"]);
            }
            None => push(&["-serial", "null"]),
        }
        for (i, (disk, writable)) in self.disks.iter().enumerate() {
            let readonly = if *writable { "off" } else { "on" };
            // Read-only on the whole drive: QEMU ignores the access mode of VMDK extents.
            push(&[
                "-drive",
                &format!(
                    "file={},format=vmdk,if=none,id=disk{i},readonly={readonly}",
                    disk.display()
                ),
            ]);
            push(&["-device", &format!("virtio-blk-pci,drive=disk{i}")]);
        }
        for (j, (image, writable)) in self.raw_disks.iter().enumerate() {
            let i = self.disks.len() + j;
            let readonly = if *writable { "off" } else { "on" };
            push(&[
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=disk{i},readonly={readonly}",
                    image.display()
                ),
            ]);
            push(&["-device", &format!("virtio-blk-pci,drive=disk{i}")]);
        }
        push(&[
            "-chardev",
            &format!("socket,id=vsock,path={}", self.vhost_vsock_socket.display()),
        ]);
        // Entropy for the guest's CRNG, as AVF's VMs have.
        push(&["-device", "virtio-rng-pci"]);
        push(&["-device", "vhost-user-vsock-pci,chardev=vsock"]);
        if let Some(port) = self.gdb_port {
            push(&["-gdb", &format!("tcp:127.0.0.1:{port}")]);
        }
        for (name, file) in &self.fw_cfg_files {
            push(&["-fw_cfg", &format!("name={name},file={}", file.display())]);
        }
        push(&["-device", "pvpanic", "-action", "panic=exit-failure"]);
        push(&[
            "-device",
            &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"),
        ]);
        a
    }
}

/// The security modules the guest kernel starts: SELinux, with landlock, yama and BPF LSM.
pub const LSM_ORDER: &str = "lsm=landlock,lockdown,yama,integrity,selinux,bpf";

/// Turns off the kernel's crypto self-tests at algorithm registration (see [`kernel_cmdline`]).
pub const CRYPTO_SELF_TESTS_OFF: &str = "cryptomgr.notests";

/// The guest kernel command line. A debuggable VM's console is ttyS0. A non-debuggable one has
/// its console on tty0, a virtual terminal with no display behind it (AOSP uses `ttynull`, which
/// Debian's kernel does not build): nothing the kernel, init or a service prints reaches the host,
/// while ttyS1 (death reason) and the RPC link still do.
pub fn kernel_cmdline(debuggable: bool, extra: &[String]) -> String {
    let console = if debuggable {
        "console=ttyS0"
    } else {
        "console=tty0"
    };
    let mut words = vec![
        console.to_owned(),
        // ttyS0, ttyS1 and ttyS2 are used; the default may be fewer.
        "8250.nr_uarts=4".to_owned(),
        // A panic reboots at once; pvpanic has told QEMU by then.
        "panic=-1".to_owned(),
        "quiet".to_owned(),
        // The kernel's crypto self-tests (known-answer tests of its own algorithm code, run as
        // each algorithm registers) cost 0.4-0.6 s of a 1.3 s kernel boot under TCG and check
        // nothing the VM is given: every input is still verified (vbmeta, dm-verity, APK
        // signatures, instance records). A short-lived VM skips them, as libguestfs's do; with
        // `fips=1` (a `--kernel-arg`) the kernel ignores this and runs them.
        CRYPTO_SELF_TESTS_OFF.to_owned(),
        // SELinux on: Debian's kernel starts AppArmor unless the command line orders the LSMs
        // (init loads Microdroid's policy and enforces it).
        LSM_ORDER.to_owned(),
        format!("androidboot.microdroid.debuggable={}", u8::from(debuggable)),
        // AOSP's debug policy: adbd runs in debuggable VMs only.
        format!("androidboot.adb.enabled={}", u8::from(debuggable)),
    ];
    words.extend(extra.iter().cloned());
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        QemuConfig {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mib: 256,
            cpus: 1,
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            cmdline: kernel_cmdline(true, &[]),
            raw_disks: Vec::new(),
            disks: vec![
                ("/run/os.vmdk".into(), false),
                ("/run/instance.vmdk".into(), true),
            ],
            vhost_vsock_socket: "/run/vhost.sock".into(),
            console_socket: "/run/console.sock".into(),
            death_reason_socket: "/run/ttyS1.sock".into(),
            log_socket: None,
            bios: None,
            fw_cfg_files: vec![("opt/x".into(), "/run/h".into())],
            gdb_port: None,
        }
    }

    fn has(argv: &[String], pair: [&str; 2]) -> bool {
        argv.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1])
    }

    #[test]
    fn argv_has_the_devices_microdroid_needs() {
        let argv = config().argv();
        assert!(has(&argv, ["-accel", "tcg"]));
        assert!(has(&argv, ["-fw_cfg", "name=opt/x,file=/run/h"]));
        assert!(has(
            &argv,
            ["-object", "memory-backend-memfd,id=mem,size=256M,share=on"]
        ));
        assert!(has(
            &argv,
            ["-device", "vhost-user-vsock-pci,chardev=vsock"]
        ));
        assert!(has(
            &argv,
            ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        ));
        assert!(has(&argv, ["-action", "panic=exit-failure"]));
        assert!(has(
            &argv,
            [
                "-drive",
                "file=/run/os.vmdk,format=vmdk,if=none,id=disk0,readonly=on"
            ]
        ));
        assert!(has(
            &argv,
            [
                "-drive",
                "file=/run/instance.vmdk,format=vmdk,if=none,id=disk1,readonly=off"
            ]
        ));
        // Serial order is the guest's ttyS numbering.
        let serials: Vec<&String> = argv
            .windows(2)
            .filter(|w| w[0] == "-serial")
            .map(|w| &w[1])
            .collect();
        assert_eq!(serials, ["chardev:console", "chardev:deathreason", "null"]);
        assert!(has(
            &argv,
            ["-chardev", "socket,id=deathreason,path=/run/ttyS1.sock"]
        ));
        let kvm = QemuConfig {
            accel: Accel::Kvm,
            ..config()
        }
        .argv();
        assert!(has(&kvm, ["-accel", "kvm"]));
    }

    #[test]
    fn cmdline_carries_debug_level() {
        let none = kernel_cmdline(false, &[]);
        assert!(none.contains("androidboot.microdroid.debuggable=0"));
        assert!(
            none.starts_with("console=tty0 ") && !none.contains("ttyS0"),
            "{none}"
        );
        assert!(kernel_cmdline(true, &[]).starts_with("console=ttyS0 "));
        assert!(none.contains("androidboot.adb.enabled=0"));
        assert!(none.split(' ').any(|w| w == CRYPTO_SELF_TESTS_OFF));
        assert!(kernel_cmdline(true, &["x=1".into()])
            .ends_with("debuggable=1 androidboot.adb.enabled=1 x=1"));
    }
}
