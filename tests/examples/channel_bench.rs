//! `make bench` (scripts/bench/channel.sh): the host ↔ payload channel. In one VM the demo
//! payload serves `IHello` over RPC binder on a vsock port and a plain stream echo on the next
//! port; the host measures, through vhost-device-vsock, small-call round trips (p50/p99) and
//! the throughput of 64 KiB bodies (the largest that fit AOSP's 100 KB RPC command limit with
//! room to spare), for both, and prints the RPC/plain ratios.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use boot_tests::{build_image, console_text, ImageChanges, TestSigner};
use hello_payload::HelloClient;
use host_tools::app::{AppPayload, PayloadSpec};

const PORT: u32 = 5678;
const SMALL_CALLS: usize = 5000;
const BODY: usize = 64 * 1024;
const BODIES: usize = 400;

struct Figures {
    round_trips_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    body_mib_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn measure(mut call: impl FnMut(&[u8]) -> Result<usize>) -> Result<Figures> {
    let mut latencies = Vec::with_capacity(SMALL_CALLS);
    let start = Instant::now();
    for _ in 0..SMALL_CALLS {
        let t = Instant::now();
        call(b"ping")?;
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let round_trips_per_s = SMALL_CALLS as f64 / start.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let body = vec![0x5au8; BODY];
    let start = Instant::now();
    for _ in 0..BODIES {
        if call(&body)? != BODY {
            bail!("short echo");
        }
    }
    // Both directions carry the body.
    let body_mib_s = (2 * BODY * BODIES) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();
    Ok(Figures {
        round_trips_per_s,
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        body_mib_s,
    })
}

fn bench(uds: &Path) -> Result<(Figures, Figures)> {
    let connect = |port| host_tools::vsock::connect(uds, port, Duration::from_secs(10));
    let mut echo = connect(PORT + 1)?;
    let plain = measure(|data| {
        echo.write_all(data)?;
        let mut back = vec![0u8; data.len()];
        echo.read_exact(&mut back)?;
        Ok(back.len())
    })?;
    let client = HelloClient::connect(connect(PORT)?)?;
    let rpc = measure(|data| Ok(client.echo(data)?.len()))?;
    client.quit()?;
    Ok((rpc, plain))
}

fn main() -> Result<()> {
    let image = build_image(&ImageChanges::default())?;
    let dir = image.path();
    let task = serde_json::json!({
        "task": {"type": "microdroid_launcher", "command": "hello_payload", "args": ["--serve", PORT.to_string()]}
    });
    let (apk, idsig) = boot_tests::demo_apk(
        dir,
        "bench",
        &task.to_string(),
        "com.example.bench",
        1,
        TestSigner::Rsa,
    );
    let mut config = host_tools::vm::VmConfig::new(&dir.join(image::MANIFEST_NAME));
    config.device_secret = dir.join("device_secret");
    config.console_log = Some(dir.join("console.log"));
    config.timeout = Duration::from_secs(300);
    config.app = Some(AppPayload {
        apk,
        idsig,
        payload: PayloadSpec::ConfigPath("assets/vm_config.json".into()),
        extra_apks: vec![],
        apexes: vec![],
    });
    config.instance = Some(dir.join("instance.img"));
    let (result, figures) = boot_tests::run_with_ready_payload(&config, |uds| {
        bench(&uds).map_err(|e| format!("{e:#}"))
    })?;
    let (rpc, plain) = figures
        .context("the payload never became ready")?
        .map_err(|e| anyhow::anyhow!("{e}\n{}", console_text(&result)))?;
    println!("host -> payload over vsock (vhost-device-vsock), one VM, TCG; {SMALL_CALLS} small calls, {BODIES} x {} KiB echoes:", BODY / 1024);
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "metric", "RPC binder", "plain stream", "ratio"
    );
    let row =
        |name: &str, a: f64, b: f64| println!("{name:<28} {a:>14.1} {b:>14.1} {:>7.2}x", a / b);
    row(
        "round trips/s",
        rpc.round_trips_per_s,
        plain.round_trips_per_s,
    );
    row("p50 latency (us)", rpc.p50_us, plain.p50_us);
    row("p99 latency (us)", rpc.p99_us, plain.p99_us);
    row("64 KiB echo (MiB/s)", rpc.body_mib_s, plain.body_mib_s);
    Ok(())
}
