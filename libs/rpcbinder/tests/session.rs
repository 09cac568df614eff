//! General sessions: binder objects both ways with their reference counts, callbacks on the
//! client's incoming connections, oneway order, file descriptors, the bootstrap transport, and
//! interoperation with the single-root client and server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rpcbinder::session::{bootstrap_connector, call, call_oneway};
use rpcbinder::{
    Binder, CallError, Parcel, ParcelReader, RpcSession, SessionConfig, SessionServer, SpIBinder,
    Status, StatusCode,
};

const TEST_DESCRIPTOR: &str = "test.ITest";
const CHILD_DESCRIPTOR: &str = "test.IChild";
const CALLBACK_DESCRIPTOR: &str = "test.ICallback";

const ECHO: u32 = 1;
const MAKE_CHILD: u32 = 2;
const REGISTER_CALLBACK: u32 = 3;
const READ_FD: u32 = 4;
const MAKE_FILE: u32 = 5;
const FAIL: u32 = 6;

struct Child {
    dropped: Arc<AtomicUsize>,
}

impl Drop for Child {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Binder for Child {
    fn descriptor(&self) -> &str {
        CHILD_DESCRIPTOR
    }
    fn on_transact(
        &self,
        _: u32,
        _: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        reply.write_status(&Status::ok());
        reply.write_i32(42);
        Ok(())
    }
}

struct TestService {
    children_dropped: Arc<AtomicUsize>,
    callback_calls: u32,
}

impl Binder for TestService {
    fn descriptor(&self) -> &str {
        TEST_DESCRIPTOR
    }
    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            ECHO => {
                let s = data.read_string().map_err(|e| e.status_code())?;
                reply.write_status(&Status::ok());
                reply.write_str(&s);
            }
            MAKE_CHILD => {
                let child: Arc<dyn Binder> = Arc::new(Child {
                    dropped: self.children_dropped.clone(),
                });
                reply.write_status(&Status::ok());
                reply.write_binder(Some(&SpIBinder::local(child)));
            }
            REGISTER_CALLBACK => {
                let cb = data.read_required_binder().map_err(|e| e.status_code())?;
                // Call back on another thread, as a VM monitor would, after replying.
                let n = self.callback_calls;
                std::thread::spawn(move || {
                    for i in 0..n {
                        let _ = call_oneway(&cb, CALLBACK_DESCRIPTOR, 1, |p| p.write_i32(i as i32));
                    }
                });
                reply.write_status(&Status::ok());
            }
            READ_FD => {
                let fd = data.read_required_pfd().map_err(|e| e.status_code())?;
                let mut text = String::new();
                std::fs::File::from(fd)
                    .read_to_string(&mut text)
                    .map_err(|_| StatusCode::UNKNOWN_ERROR)?;
                reply.write_status(&Status::ok());
                reply.write_str(&text);
            }
            MAKE_FILE => {
                let mut f = tempfile::tempfile().map_err(|_| StatusCode::UNKNOWN_ERROR)?;
                f.write_all(b"from the server")
                    .map_err(|_| StatusCode::UNKNOWN_ERROR)?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|_| StatusCode::UNKNOWN_ERROR)?;
                reply.write_status(&Status::ok());
                reply.write_pfd(Some(OwnedFd::from(f)));
            }
            FAIL => {
                reply.write_status(&Status::service_specific(-1, "it failed"));
            }
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

struct Recorder {
    seen: Mutex<mpsc::Sender<i32>>,
}

impl Binder for Recorder {
    fn descriptor(&self) -> &str {
        CALLBACK_DESCRIPTOR
    }
    fn on_transact(
        &self,
        _: u32,
        data: &mut ParcelReader<'_>,
        _: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let v = data.read_i32().map_err(|e| e.status_code())?;
        if let Ok(tx) = self.seen.lock() {
            let _ = tx.send(v);
        }
        Ok(())
    }
}

fn server(callback_calls: u32) -> (Arc<SessionServer>, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let root: Arc<dyn Binder> = Arc::new(TestService {
        children_dropped: dropped.clone(),
        callback_calls,
    });
    let server = SessionServer::new(
        SpIBinder::local(root),
        SessionConfig {
            unix_fds: true,
            ..SessionConfig::default()
        },
    );
    (server, dropped)
}

/// Each connection is a socketpair whose other end the server accepts on its own thread.
fn pair_connector(server: Arc<SessionServer>) -> impl FnMut() -> std::io::Result<OwnedFd> {
    move || {
        let (mine, theirs) = UnixStream::pair()?;
        let server = server.clone();
        std::thread::spawn(move || server.accept(theirs.into()));
        Ok(mine.into())
    }
}

fn client_config(threads: u32) -> SessionConfig {
    SessionConfig {
        unix_fds: true,
        threads,
        ..SessionConfig::default()
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn calls_children_and_their_release() {
    let (server, dropped) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server.clone())).unwrap();
    let root = session.root().unwrap();
    assert_eq!(
        root.as_remote().unwrap().interface_descriptor().unwrap(),
        TEST_DESCRIPTOR
    );
    let reply = call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("hello")).unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "hello");

    let child = call(&root, TEST_DESCRIPTOR, MAKE_CHILD, |_| {})
        .unwrap()
        .reader()
        .read_required_binder()
        .unwrap();
    let reply = call(&child, CHILD_DESCRIPTOR, 1, |_| {}).unwrap();
    assert_eq!(reply.reader().read_i32().unwrap(), 42);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    // The client drops its proxy: the server's object goes with the last reference.
    drop(child);
    wait_until("the child is dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    });
    // The session lives on with the root.
    let reply = call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("still")).unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "still");
    assert_eq!(session.node_count(), 1);
}

#[test]
fn a_closed_session_drops_everything_the_client_held() {
    let (server, dropped) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server.clone())).unwrap();
    let root = session.root().unwrap();
    let children: Vec<SpIBinder> = (0..3)
        .map(|_| {
            call(&root, TEST_DESCRIPTOR, MAKE_CHILD, |_| {})
                .unwrap()
                .reader()
                .read_required_binder()
                .unwrap()
        })
        .collect();
    assert_eq!(server.session_count(), 1);
    assert!(children[0].as_remote().unwrap().is_alive());
    // As if the client process died: its connections close with no DEC_STRONG.
    session.shutdown();
    assert!(!children[0].as_remote().unwrap().is_alive());
    assert!(matches!(
        children[1].as_remote().unwrap().ping(),
        Err(rpcbinder::Error::Shutdown)
    ));
    wait_until("the server dropped the children", || {
        dropped.load(Ordering::SeqCst) == 3
    });
    wait_until("the server session ended", || server.session_count() == 0);
    let err = call(&children[0], CHILD_DESCRIPTOR, 1, |_| {}).unwrap_err();
    assert!(
        matches!(err, CallError::Rpc(rpcbinder::Error::Shutdown)),
        "{err:?}"
    );
}

#[test]
fn releasing_the_last_proxy_ends_the_session() {
    let (server, _) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server.clone())).unwrap();
    let root = session.root().unwrap();
    assert!(session.is_alive());
    assert!(root.as_remote().unwrap().is_alive());
    let died = Arc::new(AtomicUsize::new(0));
    let d = died.clone();
    root.as_remote().unwrap().link_to_death(move || {
        d.fetch_add(1, Ordering::SeqCst);
    });
    drop(root);
    wait_until("the session ended", || !session.is_alive());
    assert_eq!(died.load(Ordering::SeqCst), 1);
    wait_until("the server forgot the session", || {
        server.session_count() == 0
    });
}

#[test]
fn callbacks_arrive_in_order_on_incoming_connections() {
    let (server, _) = server(200);
    let session = RpcSession::connect(client_config(2), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let (tx, rx) = mpsc::channel();
    let recorder: Arc<dyn Binder> = Arc::new(Recorder {
        seen: Mutex::new(tx),
    });
    call(&root, TEST_DESCRIPTOR, REGISTER_CALLBACK, |p| {
        p.write_binder(Some(&SpIBinder::local(recorder)))
    })
    .unwrap();
    let seen: Vec<i32> = (0..200)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_server_cannot_call_back_a_client_without_incoming_connections() {
    let (server, _) = server(1);
    let session = RpcSession::connect(client_config(0), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let (tx, rx) = mpsc::channel();
    let recorder: Arc<dyn Binder> = Arc::new(Recorder {
        seen: Mutex::new(tx),
    });
    call(&root, TEST_DESCRIPTOR, REGISTER_CALLBACK, |p| {
        p.write_binder(Some(&SpIBinder::local(recorder)))
    })
    .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn file_descriptors_travel_both_ways() {
    let (server, _) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(b"from the client").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let reply = call(&root, TEST_DESCRIPTOR, READ_FD, |p| {
        p.write_pfd(Some(f.into()))
    })
    .unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "from the client");

    let reply = call(&root, TEST_DESCRIPTOR, MAKE_FILE, |_| {}).unwrap();
    let fd = reply.reader().read_required_pfd().unwrap();
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).unwrap();
    assert_eq!(text, "from the server");
}

#[test]
fn fds_are_refused_without_fd_mode_unix() {
    let (server, _) = server(0);
    let session = RpcSession::connect(SessionConfig::default(), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let f = tempfile::tempfile().unwrap();
    let err = call(&root, TEST_DESCRIPTOR, READ_FD, |p| {
        p.write_pfd(Some(f.into()))
    })
    .unwrap_err();
    assert!(
        matches!(err, CallError::Rpc(rpcbinder::Error::ObjectsNotAllowed(1))),
        "{err:?}"
    );
}

#[test]
fn service_exceptions_come_back_as_status() {
    let (server, _) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let err = call(&root, TEST_DESCRIPTOR, FAIL, |_| {}).unwrap_err();
    match err {
        CallError::Service(s) => {
            assert_eq!(s.service_specific_error(), -1);
            assert_eq!(s.message(), "it failed");
        }
        other => panic!("{other:?}"),
    }
    // An unknown code is a transport status; the session survives it.
    let err = call(&root, TEST_DESCRIPTOR, 99, |_| {}).unwrap_err();
    assert!(matches!(
        err,
        CallError::Rpc(rpcbinder::Error::TransactionFailed(
            StatusCode::UNKNOWN_TRANSACTION
        ))
    ));
    call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("ok")).unwrap();
}

#[test]
fn bootstrap_transport_and_its_end() {
    let (server, _) = server(0);
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let serving = {
        let server = server.clone();
        std::thread::spawn(move || server.serve_bootstrap(server_end.into()))
    };
    let bootstrap = Arc::new(OwnedFd::from(client_end));
    let session =
        RpcSession::connect(client_config(2), bootstrap_connector(bootstrap.clone())).unwrap();
    let root = session.root().unwrap();
    let reply = call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("boot")).unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "boot");
    // Closing the client's bootstrap end stops the server's accept loop (virtmgr exits).
    drop(bootstrap);
    drop(session);
    drop(root);
    serving.join().unwrap().unwrap();
}

#[test]
fn pfd_wire_layout_and_object_table() {
    // ParcelFileDescriptor: present, no comm channel, fd object (type 2, index 0).
    let f = tempfile::tempfile().unwrap();
    let mut p = Parcel::new();
    p.write_i32(7);
    p.write_pfd(Some(f.into()));
    p.write_pfd(None);
    let hex: String = p.data().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "070000000100000000000000020000000000000000000000");
    assert_eq!(p.fd_offsets(), &[12]);
}

#[test]
fn single_root_client_talks_to_a_session_server() {
    let (server, _) = server(0);
    let (mine, theirs) = UnixStream::pair().unwrap();
    std::thread::spawn(move || server.accept(theirs.into()));
    let client = rpcbinder::InterfaceClient::connect(
        mine,
        rpcbinder::ClientConfig::default(),
        TEST_DESCRIPTOR,
    )
    .unwrap();
    let reply = client.call(ECHO, |p| p.write_str("old client")).unwrap();
    let mut reader = reply.reader();
    reader.read_status().unwrap();
    assert_eq!(reader.read_string().unwrap(), "old client");
}

#[test]
fn session_client_talks_to_a_single_root_server() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let root: Arc<dyn Binder> = Arc::new(TestService {
        children_dropped: dropped,
        callback_calls: 0,
    });
    let old = Arc::new(rpcbinder::RpcServer::new(root));
    let connector = move || {
        let (mine, theirs) = UnixStream::pair()?;
        let old = old.clone();
        std::thread::spawn(move || old.serve_connection(theirs));
        Ok(mine.into())
    };
    let session = RpcSession::connect(SessionConfig::default(), connector).unwrap();
    let root = session.root().unwrap();
    for i in 0..100 {
        let text = format!("call {i}");
        let reply = call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str(&text)).unwrap();
        assert_eq!(reply.reader().read_string().unwrap(), text);
    }
}

/// Client bytes: a new-session handshake at v1 asking for fd mode UNIX, then one GET_ROOT
/// whose parcel is `data` with the object table `objects`.
fn handshake_and_get_root(data: &[u8], objects: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes()); // version
    b.push(0); // options
    b.push(1); // fd mode UNIX
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(b"cci\0\0\0\0\0");
    let body_len = 40 + data.len() + 4 * objects.len();
    b.extend_from_slice(&0u32.to_le_bytes()); // TRANSACT
    b.extend_from_slice(&(body_len as u32).to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0; 8]); // address 0
    b.extend_from_slice(&0u32.to_le_bytes()); // GET_ROOT
    b.extend_from_slice(&0u32.to_le_bytes()); // flags
    b.extend_from_slice(&0u64.to_le_bytes()); // async number
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(data);
    for o in objects {
        b.extend_from_slice(&o.to_le_bytes());
    }
    b
}

#[test]
fn an_fd_object_without_its_fd_ends_the_session() {
    use rpcbinder::fuzzing::session_server_bytes;
    // A well-formed GET_ROOT is answered: the 8-byte session response, then a REPLY.
    let ok = session_server_bytes(&handshake_and_get_root(&[], &[]));
    assert!(ok.len() > 8, "{} bytes", ok.len());
    // The same with an fd object listed but no SCM_RIGHTS fd: the session ends unanswered.
    let bad = session_server_bytes(&handshake_and_get_root(&[2, 0, 0, 0, 0, 0, 0, 0], &[0]));
    assert_eq!(bad.len(), 8);
    // An fd object in a session that did not ask for fd mode UNIX: likewise.
    let mut no_fds = handshake_and_get_root(&[2, 0, 0, 0, 0, 0, 0, 0], &[0]);
    no_fds[5] = 0;
    assert_eq!(session_server_bytes(&no_fds).len(), 8);
}

/// A root with an extension object (`IBinder::getExtension`).
struct Extended {
    extension: SpIBinder,
}

impl Binder for Extended {
    fn descriptor(&self) -> &str {
        TEST_DESCRIPTOR
    }
    fn on_transact(
        &self,
        _: u32,
        _: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        reply.write_status(&Status::ok());
        Ok(())
    }
    fn extension(&self) -> Option<SpIBinder> {
        Some(self.extension.clone())
    }
}

/// What a session's objects say about themselves: identity, stability, extension, the raw
/// data of a reply, and their debug forms.
#[test]
fn binders_proxies_and_replies_describe_themselves() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let child: Arc<dyn Binder> = Arc::new(Child {
        dropped: dropped.clone(),
    });
    let local = SpIBinder::local(child.clone());
    assert_eq!(local, SpIBinder::local(child.clone()));
    assert_ne!(
        local,
        SpIBinder::local(Arc::new(Child {
            dropped: dropped.clone()
        }))
    );
    assert_eq!(local.stability(), 0x0c);
    assert_eq!(format!("{local:?}"), "Local(test.IChild)");
    let root = SpIBinder::local(Arc::new(Extended { extension: local }));
    let server = SessionServer::new(root, SessionConfig::default());
    let session =
        RpcSession::connect(SessionConfig::default(), pair_connector(server.clone())).unwrap();
    assert_eq!(
        format!("{session:?}"),
        "RpcSession { server: false, version: 1, .. }"
    );
    let root = session.root().unwrap();
    assert_eq!(root, session.root().unwrap());
    assert_ne!(root, SpIBinder::local(child.clone()));
    assert_eq!(root.stability(), 0x0c);
    let proxy = root.as_remote().unwrap();
    assert_eq!(
        format!("{root:?}"),
        format!("Remote({:#018x})", proxy.address().0)
    );
    assert_eq!(
        format!("{proxy:?}"),
        format!(
            "Proxy {{ address: {:#018x}, stability: 12 }}",
            proxy.address().0
        )
    );
    let extension = proxy.get_extension().unwrap().unwrap();
    assert_ne!(extension, root);
    assert_eq!(
        extension
            .as_remote()
            .unwrap()
            .interface_descriptor()
            .unwrap(),
        CHILD_DESCRIPTOR
    );
    let mut p = Parcel::new();
    p.write_interface_token(TEST_DESCRIPTOR);
    proxy.ping().unwrap();
    let reply = proxy.transact(ECHO, &p, 0).unwrap().unwrap();
    assert_eq!(reply.data(), &[0u8; 4][..]);
    assert_eq!(
        format!("{reply:?}"),
        "ReceivedParcel { len: 4, objects: [], .. }"
    );
}

/// Client side of a raw connection to `server`: the connection header (fd mode and options as
/// given, `id` for an attach), and for a new session or an outgoing attach the "cci" init.
fn raw_connection(
    server: &Arc<SessionServer>,
    fd_mode: u8,
    options: u8,
    id: Option<&[u8]>,
) -> (
    UnixStream,
    std::thread::JoinHandle<Result<(), rpcbinder::Error>>,
) {
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    mine.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.push(options);
    b.push(fd_mode);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&(id.map_or(0, <[u8]>::len) as u16).to_le_bytes());
    b.extend_from_slice(id.unwrap_or_default());
    if options == 0 {
        b.extend_from_slice(b"cci\0\0\0\0\0");
    }
    mine.write_all(&b).unwrap();
    let server = server.clone();
    let accepted = std::thread::spawn(move || server.accept(theirs.into()));
    (mine, accepted)
}

/// A special transaction (address 0) from a raw client, and the parcel data of its reply.
fn raw_special(conn: &mut UnixStream, code: u32) -> Vec<u8> {
    let b = rpcbinder::conn::encode_transact(
        1,
        rpcbinder::wire::Address::ZERO,
        code,
        0,
        0,
        &Parcel::new(),
    )
    .unwrap();
    conn.write_all(&b).unwrap();
    raw_reply(conn).1
}

/// A new raw session on `server`: its connection and its id.
fn raw_session(server: &Arc<SessionServer>) -> (UnixStream, Vec<u8>) {
    let (mut conn, accepted) = raw_connection(server, 0, 0, None);
    accepted.join().unwrap().unwrap();
    let mut response = [0u8; 8];
    conn.read_exact(&mut response).unwrap();
    let id = raw_special(&mut conn, 2);
    assert_eq!(id.len(), 36);
    (conn, id[4..].to_vec())
}

/// A server admits as many outgoing connections per session as its thread count, and
/// callback connections besides; session ids are random and each stays known while its
/// session lives, however many sessions come after it.
#[test]
fn a_session_server_admits_connections_by_its_thread_count() {
    let root: Arc<dyn Binder> = Arc::new(TestService {
        children_dropped: Arc::new(AtomicUsize::new(0)),
        callback_calls: 0,
    });
    let config = SessionConfig {
        threads: 2,
        ..SessionConfig::default()
    };
    let server = SessionServer::new(SpIBinder::local(root), config);
    assert_eq!(
        format!("{server:?}"),
        "SessionServer { root: Local(test.ITest), config: SessionConfig { version: 1, unix_fds: false, threads: 2 }, .. }"
    );
    let (mut first, id) = raw_session(&server);
    let (_second, other_id) = raw_session(&server);
    assert_ne!(id, other_id);
    assert!(id.iter().any(|&b| b != id[0]));
    // GET_MAX_THREADS tells the client the thread count.
    assert_eq!(raw_special(&mut first, 1), 2i32.to_le_bytes());
    // One more outgoing connection: admitted, and it serves calls.
    let (mut extra, accepted) = raw_connection(&server, 0, 0, Some(&id));
    accepted.join().unwrap().unwrap();
    assert_eq!(raw_special(&mut extra, 1), 2i32.to_le_bytes());
    // A third: refused.
    let (_third, accepted) = raw_connection(&server, 0, 0, Some(&id));
    assert!(matches!(
        accepted.join().unwrap(),
        Err(rpcbinder::Error::TooManyConnections)
    ));
    // A callback connection is not counted: it gets "cci".
    let (mut callback, accepted) = raw_connection(&server, 0, 1, Some(&id));
    accepted.join().unwrap().unwrap();
    let mut cci = [0u8; 8];
    callback.read_exact(&mut cci).unwrap();
    assert_eq!(&cci, b"cci\0\0\0\0\0");
}

#[test]
fn a_session_server_refuses_bad_connection_headers() {
    let (server, _) = server(0);
    let no_fds = SessionServer::new(server_root(), SessionConfig::default());
    for (server, fd_mode, options, id, expected) in [
        // Fd mode UNIX where the server does not take fds; an unknown fd mode.
        (&no_fds, 1, 0, None, "UnsupportedFdMode(1)"),
        (&server, 2, 0, None, "UnsupportedFdMode(2)"),
        // A session id of the wrong size; a new session asking to be called back.
        (&server, 0, 0, Some(&[7u8; 16][..]), "BadSessionIdSize(16)"),
        (&server, 0, 1, None, "IncomingNewSession"),
    ] {
        let (_conn, accepted) = raw_connection(server, fd_mode, options, id);
        let err = accepted.join().unwrap().unwrap_err();
        assert_eq!(format!("{err:?}"), expected);
    }
}

fn server_root() -> SpIBinder {
    SpIBinder::local(Arc::new(TestService {
        children_dropped: Arc::new(AtomicUsize::new(0)),
        callback_calls: 0,
    }))
}

/// A server that takes fds still sends none to a client that did not ask for fd mode UNIX:
/// the reply fails as BAD_VALUE and the session goes on.
#[test]
fn a_server_sends_fds_only_to_clients_that_asked() {
    let (server, _) = server(0);
    let session = RpcSession::connect(SessionConfig::default(), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let err = call(&root, TEST_DESCRIPTOR, MAKE_FILE, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Rpc(rpcbinder::Error::TransactionFailed(StatusCode::BAD_VALUE))
        ),
        "{err:?}"
    );
    call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("ok")).unwrap();
}

/// Records the i32 argument of each call, in the order they ran.
struct Ordered {
    seen: Mutex<Vec<i32>>,
}

impl Binder for Ordered {
    fn descriptor(&self) -> &str {
        TEST_DESCRIPTOR
    }
    fn on_transact(
        &self,
        _: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let v = data.read_i32().map_err(|e| e.status_code())?;
        self.seen.lock().unwrap().push(v);
        reply.write_status(&Status::ok());
        Ok(())
    }
}

/// A TRANSACT to `address` with the interface token and one i32.
fn raw_call(address: u64, oneway: bool, async_number: u64, arg: i32) -> Vec<u8> {
    let mut parcel = Parcel::new();
    parcel.write_interface_token(TEST_DESCRIPTOR);
    parcel.write_i32(arg);
    let flags = if oneway {
        rpcbinder::wire::FLAG_ONEWAY
    } else {
        0
    };
    rpcbinder::conn::encode_transact(
        1,
        rpcbinder::wire::Address(address),
        ECHO,
        flags,
        async_number,
        &parcel,
    )
    .unwrap()
}

/// Oneway calls run in the order of their async numbers whatever order they arrive in (as
/// libbinder queues them); a number already used ends the session.
#[test]
fn oneway_calls_run_in_async_number_order() {
    let ordered = Arc::new(Ordered {
        seen: Mutex::new(Vec::new()),
    });
    let server = SessionServer::new(SpIBinder::local(ordered.clone()), SessionConfig::default());
    let (mut conn, _) = raw_session(&server);
    let root = raw_special(&mut conn, 0);
    let address = u64::from_le_bytes(root[4..12].try_into().unwrap());
    for n in [2u64, 1, 0, 3] {
        conn.write_all(&raw_call(address, true, n, 10 + n as i32))
            .unwrap();
    }
    // A two-way call after them, on the same connection: it runs after them.
    conn.write_all(&raw_call(address, false, 0, 99)).unwrap();
    wait_until("the calls ran", || ordered.seen.lock().unwrap().len() == 5);
    assert_eq!(*ordered.seen.lock().unwrap(), vec![10, 11, 12, 13, 99]);
    // Async number 1 again: stale. The server ends the session.
    conn.write_all(&raw_call(address, true, 1, 0)).unwrap();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    wait_until("the session ended", || server.session_count() == 0);
    assert_eq!(ordered.seen.lock().unwrap().len(), 5);
}

/// A proxy goes back to its own session as the object it stands for; a proxy of another
/// session cannot be sent.
#[test]
fn proxies_travel_only_within_their_session() {
    let (server, _) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server.clone())).unwrap();
    let other = RpcSession::connect(client_config(0), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let other_root = other.root().unwrap();
    call(&root, TEST_DESCRIPTOR, REGISTER_CALLBACK, |p| {
        p.write_binder(Some(&root))
    })
    .unwrap();
    let err = call(&root, TEST_DESCRIPTOR, REGISTER_CALLBACK, |p| {
        p.write_binder(Some(&other_root))
    })
    .unwrap_err();
    assert!(
        matches!(err, CallError::Rpc(rpcbinder::Error::ForeignBinder)),
        "{err:?}"
    );
}

/// What a session reports about itself: its version (the lower offer), its nodes, its
/// death listeners.
#[test]
fn a_session_reports_its_version_nodes_and_death() {
    for (offered, server_max, expected) in [(2, 2, 2), (2, 1, 1), (1, 2, 1)] {
        let server = SessionServer::new(
            server_root(),
            SessionConfig {
                version: server_max,
                ..SessionConfig::default()
            },
        );
        let config = SessionConfig {
            version: offered,
            ..SessionConfig::default()
        };
        let session = RpcSession::connect(config, pair_connector(server)).unwrap();
        assert_eq!(session.protocol_version(), expected);
        assert_eq!(session.node_count(), 0);
        let root = session.root().unwrap();
        root.as_remote().unwrap().ping().unwrap();
        let child = call(&root, TEST_DESCRIPTOR, MAKE_CHILD, |_| {})
            .unwrap()
            .reader()
            .read_required_binder()
            .unwrap();
        assert_eq!(session.node_count(), 2);
        let died = Arc::new(AtomicUsize::new(0));
        let d = died.clone();
        session.add_death_listener(move || {
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(died.load(Ordering::SeqCst), 0);
        session.shutdown();
        assert_eq!(died.load(Ordering::SeqCst), 1);
        // Added after the end: runs at once.
        let d = died.clone();
        session.add_death_listener(move || {
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(died.load(Ordering::SeqCst), 2);
        drop(child);
    }
    let too_new = SessionConfig {
        version: 3,
        ..SessionConfig::default()
    };
    let (server, _) = server(0);
    assert!(matches!(
        RpcSession::connect(too_new, pair_connector(server)),
        Err(rpcbinder::Error::UnsupportedVersion(3))
    ));
}

/// A server that answers a newer version than the client offered is refused.
#[test]
fn a_client_session_refuses_a_version_it_did_not_offer() {
    let (mine, mut theirs) = UnixStream::pair().unwrap();
    let peer = std::thread::spawn(move || {
        let mut hello = [0u8; 24];
        theirs.read_exact(&mut hello).unwrap();
        theirs.write_all(&[2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        theirs
    });
    let mut once = Some(OwnedFd::from(mine));
    let connector = move || once.take().ok_or_else(|| std::io::Error::other("used"));
    assert!(matches!(
        RpcSession::connect(SessionConfig::default(), connector),
        Err(rpcbinder::Error::UnsupportedVersion(2))
    ));
    drop(peer.join().unwrap());
}

/// A proxy sent back in oneway calls and then dropped: its node lives until the server has
/// given back every reference it was sent, then goes.
#[test]
fn a_dropped_proxy_lives_until_the_server_returns_its_references() {
    let (server, dropped) = server(0);
    let session = RpcSession::connect(client_config(0), pair_connector(server)).unwrap();
    let root = session.root().unwrap();
    let child = call(&root, TEST_DESCRIPTOR, MAKE_CHILD, |_| {})
        .unwrap()
        .reader()
        .read_required_binder()
        .unwrap();
    assert_eq!(session.node_count(), 2);
    for _ in 0..2 {
        call_oneway(&root, TEST_DESCRIPTOR, REGISTER_CALLBACK, |p| {
            p.write_binder(Some(&child))
        })
        .unwrap();
    }
    drop(child);
    // Sent twice and not yet given back: the node stays.
    assert_eq!(session.node_count(), 2);
    // The server's two DEC_STRONGs come before its next reply, one at a time.
    call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("sync")).unwrap();
    assert_eq!(session.node_count(), 1);
    wait_until("the server dropped the child", || {
        dropped.load(Ordering::SeqCst) == 1
    });
    assert!(session.is_alive());
}

/// A scripted libbinder server whose root is marked VINTF-stable: user calls to it are
/// allowed (VINTF includes SYSTEM).
#[test]
fn a_vintf_stable_proxy_takes_user_calls() {
    use rpc_wire_oracle::{expect, reply, unhex};
    let (mine, mut theirs) = UnixStream::pair().unwrap();
    theirs
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let special = |code: u8| {
        format!("00000000 28000000 0000000000000000 0000000000000000 {code:02x}000000 00000000 0000000000000000 00000000 000000000000000000000000")
    };
    let peer = std::thread::spawn(move || {
        let mut hello = [0u8; 24];
        theirs.read_exact(&mut hello).unwrap();
        theirs.write_all(&unhex("01000000 00000000")).unwrap();
        expect(&mut theirs, &special(1));
        theirs.write_all(&unhex(&reply("01000000"))).unwrap();
        expect(&mut theirs, &special(2));
        let id = format!("20000000 {}", "33".repeat(32));
        theirs.write_all(&unhex(&reply(&id))).unwrap();
        expect(&mut theirs, &special(0));
        theirs
            .write_all(&unhex(&reply("01000000 03000000 00000000 3f000000")))
            .unwrap();
        expect(
            &mut theirs,
            &rpc_wire_oracle::txn(TEST_DESCRIPTOR, ECHO, &rpc_wire_oracle::s16("vintf")),
        );
        theirs
            .write_all(&unhex(rpc_wire_oracle::DEC_STRONG_ROOT_1))
            .unwrap();
        let answer = format!("00000000 {}", rpc_wire_oracle::s16("vintf"));
        theirs.write_all(&unhex(&reply(&answer))).unwrap();
        theirs
    });
    let mut once = Some(OwnedFd::from(mine));
    let connector = move || once.take().ok_or_else(|| std::io::Error::other("used"));
    let session = RpcSession::connect(client_config(0), connector).unwrap();
    let root = session.root().unwrap();
    assert_eq!(root.stability(), 0x3f);
    let reply = call(&root, TEST_DESCRIPTOR, ECHO, |p| p.write_str("vintf")).unwrap();
    assert_eq!(reply.reader().read_string().unwrap(), "vintf");
    drop(peer.join().unwrap());
}

/// Keeps every binder it is sent (as a service keeps a registered callback).
struct Keeper {
    kept: Mutex<Vec<SpIBinder>>,
}

impl Binder for Keeper {
    fn descriptor(&self) -> &str {
        "test.IKeeper"
    }
    fn on_transact(
        &self,
        _: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let b = data.read_required_binder().map_err(|e| e.status_code())?;
        self.kept.lock().unwrap().push(b);
        reply.write_status(&Status::ok());
        Ok(())
    }
}

/// A raw client's next reply: its status and parcel data. The DEC_STRONGs before it (the
/// server giving back references it was sent) are skipped.
fn raw_reply(conn: &mut UnixStream) -> (i32, Vec<u8>) {
    loop {
        let mut header = [0u8; 16];
        conn.read_exact(&mut header).unwrap();
        let command = u32::from_le_bytes(header[0..4].try_into().unwrap());
        let body = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
        let mut rest = vec![0u8; body];
        conn.read_exact(&mut rest).unwrap();
        if command == rpcbinder::wire::COMMAND_DEC_STRONG {
            continue;
        }
        assert_eq!(command, rpcbinder::wire::COMMAND_REPLY);
        let status = i32::from_le_bytes(rest[0..4].try_into().unwrap());
        let size = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        return (status, rest[20..20 + size].to_vec());
    }
}

/// An address is served only by the side that created it. A call addressed to a node the
/// server holds only as a proxy (the client's own object, which the client sent it) is
/// answered BAD_VALUE, and the session ends.
#[test]
fn a_call_to_an_address_the_server_holds_as_a_proxy_is_refused() {
    use rpcbinder::wire::{Address, ADDRESS_OPTION_CREATED};
    let keeper = Arc::new(Keeper {
        kept: Mutex::new(Vec::new()),
    });
    let server = SessionServer::new(SpIBinder::local(keeper.clone()), SessionConfig::default());
    let (mut conn, _) = raw_session(&server);
    let root = raw_special(&mut conn, 0);
    let root = Address(u64::from_le_bytes(root[4..12].try_into().unwrap()));
    // The client's own object: created by the client, so not "for server".
    let mine = Address::new(ADDRESS_OPTION_CREATED, 1);
    let mut parcel = Parcel::new();
    parcel.write_interface_token("test.IKeeper");
    parcel.write_strong_binder(Some((mine, rpcbinder::parcel::stability::UNDECLARED)));
    let send = |conn: &mut UnixStream, to: Address, parcel: &Parcel| {
        let b = rpcbinder::conn::encode_transact(1, to, 1, 0, 0, parcel).unwrap();
        conn.write_all(&b).unwrap();
    };
    send(&mut conn, root, &parcel);
    assert_eq!(raw_reply(&mut conn).0, 0);
    assert_eq!(keeper.kept.lock().unwrap().len(), 1);
    // Now a call to that address, sent to the server.
    send(&mut conn, mine, &Parcel::new());
    assert_eq!(raw_reply(&mut conn).0, StatusCode::BAD_VALUE.0);
    // Then the server closes the connection, sending nothing more.
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    // The session is gone once the proxy the keeper held is dropped.
    keeper.kept.lock().unwrap().clear();
    wait_until("the session ended", || server.session_count() == 0);
}
