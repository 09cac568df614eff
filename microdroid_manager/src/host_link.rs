//! How microdroid_manager tells the host what happens to the payload.
//!
//! `HostLink` has the methods of AOSP's IVirtualMachineService that the guest calls; `RpcHostLink`
//! implements it over binder RPC on vsock (host CID 2, port = this VM's CID), as AOSP's
//! microdroid_manager does. Failures are also written to the death-reason port
//! (`write_death_reason`), the one channel that works however early the failure happens,
//! including when the host service cannot be reached at all.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rpcbinder::vsock::VsockStream;
use rpcbinder::{Status, StatusCode};
use vm_service::{ClientError, VirtualMachineServiceClient};
use vm_status::FailureClass;

use crate::error::MicrodroidError;

/// Bounds the vsock connect and every call: a host that stops answering must not keep the guest
/// from reporting its death reason and powering off.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

pub trait HostLink {
    fn notify_payload_started(&mut self) -> Result<()>;
    fn notify_payload_ready(&mut self) -> Result<()>;
    fn notify_payload_finished(&mut self, exit_code: i32) -> Result<()>;
    /// `notifyError` with the class's AOSP `ErrorCode` and the message.
    fn notify_error(&mut self, class: FailureClass, message: &str) -> Result<()>;
    /// A handle on the same link for the payload service's thread, which forwards the
    /// payload's `notifyPayloadReady` while the main thread waits for the payload.
    fn ready_notifier(&self) -> Arc<dyn ReadyNotifier>;
}

/// `notifyPayloadReady` from another thread than the link's owner. The host's AIDL status comes
/// back unchanged (e.g. EX_ILLEGAL_STATE for a second ready), so that the payload gets what the
/// host answered, as AOSP's microdroid_manager returns the host call's `binder::Result`.
pub trait ReadyNotifier: Send + Sync {
    fn notify_payload_ready(&self) -> Result<(), Status>;
}

/// The client serializes calls on its own lock, so one connection serves both threads.
impl<S: Read + Write + Send> ReadyNotifier for VirtualMachineServiceClient<S> {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        VirtualMachineServiceClient::notify_payload_ready(self).map_err(host_error_status)
    }
}

/// What the payload sees when the host call fails: the host's exception as is; a transport
/// status as is; a broken or timed-out link as `DEAD_OBJECT`, what libbinder reports for a
/// session that is gone.
fn host_error_status(err: ClientError) -> Status {
    match err {
        ClientError::Service(status) => status,
        ClientError::Rpc(rpcbinder::Error::TransactionFailed(code)) => Status::transport(code),
        _ => Status::transport(StatusCode::DEAD_OBJECT),
    }
}

/// The IVirtualMachineService client over vsock.
pub struct RpcHostLink {
    client: Arc<VirtualMachineServiceClient<VsockStream>>,
}

impl RpcHostLink {
    /// Connects to the host's service for this VM. Any failure (no vsock device, nothing
    /// listening, a failed session setup) is `FailedToConnectToVirtualizationService`.
    pub fn connect(timeout: Duration) -> Result<Self, MicrodroidError> {
        VirtualMachineServiceClient::connect_vsock(Some(timeout))
            .map(|client| RpcHostLink {
                client: Arc::new(client),
            })
            .map_err(|e| MicrodroidError::FailedToConnectToVirtualizationService(e.to_string()))
    }
}

impl HostLink for RpcHostLink {
    fn notify_payload_started(&mut self) -> Result<()> {
        self.client
            .notify_payload_started()
            .context("notifyPayloadStarted")
    }
    fn notify_payload_ready(&mut self) -> Result<()> {
        self.client
            .notify_payload_ready()
            .context("notifyPayloadReady")
    }
    fn notify_payload_finished(&mut self, exit_code: i32) -> Result<()> {
        self.client
            .notify_payload_finished(exit_code)
            .context("notifyPayloadFinished")
    }
    fn notify_error(&mut self, class: FailureClass, message: &str) -> Result<()> {
        let code = vm_service::ErrorCode(class.error_code() as i32);
        self.client
            .notify_error(code, message)
            .context("notifyError")
    }
    fn ready_notifier(&self) -> Arc<dyn ReadyNotifier> {
        self.client.clone()
    }
}

/// Writes the failure's AOSP death-reason line to `device` (ttyS1) in one write and waits for
/// the bytes to leave the UART (`tcdrain`), as current AOSP does.
pub fn write_death_reason(device: &str, class: FailureClass, message: &str) -> std::io::Result<()> {
    let line = format!("{}\n", class.death_reason_line(message));
    let mut port = OpenOptions::new().append(true).open(device)?;
    port.write_all(line.as_bytes())?;
    port.flush()?;
    // Not a tty when tests write to a file.
    let _ = nix::sys::termios::tcdrain(&port);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::net::UnixStream;

    use vm_service::{HostService, VirtualMachineServiceBinder, VmEventKind};

    use super::*;

    /// The same client as `RpcHostLink`, over a Unix socket pair instead of vsock.
    pub(crate) struct TestLink(pub(crate) Arc<VirtualMachineServiceClient<UnixStream>>);

    impl HostLink for TestLink {
        fn notify_payload_started(&mut self) -> Result<()> {
            Ok(self.0.notify_payload_started()?)
        }
        fn notify_payload_ready(&mut self) -> Result<()> {
            Ok(self.0.notify_payload_ready()?)
        }
        fn notify_payload_finished(&mut self, exit_code: i32) -> Result<()> {
            Ok(self.0.notify_payload_finished(exit_code)?)
        }
        fn notify_error(&mut self, class: FailureClass, message: &str) -> Result<()> {
            Ok(self
                .0
                .notify_error(vm_service::ErrorCode(class.error_code() as i32), message)?)
        }
        fn ready_notifier(&self) -> Arc<dyn ReadyNotifier> {
            self.0.clone()
        }
    }

    /// A guest link to a fresh host service over a Unix socket pair, and the host's events.
    pub(crate) fn serve() -> (TestLink, std::sync::mpsc::Receiver<vm_service::VmEvent>) {
        let (guest, host) = UnixStream::pair().unwrap();
        let (service, _state, events) = HostService::new(2048);
        let server =
            rpcbinder::RpcServer::new(std::sync::Arc::new(VirtualMachineServiceBinder(service)));
        std::thread::spawn(move || server.serve_connection(host));
        (
            TestLink(Arc::new(
                VirtualMachineServiceClient::connect(guest).unwrap(),
            )),
            events,
        )
    }

    #[test]
    fn payload_run_reaches_the_host_in_order() {
        let (mut link, events) = serve();
        link.notify_payload_started().unwrap();
        link.notify_payload_finished(3).unwrap();
        // The host's state machine refuses a second start.
        assert!(link.notify_payload_started().is_err());
        drop(link);
        let kinds: Vec<VmEventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds[0], VmEventKind::PayloadStarted);
        assert_eq!(kinds[1], VmEventKind::PayloadFinished(3));
    }

    #[test]
    fn errors_carry_aosp_codes() {
        let (mut link, events) = serve();
        link.notify_error(FailureClass::PayloadInvalidConfig, "No task in VM config")
            .unwrap();
        let event = events.recv().unwrap();
        assert_eq!(
            event.kind,
            VmEventKind::Error {
                code: vm_service::ErrorCode::PAYLOAD_INVALID_CONFIG,
                message: "No task in VM config".into()
            }
        );
    }

    #[test]
    fn writes_the_death_reason_line() {
        let dir = tempfile::tempdir().unwrap();
        let death = dir.path().join("death");
        std::fs::write(&death, "").unwrap();
        write_death_reason(
            death.to_str().unwrap(),
            FailureClass::UnknownRuntimeError,
            "boom",
        )
        .unwrap();
        let reason = vm_status::parse_death_reason(&std::fs::read(&death).unwrap()).unwrap();
        assert_eq!(
            reason.reason,
            vm_status::DeathReason::MicrodroidUnknownRuntimeError
        );
        assert_eq!(reason.detail.as_deref(), Some("boom"));
        write_death_reason(
            death.to_str().unwrap(),
            FailureClass::FailedToConnectToVirtualizationService,
            "x",
        )
        .unwrap();
    }
}
