#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = payload_metadata::fuzz_entry(data);
});
