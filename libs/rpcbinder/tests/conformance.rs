#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Conformance: exact bytes on the wire against scripted libbinder peers, for a worked example
//! (a microdroid_manager session, protocol v1, A14/A15 codes) derived field by field from AOSP
//! frameworks/native `libs/binder/RpcWireFormat.h` and `RpcState.cpp`, and its variants (v0
//! reply, v2 object table, rejection paths). docs/formats/rpc-binder.md lists the bytes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rpc_wire_oracle::{expect, hex, s16, unhex, DEC_STRONG_ROOT_1};
use rpcbinder::{
    Binder, ClientConfig, Error, Parcel, ParcelReader, RpcClient, RpcServer, SessionEnd, Status,
    StatusCode,
};

const DESCRIPTOR: &str = "android.system.virtualmachineservice.IVirtualMachineService";

/// String16 of the descriptor, as in the worked example (124 bytes).
fn token_hex() -> String {
    s16(DESCRIPTOR)
}

// ---- Worked-example vectors (protocol v1) ----
const CONN_HEADER_V1: &str = "01000000 00 00 0000000000000000 0000";
const CCI: &str = "63636900 00000000";
const NEW_SESSION_V1: &str = "01000000 00000000";

fn special(code: u8) -> String {
    format!(
        "00000000 28000000 00000000 00000000  00000000 00000000 {code:02x}000000 00000000 00000000 00000000 00000000 000000000000000000000000"
    )
}
const REPLY_MAX_THREADS: &str =
    "01000000 18000000 00000000 00000000  00000000 04000000 000000000000000000000000  01000000";
const REPLY_ROOT_V1: &str = "01000000 24000000 00000000 00000000  00000000 10000000 000000000000000000000000  01000000 03000000 00000000 0c000000";
const TXN_NTF: &str = "00000000 28000000 0000000000000000  03000000 00000000 46544e5f 00000000 0000000000000000 00000000 000000000000000000000000";
const REPLY_OK_V1: &str =
    "01000000 18000000 00000000 00000000 00000000 04000000 00000000 00000000 00000000 00000000";

fn reply_ntf() -> String {
    format!(
        "01000000 90000000 0000000000000000 00000000 7c000000 000000000000000000000000 {}",
        token_hex()
    )
}

/// notifyPayloadFinished(42) TRANSACT, byte for byte as in the worked example (184 bytes).
fn txn_finished_42() -> String {
    format!(
        "00000000 a8000000 00000000 00000000 03000000 00000000 03000000 00000000 0000000000000000 80000000 000000000000000000000000 {} 2a000000",
        token_hex()
    )
}

/// A root object that records calls and answers Status::ok() to codes 1..=4.
struct TestService {
    calls: std::sync::Mutex<Vec<(u32, Vec<u8>)>>,
}

impl Binder for TestService {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }
    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let mut args = Vec::new();
        while let Ok(v) = data.read_i32() {
            args.extend_from_slice(&v.to_le_bytes());
        }
        self.calls.lock().unwrap().push((code, args));
        match code {
            1..=4 => {
                reply.write_status(&Status::ok());
                Ok(())
            }
            _ => Err(StatusCode::UNKNOWN_TRANSACTION),
        }
    }
}

fn start_server(
    max_version: u32,
) -> (
    UnixStream,
    thread::JoinHandle<Result<SessionEnd, Error>>,
    Arc<TestService>,
) {
    let svc = Arc::new(TestService {
        calls: Default::default(),
    });
    let server = RpcServer::new(svc.clone()).with_max_version(max_version);
    let (a, b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let h = thread::spawn(move || server.serve_connection(b));
    (a, h, svc)
}

fn send(s: &mut UnixStream, bytes: &str) {
    s.write_all(&unhex(bytes)).unwrap();
}

/// A scripted libbinder server's side of a new session at v1: the client's connection header
/// and "cci", then the new-session response.
fn accept_v1_session(s: &mut UnixStream) {
    expect(s, CONN_HEADER_V1);
    expect(s, CCI);
    send(s, NEW_SESSION_V1);
}

fn expect_eof(s: &mut UnixStream) {
    let mut b = [0u8; 1];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "server should close the session"
    );
}

/// The whole worked-example transcript, with a scripted libbinder/NDK client against our server.
#[test]
fn server_v1_worked_example() {
    let (mut c, h, svc) = start_server(1);
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    send(&mut c, &special(1));
    expect(&mut c, REPLY_MAX_THREADS);
    send(&mut c, &special(2));
    expect(
        &mut c,
        "01000000 38000000 00000000 00000000 00000000 24000000 000000000000000000000000 20000000",
    );
    let mut id = [0u8; 32];
    c.read_exact(&mut id).unwrap();
    send(&mut c, &special(0));
    expect(&mut c, REPLY_ROOT_V1);
    send(&mut c, TXN_NTF);
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(&mut c, &reply_ntf());
    send(&mut c, &txn_finished_42());
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(&mut c, REPLY_OK_V1);
    // Client drops its proxy: DEC_STRONG(root, timesRecd = 1) -> server erases its last node
    // and shuts the session down.
    send(&mut c, DEC_STRONG_ROOT_1);
    expect_eof(&mut c);
    assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Released);
    assert_eq!(
        svc.calls.lock().unwrap().as_slice(),
        &[(3, vec![42, 0, 0, 0])]
    );
}

/// DEC_STRONG accounting with two GET_ROOTs: one DEC_STRONG per transaction, and the session
/// lives until both references are released.
#[test]
fn server_dec_strong_accounting() {
    let (mut c, h, _svc) = start_server(1);
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    send(&mut c, &special(0));
    expect(&mut c, REPLY_ROOT_V1);
    send(&mut c, &special(0));
    expect(&mut c, REPLY_ROOT_V1);
    // PING on the root: DEC_STRONG(root,1) then an empty OK reply.
    send(&mut c, "00000000 28000000 0000000000000000 03000000 00000000 474e505f 00000000 0000000000000000 00000000 000000000000000000000000");
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(
        &mut c,
        "01000000 14000000 0000000000000000 00000000 00000000 000000000000000000000000",
    );
    send(&mut c, DEC_STRONG_ROOT_1);
    // Still one reference outstanding: session alive, answers GET_MAX_THREADS.
    send(&mut c, &special(1));
    expect(&mut c, REPLY_MAX_THREADS);
    // Releasing more than outstanding is a protocol error (A16 terminates the session).
    send(
        &mut c,
        "02000000 10000000 0000000000000000 03000000 00000000 02000000 00000000",
    );
    expect_eof(&mut c);
    assert!(matches!(
        h.join().unwrap(),
        Err(Error::DecStrongUnderflow {
            amount: 2,
            held: 1,
            ..
        })
    ));
}

/// v0 (Android 13): 4-byte RpcWireReply, no parcelDataSize, no object table.
#[test]
fn server_negotiates_v0_reply_format() {
    let (mut c, h, _svc) = start_server(1);
    send(&mut c, "00000000 00 00 0000000000000000 0000");
    send(&mut c, CCI);
    expect(&mut c, "00000000 00000000");
    send(&mut c, &special(0));
    expect(
        &mut c,
        "01000000 14000000 0000000000000000 00000000 01000000 03000000 00000000 0c000000",
    );
    let mut txn = unhex(&txn_finished_42());
    txn[40..44].copy_from_slice(&[0, 0, 0, 0]); // v0: parcelDataSize is reserved
    c.write_all(&txn).unwrap();
    expect(&mut c, DEC_STRONG_ROOT_1);
    // Worked-example variant: v0 reply of Status::ok().
    expect(
        &mut c,
        "01000000 08000000 0000000000000000 00000000 00000000",
    );
    drop(c);
    assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Closed);
}

/// v2 (Android 16) when both offer it: root reply carries the object table [0].
#[test]
fn server_v2_object_table() {
    let (mut c, h, _svc) = start_server(2);
    send(&mut c, "02000000 00 00 0000000000000000 0000");
    send(&mut c, CCI);
    expect(&mut c, "02000000 00000000");
    send(&mut c, &special(0));
    expect(&mut c, "01000000 28000000 00000000 00000000  00000000 10000000 000000000000000000000000  01000000 03000000 00000000 0c000000 00000000");
    drop(c);
    assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Closed);
}

/// A client offering v2 to a v1 server gets v1 (min), and a v1 client to a v2 server too.
#[test]
fn version_negotiation_is_min() {
    let (mut c, h, _) = start_server(1);
    send(&mut c, "02000000 00 00 0000000000000000 0000");
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    drop(c);
    h.join().unwrap().unwrap();
    let (mut c, h, _) = start_server(2);
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    drop(c);
    h.join().unwrap().unwrap();
}

/// Wrong interface token -> transport BAD_TYPE; unknown method -> UNKNOWN_TRANSACTION
/// (worked-example variants); both still preceded by DEC_STRONG.
#[test]
fn server_bad_token_and_unknown_code() {
    let (mut c, h, svc) = start_server(1);
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    send(&mut c, &special(0));
    expect(&mut c, REPLY_ROOT_V1);
    // code 1 with an empty parcel: no token.
    send(&mut c, "00000000 28000000 0000000000000000 03000000 00000000 01000000 00000000 0000000000000000 00000000 000000000000000000000000");
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(
        &mut c,
        "01000000 14000000 0000000000000000 c3ffffff 00000000 000000000000000000000000",
    );
    let mut t = unhex(&txn_finished_42());
    t[24] = 99; // code 99
    c.write_all(&t).unwrap();
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(
        &mut c,
        "01000000 14000000 0000000000000000 b6ffffff 00000000 000000000000000000000000",
    );
    // A wrong token in a full parcel is BAD_TYPE too (INT32_MIN+1 = 0x80000001).
    let mut t = unhex(&txn_finished_42());
    t[60] = b'A';
    c.write_all(&t).unwrap();
    expect(&mut c, DEC_STRONG_ROOT_1);
    expect(
        &mut c,
        "01000000 14000000 0000000000000000 01000080 00000000 000000000000000000000000",
    );
    drop(c);
    h.join().unwrap().unwrap();
    assert!(svc
        .calls
        .lock()
        .unwrap()
        .iter()
        .all(|(code, _)| *code == 99));
}

/// Rejection paths (libbinder's `RpcState.cpp` checks; docs/formats/rpc-binder.md): each
/// terminates the session with its own error.
#[test]
fn server_rejections() {
    fn run(after_handshake: &str) -> Error {
        let (mut c, h, _) = start_server(1);
        send(&mut c, CONN_HEADER_V1);
        send(&mut c, CCI);
        expect(&mut c, NEW_SESSION_V1);
        send(&mut c, &special(0));
        expect(&mut c, REPLY_ROOT_V1);
        send(&mut c, after_handshake);
        let e = h.join().unwrap().unwrap_err();
        drop(c);
        e
    }
    // bodySize < 40
    assert!(matches!(
        run("00000000 10000000 0000000000000000 00000000000000000000000000000000"),
        Error::BodyTooSmall { min: 40, .. }
    ));
    // DEC_STRONG bodySize != 16
    assert!(matches!(
        run("02000000 0c000000 0000000000000000 030000000000000001000000"),
        Error::DecStrongBodySize(12)
    ));
    // object table not a multiple of 4: parcelDataSize 0 with 2 trailing bytes
    assert!(matches!(
        run("00000000 2a000000 0000000000000000 03000000 00000000 01000000 00000000 0000000000000000 00000000 000000000000000000000000 0000"),
        Error::ObjectTableMisaligned(2)
    ));
    // unknown command
    assert!(matches!(
        run("07000000 00000000 0000000000000000"),
        Error::UnknownCommand(7)
    ));
    // unknown address option bits -> BAD_VALUE reply and terminate
    assert!(matches!(
        run("00000000 28000000 0000000000000000 07000000 00000000 01000000 00000000 0000000000000000 00000000 000000000000000000000000"),
        Error::BadAddress(7)
    ));
    // body above the 100 KB limit
    assert!(matches!(
        run("00000000 a1860100 0000000000000000"),
        Error::BodyTooLarge { size: 100_001, .. }
    ));
    // REPLY to a server
    assert!(matches!(run(REPLY_OK_V1), Error::UnexpectedReply));
}

#[test]
fn server_rejects_bad_handshakes() {
    let (mut c, h, _) = start_server(1);
    send(&mut c, "01000000 01 00 0000000000000000 0000"); // new session with INCOMING
    assert!(matches!(h.join().unwrap(), Err(Error::IncomingNewSession)));
    drop(c);
    let (mut c, h, _) = start_server(1);
    send(&mut c, "01000000 00 00 0000000000000000 1000"); // session id size 16
    assert!(matches!(
        h.join().unwrap(),
        Err(Error::BadSessionIdSize(16))
    ));
    drop(c);
    let (mut c, h, _) = start_server(1);
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, "63636100 00000000"); // "cca"
    expect(&mut c, NEW_SESSION_V1);
    assert!(matches!(
        h.join().unwrap(),
        Err(Error::BadConnectionInit(_))
    ));
    let (mut c, h, _) = start_server(1);
    send(
        &mut c,
        &format!("01000000 00 00 0000000000000000 2000 {}", "11".repeat(32)),
    );
    assert!(matches!(h.join().unwrap(), Err(Error::UnknownSession)));
    drop(c);
    let (mut c, h, _) = start_server(1);
    send(&mut c, "01000000 00 01 0000000000000000 0000"); // fd mode UNIX
    assert!(matches!(
        h.join().unwrap(),
        Err(Error::UnsupportedFdMode(1))
    ));
    drop(c);
}

/// A16 guests attach an incoming (callback) connection with the session id: the server sends
/// "cci" on it.
#[test]
fn server_accepts_callback_attach() {
    let svc = Arc::new(TestService {
        calls: Default::default(),
    });
    let server = Arc::new(RpcServer::new(svc).with_max_version(2));
    let (mut c, s1) = UnixStream::pair().unwrap();
    let srv = server.clone();
    let h1 = thread::spawn(move || srv.serve_connection(s1));
    send(&mut c, "02000000 00 00 0000000000000000 0000");
    send(&mut c, CCI);
    expect(&mut c, "02000000 00000000");
    send(&mut c, &special(2));
    let mut hdr = [0u8; 16 + 20 + 4];
    c.read_exact(&mut hdr).unwrap();
    let mut id = [0u8; 32];
    c.read_exact(&mut id).unwrap();
    let (mut cb, s2) = UnixStream::pair().unwrap();
    let srv = server.clone();
    let h2 = thread::spawn(move || srv.serve_connection(s2));
    send(
        &mut cb,
        &format!("02000000 01 00 0000000000000000 2000 {}", hex(&id)),
    );
    expect(&mut cb, CCI);
    drop(cb);
    assert_eq!(h2.join().unwrap().unwrap(), SessionEnd::CallbackClosed);
    drop(c);
    assert_eq!(h1.join().unwrap().unwrap(), SessionEnd::Closed);
}

/// Our client against a scripted libbinder server: exact request bytes, DEC_STRONG
/// interleaved before replies, and the final DEC_STRONG amount.
#[test]
fn client_v1_worked_example() {
    let (c, mut s) = UnixStream::pair().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        expect(&mut s, &special(1));
        send(&mut s, REPLY_MAX_THREADS);
        expect(&mut s, &special(2));
        send(&mut s, &format!("01000000 38000000 0000000000000000 00000000 24000000 000000000000000000000000 20000000 {}", "5a".repeat(32)));
        expect(&mut s, &special(0));
        send(&mut s, REPLY_ROOT_V1);
        expect(&mut s, TXN_NTF);
        send(&mut s, DEC_STRONG_ROOT_1);
        send(&mut s, &reply_ntf());
        expect(&mut s, &txn_finished_42());
        send(&mut s, DEC_STRONG_ROOT_1);
        send(&mut s, REPLY_OK_V1);
        expect(&mut s, DEC_STRONG_ROOT_1);
        expect_eof(&mut s);
    });
    let mut client = RpcClient::connect(c).unwrap();
    assert_eq!(client.protocol_version(), 1);
    assert_eq!(client.max_threads(), 1);
    assert_eq!(client.session_id(), &[0x5a; 32][..]);
    let root = client.get_root().unwrap();
    assert_eq!(root.address.0, 3);
    assert_eq!(root.stability, 0x0c);
    assert_eq!(client.interface_descriptor(&root).unwrap(), DESCRIPTOR);
    assert_eq!(client.ref_counts(&root), Some((0, 1)));
    let mut p = Parcel::new();
    p.write_interface_token(DESCRIPTOR);
    p.write_i32(42);
    let reply = client.transact(&root, 3, &p, 0).unwrap().unwrap();
    assert_eq!(reply.reader().read_status(), Ok(Status::ok()));
    assert_eq!(client.ref_counts(&root), Some((0, 1)));
    client.release(root).unwrap();
    drop(client);
    peer.join().unwrap();
}

/// The client refuses a server that answers a version it did not offer, a DEC_STRONG for
/// more than it sent, and a REPLY carrying a transport error is reported as such.
#[test]
fn client_rejections() {
    let (c, mut s) = UnixStream::pair().unwrap();
    let peer = thread::spawn(move || {
        expect(&mut s, CONN_HEADER_V1);
        expect(&mut s, CCI);
        send(&mut s, "02000000 00000000");
    });
    assert!(matches!(
        RpcClient::connect(c),
        Err(Error::UnsupportedVersion(2))
    ));
    peer.join().unwrap();

    let (c, mut s) = UnixStream::pair().unwrap();
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        expect(&mut s, &special(0));
        send(&mut s, REPLY_ROOT_V1);
        expect(&mut s, TXN_NTF);
        send(
            &mut s,
            "02000000 10000000 0000000000000000 03000000 00000000 02000000 00000000",
        );
        s
    });
    let mut client = RpcClient::connect_with(
        c,
        ClientConfig {
            version: 1,
            query_session_info: false,
        },
    )
    .unwrap();
    let root = client.get_root().unwrap();
    assert!(matches!(
        client.interface_descriptor(&root),
        Err(Error::DecStrongUnderflow {
            amount: 2,
            held: 1,
            ..
        })
    ));
    assert!(matches!(client.ping(&root), Err(Error::Shutdown)));
    drop(peer.join().unwrap());

    let (c, mut s) = UnixStream::pair().unwrap();
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        expect(&mut s, &special(0));
        send(&mut s, REPLY_ROOT_V1);
        expect(&mut s, TXN_NTF);
        send(&mut s, DEC_STRONG_ROOT_1);
        send(
            &mut s,
            "01000000 14000000 0000000000000000 b6ffffff 00000000 000000000000000000000000",
        );
        s
    });
    let mut client = RpcClient::connect_with(
        c,
        ClientConfig {
            version: 1,
            query_session_info: false,
        },
    )
    .unwrap();
    let root = client.get_root().unwrap();
    assert!(matches!(
        client.interface_descriptor(&root),
        Err(Error::TransactionFailed(StatusCode::UNKNOWN_TRANSACTION))
    ));
    drop(peer.join().unwrap());
}

/// Our client against our server over a Unix socket pair, many calls.
#[test]
fn client_server_loopback() {
    let svc = Arc::new(TestService {
        calls: Default::default(),
    });
    let server = RpcServer::new(svc.clone());
    let (a, b) = UnixStream::pair().unwrap();
    let h = thread::spawn(move || server.serve_connection(b));
    let mut client = RpcClient::connect(a).unwrap();
    let root = client.get_root().unwrap();
    assert_eq!(client.interface_descriptor(&root).unwrap(), DESCRIPTOR);
    for i in 0..100 {
        let mut p = Parcel::new();
        p.write_interface_token(DESCRIPTOR);
        p.write_i32(i);
        let r = client.transact(&root, 3, &p, 0).unwrap().unwrap();
        assert_eq!(r.reader().read_status(), Ok(Status::ok()));
    }
    // oneway: no reply, async numbers 0 and 1
    for _ in 0..2 {
        let mut p = Parcel::new();
        p.write_interface_token(DESCRIPTOR);
        assert!(client
            .transact(&root, 1, &p, rpcbinder::wire::FLAG_ONEWAY)
            .unwrap()
            .is_none());
    }
    client.ping(&root).unwrap();
    client.release(root).unwrap();
    assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Released);
    assert_eq!(svc.calls.lock().unwrap().len(), 102);
}

/// A TRANSACT from the server to address 0 (a special transaction), two-way or oneway.
fn nested_special(code: u8, oneway: bool) -> String {
    let flags = if oneway { "01000000" } else { "00000000" };
    format!(
        "00000000 28000000 0000000000000000 0000000000000000 {code:02x}000000 {flags} 0000000000000000 00000000 000000000000000000000000"
    )
}

/// The server calls the client's special transactions while a call of the client waits for
/// its reply: GET_ROOT answers OK and empty (a client session has no root), GET_MAX_THREADS
/// 0, GET_SESSION_ID the id it was given, an unknown code UNKNOWN_TRANSACTION, and a oneway
/// one nothing at all. The reply then still reaches the waiting call.
#[test]
fn client_answers_special_transactions_while_it_waits() {
    let (c, mut s) = UnixStream::pair().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        expect(&mut s, &special(1));
        send(&mut s, &rpc_wire_oracle::reply("04000000"));
        expect(&mut s, &special(2));
        send(
            &mut s,
            &rpc_wire_oracle::reply(&format!("20000000 {}", "5a".repeat(32))),
        );
        expect(&mut s, &special(0));
        send(&mut s, REPLY_ROOT_V1);
        expect(&mut s, TXN_NTF);
        send(&mut s, &nested_special(0, false));
        expect(&mut s, &rpc_wire_oracle::reply(""));
        send(&mut s, &nested_special(1, false));
        expect(&mut s, &rpc_wire_oracle::reply("00000000"));
        send(&mut s, &nested_special(2, false));
        expect(
            &mut s,
            &rpc_wire_oracle::reply(&format!("20000000 {}", "5a".repeat(32))),
        );
        send(&mut s, &nested_special(9, false));
        expect(&mut s, &rpc_wire_oracle::reply_error(-74));
        // Oneway: no reply. The next bytes the client sends are its release.
        send(&mut s, &nested_special(1, true));
        send(&mut s, DEC_STRONG_ROOT_1);
        send(&mut s, &reply_ntf());
        expect(&mut s, DEC_STRONG_ROOT_1);
        expect_eof(&mut s);
    });
    let mut client = RpcClient::connect(c).unwrap();
    assert_eq!(client.max_threads(), 4);
    let root = client.get_root().unwrap();
    assert_eq!(client.interface_descriptor(&root).unwrap(), DESCRIPTOR);
    client.release(root).unwrap();
    drop(client);
    peer.join().unwrap();
}

/// User calls need SYSTEM in the target's stability (VINTF includes it, VENDOR does not);
/// a reply's raw data is the parcel as sent.
#[test]
fn client_checks_stability_and_keeps_reply_data() {
    let root_with = |stability: &str| {
        format!("01000000 24000000 00000000 00000000  00000000 10000000 000000000000000000000000  01000000 03000000 00000000 {stability}")
    };
    let (c, mut s) = UnixStream::pair().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let vintf = root_with("3f000000");
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        expect(&mut s, &special(0));
        send(&mut s, &vintf);
        expect(&mut s, &txn_finished_42());
        send(&mut s, DEC_STRONG_ROOT_1);
        send(&mut s, REPLY_OK_V1);
        expect(&mut s, &special(0));
        send(&mut s, &root_with("03000000"));
        s
    });
    let config = ClientConfig {
        version: 1,
        query_session_info: false,
    };
    let mut client = RpcClient::connect_with(c, config).unwrap();
    assert_eq!(client.max_threads(), 0);
    assert!(client.session_id().is_empty());
    let root = client.get_root().unwrap();
    assert_eq!(root.stability, 0x3f);
    let mut p = Parcel::new();
    p.write_interface_token(DESCRIPTOR);
    p.write_i32(42);
    let reply = client.transact(&root, 3, &p, 0).unwrap().unwrap();
    assert_eq!(reply.data(), &[0u8; 4][..]);
    let vendor = client.get_root().unwrap();
    assert!(matches!(
        client.transact(&vendor, 3, &p, 0),
        Err(Error::BadStability(3))
    ));
    drop(peer.join().unwrap());
}

/// Reference counts of a proxy: each GET_ROOT adds one received reference, each transaction
/// one sent reference until the server's DEC_STRONG for it; a release gives back everything
/// received at once and keeps the node while sent references are outstanding, and a second
/// release sends nothing.
#[test]
fn client_release_follows_the_reference_counts() {
    let (c, mut s) = UnixStream::pair().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let peer = thread::spawn(move || {
        accept_v1_session(&mut s);
        for _ in 0..2 {
            expect(&mut s, &special(0));
            send(&mut s, REPLY_ROOT_V1);
        }
        // A oneway call; the server keeps its reference for now.
        expect(
            &mut s,
            "00000000 2c000000 0000000000000000 0300000000000000 01000000 01000000 0000000000000000 04000000 000000000000000000000000 2a000000",
        );
        expect(
            &mut s,
            "02000000 10000000 0000000000000000 03000000 00000000 02000000 00000000",
        );
        expect_eof(&mut s);
    });
    let config = ClientConfig {
        version: 1,
        query_session_info: false,
    };
    let mut client = RpcClient::connect_with(c, config).unwrap();
    let root = client.get_root().unwrap();
    assert_eq!(client.get_root().unwrap(), root);
    assert_eq!(client.ref_counts(&root), Some((0, 2)));
    let mut p = Parcel::new();
    p.write_i32(42);
    assert!(client
        .transact(&root, 1, &p, rpcbinder::wire::FLAG_ONEWAY)
        .unwrap()
        .is_none());
    assert_eq!(client.ref_counts(&root), Some((1, 2)));
    client.release(root).unwrap();
    assert_eq!(client.ref_counts(&root), Some((1, 0)));
    client.release(root).unwrap();
    drop(client);
    peer.join().unwrap();
}

/// The version a session runs at is the lower of the two offers, as the client reports it.
#[test]
fn client_reports_the_negotiated_version() {
    for (offered, server_max, expected) in [(2, 2, 2), (2, 1, 1), (0, 2, 0)] {
        let svc = Arc::new(TestService {
            calls: Default::default(),
        });
        let server = RpcServer::new(svc).with_max_version(server_max);
        let (a, b) = UnixStream::pair().unwrap();
        let h = thread::spawn(move || server.serve_connection(b));
        let config = ClientConfig {
            version: offered,
            query_session_info: true,
        };
        let mut client = RpcClient::connect_with(a, config).unwrap();
        assert_eq!(client.protocol_version(), expected);
        let root = client.get_root().unwrap();
        client.ping(&root).unwrap();
        client.release(root).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Released);
    }
}

/// A session on `server` through the scripted handshake, returning the client end and the id
/// the server gave it.
fn session_with_id(
    server: &Arc<RpcServer>,
) -> (
    UnixStream,
    thread::JoinHandle<Result<SessionEnd, Error>>,
    [u8; 32],
) {
    let (mut c, s) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let srv = server.clone();
    let h = thread::spawn(move || srv.serve_connection(s));
    send(&mut c, CONN_HEADER_V1);
    send(&mut c, CCI);
    expect(&mut c, NEW_SESSION_V1);
    send(&mut c, &special(2));
    let mut hdr = [0u8; 16 + 20 + 4];
    c.read_exact(&mut hdr).unwrap();
    let mut id = [0u8; 32];
    c.read_exact(&mut id).unwrap();
    (c, h, id)
}

/// An extra connection to the session `id`: callback (INCOMING) or outgoing.
fn attach(id: &[u8; 32], incoming: bool) -> (UnixStream, UnixStream) {
    let (c, s) = UnixStream::pair().unwrap();
    let mut c2 = c.try_clone().unwrap();
    let options = if incoming { "01" } else { "00" };
    send(
        &mut c2,
        &format!("01000000 {options} 00 0000000000000000 2000 {}", hex(id)),
    );
    (c, s)
}

/// Session ids are random and forgotten when their session ends; only callback connections
/// may attach, and they are held open through read timeouts until the client closes them.
#[test]
fn server_session_ids_and_attached_connections() {
    let svc = Arc::new(TestService {
        calls: Default::default(),
    });
    let server = Arc::new(RpcServer::new(svc));
    assert_eq!(
        format!("{server:?}"),
        format!("RpcServer {{ descriptor: {DESCRIPTOR:?}, max_version: 1 }}")
    );
    let (c1, h1, id1) = session_with_id(&server);
    let (c2, h2, id2) = session_with_id(&server);
    assert_ne!(id1, id2);
    assert!(id1.iter().any(|&b| b != id1[0]), "{}", hex(&id1));

    // An outgoing connection beyond the session's one thread is refused.
    let (_c, s) = attach(&id1, false);
    assert!(matches!(
        server.serve_connection(s),
        Err(Error::TooManyConnections)
    ));
    // A callback connection gets "cci" and waits through its read timeouts.
    let (mut cb, s) = attach(&id1, true);
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let srv = server.clone();
    let held = thread::spawn(move || srv.serve_connection(s));
    expect(&mut cb, CCI);
    thread::sleep(Duration::from_millis(200));
    assert!(!held.is_finished());
    drop(cb);
    assert_eq!(held.join().unwrap().unwrap(), SessionEnd::CallbackClosed);
    // A callback connection closed before it read "cci": the reset is an error.
    let (cb, s) = attach(&id1, true);
    let srv = server.clone();
    let reset = thread::spawn(move || srv.serve_connection(s));
    thread::sleep(Duration::from_millis(100));
    drop(cb);
    match reset.join().unwrap() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }

    // Once its session ended, an id is unknown.
    drop(c1);
    assert_eq!(h1.join().unwrap().unwrap(), SessionEnd::Closed);
    let (_c, s) = attach(&id1, true);
    assert!(matches!(
        server.serve_connection(s),
        Err(Error::UnknownSession)
    ));
    drop(c2);
    assert_eq!(h2.join().unwrap().unwrap(), SessionEnd::Closed);
}

/// A root that reads a binder argument, and reports whether it could.
struct ReadsBinder;

impl Binder for ReadsBinder {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }
    fn on_transact(
        &self,
        _: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let read = data.read_strong_binder();
        reply.write_status(&Status::ok());
        reply.write_bool(matches!(read, Ok(Some(_))));
        Ok(())
    }
}

/// Before v2 binders in a parcel are not listed in its object table, and the server reads
/// them without one; the root has no extension (a null binder).
#[test]
fn server_reads_binders_by_version_and_has_no_extension() {
    let server = RpcServer::new(Arc::new(ReadsBinder));
    let (a, b) = UnixStream::pair().unwrap();
    let h = thread::spawn(move || server.serve_connection(b));
    let mut client = RpcClient::connect(a).unwrap();
    assert_eq!(client.protocol_version(), 1);
    let root = client.get_root().unwrap();
    let mut p = Parcel::new();
    p.write_interface_token(DESCRIPTOR);
    p.write_strong_binder(Some((root.address, 0x0c)));
    let reply = client.transact(&root, 1, &p, 0).unwrap().unwrap();
    let mut r = reply.reader();
    assert_eq!(r.read_status(), Ok(Status::ok()));
    assert_eq!(r.read_bool(), Ok(true));
    let ext = client
        .transact(
            &root,
            rpcbinder::client::EXTENSION_TRANSACTION,
            &Parcel::new(),
            0,
        )
        .unwrap()
        .unwrap();
    assert_eq!(ext.reader().read_strong_binder(), Ok(None));
    client.release(root).unwrap();
    assert_eq!(h.join().unwrap().unwrap(), SessionEnd::Released);
}
