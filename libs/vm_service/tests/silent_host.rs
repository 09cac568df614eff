//! Fault matrix row 49: a host service that accepts and then never answers. The guest's client
//! has a read timeout on its stream (microdroid_manager uses `RPC_TIMEOUT`, 10 s), so the
//! session setup, or a call, fails within it instead of hanging the guest: microdroid_manager
//! then reports its death reason on ttyS1 and powers off.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpcbinder::{RpcServer, Status};
use vm_service::{ClientError, VirtualMachineServiceClient};
use vm_service::{ErrorCode, VirtualMachineService, VirtualMachineServiceBinder};

const TIMEOUT: Duration = Duration::from_millis(300);

fn client_stream(stream: UnixStream) -> UnixStream {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

fn is_timeout(err: &ClientError) -> bool {
    let text = err.to_string();
    text.contains("Resource temporarily unavailable") || text.contains("timed out")
}

#[test]
fn a_host_that_accepts_and_never_answers_the_handshake_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent");
    let listener = UnixListener::bind(&path).unwrap();
    let stream = client_stream(UnixStream::connect(&path).unwrap());
    let (_accepted, _) = listener.accept().unwrap();
    let started = Instant::now();
    let err = match VirtualMachineServiceClient::connect(stream) {
        Err(e) => e,
        Ok(_) => panic!("a silent host was taken for a service"),
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(is_timeout(&err), "{err}");
}

/// Answers the session setup, then never answers notifyPayloadStarted (until released).
struct StallingService(std::sync::Mutex<mpsc::Receiver<()>>);

impl VirtualMachineService for StallingService {
    fn notify_payload_started(&self) -> Result<(), Status> {
        let _ = self.0.lock().unwrap().recv_timeout(Duration::from_secs(10));
        Ok(())
    }
    fn notify_payload_ready(&self) -> Result<(), Status> {
        Ok(())
    }
    fn notify_payload_finished(&self, _exit_code: i32) -> Result<(), Status> {
        Ok(())
    }
    fn notify_error(&self, _code: ErrorCode, _message: &str) -> Result<(), Status> {
        Ok(())
    }
}

#[test]
fn a_host_that_stops_answering_a_call_times_out() {
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let (release, stalled) = mpsc::channel();
    let server = RpcServer::new(Arc::new(VirtualMachineServiceBinder(StallingService(
        std::sync::Mutex::new(stalled),
    ))));
    let serving = std::thread::spawn(move || server.serve_connection(server_end));
    let client = VirtualMachineServiceClient::connect(client_stream(client_end)).unwrap();
    let started = Instant::now();
    let err = client.notify_payload_started().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(is_timeout(&err), "{err}");
    release.send(()).unwrap();
    drop(client);
    let _ = serving.join();
}
