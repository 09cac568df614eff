#![no_main]
//! Fuzz target: see ../README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(config) = payload_config::VmPayloadConfig::from_json(data) {
        let _ = config.task();
    }
});
