//! IVmPayloadService conformance: exact bytes of every method's request and reply (protocol v1,
//! docs/formats/vm-payload-service.md), against scripted libbinder peers in both directions, plus a
//! host-only end-to-end test: payload → payload service on a Unix socket → host service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;

use rpc_wire_oracle::{
    expect, handshake_peer, hex, reply, reply_error, s16, txn, unhex, DEC_STRONG_ROOT_1, STATUS_OK,
};
use std::time::Duration;

use rpcbinder::{ExceptionCode, Status, StatusCode};
use vm_payload_service::{
    AttestationResult, Certificate, ClientError, PayloadServiceListener, VmPayloadService,
    VmPayloadServiceBinder, VmPayloadServiceClient, DESCRIPTOR, VM_PAYLOAD_SERVICE_SOCKET_MODE,
};
use vm_service::{
    HostService, PayloadState, VirtualMachineServiceBinder, VirtualMachineServiceClient,
    VmEventKind,
};

fn exception(code: ExceptionCode, msg: &str) -> String {
    rpc_wire_oracle::exception(code.0, msg)
}

/// notifyPayloadReady() as AOSP's libvm_payload sends it over the session: 172 bytes,
/// written out in full (the descriptor is 55 UTF-16 units, so its String16 is 116 bytes).
const NOTIFY_PAYLOAD_READY_REQUEST: &str = concat!(
    "000000009c000000000000000000000003000000000000000100000000000000",
    "0000000000000000740000000000000000000000000000003700000061006e00",
    "640072006f00690064002e00730079007300740065006d002e00760069007200",
    "7400750061006c0069007a006100740069006f006e002e007000610079006c00",
    "6f00610064002e00490056006d005000610079006c006f006100640053006500",
    "720076006900630065000000",
);

/// Its reply: DEC_STRONG(root, 1) first, then REPLY with `Status::ok()`.
const NOTIFY_PAYLOAD_READY_REPLY: &str = concat!(
    "02000000100000000000000000000000030000000000000001000000",
    "00000000",
    "0100000018000000000000000000000000000000040000000000000000000000",
    "0000000000000000",
);

#[test]
fn notify_payload_ready_vectors() {
    assert_eq!(unhex(NOTIFY_PAYLOAD_READY_REQUEST).len(), 172);
    assert_eq!(
        hex(&unhex(&txn(DESCRIPTOR, 1, ""))),
        NOTIFY_PAYLOAD_READY_REQUEST
    );
    assert_eq!(s16(DESCRIPTOR).len() / 2, 116);
    assert_eq!(
        hex(&unhex(&format!("{DEC_STRONG_ROOT_1}{}", reply(STATUS_OK)))),
        NOTIFY_PAYLOAD_READY_REPLY
    );
}

/// The payload's client vs a scripted libbinder server: exact request bytes of every method and
/// the parsing of every reply form.
#[test]
fn client_sends_exact_bytes_per_method() {
    let (c, mut s) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = thread::spawn(move || {
        handshake_peer(&mut s, DESCRIPTOR);
        let illegal = exception(
            ExceptionCode::ILLEGAL_STATE,
            "Invalid payload state transition from Ready to Ready",
        );
        let calls: Vec<(String, String)> = vec![
            (NOTIFY_PAYLOAD_READY_REQUEST.into(), reply(STATUS_OK)),
            (txn(DESCRIPTOR, 1, ""), reply(&illegal)),
            // getVmInstanceSecret("id", 32) -> [0xaa; 3]
            (
                txn(DESCRIPTOR, 2, "02000000 69640000 20000000"),
                reply("00000000 03000000 aaaaaa00"),
            ),
            (txn(DESCRIPTOR, 3, ""), reply("00000000 01000000 01000000")),
            (txn(DESCRIPTOR, 4, ""), reply("00000000 00000000")),
            // requestAttestation([1,2,3], false) -> { privateKey [9], chain [[0xbb, 0xcc]] }
            (
                txn(DESCRIPTOR, 5, "03000000 01020300 00000000"),
                reply("00000000 01000000 20000000 01000000 09000000 01000000 01000000 0c000000 02000000 bbcc0000"),
            ),
        ];
        for (req, rep) in calls {
            expect(&mut s, &req);
            s.write_all(&unhex(DEC_STRONG_ROOT_1)).unwrap();
            s.write_all(&unhex(&rep)).unwrap();
        }
        expect(&mut s, DEC_STRONG_ROOT_1);
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0);
    });
    let client = VmPayloadServiceClient::connect(c).unwrap();
    client.notify_payload_ready().unwrap();
    match client.notify_payload_ready() {
        Err(ClientError::Service(st)) => {
            assert_eq!(st.exception_code(), ExceptionCode::ILLEGAL_STATE);
            assert_eq!(
                st.message(),
                "Invalid payload state transition from Ready to Ready"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client.get_vm_instance_secret(b"id", 32).unwrap(),
        vec![0xaa; 3]
    );
    assert_eq!(client.get_dice_attestation_chain().unwrap(), vec![1]);
    assert_eq!(client.get_dice_attestation_cdi().unwrap(), Vec::<u8>::new());
    assert_eq!(
        client.request_attestation(&[1, 2, 3], false).unwrap(),
        AttestationResult {
            private_key: vec![9],
            certificate_chain: vec![Certificate {
                encoded_certificate: vec![0xbb, 0xcc]
            }],
        }
    );
    client.close().unwrap();
    peer.join().unwrap();
}

/// A service that accepts the first ready and refuses the next ones as the host would.
struct OnceReady(std::sync::atomic::AtomicBool);

impl VmPayloadService for OnceReady {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Err(Status::exception(
                ExceptionCode::ILLEGAL_STATE,
                "Invalid payload state transition from Ready to Ready",
            ))
        } else {
            Ok(())
        }
    }
}

/// A scripted libbinder client vs the service: exact reply bytes per method, the unsupported
/// statuses, argument checks and transport errors.
#[test]
fn service_replies_exact_bytes_per_method() {
    let service = OnceReady(Default::default());
    let server = rpcbinder::RpcServer::new(Arc::new(VmPayloadServiceBinder(service)));
    let (mut c, s) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let h = thread::spawn(move || server.serve_connection(s));
    c.write_all(&unhex(
        "01000000 00 00 0000000000000000 0000 63636900 00000000",
    ))
    .unwrap();
    expect(&mut c, "01000000 00000000");
    c.write_all(&unhex("00000000 28000000 0000000000000000 0000000000000000 00000000 00000000 0000000000000000 00000000 000000000000000000000000")).unwrap();
    expect(&mut c, &reply("01000000 03000000 00000000 0c000000"));
    let unsupported = |method: &str| {
        reply(&exception(
            ExceptionCode::UNSUPPORTED_OPERATION,
            &format!("{method} is not supported in this VM"),
        ))
    };
    let cases: Vec<(String, String)> = vec![
        (NOTIFY_PAYLOAD_READY_REQUEST.into(), reply(STATUS_OK)),
        (
            txn(DESCRIPTOR, 1, ""),
            reply(&exception(
                ExceptionCode::ILLEGAL_STATE,
                "Invalid payload state transition from Ready to Ready",
            )),
        ),
        (
            txn(DESCRIPTOR, 2, "02000000 69640000 21000000"),
            reply(&exception(
                ExceptionCode::ILLEGAL_ARGUMENT,
                "size 33 not in range (0..=32)",
            )),
        ),
        (
            txn(DESCRIPTOR, 2, "02000000 69640000 20000000"),
            unsupported("getVmInstanceSecret"),
        ),
        (
            txn(DESCRIPTOR, 3, ""),
            unsupported("getDiceAttestationChain"),
        ),
        (txn(DESCRIPTOR, 4, ""), unsupported("getDiceAttestationCdi")),
        (
            txn(DESCRIPTOR, 5, "03000000 01020300 01000000"),
            unsupported("requestAttestation"),
        ),
        // A null identifier: UNEXPECTED_NULL; a missing size: NOT_ENOUGH_DATA.
        (
            txn(DESCRIPTOR, 2, "ffffffff 20000000"),
            reply_error(StatusCode::UNEXPECTED_NULL.0),
        ),
        (
            txn(DESCRIPTOR, 2, "02000000 69640000"),
            reply_error(StatusCode::NOT_ENOUGH_DATA.0),
        ),
        (
            txn(DESCRIPTOR, 6, ""),
            reply_error(StatusCode::UNKNOWN_TRANSACTION.0),
        ),
    ];
    for (req, rep) in cases {
        c.write_all(&unhex(&req)).unwrap();
        expect(&mut c, DEC_STRONG_ROOT_1);
        expect(&mut c, &rep);
    }
    c.write_all(&unhex(DEC_STRONG_ROOT_1)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(c.read(&mut b).unwrap(), 0);
    h.join().unwrap().unwrap();
}

/// microdroid_manager's forwarding, as a test double: ready goes to the host and the host's
/// status comes back unchanged.
struct ForwardToHost(Arc<VirtualMachineServiceClient<UnixStream>>);

impl VmPayloadService for ForwardToHost {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        self.0.notify_payload_ready().map_err(|e| match e {
            vm_service::ClientError::Service(status) => status,
            _ => Status::transport(StatusCode::DEAD_OBJECT),
        })
    }
}

/// Host-only end to end: the payload connects to the service's socket file, its ready reaches the
/// host's state machine between Started and Finished, and the host's refusals come back to it.
#[test]
fn payload_ready_reaches_the_host_and_refusals_come_back() {
    let (guest, host) = UnixStream::pair().unwrap();
    let (host_service, state, events) = HostService::new(2050);
    let host_server =
        rpcbinder::RpcServer::new(Arc::new(VirtualMachineServiceBinder(host_service)));
    let host_thread = thread::spawn(move || host_server.serve_connection(host));
    let host_link = Arc::new(VirtualMachineServiceClient::connect(guest).unwrap());

    let dir = std::env::temp_dir().join(format!("vm_payload_service_e2e_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vm_payload_service");
    let mut listener = PayloadServiceListener::bind(
        &path,
        VM_PAYLOAD_SERVICE_SOCKET_MODE,
        Arc::new(ForwardToHost(host_link.clone())),
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "{mode:o}");

    host_link.notify_payload_started().unwrap();
    let payload = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
    payload.notify_payload_ready().unwrap();
    assert_eq!(state.get(), PayloadState::Ready);
    let refused = |r: Result<(), ClientError>| match r {
        Err(ClientError::Service(st)) => {
            assert_eq!(st.exception_code(), ExceptionCode::ILLEGAL_STATE);
            st.message().to_string()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refused(payload.notify_payload_ready()),
        "Invalid payload state transition from Ready to Ready"
    );
    host_link.notify_payload_finished(0).unwrap();
    // A second connection (another process of the payload) is served too.
    let late = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
    assert_eq!(
        refused(late.notify_payload_ready()),
        "Invalid payload state transition from Finished to Ready"
    );
    match late.get_vm_instance_secret(b"x", 32) {
        Err(ClientError::Service(st)) => {
            assert_eq!(st.exception_code(), ExceptionCode::UNSUPPORTED_OPERATION)
        }
        other => panic!("{other:?}"),
    }
    payload.close().unwrap();
    late.close().unwrap();
    listener.stop();
    assert!(!path.exists());
    drop(listener);
    // The server's connection threads may still hold the link for a moment: close, not unwrap.
    host_link.close().unwrap();
    host_thread.join().unwrap().unwrap();
    let kinds: Vec<VmEventKind> = events.try_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            VmEventKind::PayloadStarted,
            VmEventKind::PayloadReady,
            VmEventKind::Rejected {
                method: "notifyPayloadReady",
                state: PayloadState::Ready
            },
            VmEventKind::PayloadFinished(0),
            VmEventKind::Rejected {
                method: "notifyPayloadReady",
                state: PayloadState::Finished
            },
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
