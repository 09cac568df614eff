//! The SELinux operations of Microdroid's guest (docs/security.md): init loads the policy from
//! the verified system partition, moves itself into its domain and turns enforcing on; init and
//! microdroid_manager label device nodes and give children an exec context. Everything goes
//! through selinuxfs and procfs: no libselinux.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Where selinuxfs is mounted.
pub const SELINUXFS: &str = "/sys/fs/selinux";
/// The compiled policy on the system partition (image::sepolicy writes it).
pub const POLICY_PATH: &str = "/system/etc/selinux/microdroid_precompiled_sepolicy";
/// The xattr that holds a file's context.
pub const XATTR_NAME: &str = "security.selinux";
/// Largest context accepted from the kernel or a caller (the kernel's own limit is a page).
const MAX_CONTEXT_LEN: usize = 4096;

/// The domains and file types the policy (image/sepolicy/microdroid.cil) defines that code
/// names. Kept here so that a renamed type is one edit.
pub mod contexts {
    pub const INIT: &str = "u:r:init:s0";
    pub const PAYLOAD: &str = "u:r:payload:s0";
    pub const VM_INSTANCE_DEVICE: &str = "u:object_r:vm_instance_device:s0";
    pub const PAYLOAD_DEVICE: &str = "u:object_r:payload_device:s0";
    pub const PAYLOAD_ROOT_FILE: &str = "u:object_r:payload_root_file:s0";
    pub const APEX_FILE: &str = "u:object_r:apex_file:s0";
    pub const ENCRYPTEDSTORE_FILE: &str = "u:object_r:encryptedstore_file:s0";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SELinux is not enabled in this kernel (its command line needs lsm=...,selinux,...): mounting selinuxfs: {0}")]
    NotEnabled(nix::Error),
    #[error("loading the policy ({size} bytes) into the kernel: {error}")]
    Load { size: usize, error: std::io::Error },
    #[error("moving into {context}: {error}")]
    SetCurrent {
        context: String,
        error: std::io::Error,
    },
    #[error("setting enforcing mode: {0}")]
    Enforce(std::io::Error),
    #[error("labelling {} {context}: {error}", path.display())]
    Label {
        path: PathBuf,
        context: String,
        error: nix::Error,
    },
    #[error("context {0:?} is not valid (empty, too long or has a NUL)")]
    BadContext(String),
}

/// Mounts selinuxfs (if it is not yet) and loads `policy`.
pub fn load_policy(policy: &[u8]) -> Result<(), Error> {
    mount_selinuxfs(Path::new(SELINUXFS))?;
    write_file(&Path::new(SELINUXFS).join("load"), policy).map_err(|error| Error::Load {
        size: policy.len(),
        error,
    })
}

fn mount_selinuxfs(at: &Path) -> Result<(), Error> {
    if at.join("enforce").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(at)
        .map_err(|e| Error::NotEnabled(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
    nix::mount::mount(
        Some("selinuxfs"),
        at,
        Some("selinuxfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(Error::NotEnabled)
}

/// Moves the calling (single-threaded) process into `context` (a dyntransition).
pub fn set_current_context(context: &str) -> Result<(), Error> {
    check_context(context)?;
    write_file(
        Path::new("/proc/thread-self/attr/current"),
        context.as_bytes(),
    )
    .map_err(|error| Error::SetCurrent {
        context: context.to_owned(),
        error,
    })
}

/// The calling thread's context.
pub fn current_context() -> std::io::Result<String> {
    read_context(Path::new("/proc/thread-self/attr/current"))
}

/// Whether the kernel enforces the policy (`None`: SELinux is off or selinuxfs not mounted).
pub fn is_enforcing() -> Option<bool> {
    let text = std::fs::read_to_string(Path::new(SELINUXFS).join("enforce")).ok()?;
    Some(text.trim() == "1")
}

pub fn set_enforcing(enforcing: bool) -> Result<(), Error> {
    write_file(
        &Path::new(SELINUXFS).join("enforce"),
        if enforcing { b"1" } else { b"0" },
    )
    .map_err(Error::Enforce)
}

/// Labels `path` itself (not a symlink's target).
pub fn set_file_context(path: &Path, context: &str) -> Result<(), Error> {
    check_context(context)?;
    let label_err = |error| Error::Label {
        path: path.to_owned(),
        context: context.to_owned(),
        error,
    };
    let mut value = context.as_bytes().to_vec();
    value.push(0);
    let path_c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| label_err(nix::Error::EINVAL))?;
    lsetxattr(&path_c, &value).map_err(label_err)
}

/// A file's context (its `security.selinux` xattr), without the trailing NUL.
pub fn file_context(path: &Path) -> std::io::Result<String> {
    let path_c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(nix::libc::EINVAL))?;
    let mut buf = vec![0u8; MAX_CONTEXT_LEN];
    let name = c"security.selinux";
    // SAFETY: path and name are NUL-terminated; the kernel writes at most buf.len() bytes.
    let n = unsafe {
        nix::libc::lgetxattr(
            path_c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    buf.truncate(n);
    Ok(trim_context(&buf))
}

fn lsetxattr(path: &CStr, value: &[u8]) -> Result<(), nix::Error> {
    let name = c"security.selinux";
    // SAFETY: path and name are NUL-terminated; value points to value.len() readable bytes.
    let rc = unsafe {
        nix::libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

/// The context the next exec of the calling thread enters, prepared before fork so that the
/// child can set it without allocating (`pre_exec` runs between fork and exec).
pub struct ExecContext {
    context: CString,
}

impl ExecContext {
    pub fn new(context: &str) -> Result<Self, Error> {
        check_context(context)?;
        Ok(ExecContext {
            context: CString::new(context).map_err(|_| Error::BadContext(context.to_owned()))?,
        })
    }

    /// Sets it for the calling thread's next exec: open, write, close (async-signal-safe).
    pub fn apply(&self) -> std::io::Result<()> {
        let fd = nix::fcntl::open(
            c"/proc/thread-self/attr/exec",
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `fd` was just opened and is owned here alone.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let bytes = self.context.as_bytes();
        let written = nix::unistd::write(&fd, bytes)?;
        if written != bytes.len() {
            return Err(std::io::Error::from_raw_os_error(nix::libc::EIO));
        }
        Ok(())
    }
}

fn check_context(context: &str) -> Result<(), Error> {
    if context.is_empty() || context.len() > MAX_CONTEXT_LEN || context.contains('\0') {
        return Err(Error::BadContext(context.to_owned()));
    }
    Ok(())
}

fn read_context(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(trim_context(&bytes))
}

fn trim_context(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned()
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    // selinuxfs takes the policy in one write.
    file.write_all(bytes)
}

/// Whether the kernel command line asks for permissive mode (`androidboot.selinux=permissive`,
/// as AOSP), which init honours in debuggable VMs only.
pub fn cmdline_asks_permissive(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|w| w == "androidboot.selinux=permissive")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn contexts_are_checked() {
        assert!(matches!(ExecContext::new(""), Err(Error::BadContext(_))));
        assert!(matches!(
            ExecContext::new("u:r:a\0b:s0"),
            Err(Error::BadContext(_))
        ));
        assert!(matches!(
            ExecContext::new(&"a".repeat(MAX_CONTEXT_LEN + 1)),
            Err(Error::BadContext(_))
        ));
        assert!(ExecContext::new(contexts::PAYLOAD).is_ok());
    }

    #[test]
    fn kernel_contexts_lose_their_nul_and_newline() {
        assert_eq!(trim_context(b"u:r:payload:s0\0"), "u:r:payload:s0");
        assert_eq!(trim_context(b"unconfined\n"), "unconfined");
    }

    #[test]
    fn permissive_only_when_asked_by_the_exact_word() {
        assert!(cmdline_asks_permissive(
            "quiet androidboot.selinux=permissive x=1"
        ));
        assert!(!cmdline_asks_permissive("androidboot.selinux=enforcing"));
        assert!(!cmdline_asks_permissive("xandroidboot.selinux=permissive"));
    }
}
