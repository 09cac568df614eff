#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A round trip that breaks is a bug: a crash for libFuzzer.
    assert!(idsig::fuzz_entry(data), "an idsig that parses must re-encode to itself");
});
