//! A hostile guest, for the host's limits (docs/security.md, tests/tests/hostile_guest.rs).
//! Init runs it as root instead of microdroid_manager; the kernel command line's
//! `hostile=<mode>` says what it does:
//!
//! - `flood`: writes to the console without pause for 20 s, then 1 MiB lines to the
//!   death-reason port (ttyS1);
//! - `sessions`: opens the host's service session, then 10,000 more connections to it;
//! - `big-message`: opens the session, then sends a 100 MB command;
//! - `stall`: opens the session, then half a command, and waits;
//! - `rejected`: opens the session, then calls notifyPayloadReady 1,000 times.
//!
//! The host must stop it as misbehaving before it is done; if it gets to the end it says so
//! and the VM powers off (the test then fails on the outcome).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rpcbinder::vsock::{get_local_cid, VsockStream};
use rpcbinder::wire::{
    Command, ConnectionHeader, OutgoingConnectionInit, WireHeader, PROTOCOL_VERSION_1,
};

const VMADDR_CID_HOST: u32 = 2;

fn main() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mode = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("hostile="))
        .unwrap_or("none")
        .to_owned();
    println!("hostile_guest: mode {mode}");
    let result = match mode.as_str() {
        "flood" => flood(),
        "sessions" => sessions(),
        "big-message" => big_message(),
        "stall" => stall(),
        "rejected" => rejected(),
        other => Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(()) => println!("hostile_guest: {mode}: the host let it all through"),
        Err(e) => println!("hostile_guest: {mode}: {e}"),
    }
}

fn flood() -> Result<(), String> {
    let mut console = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/ttyS0")
        .map_err(|e| format!("opening the console: {e}"))?;
    let line = format!("{}\n", "flood ".repeat(20));
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < Duration::from_secs(20) {
        for _ in 0..64 {
            let _ = console.write_all(line.as_bytes());
            bytes += line.len() as u64;
        }
    }
    let _ = writeln!(
        console,
        "hostile_guest: wrote {bytes} console bytes in 20 s"
    );
    let mut port = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/ttyS1")
        .map_err(|e| format!("opening ttyS1: {e}"))?;
    let big = format!("{}\n", "x".repeat(1 << 20));
    for _ in 0..64 {
        port.write_all(big.as_bytes())
            .map_err(|e| format!("writing ttyS1: {e}"))?;
    }
    Ok(())
}

/// Connects to the host's IVirtualMachineService port and starts a new session (handshake,
/// session version, outgoing connection init), as microdroid_manager's client would.
fn open_session() -> Result<VsockStream, String> {
    let port = get_local_cid().map_err(|e| format!("reading the CID: {e}"))?;
    let mut s = VsockStream::connect(VMADDR_CID_HOST, port, Some(Duration::from_secs(5)))
        .map_err(|e| format!("connecting: {e}"))?;
    let header = ConnectionHeader {
        version: PROTOCOL_VERSION_1,
        options: 0,
        fd_mode: 0,
        session_id_size: 0,
    };
    s.write_all(&header.encode()).map_err(|e| e.to_string())?;
    let mut response = [0u8; 8];
    s.read_exact(&mut response)
        .map_err(|e| format!("reading the session response: {e}"))?;
    s.write_all(&OutgoingConnectionInit::encode())
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn sessions() -> Result<(), String> {
    let _first = open_session()?;
    let port = get_local_cid().map_err(|e| e.to_string())?;
    let mut connected = 0;
    for _ in 0..10_000 {
        if let Ok(mut s) = VsockStream::connect(VMADDR_CID_HOST, port, Some(Duration::from_secs(5)))
        {
            let _ = s.write_all(
                &ConnectionHeader {
                    version: PROTOCOL_VERSION_1,
                    options: 0,
                    fd_mode: 0,
                    session_id_size: 0,
                }
                .encode(),
            );
            connected += 1;
        }
    }
    println!("hostile_guest: {connected} extra connections made");
    Ok(())
}

fn big_message() -> Result<(), String> {
    let mut s = open_session()?;
    let size: u32 = 100 * 1024 * 1024;
    let header = WireHeader {
        command: Command::Transact,
        body_size: size,
    };
    s.write_all(&header.encode()).map_err(|e| e.to_string())?;
    let chunk = vec![0x41u8; 1 << 20];
    for i in 0..100 {
        if let Err(e) = s.write_all(&chunk) {
            return Err(format!("the host stopped reading after {i} MiB: {e}"));
        }
    }
    Ok(())
}

fn stall() -> Result<(), String> {
    let mut s = open_session()?;
    let header = WireHeader {
        command: Command::Transact,
        body_size: 1024,
    }
    .encode();
    s.write_all(&header[..8]).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn rejected() -> Result<(), String> {
    let client =
        vm_service::VirtualMachineServiceClient::connect_vsock(Some(Duration::from_secs(5)))
            .map_err(|e| format!("connecting: {e}"))?;
    for i in 0..1000 {
        if let Err(e) = client.notify_payload_ready() {
            if i > 1 && !e.to_string().contains("ILLEGAL_STATE") {
                return Err(format!("call {i}: {e}"));
            }
        }
    }
    Ok(())
}
