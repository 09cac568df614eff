#![no_main]
//! Fuzz target: see ../README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = gpt_disk::read_partitions(data);
});
