//! The payload's channel to microdroid_manager: `IVmPayloadService` over RPC binder on the Unix
//! socket `/dev/socket/vm_payload_service` (AOSP's `vm_payload_service.rs`, reference
//! aosp-guest.md §5.6).
//!
//! It is served on a background thread from before the payload is spawned until it has exited.
//! `notifyPayloadReady` is forwarded to the host over the host link, and the host's answer goes
//! back to the payload unchanged: a second ready, or a ready after the payload finished, is the
//! host's EX_ILLEGAL_STATE. The other methods answer EX_UNSUPPORTED_OPERATION (no instance
//! secrets or DICE yet; `vm_payload_service::unsupported`).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rpcbinder::Status;
use vm_payload_service::{
    PayloadServiceListener, VmPayloadService, VM_PAYLOAD_SERVICE_SOCKET_MODE,
    VM_PAYLOAD_SERVICE_SOCKET_PATH,
};

use crate::host_link::ReadyNotifier;

/// Mode of `/dev/socket` when we create it, as Android's init does: the payload (uid 6000) must
/// be able to reach the socket inside.
const SOCKET_DIR_MODE: u32 = 0o755;

struct PayloadService {
    host: Arc<dyn ReadyNotifier>,
}

impl VmPayloadService for PayloadService {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        crate::log("payload is ready, notifying the host");
        self.host.notify_payload_ready().inspect_err(|status| {
            crate::log(&format!("notifyPayloadReady refused by the host: {status}"))
        })
    }
}

/// Binds `/dev/socket/vm_payload_service` (mode 0666) and serves the payload on a background
/// thread. Serving stops, and the socket is removed, when the returned listener is dropped.
pub fn start(host: Arc<dyn ReadyNotifier>) -> Result<PayloadServiceListener> {
    start_at(Path::new(VM_PAYLOAD_SERVICE_SOCKET_PATH), host)
}

/// [`start`] on another socket path (tests); its directory is created if missing.
pub fn start_at(path: &Path, host: Arc<dyn ReadyNotifier>) -> Result<PayloadServiceListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let listener = PayloadServiceListener::bind(
        path,
        VM_PAYLOAD_SERVICE_SOCKET_MODE,
        Arc::new(PayloadService { host }),
    )
    .with_context(|| format!("serving IVmPayloadService on {}", path.display()))?;
    crate::log(&format!(
        "IVmPayloadService listening on {}",
        path.display()
    ));
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    use rpcbinder::ExceptionCode;
    use vm_payload_service::{ClientError, VmPayloadServiceClient};
    use vm_service::{PayloadState, VmEventKind};

    use super::*;
    use crate::host_link::tests::serve;
    use crate::host_link::HostLink;

    fn refusal(result: Result<(), ClientError>) -> Status {
        match result {
            Err(ClientError::Service(status)) => status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ready_is_forwarded_and_the_hosts_refusal_comes_back() {
        let (mut link, events) = serve();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket/vm_payload_service");
        let listener = start_at(&path, link.ready_notifier()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o666);
        assert_eq!(mode(dir.path().join("socket").as_path()), 0o755);

        link.notify_payload_started().unwrap();
        let payload = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
        payload.notify_payload_ready().unwrap();
        let again = refusal(payload.notify_payload_ready());
        assert_eq!(again.exception_code(), ExceptionCode::ILLEGAL_STATE);
        assert_eq!(
            again.message(),
            "Invalid payload state transition from Ready to Ready"
        );
        let secret = refusal(payload.get_vm_instance_secret(b"id", 32).map(|_| ()));
        assert_eq!(
            secret.exception_code(),
            ExceptionCode::UNSUPPORTED_OPERATION
        );
        link.notify_payload_finished(0).unwrap();
        payload.close().unwrap();
        drop(listener);
        assert!(!path.exists());
        drop(link);
        let kinds: Vec<VmEventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds[..4],
            [
                VmEventKind::PayloadStarted,
                VmEventKind::PayloadReady,
                VmEventKind::Rejected {
                    method: "notifyPayloadReady",
                    state: PayloadState::Ready
                },
                VmEventKind::PayloadFinished(0),
            ]
        );
    }
}
