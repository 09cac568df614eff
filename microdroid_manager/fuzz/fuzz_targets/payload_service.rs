//! A payload's bytes on /dev/socket/vm_payload_service to microdroid_manager's real
//! IVmPayloadService (secrets, DICE chain and CDI, ready forwarded to a real host state
//! machine): see `microdroid_manager::payload_service::fuzzing`. Must never panic, put the
//! CDI_Seal on the wire, or serve restricted values to a payload not allowed them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = microdroid_manager::payload_service::fuzzing::serve_payload(data);
});
