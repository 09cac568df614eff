//! Host-only RPC benchmark: round trips per second and latency percentiles of
//! `notifyPayloadFinished` calls over a Unix socket pair (client and server threads).
//!
//! `cargo run --release -p vm_service --example rpc_bench -- [calls]` prints one JSON line.

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpcbinder::{RpcServer, Status};
use vm_service::{
    ErrorCode, VirtualMachineService, VirtualMachineServiceBinder, VirtualMachineServiceClient,
};

struct Sink;

impl VirtualMachineService for Sink {
    fn notify_payload_started(&self) -> Result<(), Status> {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let (a, b) = UnixStream::pair()?;
    let server = RpcServer::new(Arc::new(VirtualMachineServiceBinder(Sink)));
    let handle = std::thread::spawn(move || server.serve_connection(b));
    let client = VirtualMachineServiceClient::connect(a)?;
    for _ in 0..1000 {
        client.notify_payload_finished(0)?;
    }
    let mut lat = Vec::with_capacity(calls);
    let start = Instant::now();
    for i in 0..calls {
        let t = Instant::now();
        client.notify_payload_finished(i as i32)?;
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    client.close()?;
    let _ = handle.join();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(Duration::ZERO)
    };
    println!(
        "{{\"bench\":\"rpc_roundtrip_unix\",\"calls\":{calls},\"round_trips_per_sec\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
        calls as f64 / total.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        pct(1.0).as_secs_f64() * 1e6,
    );
    Ok(())
}
