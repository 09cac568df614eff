//! Host side: the `IVirtualMachineService` server trait, its binder adapter, a ready-made
//! event-reporting implementation with the payload state machine, and a Unix-socket listener.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rpcbinder::{
    Binder, ExceptionCode, Parcel, ParcelReader, RpcServer, SessionEnd, SessionOutcome, Status,
    StatusCode, UnixSocketServer,
};

use crate::types::{ErrorCode, PayloadState, PayloadStateMachine};
use crate::{codes, DESCRIPTOR};

/// `Certificate` parcelable: `{ byte[] encodedCertificate; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// DER bytes.
    pub encoded_certificate: Vec<u8>,
}

/// The status `requestAttestation` answers while attestation is not implemented:
/// `EX_UNSUPPORTED_OPERATION`, as virtualizationservice answers when no remotely provisioned
/// component is declared.
pub fn attestation_unsupported() -> Status {
    Status::exception(
        ExceptionCode::UNSUPPORTED_OPERATION,
        "attestation is not supported by this host",
    )
}

/// The status `getSecretkeeper` answers when there is no Secretkeeper: transport status
/// `NAME_NOT_FOUND`, as virtmgr does.
pub fn secretkeeper_absent() -> Status {
    Status::transport(StatusCode::NAME_NOT_FOUND)
}

/// `IVirtualMachineService` as implemented by the host (Android 14/15 method set, wire codes
/// 1–6). Return `Err(status)` for AIDL exceptions; a status built with
/// [`Status::transport`] becomes a transport error instead.
pub trait VirtualMachineService: Send + Sync {
    /// Code 1.
    fn notify_payload_started(&self) -> Result<(), Status>;
    /// Code 2.
    fn notify_payload_ready(&self) -> Result<(), Status>;
    /// Code 3.
    fn notify_payload_finished(&self, exit_code: i32) -> Result<(), Status>;
    /// Code 4.
    fn notify_error(&self, error_code: ErrorCode, message: &str) -> Result<(), Status>;
    /// Code 5. Default: [`attestation_unsupported`].
    fn request_attestation(
        &self,
        _csr: &[u8],
        _test_mode: bool,
    ) -> Result<Vec<Certificate>, Status> {
        Err(attestation_unsupported())
    }
    /// Code 6 (returns an `ISecretkeeper`, which this host never has). Default:
    /// [`secretkeeper_absent`].
    fn get_secretkeeper(&self) -> Result<(), Status> {
        Err(secretkeeper_absent())
    }
}

/// Adapts a [`VirtualMachineService`] to an RPC binder root object (the generated "Bn" stub).
pub struct VirtualMachineServiceBinder<T: VirtualMachineService>(pub T);

fn write_result(reply: &mut Parcel, r: Result<(), Status>) -> Result<(), StatusCode> {
    match r {
        Ok(()) => {
            reply.write_status(&Status::ok());
            Ok(())
        }
        Err(s) => match s.transport_status() {
            Some(code) => Err(code),
            None => {
                reply.write_status(&s);
                Ok(())
            }
        },
    }
}

impl<T: VirtualMachineService> Binder for VirtualMachineServiceBinder<T> {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let svc = &self.0;
        match code {
            codes::NOTIFY_PAYLOAD_STARTED => write_result(reply, svc.notify_payload_started()),
            codes::NOTIFY_PAYLOAD_READY => write_result(reply, svc.notify_payload_ready()),
            codes::NOTIFY_PAYLOAD_FINISHED => {
                let exit_code = data.read_i32().map_err(|e| e.status_code())?;
                write_result(reply, svc.notify_payload_finished(exit_code))
            }
            codes::NOTIFY_ERROR => {
                let error_code = ErrorCode(data.read_i32().map_err(|e| e.status_code())?);
                let message = data.read_string().map_err(|e| e.status_code())?;
                write_result(reply, svc.notify_error(error_code, &message))
            }
            codes::REQUEST_ATTESTATION => {
                let csr = data.read_byte_array().map_err(|e| e.status_code())?;
                let csr = csr.ok_or(StatusCode::UNEXPECTED_NULL)?;
                let test_mode = data.read_bool().map_err(|e| e.status_code())?;
                match svc.request_attestation(&csr, test_mode) {
                    Ok(certs) => {
                        reply.write_status(&Status::ok());
                        reply.write_i32(
                            i32::try_from(certs.len()).map_err(|_| StatusCode::NO_MEMORY)?,
                        );
                        for c in &certs {
                            reply.write_parcelable(|p| {
                                p.write_byte_array(Some(&c.encoded_certificate))
                            });
                        }
                        Ok(())
                    }
                    Err(s) => write_result(reply, Err(s)),
                }
            }
            codes::GET_SECRETKEEPER => match svc.get_secretkeeper() {
                // There is no ISecretkeeper object to return; an Ok from the implementation
                // cannot be honoured.
                Ok(()) => Err(StatusCode::NAME_NOT_FOUND),
                Err(s) => write_result(reply, Err(s)),
            },
            _ => Err(StatusCode::UNKNOWN_TRANSACTION),
        }
    }
}

/// What the guest reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEventKind {
    /// notifyPayloadStarted.
    PayloadStarted,
    /// notifyPayloadReady.
    PayloadReady,
    /// notifyPayloadFinished(exit code).
    PayloadFinished(i32),
    /// notifyError(code, message).
    Error {
        /// Error code.
        code: ErrorCode,
        /// Message.
        message: String,
    },
    /// A transition the state machine refused (answered with EX_ILLEGAL_STATE).
    Rejected {
        /// The refused notification, as its AIDL method name.
        method: &'static str,
        /// State at the time.
        state: PayloadState,
    },
    /// The guest's RPC session ended (cleanly released, closed, or failed).
    Disconnected {
        /// Error text, if the session ended with a protocol or I/O error.
        error: Option<String>,
    },
    /// The guest broke the rules of this service (the protocol, the number of connections or
    /// of refused calls): the host stops the VM. Reported once.
    Misbehaving {
        /// What it did.
        reason: String,
    },
}

/// Notifications the state machine may refuse (repeats, backward moves) before the guest is
/// reported as misbehaving: a real microdroid_manager makes at most a handful.
pub const MAX_REJECTED_CALLS: usize = 16;
/// Connections refused after the first (the only one served) before the guest is reported as
/// misbehaving: a payload dialing the host's port is refused, a flood of them is abuse.
pub const MAX_REFUSED_CONNECTIONS: usize = 64;

/// A timestamped event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEvent {
    /// When the host received it.
    pub time: SystemTime,
    /// The guest CID the service runs for.
    pub cid: u32,
    /// What happened.
    pub kind: VmEventKind,
}

/// The host's service for one VM: enforces the payload state machine as virtmgr does
/// (started → Started, ready → Ready, finished and error → Finished; repeats and backwards
/// moves → EX_ILLEGAL_STATE) and reports each accepted notification as a [`VmEvent`].
#[derive(Debug)]
pub struct HostService {
    cid: u32,
    state: Arc<PayloadStateMachine>,
    events: Sender<VmEvent>,
    rejected: std::sync::atomic::AtomicUsize,
    misbehaving_reported: std::sync::atomic::AtomicBool,
}

impl HostService {
    /// A service for the VM with `cid`, its state machine (shared, so the host can also move
    /// it to Hangup) and the receiving end of its events.
    pub fn new(cid: u32) -> (Self, Arc<PayloadStateMachine>, Receiver<VmEvent>) {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(PayloadStateMachine::new());
        (
            HostService {
                cid,
                state: state.clone(),
                events: tx,
                rejected: std::sync::atomic::AtomicUsize::new(0),
                misbehaving_reported: std::sync::atomic::AtomicBool::new(false),
            },
            state,
            rx,
        )
    }

    fn emit(&self, kind: VmEventKind) {
        // The receiver may be gone (host shutting down): nothing to report to then.
        let _ = self.events.send(VmEvent {
            time: SystemTime::now(),
            cid: self.cid,
            kind,
        });
    }

    fn transition(
        &self,
        method: &'static str,
        to: PayloadState,
        kind: VmEventKind,
    ) -> Result<(), Status> {
        match self.state.update(to) {
            Ok(()) => {
                self.emit(kind);
                Ok(())
            }
            Err(e) => {
                let rejected = self
                    .rejected
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    .saturating_add(1);
                if rejected > MAX_REJECTED_CALLS {
                    // No more events for it: the queue stays bounded whatever the guest sends.
                    self.report_misbehaving(format!(
                        "made more than {MAX_REJECTED_CALLS} notifications the payload state \
                         machine refused"
                    ));
                    return Err(Status::transport(StatusCode::DEAD_OBJECT));
                }
                self.emit(VmEventKind::Rejected {
                    method,
                    state: e.from,
                });
                Err(Status::exception(
                    ExceptionCode::ILLEGAL_STATE,
                    e.to_string(),
                ))
            }
        }
    }

    /// Reports the end of the guest's session (called by [`ServiceListener`]).
    pub fn report_disconnect(&self, error: Option<String>) {
        self.emit(VmEventKind::Disconnected { error });
    }

    /// Reports the guest as misbehaving, once.
    pub fn report_misbehaving(&self, reason: String) {
        if !self
            .misbehaving_reported
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.emit(VmEventKind::Misbehaving { reason });
        }
    }
}

impl VirtualMachineService for HostService {
    fn notify_payload_started(&self) -> Result<(), Status> {
        self.transition(
            "notifyPayloadStarted",
            PayloadState::Started,
            VmEventKind::PayloadStarted,
        )
    }
    fn notify_payload_ready(&self) -> Result<(), Status> {
        self.transition(
            "notifyPayloadReady",
            PayloadState::Ready,
            VmEventKind::PayloadReady,
        )
    }
    fn notify_payload_finished(&self, exit_code: i32) -> Result<(), Status> {
        self.transition(
            "notifyPayloadFinished",
            PayloadState::Finished,
            VmEventKind::PayloadFinished(exit_code),
        )
    }
    fn notify_error(&self, code: ErrorCode, message: &str) -> Result<(), Status> {
        self.transition(
            "notifyError",
            PayloadState::Finished,
            VmEventKind::Error {
                code,
                message: message.to_string(),
            },
        )
    }
}

/// Serves a [`HostService`] on a Unix socket (vhost-device-vsock's `<uds>_<port>`) until
/// [`ServiceListener::stop`] or drop. A session's end is reported to the service (a guest that
/// disconnects, or breaks the protocol). Only the first connection is served: it is
/// microdroid_manager's, made before any payload runs; any later one (a payload dialing the
/// host's port) is closed unserved, so a payload cannot report for microdroid_manager.
#[derive(Debug)]
pub struct ServiceListener {
    server: UnixSocketServer,
}

/// Sessions served per VM: microdroid_manager's.
pub const MAX_SESSIONS: usize = 1;

/// The socket path vhost-device-vsock connects to for guest→host port `port`:
/// `<uds_path>_<port>` (for Microdroid, port = the guest's CID).
pub fn vsock_uds_path(uds_path: &Path, port: u32) -> PathBuf {
    let mut s = uds_path.as_os_str().to_owned();
    s.push(format!("_{port}"));
    PathBuf::from(s)
}

impl ServiceListener {
    /// Binds `path` (removing a stale socket file first) and starts serving `service`.
    /// Call this before the VM boots.
    pub fn bind(path: &Path, service: HostService) -> io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        Ok(Self::serve(listener, path.to_path_buf(), service))
    }

    /// Serves on an already bound listener whose path is `path` (used to wake it on stop).
    pub fn serve(listener: UnixListener, path: PathBuf, service: HostService) -> Self {
        let (server, on_session_end, on_refused) = Self::parts(service);
        ServiceListener {
            server: UnixSocketServer::serve_limited(
                listener,
                path,
                server,
                Some(MAX_SESSIONS),
                on_session_end,
                on_refused,
            ),
        }
    }

    fn parts(
        service: HostService,
    ) -> (
        RpcServer,
        impl Fn(SessionOutcome) + Send + Sync + 'static,
        impl Fn(usize) + Send + 'static,
    ) {
        let service = Arc::new(service);
        let server = RpcServer::new(Arc::new(VirtualMachineServiceBinder(service.clone())));
        let ended = service.clone();
        let on_session_end = move |outcome: SessionOutcome| match outcome {
            Ok(SessionEnd::CallbackClosed) => {}
            Ok(_) => ended.report_disconnect(None),
            Err(e) => {
                if e.is_protocol_violation() {
                    ended.report_misbehaving(format!("broke the RPC protocol: {e}"));
                }
                ended.report_disconnect(Some(e.to_string()))
            }
        };
        let on_refused = move |refused: usize| {
            if refused > MAX_REFUSED_CONNECTIONS {
                service.report_misbehaving(format!(
                    "opened more than {MAX_REFUSED_CONNECTIONS} connections to the host's \
                     service beyond the one it may use"
                ));
            }
        };
        (server, on_session_end, on_refused)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        self.server.path()
    }

    /// Stops accepting, removes the socket file. Sessions already running end when their
    /// peer goes away.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

impl<T: VirtualMachineService + ?Sized> VirtualMachineService for Arc<T> {
    fn notify_payload_started(&self) -> Result<(), Status> {
        (**self).notify_payload_started()
    }
    fn notify_payload_ready(&self) -> Result<(), Status> {
        (**self).notify_payload_ready()
    }
    fn notify_payload_finished(&self, exit_code: i32) -> Result<(), Status> {
        (**self).notify_payload_finished(exit_code)
    }
    fn notify_error(&self, code: ErrorCode, message: &str) -> Result<(), Status> {
        (**self).notify_error(code, message)
    }
    fn request_attestation(&self, csr: &[u8], test_mode: bool) -> Result<Vec<Certificate>, Status> {
        (**self).request_attestation(csr, test_mode)
    }
    fn get_secretkeeper(&self) -> Result<(), Status> {
        (**self).get_secretkeeper()
    }
}

/// Reads events until `pred` matches or `timeout` passes (test and CLI helper).
pub fn wait_for_event(
    rx: &Receiver<VmEvent>,
    timeout: Duration,
    pred: impl Fn(&VmEvent) -> bool,
) -> Option<VmEvent> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(e) if pred(&e) => return Some(e),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
