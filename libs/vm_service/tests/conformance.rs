//! IVirtualMachineService conformance: one transaction per method with its reply, exact bytes
//! (docs/formats/rpc-binder.md, protocol v1), in both directions against scripted libbinder peers,
//! plus a host-only end-to-end test over a Unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

use rpc_wire_oracle::{
    expect, handshake_peer, hex, reply, reply_error, s16, txn, unhex, DEC_STRONG_ROOT_1, STATUS_OK,
};
use std::time::Duration;

use rpcbinder::{ExceptionCode, Status};
use vm_service::{
    wait_for_event, ClientError, ErrorCode, HostService, PayloadState, ServiceListener,
    VirtualMachineServiceBinder, VirtualMachineServiceClient, VmEventKind, DESCRIPTOR,
};

fn illegal_state(msg: &str) -> String {
    rpc_wire_oracle::exception(-5, msg) // EX_ILLEGAL_STATE
}

/// Per-method request vectors, checked against docs/formats/rpc-binder.md where it
/// gives bytes: notifyPayloadFinished(42) is its 184-byte TRANSACT, notifyError(PAYLOAD_CHANGED,
/// "oops") is token + 02000000 + 04000000 6f006f0070007300 00000000, requestAttestation([1,2,3],
/// true) is token + 03000000 01020300 + 01000000.
#[test]
fn request_vectors_match_reference() {
    let fin = unhex(&txn(DESCRIPTOR, 3, "2a000000"));
    assert_eq!(fin.len(), 184);
    assert_eq!(hex(&fin[..0x38]), hex(&unhex("00000000 a8000000 00000000 00000000 03000000 00000000 03000000 00000000 0000000000000000 80000000 000000000000000000000000")));
    assert_eq!(s16(DESCRIPTOR).len() / 2, 124);
    assert_eq!(s16("oops"), "040000006f006f007000730000000000");
}

/// Guest client vs a scripted libbinder server: exact request bytes of every method.
#[test]
fn client_sends_exact_bytes_per_method() {
    let (c, mut s) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = thread::spawn(move || {
        handshake_peer(&mut s, DESCRIPTOR);
        let calls: Vec<(String, String)> = vec![
            (txn(DESCRIPTOR, 1, ""), reply(STATUS_OK)),
            (txn(DESCRIPTOR, 2, ""), reply(STATUS_OK)),
            (txn(DESCRIPTOR, 3, "2a000000"), reply(STATUS_OK)),
            (
                txn(DESCRIPTOR, 4, &format!("02000000 {}", s16("oops"))),
                reply(STATUS_OK),
            ),
            (
                txn(DESCRIPTOR, 5, "03000000 01020300 01000000"),
                reply("00000000 01000000 01000000 0c000000 02000000 aabb0000"),
            ),
            (txn(DESCRIPTOR, 1, ""), reply(&illegal_state("again"))),
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
    let client = VirtualMachineServiceClient::connect(c).unwrap();
    client.notify_payload_started().unwrap();
    client.notify_payload_ready().unwrap();
    client.notify_payload_finished(42).unwrap();
    client
        .notify_error(ErrorCode::PAYLOAD_CHANGED, "oops")
        .unwrap();
    let certs = client.request_attestation(&[1, 2, 3], true).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].encoded_certificate, vec![0xaa, 0xbb]);
    match client.notify_payload_started() {
        Err(ClientError::Service(st)) => {
            assert_eq!(st.exception_code(), ExceptionCode::ILLEGAL_STATE);
            assert_eq!(st.message(), "again");
        }
        other => panic!("{other:?}"),
    }
    client.close().unwrap();
    peer.join().unwrap();
}

/// Scripted libbinder/NDK client vs the host service: exact reply bytes per method,
/// EX_ILLEGAL_STATE for repeats and backwards moves, EX_UNSUPPORTED_OPERATION for attestation,
/// transport NAME_NOT_FOUND for getSecretkeeper, DEC_STRONG before every REPLY.
#[test]
fn host_replies_exact_bytes_per_method() {
    let (svc, state, events) = HostService::new(2048);
    let server = rpcbinder::RpcServer::new(std::sync::Arc::new(VirtualMachineServiceBinder(svc)));
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
    let unsupported = format!(
        "f9ffffff {} 00000000",
        s16("attestation is not supported by this host")
    );
    let cases: Vec<(String, String)> = vec![
        (txn(DESCRIPTOR, 1, ""), reply(STATUS_OK)),
        (
            txn(DESCRIPTOR, 1, ""),
            reply(&illegal_state(
                "Invalid payload state transition from Started to Started",
            )),
        ),
        (txn(DESCRIPTOR, 2, ""), reply(STATUS_OK)),
        (
            txn(DESCRIPTOR, 1, ""),
            reply(&illegal_state(
                "Invalid payload state transition from Ready to Started",
            )),
        ),
        (
            txn(DESCRIPTOR, 5, "03000000 01020300 01000000"),
            reply(&unsupported),
        ),
        (txn(DESCRIPTOR, 6, ""), reply_error(-2)),
        (txn(DESCRIPTOR, 3, "2a000000"), reply(STATUS_OK)),
        (
            txn(DESCRIPTOR, 4, &format!("02000000 {}", s16("oops"))),
            reply(&illegal_state(
                "Invalid payload state transition from Finished to Finished",
            )),
        ),
        // truncated argument: NOT_ENOUGH_DATA transport status
        (txn(DESCRIPTOR, 3, ""), reply_error(-61)),
        (txn(DESCRIPTOR, 7, ""), reply_error(-74)),
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
    assert_eq!(state.get(), PayloadState::Finished);
    let kinds: Vec<VmEventKind> = events.try_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            VmEventKind::PayloadStarted,
            VmEventKind::Rejected {
                method: "notifyPayloadStarted",
                state: PayloadState::Started
            },
            VmEventKind::PayloadReady,
            VmEventKind::Rejected {
                method: "notifyPayloadStarted",
                state: PayloadState::Ready
            },
            VmEventKind::PayloadFinished(42),
            VmEventKind::Rejected {
                method: "notifyError",
                state: PayloadState::Finished
            },
        ]
    );
}

/// Host-only end to end: the host listens on `<uds>_<cid>` like behind vhost-device-vsock, the
/// guest client connects over a Unix socket, events arrive in order with timestamps.
#[test]
fn end_to_end_over_unix_socket() {
    let dir = std::env::temp_dir().join(format!("vm_service_e2e_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = vm_service::vsock_uds_path(&dir.join("vm.vsock"), 2049);
    assert!(path.to_string_lossy().ends_with("vm.vsock_2049"));
    let (svc, _state, events) = HostService::new(2049);
    let mut listener = ServiceListener::bind(&path, svc).unwrap();
    let before = std::time::SystemTime::now();
    let stream = UnixStream::connect(&path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let client = VirtualMachineServiceClient::connect(stream).unwrap();
    client.notify_payload_started().unwrap();
    client.notify_payload_ready().unwrap();
    client.notify_payload_finished(7).unwrap();
    assert!(
        matches!(client.notify_payload_ready(), Err(ClientError::Service(s)) if s.exception_code() == ExceptionCode::ILLEGAL_STATE)
    );
    drop(client);
    let mut got = Vec::new();
    while let Some(e) = wait_for_event(&events, Duration::from_secs(5), |_| true) {
        assert!(e.time >= before);
        assert_eq!(e.cid, 2049);
        let done = matches!(e.kind, VmEventKind::Disconnected { .. });
        got.push(e.kind);
        if done {
            break;
        }
    }
    assert_eq!(
        got,
        vec![
            VmEventKind::PayloadStarted,
            VmEventKind::PayloadReady,
            VmEventKind::PayloadFinished(7),
            VmEventKind::Rejected {
                method: "notifyPayloadReady",
                state: PayloadState::Finished
            },
            VmEventKind::Disconnected { error: None },
        ]
    );
    listener.stop();
    assert!(!path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The error path: notifyError reaches the host with its code and message.
#[test]
fn error_path_end_to_end() {
    let (svc, state, events) = HostService::new(3);
    let server = rpcbinder::RpcServer::new(std::sync::Arc::new(VirtualMachineServiceBinder(svc)));
    let (a, b) = UnixStream::pair().unwrap();
    let h = thread::spawn(move || server.serve_connection(b));
    let client = VirtualMachineServiceClient::connect(a).unwrap();
    client
        .notify_error(ErrorCode::PAYLOAD_VERIFICATION_FAILED, "bad apk ✗")
        .unwrap();
    client.close().unwrap();
    h.join().unwrap().unwrap();
    assert_eq!(state.get(), PayloadState::Finished);
    let e = events.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        e.kind,
        VmEventKind::Error {
            code: ErrorCode::PAYLOAD_VERIFICATION_FAILED,
            message: "bad apk ✗".into()
        }
    );
    let _ = Status::ok();
}
