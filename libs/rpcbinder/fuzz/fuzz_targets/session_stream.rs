#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rpcbinder::fuzzing::session_server_bytes(data);
});
