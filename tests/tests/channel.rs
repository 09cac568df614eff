//! The host ↔ payload channel: the payload serves a binder object on a vsock port
//! (`AVmPayload_runVsockRpcServer`), the host connects through vhost-device-vsock (what
//! `IVirtualMachine.connectVsock` returns) and opens an RPC binder session on it. One test in
//! this binary, so that its process-wide fd and thread counts are its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use boot_tests::{build_image, console_text, ImageChanges, TestSigner};
use hello_payload::HelloClient;
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;
use host_tools::vm::VmConfig;
use host_tools::vsock::VsockConnectError;

const TIMEOUT: Duration = Duration::from_secs(120);
const PORT: u32 = 5678;

fn config(image: &Path, args: &[&str]) -> VmConfig {
    let task = serde_json::json!({
        "task": {"type": "microdroid_launcher", "command": "hello_payload", "args": args}
    });
    let (apk, idsig) = boot_tests::demo_apk(
        image,
        "app",
        &task.to_string(),
        "com.example.channel",
        1,
        TestSigner::Rsa,
    );
    let mut config = boot_tests::vm_config(image, TIMEOUT);
    config.app = Some(AppPayload::from_config_path(
        apk,
        idsig,
        "assets/vm_config.json",
    ));
    config.instance = Some(image.join("instance.img"));
    config
}

fn count_entries(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// What the host side of the test saw.
#[derive(Debug)]
struct Exchange {
    greeting: String,
    echoed_64k: bool,
    too_big: String,
    unserved_port: String,
    calls: usize,
    fds: (usize, usize),
    threads: (usize, usize),
}

fn talk(uds: PathBuf) -> Result<Exchange, String> {
    let connect = |port| host_tools::vsock::connect(&uds, port, Duration::from_secs(10));
    let stream = connect(PORT).map_err(|e| format!("{e}"))?;
    let client = HelloClient::connect(stream).map_err(|e| format!("session: {e}"))?;
    let greeting = client
        .greet("Microdroid")
        .map_err(|e| format!("greet: {e}"))?;
    let body: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let echoed_64k = client.echo(&body).map_err(|e| format!("echo: {e}"))? == body;
    // AOSP's RPC binder limits a command to 100 KB (protocol v1): a 1 MiB body is refused with
    // an error, and the session survives it.
    let too_big = match client.echo(&vec![1u8; 1 << 20]) {
        Ok(_) => return Err("a 1 MiB body went through".into()),
        Err(e) => e.to_string(),
    };
    let unserved_port = match connect(PORT + 100) {
        Err(e @ VsockConnectError::Refused(_)) => e.to_string(),
        other => return Err(format!("unserved port: {other:?}")),
    };
    let fds_before = count_entries("/proc/self/fd");
    let threads_before = count_entries("/proc/self/task");
    let mut calls = 0;
    for i in 0..1000 {
        let name = format!("caller {i}");
        let answer = client.greet(&name).map_err(|e| format!("call {i}: {e}"))?;
        if !answer.starts_with(&format!("Hello, {name}!")) {
            return Err(format!("call {i}: {answer}"));
        }
        calls += 1;
    }
    let fds = (fds_before, count_entries("/proc/self/fd"));
    let threads = (threads_before, count_entries("/proc/self/task"));
    client.quit().map_err(|e| format!("quit: {e}"))?;
    let _ = client.close();
    Ok(Exchange {
        greeting,
        echoed_64k,
        too_big,
        unserved_port,
        calls,
        fds,
        threads,
    })
}

#[test]
fn host_calls_the_payloads_binder_service_over_vsock() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let config = config(image.path(), &["--serve", &PORT.to_string()]);
    let (result, exchange) = boot_tests::run_with_ready_payload(&config, talk).unwrap();
    let console = console_text(&result);
    let exchange = exchange
        .unwrap_or_else(|| panic!("the host never talked to the payload:\n{console}"))
        .unwrap_or_else(|e| panic!("{e}\n{console}"));
    println!("{exchange:?}");
    assert_eq!(
        exchange.greeting,
        format!("Hello, Microdroid! (from the VM, CID {})", result.cid)
    );
    assert!(exchange.echoed_64k);
    assert!(
        exchange.too_big.contains("too large") || exchange.too_big.contains("100000"),
        "{}",
        exchange.too_big
    );
    assert_eq!(
        exchange.unserved_port,
        format!(
            "the VM does not serve vsock port {} (the connection was refused)",
            PORT + 100
        )
    );
    assert_eq!(exchange.calls, 1000);
    assert_eq!(exchange.fds.0, exchange.fds.1, "file descriptors leaked");
    assert_eq!(exchange.threads.0, exchange.threads.1, "threads leaked");
    // quit() ended the payload cleanly.
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console.contains(&format!("payload: serving IHello on vsock port {PORT}")),
        "{console}"
    );
}
