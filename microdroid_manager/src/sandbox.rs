//! The payload's confinement (docs/security.md): what microdroid_manager prepares before it
//! starts the payload, and what the child applies to itself between fork and exec.
//!
//! - **Its own mount namespace** whose root is a small read-only tmpfs holding only what a
//!   payload may use: /system (read-only), /mnt/apk and the extra APKs, /apex, its encrypted
//!   storage, a /proc that hides other users' processes (`hidepid=invisible`), a /dev with
//!   null, zero, full, random and urandom, and /dev/socket (read-only; SELinux decides which
//!   sockets it may reach). The block devices, /sys, the instance disk and the other services'
//!   files are simply not there.
//! - **rlimits**: no core files, bounded processes and open files (lowered, never raised).
//! - **Its SELinux domain** (`u:r:payload:s0`, image/sepolicy/microdroid.cil), entered on exec.
//! - **Its own uid/gid, no capabilities, no_new_privs** (payload::drop_privileges).
//! - **A seccomp filter**, installed last: module loading, kexec, mounts and namespaces, bpf,
//!   ptrace and cross-process memory access, perf, keyrings, io_uring, userfaultfd, swap,
//!   reboot, the clocks and the kernel log fail with EPERM; clone3 fails with ENOSYS, so that
//!   libc falls back to clone, whose namespace flags the filter can see.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Where the payload's root is assembled (on init's /run tmpfs).
pub const SANDBOX_ROOT: &str = "/run/payload-root";

/// The payload's rlimits: (resource, soft = hard).
pub const RLIMITS: &[(nix::sys::resource::Resource, u64)] = &[
    // No core dumps: crashes are reported as tombstones.
    (nix::sys::resource::Resource::RLIMIT_CORE, 0),
    // A fork bomb stops here (counted per uid: the payload's uid is its own).
    (nix::sys::resource::Resource::RLIMIT_NPROC, 1024),
    (nix::sys::resource::Resource::RLIMIT_NOFILE, 4096),
    // No real-time scheduling or raised priority.
    (nix::sys::resource::Resource::RLIMIT_RTPRIO, 0),
    (nix::sys::resource::Resource::RLIMIT_NICE, 0),
    (nix::sys::resource::Resource::RLIMIT_MEMLOCK, 64 * 1024),
];

/// The character devices in the payload's /dev: (name, major, minor).
pub const DEV_NODES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
];

/// System calls the payload may not make (EPERM).
pub const DENIED_SYSCALLS: &[(&str, i64)] = &[
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("vhangup", libc::SYS_vhangup),
    ("uselib", libc::SYS_uselib),
];

/// clone(2) flags that create namespaces: clone with any of them fails (EPERM).
const NAMESPACE_CLONE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("building the seccomp filter: {0}")]
    Seccomp(#[from] seccompiler::BackendError),
    #[error("compiling the seccomp filter: {0}")]
    SeccompCompile(#[from] seccompiler::Error),
}

/// The payload's seccomp filters: the EPERM list (with clone's namespace flags), then clone3 →
/// ENOSYS. Both default to allow.
pub fn seccomp_filters() -> Result<Vec<BpfProgram>, SandboxError> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED_SYSCALLS
        .iter()
        .map(|(_, nr)| (*nr, Vec::new()))
        .collect();
    // clone is refused when any namespace flag is set: one rule per flag (rules are OR-ed).
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_CLONE_FLAGS {
        let flag = u64::try_from(*flag).unwrap_or(0);
        clone_rules.push(SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    denied.insert(libc::SYS_clone, clone_rules);
    let eperm = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?;
    Ok(vec![eperm.try_into()?, clone3.try_into()?])
}

/// A directory or file bound into the sandbox.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    /// Path inside the sandbox (absolute).
    pub target: PathBuf,
    pub read_only: bool,
}

impl Bind {
    pub fn new(source: impl Into<PathBuf>, target: impl Into<PathBuf>, read_only: bool) -> Self {
        Bind {
            source: source.into(),
            target: target.into(),
            read_only,
        }
    }
}

/// What the payload's root holds.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub root: PathBuf,
    /// Bound in order; a missing source is left out (no storage, no extra APKs, no APEX).
    pub binds: Vec<Bind>,
    /// Symlinks (path inside, target).
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// SELinux labels for the root and the device nodes (when SELinux is on).
    pub label: bool,
}

impl SandboxSpec {
    /// Microdroid's payload sandbox.
    pub fn microdroid() -> Self {
        let binds = vec![
            // The programs and the public libraries only: the system's private libraries
            // (/system/private) and configuration stay out, as AOSP's linker namespaces keep
            // a payload to the public libraries.
            Bind::new("/system/bin", "/system/bin", true),
            Bind::new("/system/lib64", "/system/lib64", true),
            Bind::new("/mnt/apk", "/mnt/apk", true),
            Bind::new("/mnt/extra-apk", "/mnt/extra-apk", true),
            Bind::new("/apex", "/apex", true),
            Bind::new(
                crate::encrypted_store::MOUNT_POINT,
                crate::encrypted_store::MOUNT_POINT,
                false,
            ),
            Bind::new("/dev/socket", "/dev/socket", true),
            // The VM's own CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID); its minor is dynamic, hence a
            // bind rather than a node of our own.
            Bind::new("/dev/vsock", "/dev/vsock", false),
        ];
        SandboxSpec {
            root: PathBuf::from(SANDBOX_ROOT),
            binds,
            // Debian's dynamic programs find the loader and libraries as in the rest of the VM.
            symlinks: vec![
                (
                    "/lib64/ld-linux-x86-64.so.2".into(),
                    "/system/lib64/ld-linux-x86-64.so.2".into(),
                ),
                ("/lib/x86_64-linux-gnu".into(), "/system/lib64".into()),
            ],
            label: selinux::is_enforcing().is_some(),
        }
    }

    fn inside(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Assembles the root (as root, in microdroid_manager's namespace; the payload's own
    /// namespace is made from it at exec).
    pub fn prepare(&self) -> Result<()> {
        let root = &self.root;
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let root_label = self
            .label
            .then(|| format!("context={}", selinux::contexts::PAYLOAD_ROOT_FILE));
        let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(
            Some("tmpfs"),
            root,
            Some("tmpfs"),
            nodev,
            Some(format!("mode=0755,size=64k{}", opt(&root_label)).as_str()),
        )
        .with_context(|| format!("mounting the payload's root on {}", root.display()))?;
        for (link, target) in &self.symlinks {
            let link = self.inside(link);
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent)?;
            }
            symlink(target, &link).with_context(|| format!("linking {}", link.display()))?;
        }
        // /dev first: /dev/socket is bound into it.
        let dev = self.inside(Path::new("/dev"));
        fs::create_dir_all(&dev)?;
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            // Only the root gets the label (`rootcontext`): the nodes are relabelled below.
            Some(
                format!(
                    "mode=0755,size=16k{}",
                    opt(&root_label.as_ref().map(|l| format!("root{l}")))
                )
                .as_str(),
            ),
        )
        .context("mounting the payload's /dev")?;
        for (name, major, minor) in DEV_NODES {
            let node = dev.join(name);
            mknod(
                &node,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major, *minor),
            )
            .with_context(|| format!("creating {}", node.display()))?;
            // mknod obeys the umask.
            nix::sys::stat::fchmodat(
                None,
                &node,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
            if self.label {
                selinux::set_file_context(&node, selinux::contexts::PAYLOAD_DEVICE)?;
            }
        }
        for bind in &self.binds {
            let Ok(meta) = fs::metadata(&bind.source) else {
                continue;
            };
            let target = self.inside(&bind.target);
            if meta.is_dir() {
                fs::create_dir_all(&target)?;
            } else {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&target, b"")?;
            }
            mount(
                Some(&bind.source),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .with_context(|| format!("binding {} into the sandbox", bind.source.display()))?;
            if bind.read_only {
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | nodev,
                    None::<&str>,
                )
                .with_context(|| format!("making {} read-only", target.display()))?;
            }
        }
        let proc = self.inside(Path::new("/proc"));
        fs::create_dir_all(&proc)?;
        mount(
            Some("proc"),
            &proc,
            Some("proc"),
            nodev | MsFlags::MS_NOEXEC,
            Some("hidepid=invisible"),
        )
        .context("mounting the payload's /proc")?;
        // Nothing more is created in the root: read-only from here on.
        mount(
            None::<&str>,
            root,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nodev,
            Some(format!("mode=0755{}", opt(&root_label)).as_str()),
        )
        .context("making the payload's root read-only")?;
        Ok(())
    }

    /// The child's half, ready to apply between fork and exec.
    pub fn entry(&self) -> Result<SandboxEntry> {
        Ok(SandboxEntry {
            root: CString::new(self.root.as_os_str().as_encoded_bytes())
                .context("sandbox root path")?,
        })
    }

    /// Undoes `prepare` (tests; the VM keeps it until power-off).
    pub fn tear_down(&self) {
        let _ = nix::mount::umount2(&self.root, MntFlags::MNT_DETACH);
    }
}

fn opt(label: &Option<String>) -> String {
    label.as_ref().map(|l| format!(",{l}")).unwrap_or_default()
}

/// Entering the sandbox: everything allocated before fork.
pub struct SandboxEntry {
    root: CString,
}

impl SandboxEntry {
    /// In the child, between fork and exec (async-signal-safe system calls only): a mount
    /// namespace of its own, nothing propagated back, the prepared root moved over `/` and made
    /// the process's root. (pivot_root cannot leave an initramfs root; this is switch_root's
    /// way. The rootfs underneath is covered, and leaving a chroot takes CAP_SYS_CHROOT, which
    /// the payload never has, and chroot(2), which its filter refuses.)
    pub fn enter(&self) -> std::io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        mount(
            None::<&str>,
            c"/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        nix::unistd::chdir(self.root.as_c_str())?;
        mount(
            Some(c"."),
            c"/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )?;
        nix::unistd::chroot(c".")?;
        nix::unistd::chdir(c"/")?;
        Ok(())
    }
}

/// Everything the payload's child applies to itself before exec, built before fork.
#[derive(Clone)]
pub struct Confinement {
    sandbox: Option<std::sync::Arc<SandboxEntry>>,
    exec_context: Option<std::sync::Arc<selinux::ExecContext>>,
    seccomp: std::sync::Arc<Vec<BpfProgram>>,
}

impl Confinement {
    /// Microdroid's: prepares the sandbox root, and the payload's SELinux domain when the policy
    /// is loaded.
    pub fn microdroid() -> Result<Self> {
        let spec = SandboxSpec::microdroid();
        spec.prepare().context("preparing the payload's sandbox")?;
        let exec_context = match selinux::is_enforcing() {
            Some(_) => Some(std::sync::Arc::new(selinux::ExecContext::new(
                selinux::contexts::PAYLOAD,
            )?)),
            None => None,
        };
        Ok(Confinement {
            sandbox: Some(std::sync::Arc::new(spec.entry()?)),
            exec_context,
            seccomp: std::sync::Arc::new(seccomp_filters()?),
        })
    }

    /// Without a mount namespace or SELinux domain: the uid, capabilities, rlimits and seccomp
    /// parts (host tests).
    pub fn without_sandbox() -> Result<Self> {
        Ok(Confinement {
            sandbox: None,
            exec_context: None,
            seccomp: std::sync::Arc::new(seccomp_filters()?),
        })
    }

    /// In the child between fork and exec: the sandbox, the rlimits, the exec context, then
    /// `drop_privileges` (uid, capabilities, no_new_privs), then the seccomp filters, last so
    /// that the steps before may use what they refuse.
    pub fn enter(
        &self,
        drop_privileges: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if let Some(sandbox) = &self.sandbox {
            sandbox.enter()?;
        }
        apply_rlimits()?;
        if let Some(context) = &self.exec_context {
            context.apply()?;
        }
        drop_privileges()?;
        apply_seccomp(&self.seccomp)
    }
}

/// Applies the payload's rlimits to the calling process (async-signal-safe): each is lowered to
/// its value, never raised (the VM's own default may be lower, e.g. RLIMIT_NPROC in a small VM,
/// and raising a hard limit takes CAP_SYS_RESOURCE, which microdroid_manager does not hold).
pub fn apply_rlimits() -> std::io::Result<()> {
    for (resource, limit) in RLIMITS {
        let (_, hard) = nix::sys::resource::getrlimit(*resource)?;
        let value = (*limit).min(hard);
        nix::sys::resource::setrlimit(*resource, value, value)?;
    }
    Ok(())
}

/// Installs the filters on the calling thread (after no_new_privs; async-signal-safe).
pub fn apply_seccomp(filters: &[BpfProgram]) -> std::io::Result<()> {
    for filter in filters {
        seccompiler::apply_filter(filter).map_err(|e| match e {
            seccompiler::Error::Seccomp(io) | seccompiler::Error::Prctl(io) => io,
            _ => std::io::Error::from_raw_os_error(libc::EINVAL),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn run_filtered(program: &str, args: &[&str]) -> std::process::Output {
        let filters = seccomp_filters().unwrap();
        let mut command = Command::new(program);
        command.args(args);
        // SAFETY: the closure makes only prctl/seccomp system calls and allocates nothing.
        unsafe {
            command.pre_exec(move || apply_seccomp(&filters));
        }
        command.output().unwrap()
    }

    #[test]
    fn the_filters_compile() {
        let filters = seccomp_filters().unwrap();
        assert_eq!(filters.len(), 2);
        assert!(filters.iter().all(|f| !f.is_empty()));
    }

    #[test]
    fn filtered_processes_cannot_mount_or_make_namespaces() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mount and unshare would fail anyway)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap();
        // As root with every capability, these work without the filter...
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "none", target])
            .status()
            .unwrap();
        assert!(mounted.success());
        assert!(Command::new("umount")
            .arg(target)
            .status()
            .unwrap()
            .success());
        // ...and fail with EPERM under it.
        let out = run_filtered("mount", &["-t", "tmpfs", "none", target]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ermission denied") || err.contains("not permitted"),
            "{err}"
        );
        let out = run_filtered("unshare", &["--user", "true"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Ordinary work still runs (threads through clone3 → clone fallback).
        let out = run_filtered("sh", &["-c", "echo ok | cat"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    }

    #[test]
    fn the_sandbox_shows_only_what_it_binds() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mounts)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("file"), b"visible").unwrap();
        let mut binds: Vec<Bind> = ["/usr", "/etc"]
            .iter()
            .map(|p| Bind::new(*p, *p, true))
            .collect();
        binds.push(Bind::new(&data, "/data", true));
        binds.push(Bind::new(dir.path().join("missing"), "/missing", true));
        let spec = SandboxSpec {
            root: dir.path().join("root"),
            binds,
            symlinks: ["bin", "lib", "lib64", "sbin"]
                .iter()
                .map(|d| {
                    (
                        PathBuf::from(format!("/{d}")),
                        PathBuf::from(format!("usr/{d}")),
                    )
                })
                .collect(),
            label: false,
        };
        spec.prepare().unwrap();
        let entry = spec.entry().unwrap();
        let mut command = Command::new("/bin/sh");
        command.args([
            "-c",
            "ls -A /; cat /data/file; echo; ls /dev; \
             if echo x > /data/new 2>/dev/null; then echo wrote; else echo ro; fi; \
             if [ -e /proc/1 ]; then echo pid1; else echo nopid1; fi",
        ]);
        // SAFETY: enter() makes only unshare/mount/chdir/pivot_root/umount2 calls; the uid
        // change is setresuid/setresgid; nothing allocates.
        unsafe {
            command.pre_exec(move || {
                entry.enter()?;
                nix::unistd::setresgid(6000.into(), 6000.into(), 6000.into())?;
                nix::unistd::setresuid(6000.into(), 6000.into(), 6000.into())?;
                Ok(())
            });
        }
        let out = command.output().unwrap();
        spec.tear_down();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let mut top: Vec<&str> = lines.by_ref().take_while(|l| *l != "visible").collect();
        top.sort_unstable();
        assert_eq!(
            top,
            ["bin", "data", "dev", "etc", "lib", "lib64", "proc", "sbin", "usr"],
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rest: Vec<&str> = lines.collect();
        assert_eq!(
            rest,
            ["full", "null", "random", "urandom", "zero", "ro", "nopid1"],
            "{text}"
        );
    }
}
