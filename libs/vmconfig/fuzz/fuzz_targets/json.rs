#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vmconfig::VmConfig::from_json(&String::from_utf8_lossy(data));
});
