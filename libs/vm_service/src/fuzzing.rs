//! The host's `IVirtualMachineService` handlers under hostile input: what a guest can send the
//! host (an RPC session's bytes) goes through the same [`HostService`] and binder adapter that
//! `vmctl`/virtmgr serve. Shared by the `host_service` fuzz target and the tests below.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use rpcbinder::fuzzing::{MemStream, Recording};
use rpcbinder::RpcServer;

use crate::server::{HostService, VirtualMachineServiceBinder, VmEventKind, MAX_REJECTED_CALLS};
use crate::types::ErrorCode;
use crate::VirtualMachineServiceClient;

/// What one session did to the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Notifications the state machine accepted (one per state: at most 3).
    pub accepted: usize,
    /// Notifications it refused, each queued as an event.
    pub rejected: usize,
    /// Whether the guest was reported as misbehaving.
    pub misbehaving: bool,
}

/// Serves the client bytes `data` (handshake, then commands, then EOF) with a fresh
/// [`HostService`], and checks the host's bounds: at most three accepted notifications,
/// at most [`MAX_REJECTED_CALLS`] refused ones queued, misbehaving reported at most once, so
/// the host's event queue stays bounded whatever the guest sends.
pub fn serve_host_service(data: &[u8]) -> Outcome {
    let (service, _state, events) = HostService::new(3);
    let server = RpcServer::new(Arc::new(VirtualMachineServiceBinder(service)));
    let _ = server.serve_connection(MemStream::new(data));
    drop(server);
    let mut outcome = Outcome::default();
    for event in events.try_iter() {
        match event.kind {
            VmEventKind::Rejected { .. } => outcome.rejected += 1,
            VmEventKind::Misbehaving { .. } => {
                assert!(!outcome.misbehaving, "misbehaving reported twice");
                outcome.misbehaving = true;
            }
            VmEventKind::Disconnected { .. } => {}
            _ => outcome.accepted += 1,
        }
    }
    assert!(outcome.accepted <= 3, "{outcome:?}");
    assert!(outcome.rejected <= MAX_REJECTED_CALLS, "{outcome:?}");
    outcome
}

/// The bytes microdroid_manager's client sends in a whole session (started, ready, an error,
/// finished, attestation, close): the fuzz target's seed.
pub fn recorded_guest_session() -> std::io::Result<Vec<u8>> {
    record_session(|client| {
        let to_io = |e| std::io::Error::other(format!("{e}"));
        client.notify_payload_started().map_err(to_io)?;
        client.notify_payload_ready().map_err(to_io)?;
        // Refused (ready twice), then accepted, then refused again: both sides of the machine.
        let _ = client.notify_payload_ready();
        client
            .notify_error(ErrorCode(2), "payload verification failed")
            .map_err(to_io)?;
        let _ = client.notify_payload_finished(0);
        let _ = client.request_attestation(b"csr", false);
        client.close().map_err(to_io)
    })
}

/// The client bytes of the session `calls` makes against a real [`HostService`].
pub fn record_session(
    calls: impl FnOnce(&VirtualMachineServiceClient<Recording<UnixStream>>) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let (client_end, server_end) = UnixStream::pair()?;
    let (service, _state, _events) = HostService::new(3);
    let server = RpcServer::new(Arc::new(VirtualMachineServiceBinder(service)));
    let serving = std::thread::spawn(move || server.serve_connection(server_end));
    let (recording, written) = Recording::new(client_end);
    let client = VirtualMachineServiceClient::connect(recording)
        .map_err(|e| std::io::Error::other(format!("{e}")))?;
    let result = calls(&client);
    drop(client);
    let _ = serving.join();
    result?;
    let bytes = written.lock().map(|w| w.clone()).unwrap_or_default();
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/host_service")
    }

    /// The committed seed is a session the real client made: served again, it moves the state
    /// machine through started, ready, error and refuses the rest (set VM_SERVICE_REGEN_SEEDS=1
    /// to record it again).
    #[test]
    fn the_seed_is_a_whole_session() {
        let path = seed_dir().join("guest-session.bin");
        if std::env::var_os("VM_SERVICE_REGEN_SEEDS").is_some() {
            std::fs::create_dir_all(seed_dir()).unwrap();
            std::fs::write(&path, recorded_guest_session().unwrap()).unwrap();
        }
        let seed = std::fs::read(&path).unwrap();
        assert_eq!(
            serve_host_service(&seed),
            Outcome {
                accepted: 3,
                rejected: 2,
                misbehaving: false
            }
        );
    }

    /// Cuts and flips of the seed, and a flood of refused calls: the bounds hold.
    #[test]
    fn mutations_and_floods_stay_bounded() {
        let seed = std::fs::read(seed_dir().join("guest-session.bin")).unwrap();
        for i in 0..seed.len() {
            let mut m = seed.clone();
            m[i] ^= 0x20;
            serve_host_service(&m);
            serve_host_service(&seed[..i]);
        }
        // 100 refused notifications: 16 are queued, then the guest is misbehaving.
        let flood = record_session(|client| {
            client.notify_payload_started().unwrap();
            for _ in 0..100 {
                let _ = client.notify_payload_started();
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            serve_host_service(&flood),
            Outcome {
                accepted: 1,
                rejected: MAX_REJECTED_CALLS,
                misbehaving: true
            }
        );
    }
}
