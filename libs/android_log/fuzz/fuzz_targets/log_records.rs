#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| android_log::fuzz_entry(data));
