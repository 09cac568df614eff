//! `Handover::parse` and `verify_chain` on arbitrary bytes (through `dice::fuzz_entry`): no
//! panic, and a handover that parses survives `to_bytes` and a second parse unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert!(dice::fuzz_entry(data));
});
