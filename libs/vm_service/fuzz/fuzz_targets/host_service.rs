//! A guest's RPC session bytes to the host's IVirtualMachineService, through the real
//! HostService and its binder adapter: see `vm_service::fuzzing::serve_host_service`. Must
//! never panic or let the event queue grow past its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vm_service::fuzzing::serve_host_service(data);
});
