//! Choosing the accelerator: KVM only where it works, probed rather than assumed. A host can
//! have a `/dev/kvm` that opens but cannot run a Linux guest (a sandbox whose CPU has no
//! vmx/svm): such a VM fails or hangs until HANGUP. The probe requires the CPU to advertise
//! vmx or svm, then boots QEMU with KVM and the CPU model the VM would get (`-cpu host`) on a
//! 64 KiB firmware whose reset vector writes to `isa-debug-exit` (`mov al, 1; out 0xf4, al`):
//! QEMU exits 3 at once when a vCPU runs, and is killed after [`PROBE_TIMEOUT`] when none does.
//!
//! The answer is kept for the host's boot (`<runtime dir>/kvm-probe`, keyed by the kernel's
//! boot id, `/dev/kvm`'s identity and the QEMU binary), so that only the first VM pays for it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::qemu::Accel;

/// How long a vCPU gets to reach the exit device.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const PROBE_CACHE: &str = "kvm-probe";
const BIOS_SIZE: usize = 64 * 1024;
/// `mov al, 1; out 0xf4, al; hlt` at the reset vector (the last 16 bytes of the BIOS).
const RESET_CODE: [u8; 5] = [0xb0, 0x01, 0xe6, 0xf4, 0xf4];
/// QEMU's exit status for `out 0xf4, 1`: (1 << 1) | 1.
const PROBE_EXIT: i32 = 3;

/// What `--accel auto` chose, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// The probe firmware.
pub fn probe_bios() -> Vec<u8> {
    let mut bios = vec![0xf4u8; BIOS_SIZE];
    let at = BIOS_SIZE - 16;
    bios[at..at + RESET_CODE.len()].copy_from_slice(&RESET_CODE);
    bios
}

/// Whether KVM runs a vCPU here with `qemu`: `Ok(())`, or why not.
pub fn probe_kvm(qemu: &Path) -> Result<(), String> {
    let kvm = Path::new("/dev/kvm");
    if !kvm.exists() {
        return Err("/dev/kvm does not exist".into());
    }
    if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(kvm) {
        return Err(format!("/dev/kvm cannot be opened: {e}"));
    }
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpu_has_virtualization(&cpuinfo) {
        return Err("/dev/kvm exists, but the CPU has no vmx or svm flag".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let bios = dir.path().join("probe.bin");
    fs::write(&bios, probe_bios()).map_err(|e| format!("writing the probe firmware: {e}"))?;
    let mut child = Command::new(qemu)
        .args([
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-machine",
            "pc",
            "-m",
            "16",
            "-nodefaults",
        ])
        .args(["-no-user-config", "-display", "none", "-bios"])
        .arg(&bios)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", qemu.display()))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.code() == Some(PROBE_EXIT) => return Ok(()),
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let detail = stderr.lines().next().unwrap_or("").trim().to_owned();
                return Err(format!("QEMU could not use KVM ({status}): {detail}"));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "/dev/kvm opens, but a KVM vCPU did not run within {PROBE_TIMEOUT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    }
}

/// Whether `/proc/cpuinfo` lists hardware virtualization (Intel VT-x or AMD-V).
pub fn cpu_has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The cache key: boot id, /dev/kvm's device and change time, QEMU's path and change time.
fn cache_key(qemu: &Path) -> String {
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let kvm = fs::metadata("/dev/kvm")
        .map(|m| format!("{}:{}:{}", m.rdev(), m.ino(), m.ctime()))
        .unwrap_or_else(|_| "absent".into());
    let qemu_path = crate::crosvm::find_program(qemu).unwrap_or_else(|| qemu.to_owned());
    let qemu_id = fs::metadata(&qemu_path)
        .map(|m| format!("{}:{}", m.ino(), m.ctime()))
        .unwrap_or_default();
    format!("{} {kvm} {} {qemu_id}", boot_id.trim(), qemu_path.display())
}

/// `--accel auto`: KVM if the probe (cached in `runtime_dir`) says it runs, TCG otherwise.
pub fn choose(qemu: &Path, runtime_dir: &Path) -> AccelChoice {
    let key = cache_key(qemu);
    let cache: PathBuf = runtime_dir.join(PROBE_CACHE);
    let cached = fs::read_to_string(&cache).ok().and_then(|text| {
        let (k, result) = text.split_once('\n')?;
        (k == key).then(|| result.to_owned())
    });
    let result = match cached {
        Some(result) => result,
        None => {
            let result = match probe_kvm(qemu) {
                Ok(()) => "ok".to_owned(),
                Err(why) => why,
            };
            let _ = fs::create_dir_all(runtime_dir);
            let tmp = runtime_dir.join(format!(".{PROBE_CACHE}.{}", std::process::id()));
            let written = fs::File::create(&tmp)
                .and_then(|mut f| f.write_all(format!("{key}\n{result}").as_bytes()))
                .and_then(|()| fs::rename(&tmp, &cache));
            if written.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        }
    };
    if result == "ok" {
        AccelChoice {
            accel: Accel::Kvm,
            reason: "KVM runs a vCPU on this host".into(),
        }
    } else {
        AccelChoice {
            accel: Accel::Tcg,
            reason: format!("TCG, because {result}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_flags_decide_first() {
        assert!(cpu_has_virtualization("flags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_virtualization("flags\t\t: fpu svm\n"));
        assert!(!cpu_has_virtualization(
            "flags\t\t: fpu vme sse hypervisor\n"
        ));
        assert!(!cpu_has_virtualization("vmx flags\t: ept\n"));
    }

    #[test]
    fn the_probe_firmware_exits_through_the_debug_port() {
        let bios = probe_bios();
        assert_eq!(bios.len(), 64 * 1024);
        assert_eq!(&bios[0xfff0..0xfff5], &RESET_CODE);
    }

    /// The same firmware under TCG reaches the exit device: the probe's method works with
    /// this QEMU.
    #[test]
    fn the_probe_firmware_runs_under_tcg() {
        let dir = tempfile::tempdir().unwrap();
        let bios = dir.path().join("probe.bin");
        fs::write(&bios, probe_bios()).unwrap();
        let status = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-machine", "pc", "-m", "16", "-nodefaults"])
            .args(["-no-user-config", "-display", "none", "-bios"])
            .arg(&bios)
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(PROBE_EXIT));
    }

    /// On this host (a /dev/kvm that hangs, or none) auto chooses TCG and says why; a second
    /// choice comes from the cache, at once.
    #[test]
    fn auto_chooses_tcg_here_and_caches_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let qemu = Path::new("qemu-system-x86_64");
        let first = choose(qemu, dir.path());
        if first.accel == Accel::Kvm {
            // A host where KVM works: nothing to check about the fallback.
            return;
        }
        assert!(
            first.reason.starts_with("TCG, because "),
            "{}",
            first.reason
        );
        let cached = fs::read_to_string(dir.path().join(PROBE_CACHE)).unwrap();
        assert_eq!(cached.split_once('\n').unwrap().0, cache_key(qemu));
        assert_eq!(
            format!("TCG, because {}", cached.split_once('\n').unwrap().1),
            first.reason
        );
        assert_eq!(choose(qemu, dir.path()), first);
    }
}
