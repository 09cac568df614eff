#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: rpcbinder::fuzzing::pin_to_current_cpu(),
    |data: &[u8]| {
        let _ = rpcbinder::fuzzing::session_server_bytes(data);
    }
);
