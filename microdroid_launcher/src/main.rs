//! `microdroid_launcher LIBRARY`: AOSP's payload launcher. microdroid_manager runs it, as the
//! payload's user, through the system's glibc loader with the library search path limited to
//! the APK's `lib/x86_64/` and `/system/lib64`:
//!
//! ```text
//! /system/lib64/ld-linux-x86-64.so.2 --inhibit-cache --library-path /mnt/apk/lib/x86_64:/system/lib64 \
//!     /system/bin/microdroid_launcher /mnt/apk/lib/x86_64/libpayload.so
//! ```
//!
//! It loads `libvm_payload.so` and `libbinder_ndk.so` globally (the API AOSP's launcher links
//! into the payload's namespace), then the payload with `RTLD_NOW`, finds `AVmPayload_main`,
//! calls it and exits with its result. If the library cannot be loaded (missing, not an ELF,
//! another architecture, a missing dependency or symbol) it writes the loader's message to the
//! fd named by `MICRODROID_LAUNCHER_STATUS_FD` and exits 1: microdroid_manager reports
//! MICRODROID_INVALID_PAYLOAD_CONFIG with that message. The fd is closed before the payload
//! runs.

use std::ffi::{c_int, OsString};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use libloading::os::unix::{Library, Symbol, RTLD_GLOBAL, RTLD_NOW};

/// The environment variable with the status pipe's fd number.
const STATUS_FD_ENV: &str = "MICRODROID_LAUNCHER_STATUS_FD";
/// What the payload API is made of, loaded before the payload so that its symbols resolve.
const API_LIBRARIES: [&str; 2] = ["libbinder_ndk.so", "libvm_payload.so"];
/// The payload's entry point (`vm_main.h`).
const ENTRY: &[u8] = b"AVmPayload_main\0";

type EntryPoint = unsafe extern "C" fn() -> c_int;

fn status_pipe() -> Option<std::fs::File> {
    let fd: i32 = std::env::var(STATUS_FD_ENV).ok()?.parse().ok()?;
    if fd < 3 {
        return None;
    }
    // SAFETY: microdroid_manager opened this fd for this process and names it in the
    // environment; nothing else here uses it.
    Some(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Loads the payload and returns its entry point (the library stays loaded).
fn load(path: &OsString) -> Result<EntryPoint, String> {
    for api in API_LIBRARIES {
        // SAFETY: the system's own libraries; their initializers only set up their state.
        let lib = unsafe { Library::open(Some(api), RTLD_NOW | RTLD_GLOBAL) }
            .map_err(|e| format!("loading {api}: {e}"))?;
        std::mem::forget(lib);
    }
    // SAFETY: loading the payload runs its initializers: that is running the payload, which
    // is what this process is for.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW) }.map_err(|e| e.to_string())?;
    // SAFETY: AVmPayload_main's type is fixed by vm_main.h: `int AVmPayload_main(void)`.
    let entry: Symbol<EntryPoint> = unsafe { lib.get(ENTRY) }.map_err(|e| e.to_string())?;
    // The function pointer stays valid: the library is never unloaded.
    let entry: EntryPoint = *entry;
    std::mem::forget(lib);
    Ok(entry)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: microdroid_launcher LIBRARY");
        return ExitCode::from(2);
    };
    let mut status = status_pipe();
    std::env::remove_var(STATUS_FD_ENV);
    // Started through the loader, the process would be named after it: name it as AOSP's
    // (what `pidof microdroid_launcher` and tombstones show).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from a static.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"microdroid_launcher".as_ptr()) };
    // A crash of the payload (or of its initializers) leaves a tombstone where microdroid_manager
    // serves the crash socket (export_tombstones); elsewhere the process just dies of it.
    if let Err(e) = tombstone::handler::install(tombstone::CRASH_SOCKET) {
        eprintln!("microdroid_launcher: no crash handler: {e}");
    }
    match load(&path) {
        Ok(entry) => {
            // The payload may not write the launcher's verdict.
            drop(status.take());
            // SAFETY: the payload's entry point, called once on the main thread as AOSP does.
            let code = unsafe { entry() };
            // Exit through libc so that the payload's stdio buffers are flushed.
            std::process::exit(code)
        }
        Err(message) => {
            match status.as_mut() {
                Some(pipe) => {
                    let _ = pipe.write_all(message.as_bytes());
                }
                None => eprintln!("microdroid_launcher: {message}"),
            }
            ExitCode::from(1)
        }
    }
}
