//! The crosvm command line for a Microdroid VM, as AVF's virtmgr builds it
//! (packages/modules/Virtualization `virtualizationmanager/src/crosvm.rs run_vm`): every file
//! is passed as `/proc/self/fd/N`, inherited at that same fd number; ttyS0 is the console,
//! ttyS1 the death-reason file, hvc0-2 are present (as sinks) so that PCI slots match AVF's.
//!
//! One deliberate difference: AVF gives crosvm `--cid` and the kernel's vhost-vsock; here the
//! guest's vsock goes to vhost-device-vsock (`--vhost-user type=vsock`), so that vmctl serves
//! IVirtualMachineService on the same Unix socket whichever VMM runs.

use std::path::PathBuf;

/// What the crosvm command line is made of. Paths that are files are `/proc/self/fd/N`.
#[derive(Debug, Clone)]
pub struct CrosvmConfig {
    pub crosvm: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub params: String,
    /// (composite spec, writable).
    pub disks: Vec<(PathBuf, bool)>,
    /// The console's file; `None` for a non-debuggable VM (a sink, as AVF at debug level NONE).
    pub console: Option<PathBuf>,
    pub death_reason: PathBuf,
    /// The guest's log port (ttyS2); a sink without it.
    pub log: Option<PathBuf>,
    pub vhost_vsock_socket: PathBuf,
    /// fw_cfg files (name, path): the DICE handover and, on an instance's first boot, the
    /// new-instance flag, passed as crosvm's x86 fw_cfg files (`--fw-cfg`), the same items QEMU
    /// gets: microdroid_manager reads them from `/sys/firmware/qemu_fw_cfg`.
    pub fw_cfg_files: Vec<(String, PathBuf)>,
    /// crosvm's gdb stub port (`--gdb`).
    pub gdb_port: Option<u16>,
}

impl CrosvmConfig {
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--extended-status".into(),
            "run".into(),
            "--disable-sandbox".into(),
        ];
        a.extend([
            "--mem".into(),
            self.memory_mib.to_string(),
            "--cpus".into(),
            self.cpus.to_string(),
        ]);
        let console = match &self.console {
            Some(path) => format!("type=file,path={}", path.display()),
            None => "type=sink".to_owned(),
        };
        a.push(format!("--serial={console},hardware=serial,num=1"));
        a.push(format!(
            "--serial=type=file,path={},hardware=serial,num=2",
            self.death_reason.display()
        ));
        // ttyS2: the guest's log (logd's tee), AOSP's `--log`.
        let log = match &self.log {
            Some(path) => format!("type=file,path={}", path.display()),
            None => "type=sink".to_owned(),
        };
        a.push(format!("--serial={log},hardware=serial,num=3"));
        for num in 1..=3 {
            a.push(format!(
                "--serial=type=sink,hardware=virtio-console,num={num}"
            ));
        }
        if let Some(initrd) = &self.initrd {
            a.extend(["--initrd".into(), initrd.display().to_string()]);
        }
        a.extend(["--params".into(), self.params.clone()]);
        for (disk, writable) in &self.disks {
            a.extend([
                if *writable { "--rwdisk" } else { "--disk" }.into(),
                disk.display().to_string(),
            ]);
        }
        a.extend([
            "--vhost-user".into(),
            format!("type=vsock,socket={}", self.vhost_vsock_socket.display()),
        ]);
        if let Some(port) = self.gdb_port {
            a.extend(["--gdb".into(), port.to_string()]);
        }
        for (name, path) in &self.fw_cfg_files {
            a.extend([
                "--fw-cfg".into(),
                format!("name={name},path={}", path.display()),
            ]);
        }
        a.push(self.kernel.display().to_string());
        a
    }
}

/// Whether `program` can be run: a path that exists, or a name found on `PATH`.
pub fn find_program(program: &std::path::Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.exists().then(|| program.to_owned());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CrosvmConfig {
        CrosvmConfig {
            crosvm: "crosvm".into(),
            memory_mib: 256,
            cpus: 1,
            kernel: "/proc/self/fd/10".into(),
            initrd: Some("/proc/self/fd/11".into()),
            params: "console=ttyS0 panic=-1".into(),
            disks: vec![("/proc/self/fd/12".into(), false)],
            console: Some("/proc/self/fd/13".into()),
            death_reason: "/proc/self/fd/14".into(),
            log: None,
            vhost_vsock_socket: "/run/vhost.sock".into(),
            fw_cfg_files: vec![(
                dice::FW_CFG_HANDOVER_NAME.into(),
                "/run/dice-handover.cbor".into(),
            )],
            gdb_port: None,
        }
    }

    #[test]
    fn argv_is_avfs() {
        let argv = config().argv();
        assert_eq!(argv[..3], ["--extended-status", "run", "--disable-sandbox"]);
        let expected = [
            "--mem",
            "256",
            "--cpus",
            "1",
            "--serial=type=file,path=/proc/self/fd/13,hardware=serial,num=1",
            "--serial=type=file,path=/proc/self/fd/14,hardware=serial,num=2",
            "--serial=type=sink,hardware=serial,num=3",
            "--serial=type=sink,hardware=virtio-console,num=1",
            "--serial=type=sink,hardware=virtio-console,num=2",
            "--serial=type=sink,hardware=virtio-console,num=3",
            "--initrd",
            "/proc/self/fd/11",
            "--params",
            "console=ttyS0 panic=-1",
            "--disk",
            "/proc/self/fd/12",
            "--vhost-user",
            "type=vsock,socket=/run/vhost.sock",
            "--fw-cfg",
            "name=opt/microdroid/dice_handover,path=/run/dice-handover.cbor",
            // The kernel is the positional argument, last.
            "/proc/self/fd/10",
        ];
        assert_eq!(argv[3..], expected);
    }

    #[test]
    fn non_debuggable_console_is_a_sink_and_writable_disks_are_rwdisk() {
        let argv = CrosvmConfig {
            console: None,
            disks: vec![("/proc/self/fd/20".into(), true)],
            ..config()
        }
        .argv();
        assert!(
            argv.contains(&"--serial=type=sink,hardware=serial,num=1".to_owned()),
            "{argv:?}"
        );
        assert!(
            argv.windows(2)
                .any(|w| w == ["--rwdisk", "/proc/self/fd/20"]),
            "{argv:?}"
        );
    }

    #[test]
    fn finds_programs() {
        assert!(find_program(std::path::Path::new("sh")).is_some());
        assert!(find_program(std::path::Path::new("no-such-program-here")).is_none());
        assert!(find_program(std::path::Path::new("/bin/sh")).is_some());
    }
}
