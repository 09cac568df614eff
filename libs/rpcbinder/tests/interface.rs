#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The typed-interface layer: [`InterfaceClient`] (a root proxy that releases its reference on
//! close or drop) and [`UnixSocketServer`] (a socket file, a thread per connection, a session
//! limit, and stop).

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rpcbinder::{
    Binder, CallError, ClientConfig, Error, ExceptionCode, InterfaceClient, Parcel, ParcelReader,
    RpcServer, SessionEnd, SessionOutcome, Status, StatusCode, UnixSocketServer,
};

const DESCRIPTOR: &str = "test.IInterfaceLayer";
const OK: u32 = 1;
const THROWS: u32 = 2;

struct Service;

impl Binder for Service {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }
    fn on_transact(
        &self,
        code: u32,
        _data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        match code {
            OK => reply.write_status(&Status::ok()),
            THROWS => {
                reply.write_status(&Status::exception(ExceptionCode::ILLEGAL_STATE, "not now"))
            }
            _ => return Err(StatusCode::UNKNOWN_TRANSACTION),
        }
        Ok(())
    }
}

/// A client on one end of a socket pair, an [`RpcServer`] serving the other on a thread.
fn connected() -> (
    InterfaceClient<UnixStream>,
    std::thread::JoinHandle<SessionOutcome>,
) {
    let (mine, theirs) = UnixStream::pair().unwrap();
    let server = RpcServer::new(Arc::new(Service));
    let served = std::thread::spawn(move || server.serve_connection(theirs));
    let client = InterfaceClient::connect(mine, ClientConfig::default(), DESCRIPTOR).unwrap();
    (client, served)
}

#[test]
fn void_calls_report_service_exceptions() {
    let (client, _served) = connected();
    client.call_void(OK, |_| {}).unwrap();
    match client.call_void(THROWS, |_| {}) {
        Err(CallError::Service(s)) => {
            assert_eq!(s.exception_code(), ExceptionCode::ILLEGAL_STATE);
        }
        other => panic!("expected the service's exception, got {other:?}"),
    }
    assert!(matches!(
        client.call_void(99, |_| {}),
        Err(CallError::Rpc(Error::TransactionFailed(
            StatusCode::UNKNOWN_TRANSACTION
        )))
    ));
    assert_eq!(
        format!("{client:?}"),
        format!("InterfaceClient {{ descriptor: {DESCRIPTOR:?}, .. }}")
    );
}

#[test]
fn close_releases_the_root_and_ends_the_session() {
    let (client, served) = connected();
    client.close().unwrap();
    // The server saw the final DEC_STRONG, not just the connection closing.
    assert_eq!(served.join().unwrap().unwrap(), SessionEnd::Released);
    assert!(matches!(
        client.call_void(OK, |_| {}),
        Err(CallError::Rpc(Error::Shutdown))
    ));
    // A second close has nothing left to release.
    client.close().unwrap();
}

#[test]
fn dropping_the_client_releases_the_root() {
    let (client, served) = connected();
    client.call_void(OK, |_| {}).unwrap();
    drop(client);
    assert_eq!(served.join().unwrap().unwrap(), SessionEnd::Released);
}

fn socket_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("service.sock")
}

fn client_of(path: &std::path::Path) -> InterfaceClient<UnixStream> {
    let stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    InterfaceClient::connect(stream, ClientConfig::default(), DESCRIPTOR).unwrap()
}

#[test]
fn a_socket_server_replaces_a_stale_socket_file_and_removes_it_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    // What a crashed server leaves behind: a socket file nobody listens on.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (ended, outcomes) = mpsc::channel();
    let mut server = UnixSocketServer::bind(&path, RpcServer::new(Arc::new(Service)), move |o| {
        let _ = ended.send(o.ok());
    })
    .unwrap();
    assert_eq!(server.path(), path);
    let client = client_of(&path);
    client.call_void(OK, |_| {}).unwrap();
    client.close().unwrap();
    assert_eq!(
        outcomes.recv_timeout(Duration::from_secs(10)).unwrap(),
        Some(SessionEnd::Released)
    );
    server.stop();
    assert!(!path.exists());
    assert!(UnixStream::connect(&path).is_err());
}

#[test]
fn dropping_a_socket_server_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let server = UnixSocketServer::bind(&path, RpcServer::new(Arc::new(Service)), |_| {}).unwrap();
    client_of(&path).call_void(OK, |_| {}).unwrap();
    drop(server);
    assert!(!path.exists());
}

#[test]
fn a_socket_server_refuses_a_path_it_cannot_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    std::fs::create_dir(&path).unwrap();
    // unlink(2) of a directory: EISDIR, reported as is (not the bind's EADDRINUSE).
    let err = UnixSocketServer::bind(&path, RpcServer::new(Arc::new(Service)), |_| {}).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(21), "{err}");
}

#[test]
fn a_limited_socket_server_serves_its_first_sessions_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let listener = UnixListener::bind(&path).unwrap();
    let (refused_tx, refused) = mpsc::channel();
    let _server = UnixSocketServer::serve_limited(
        listener,
        path.clone(),
        RpcServer::new(Arc::new(Service)),
        Some(2),
        |_| {},
        move |n| {
            let _ = refused_tx.send(n);
        },
    );
    let first = client_of(&path);
    let second = client_of(&path);
    first.call_void(OK, |_| {}).unwrap();
    second.call_void(OK, |_| {}).unwrap();
    for n in 1..=2 {
        // Closed unserved: the handshake finds the connection closed.
        let stream = UnixStream::connect(&path).unwrap();
        assert!(matches!(
            InterfaceClient::connect(stream, ClientConfig::default(), DESCRIPTOR),
            Err(Error::ConnectionClosed | Error::Io(_))
        ));
        assert_eq!(refused.recv_timeout(Duration::from_secs(10)).unwrap(), n);
    }
    // The sessions served are not disturbed by the refusals.
    first.call_void(OK, |_| {}).unwrap();
    second.call_void(OK, |_| {}).unwrap();
}
