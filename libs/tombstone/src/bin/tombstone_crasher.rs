//! Test helper (libs/tombstone/tests): installs the crash handler for the socket given as the
//! first argument, then crashes as the second argument says (`null`, `null-no-stdin`, `abort`), or waits for a signal (`wait`).

#![allow(clippy::panic)] // a test helper

#[inline(never)]
#[no_mangle]
pub extern "C" fn tombstone_crasher_write_null(value: u32) {
    let p = std::hint::black_box(std::ptr::null_mut::<u32>());
    // SAFETY: none: writing through NULL is the point; the handler reports it.
    unsafe { std::ptr::write_volatile(p, value) };
}

#[inline(never)]
#[no_mangle]
pub extern "C" fn tombstone_crasher_outer(value: u32) {
    tombstone_crasher_write_null(std::hint::black_box(value) + 1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = tombstone::handler::install(&args[1]) {
        panic!("installing the handler: {e}");
    }
    match args.get(2).map(String::as_str) {
        Some("abort") => std::process::abort(),
        // With standard input closed, the handler's socket is descriptor 0.
        Some("null-no-stdin") => {
            // SAFETY: closes this process's own standard input, which nothing here uses.
            unsafe { libc::close(0) };
            tombstone_crasher_outer(41)
        }
        // Waits for a signal sent from outside (its si_code is SI_USER, not a fault).
        Some("wait") => {
            println!("ready");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
        _ => tombstone_crasher_outer(41),
    }
}
