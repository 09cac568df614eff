//! The crash handler a guest process installs (debuggerd_handler's role). It is a signal
//! handler: everything it does is an async-signal-safe system call on memory prepared at
//! install time, with no allocation and no lock.

use std::ffi::c_void;
use std::io;
use std::sync::OnceLock;

use crate::message::{CrashMessage, CRASH_SIGNALS, MESSAGE_LEN, NGREG};

/// How long the crashed process waits for the dumper before it dies anyway.
const DUMP_WAIT_SECS: i64 = 30;
/// The alternate signal stack, so that a stack overflow can still be reported.
const ALT_STACK_SIZE: usize = 64 * 1024;

static DUMPER: OnceLock<libc::sockaddr_un> = OnceLock::new();

fn socket_address(path: &str) -> io::Result<libc::sockaddr_un> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(addr)
}

/// Installs the handler for the crash signals in this process, with an alternate stack for the
/// calling thread. `socket` is the dumper's (normally [`crate::CRASH_SOCKET`]); if nothing
/// listens there when a crash comes, the process just dies of its signal.
pub fn install(socket: &str) -> io::Result<()> {
    let addr = socket_address(socket)?;
    let _ = DUMPER.set(addr);
    let stack: &'static mut [u8] = Box::leak(vec![0u8; ALT_STACK_SIZE].into_boxed_slice());
    let ss = libc::stack_t {
        ss_sp: stack.as_mut_ptr() as *mut c_void,
        ss_flags: 0,
        ss_size: stack.len(),
    };
    // SAFETY: `ss` describes a leaked buffer that stays valid for the process's life.
    if unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for signal in CRASH_SIGNALS {
        // SAFETY: sigaction is plain old data; all-zero is a valid value before it is filled.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_crash as *const () as usize;
        // One shot: the handler runs once, then the default action (death) applies.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
        // SAFETY: the mask is a valid sigset_t inside `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: installs a handler with the signature SA_SIGINFO requires.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_crash(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to an SA_SIGINFO handler.
    let (code, fault_addr) = unsafe { ((*info).si_code, (*info).si_addr() as u64) };
    let mut gregs = [0u64; NGREG];
    if !context.is_null() {
        // SAFETY: as above; gregs is a plain array inside the ucontext.
        let saved = unsafe { (*(context as *const libc::ucontext_t)).uc_mcontext.gregs };
        for (dst, src) in gregs.iter_mut().zip(saved.iter()) {
            *dst = *src as u64;
        }
    }
    // SAFETY: getpid and gettid cannot fail.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    let message = CrashMessage {
        signal,
        code,
        pid,
        tid,
        fault_addr,
        gregs,
    }
    .encode();
    if let Some(addr) = DUMPER.get() {
        send_and_wait(addr, &message);
    }
    // The handler is back to the default action. A fault happens again on return and kills;
    // a signal that was sent (kill, abort) is raised again, pending until this handler returns.
    if code <= 0 {
        // SAFETY: tgkill to this very thread; async-signal-safe.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) };
    }
}

/// Sends the message and waits for the dumper's byte (it dumps while we wait).
fn send_and_wait(addr: &libc::sockaddr_un, message: &[u8; MESSAGE_LEN]) {
    // SAFETY: every call below is an async-signal-safe system call on a descriptor this
    // function owns, with pointers to live stack or static memory and matching lengths.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let wait = libc::timeval {
            tv_sec: DUMP_WAIT_SECS,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &wait as *const libc::timeval as *const c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let connected = libc::connect(
            fd,
            addr as *const libc::sockaddr_un as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        ) == 0;
        if connected
            && libc::send(
                fd,
                message.as_ptr() as *const c_void,
                message.len(),
                libc::MSG_NOSIGNAL,
            ) == message.len() as isize
        {
            let mut done = [0u8; 1];
            libc::recv(fd, done.as_mut_ptr() as *mut c_void, 1, 0);
        }
        libc::close(fd);
    }
}
