//! `--try-escape`: the payload tries what its confinement must refuse (docs/security.md) and
//! prints one line per attempt, `escape: <attempt>: refused (<errno>)` or
//! `escape: <attempt>: ALLOWED`. It exits 0 when everything was refused, 1 otherwise. The boot
//! test (tests/tests/security.rs) checks each line's errno.

use std::ffi::CString;
use std::process::ExitCode;

/// The host's IVirtualMachineService vsock port, and the host's CID.
const HOST_SERVICE_PORT: u32 = 5000;
const VMADDR_CID_HOST: u32 = 2;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ESRCH => "ESRCH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "other",
    }
}

/// `rc < 0` means refused; the errno says by what.
fn report(what: &str, rc: i64) -> bool {
    if rc < 0 {
        let e = errno();
        println!("escape: {what}: refused ({}, {e})", errno_name(e));
        true
    } else {
        println!("escape: {what}: ALLOWED");
        false
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn open_read(path: &str) -> i64 {
    let p = c(path);
    // SAFETY: p is NUL-terminated; the fd, if any, is closed below.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd was just opened here.
        unsafe { libc::close(fd) };
    }
    i64::from(fd)
}

pub fn try_escape() -> ExitCode {
    let context = std::fs::read_to_string("/proc/self/attr/current").unwrap_or_default();
    println!(
        "escape: running as uid {} in {}",
        // SAFETY: getuid cannot fail.
        unsafe { libc::getuid() },
        context.trim_end_matches(['\0', '\n'])
    );
    let mut refused = Vec::new();
    let target = c("/mnt/apk");
    let fstype = c("tmpfs");
    // SAFETY: the strings are NUL-terminated; a successful mount would only shadow /mnt/apk.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    refused.push(report("mount", i64::from(rc)));
    let image = [0u8; 64];
    let params = c("");
    // SAFETY: init_module reads `image.len()` bytes from image and a NUL-terminated string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            params.as_ptr(),
        )
    };
    refused.push(report("init_module", rc));
    // SAFETY: kexec_load with no segments; it would fail on its arguments if allowed.
    let rc = unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 0usize, 0usize, 0usize) };
    refused.push(report("kexec_load", rc));
    refused.push(report(
        "read /dev/block/by-name/vm-instance",
        open_read("/dev/block/by-name/vm-instance"),
    ));
    refused.push(report("read /dev/vda", open_read("/dev/vda")));
    let path = c("/system/bin/escape");
    // SAFETY: path is NUL-terminated; the fd, if any, is closed.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd >= 0 {
        // SAFETY: fd was just opened here.
        unsafe { libc::close(fd) };
    }
    refused.push(report("write /system", i64::from(fd)));
    refused.push(report(
        "connect to the host's IVirtualMachineService",
        vsock_connect(VMADDR_CID_HOST, HOST_SERVICE_PORT),
    ));
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    // SAFETY: PTRACE_ATTACH takes a pid and no pointers.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            parent,
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    };
    refused.push(report("ptrace microdroid_manager", rc));
    refused.push(report(
        "read microdroid_manager's /proc entries",
        open_read(&format!("/proc/{parent}/environ")),
    ));
    refused.push(report(
        "read init's /proc entries",
        open_read("/proc/1/cmdline"),
    ));
    // SAFETY: unshare takes flags only.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    refused.push(report("unshare a user namespace", i64::from(rc)));
    // SAFETY: bpf with a null attribute pointer and size 0 fails on its arguments if allowed.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0) };
    refused.push(report("bpf", rc));
    refused.push(report("read /dev/kmsg", open_read("/dev/kmsg")));
    refused.push(report(
        "read SELinux's state in /sys",
        open_read("/sys/fs/selinux/enforce"),
    ));
    let count = refused.iter().filter(|r| !**r).count();
    if count == 0 {
        println!("escape: all {} attempts refused", refused.len());
        ExitCode::SUCCESS
    } else {
        println!("escape: {count} attempts were allowed");
        ExitCode::from(1)
    }
}

fn vsock_connect(cid: u32, port: u32) -> i64 {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return i64::from(fd);
    }
    // SAFETY: sockaddr_vm is plain data; all-zero is a valid start.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: addr is a valid sockaddr_vm of the size given.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    let saved = std::io::Error::last_os_error();
    // SAFETY: fd was opened above.
    unsafe { libc::close(fd) };
    if rc < 0 {
        // Restore errno for the report.
        // SAFETY: __errno_location returns this thread's errno.
        unsafe { *libc::__errno_location() = saved.raw_os_error().unwrap_or(0) };
    }
    i64::from(rc)
}
