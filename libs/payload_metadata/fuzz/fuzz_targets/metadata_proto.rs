#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A round trip that breaks is a bug: a crash for libFuzzer.
    assert!(payload_metadata::fuzz_entry(data), "metadata that decodes must re-encode to itself");
});
