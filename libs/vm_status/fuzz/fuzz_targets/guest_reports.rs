#![no_main]
//! Fuzz target: see ../README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vm_status::parse_death_reason(data);
});
