#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert!(instance::fuzz_entry(data));
});
