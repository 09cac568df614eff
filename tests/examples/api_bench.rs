//! `make bench` (scripts/bench/api.sh): the VirtualizationService path. In one run:
//! - time from `createVm` to the payload's `onPayloadReady` through vmclient and virtmgr,
//!   against `vmctl run-app`'s in-process engine to `notifyPayloadReady` (same image, same APK,
//!   alternating, 3 runs each, medians);
//! - host ↔ payload RPC through `connectVsock` (`VmInstance::connect_service`) against a plain
//!   vsock stream echo of the same VM (also through `connectVsock`): small-call round trips/s,
//!   p50/p99 latency, 64 KiB echo throughput, and the ratios.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use boot_tests::{build_image, workspace_root, ImageChanges, TestSigner};
use hello_payload::HelloProxy;
use host_tools::app::AppPayload;
use vmclient::aidl::{
    CpuTopology, DebugLevel, Payload, VirtualMachineAppConfig, VirtualMachineConfig,
    INSTANCE_ID_SIZE,
};
use vmclient::{VirtmgrOptions, VirtualizationService, VmInstance};

const PORT: u32 = 5678;
const RUNS: usize = 3;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
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
    let body_mib_s = (2 * BODY * BODIES) as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();
    Ok(Figures {
        round_trips_per_s,
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        body_mib_s,
    })
}

fn app_config(apk: &Path, idsig: &Path, instance: &Path) -> Result<VirtualMachineConfig> {
    if !instance.exists() {
        instance::create_instance_file(instance, 10 << 20)?;
    }
    Ok(VirtualMachineConfig::AppConfig(Box::new(
        VirtualMachineAppConfig {
            name: "bench".into(),
            instance_id: [0; INSTANCE_ID_SIZE],
            apk: std::fs::File::open(apk)?.into(),
            idsig: std::fs::File::open(idsig)?.into(),
            extra_idsigs: vec![],
            instance_image: std::fs::File::options()
                .read(true)
                .write(true)
                .open(instance)?
                .into(),
            encrypted_storage_image: None,
            payload: Payload::ConfigPath("assets/vm_config.json".into()),
            os_name: "microdroid".into(),
            debug_level: DebugLevel::FULL,
            protected_vm: false,
            memory_mib: 0,
            cpu_topology: CpuTopology::ONE_CPU,
            custom_config: None,
            huge_pages: false,
            boost_uclamp: false,
        },
    )))
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
    let options = VirtmgrOptions {
        program: Some(workspace_root().join("target/release/virtmgr")),
        args: vec![
            "--os".into(),
            dir.join(image::MANIFEST_NAME).into(),
            "--accel".into(),
            "tcg".into(),
            "--device-secret".into(),
            dir.join("device_secret").into(),
        ],
    };
    let service = VirtualizationService::new_with(&options).context("starting virtmgr")?;

    let mut api_ready = Vec::new();
    let mut vmctl_ready = Vec::new();
    let mut last_vm = None;
    for run in 0..RUNS {
        // The in-process engine, as `vmctl run-app` runs it.
        let mut config = host_tools::vm::VmConfig::new(&dir.join(image::MANIFEST_NAME));
        config.device_secret = dir.join("device_secret");
        config.console_log = Some(dir.join("console.log"));
        config.timeout = Duration::from_secs(300);
        config.app = Some(AppPayload::from_config_path(
            apk.clone(),
            idsig.clone(),
            "assets/vm_config.json",
        ));
        config.instance = Some(dir.join(format!("vmctl-{run}.img")));
        let started = Instant::now();
        let (_, ready) = boot_tests::run_with_ready_payload(&config, move |uds| {
            let at = started.elapsed();
            // Ask the payload to quit, so the VM ends.
            if let Ok(stream) = host_tools::vsock::connect(&uds, PORT, Duration::from_secs(10)) {
                if let Ok(client) = hello_payload::HelloClient::connect(stream) {
                    let _ = client.quit();
                }
            }
            at
        })?;
        vmctl_ready.push(
            ready
                .context("vmctl run: the payload never became ready")?
                .as_secs_f64(),
        );

        // Through vmclient and virtmgr.
        let config = app_config(&apk, &idsig, &dir.join(format!("api-{run}.img")))?;
        let started = Instant::now();
        let vm = VmInstance::create(&service, &config, None, None, None, None)?;
        vm.start()?;
        vm.wait_until_ready(Duration::from_secs(120))
            .context("the payload never became ready")?;
        api_ready.push(started.elapsed().as_secs_f64());
        if let Some(previous) = last_vm.replace(vm) {
            drop(previous);
        }
    }
    let vm = last_vm.context("no VM")?;
    let mut echo = UnixStream::from(vm.connect_vsock(PORT + 1)?);
    let plain = measure(|data| {
        echo.write_all(data)?;
        let mut back = vec![0u8; data.len()];
        echo.read_exact(&mut back)?;
        Ok(back.len())
    })?;
    let (_session, root) = vm.connect_service(PORT)?;
    let hello = HelloProxy::from_binder(root)?;
    let rpc = measure(|data| Ok(hello.echo(data)?.len()))?;
    hello.quit()?;

    println!("createVm -> payload ready, TCG, medians of {RUNS} alternating runs:");
    let (api, vmctl) = (median(api_ready), median(vmctl_ready));
    println!("  vmclient + virtmgr: {api:.3} s   vmctl run-app (in-process): {vmctl:.3} s   ratio {:.2}x", api / vmctl);
    println!("host -> payload through connectVsock, one VM; {SMALL_CALLS} small calls, {BODIES} x {} KiB echoes:", BODY / 1024);
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
