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
    // As if the client process died: its connections close with no DEC_STRONG.
    session.shutdown();
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
