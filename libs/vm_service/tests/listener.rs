//! The host service serves microdroid_manager's session only: a second connection (a payload
//! dialing the host's port) is closed unserved and its calls never reach the host.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::net::UnixStream;
use std::time::Duration;

use vm_service::{HostService, ServiceListener, VirtualMachineServiceClient, VmEventKind};

#[test]
fn only_the_first_session_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.vsock_2048");
    let (service, _state, events) = HostService::new(2048);
    let mut listener = ServiceListener::bind(&path, service).unwrap();

    let manager =
        VirtualMachineServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
    manager.notify_payload_started().unwrap();

    // The payload's attempt: the connection is closed before the RPC handshake completes.
    let stream = UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let intruder = VirtualMachineServiceClient::connect(stream);
    assert!(intruder.is_err(), "a second session must be refused");

    manager.notify_payload_finished(0).unwrap();
    manager.close().unwrap();
    listener.stop();
    let kinds: Vec<VmEventKind> = events.try_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..2],
        [VmEventKind::PayloadStarted, VmEventKind::PayloadFinished(0)]
    );
}
