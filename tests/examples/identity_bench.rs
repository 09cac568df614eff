//! `make bench` (scripts/bench/identity.sh): what VM identity, the instance image and the
//! encrypted storage cost.
//!
//! 1. Host: measuring the boot and deriving the handover (`host_tools::identity`).
//! 2. Guest, from microdroid_manager's console stamps, for first boots (fresh instance and
//!    storage: record written, ext4 made) and later boots (record read and matched, storage
//!    mounted): taking the DICE handover, reading the instance, matching/recording the payload,
//!    opening the encrypted storage; and when the payload starts.
//! 3. `/mnt/encryptedstore` throughput against the same ext4 straight on the same virtio disk,
//!    in one VM (an image whose init runs `storage_bench`, as root, instead of
//!    microdroid_manager): sequential write and read, random 4 KiB reads.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use boot_tests::{build_image, console_text, workspace_root, ImageChanges};
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;

const RUNS: usize = 3;
const STORAGE_BENCH_RC: &str = "service storage_bench /system/bin/storage_bench\n    oneshot\n    console\n    poweroff_on_exit\n";

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The uptime stamp of the first console line containing `marker`.
fn stamp(console: &str, marker: &str) -> Result<f64> {
    let line = console
        .lines()
        .find(|l| l.contains(marker))
        .with_context(|| format!("no console line with {marker:?}"))?;
    let inner = line
        .trim_start()
        .strip_prefix('[')
        .and_then(|l| l.split(']').next())
        .with_context(|| format!("no stamp on {line:?}"))?;
    Ok(inner.trim().parse()?)
}

fn demo_apk(dir: &Path) -> (PathBuf, PathBuf) {
    boot_tests::demo_apk(
        dir,
        "demo",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#,
        "com.example.bench",
        1,
        boot_tests::TestSigner::Rsa,
    )
}

/// Guest step durations (ms) of one boot, and the payload's start (s of uptime).
fn steps(console: &str) -> Result<(Vec<f64>, f64)> {
    let ms = |a: f64, b: f64| (b - a) * 1000.0;
    let start = stamp(console, "microdroid_manager: starting")?;
    let handover = stamp(console, "DICE handover read")?;
    let instance = stamp(console, "instance image: ")?;
    let apk = stamp(console, "APK is package")?;
    let record = console
        .lines()
        .find(|l| l.contains("payload recorded") || l.contains("matches its record"))
        .map(|l| stamp(l, "instance image"))
        .context("no record line")??;
    let apexd = stamp(console, "APEX(es) active")?;
    let storage = stamp(console, "encrypted storage")?;
    let payload = stamp(console, "starting payload")?;
    Ok((
        vec![
            ms(start, handover),
            ms(handover, instance),
            ms(apk, record),
            ms(apexd, storage),
        ],
        payload,
    ))
}

fn boot_time(dir: &Path) -> Result<()> {
    let image = workspace_root().join("build/image");
    let os = image.join(image::MANIFEST_NAME);
    if !os.exists() {
        bail!("{} missing: run `make image`", os.display());
    }
    // Host: measure + handover.
    let secret = dir.join("device_secret");
    let cmdline = host_tools::qemu::kernel_cmdline(true, &[]);
    let mut host_ms = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let uds = host_tools::identity::load_or_create_device_secret(&secret)?;
        let m = host_tools::identity::measure(
            &image.join("vmlinuz"),
            &image.join("initramfs.img"),
            &cmdline,
            &image.join("vbmeta.img"),
        )?;
        host_tools::identity::make_handover(&uds, &m, true, None)?;
        host_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "host: measure kernel+initramfs+cmdline+vbmeta and derive the handover: {:.1} ms (median of 5)",
        median(&mut host_ms)
    );

    let apk = demo_apk(dir);
    let names = [
        "take DICE handover (fw_cfg read)",
        "read instance record",
        "match/record payload",
        "open encrypted storage",
    ];
    let mut table: Vec<(String, Vec<Vec<f64>>, Vec<f64>)> = Vec::new();
    for (label, fresh) in [("first boot", true), ("later boot", false)] {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut starts = Vec::new();
        for i in 0..RUNS {
            let instance = dir.join(format!("instance-{i}.img"));
            let storage = dir.join(format!("storage-{i}.img"));
            if fresh {
                let _ = fs::remove_file(&instance);
                let _ = fs::remove_file(&storage);
            }
            let mut config = host_tools::vm::VmConfig::new(&os);
            config.device_secret = secret.clone();
            config.console_log = Some(dir.join("console.log"));
            config.app = Some(AppPayload::from_config_path(
                apk.0.clone(),
                apk.1.clone(),
                "assets/vm_config.json",
            ));
            config.instance = Some(instance);
            config.storage = Some((storage, 8 << 20));
            let result = host_tools::vm::run(&config)?;
            let console = console_text(&result);
            if result.outcome != VmOutcome::PayloadFinished(0) {
                bail!("{label} {i}: {}\n{console}", result.outcome);
            }
            let (durations, payload) = steps(&console)?;
            for (sample, d) in samples.iter_mut().zip(durations) {
                sample.push(d);
            }
            starts.push(payload);
        }
        table.push((label.to_owned(), samples, starts));
    }
    println!("\nguest, microdroid_manager console stamps (median of {RUNS} runs, ms):");
    println!("{:<40} {:>12} {:>12}", "step", "first boot", "later boot");
    let mut totals = [0.0f64; 2];
    for (s, name) in names.iter().enumerate() {
        let mut first = table[0].1[s].clone();
        let mut later = table[1].1[s].clone();
        let (f, l) = (median(&mut first), median(&mut later));
        totals[0] += f;
        totals[1] += l;
        println!("{name:<40} {f:>12.1} {l:>12.1}");
    }
    println!(
        "{:<40} {:>12.1} {:>12.1}",
        "total added by identity + storage", totals[0], totals[1]
    );
    let (mut a, mut b) = (table[0].2.clone(), table[1].2.clone());
    println!(
        "{:<40} {:>12.3} {:>12.3}",
        "payload starts at uptime (s)",
        median(&mut a),
        median(&mut b)
    );
    Ok(())
}

fn storage_throughput(dir: &Path) -> Result<()> {
    let image = build_image(&ImageChanges {
        init_rc: Some(STORAGE_BENCH_RC),
        extra_binaries: &["storage_bench"],
        ..ImageChanges::default()
    })?;
    let mut config = host_tools::vm::VmConfig::new(&image.path().join(image::MANIFEST_NAME));
    config.device_secret = dir.join("device_secret");
    config.console_log = Some(dir.join("storage-bench.log"));
    config.boot_timeout = None;
    config.timeout = Duration::from_secs(600);
    config.instance = Some(dir.join("bench-instance.img"));
    config.storage = Some((dir.join("bench-storage.img"), 256 << 20));
    let result = host_tools::vm::run(&config)?;
    let console = console_text(&result);
    if !console.contains("BENCH done") {
        bail!(
            "the storage benchmark did not finish ({}):\n{console}",
            result.outcome
        );
    }
    let mut values: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for line in console.lines() {
        let Some(rest) = line.split("BENCH ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(kind) = words.next() else { continue };
        for word in words {
            if let Some((key, value)) = word.split_once('=') {
                if let Ok(v) = value.parse::<f64>() {
                    if key != "round" {
                        values
                            .entry((kind.to_owned(), key.to_owned()))
                            .or_default()
                            .push(v);
                    }
                }
            }
        }
    }
    println!("\n/mnt/encryptedstore (dm-crypt aes-xts-plain64 + ext4) vs the same ext4 on the plain virtio disk, one VM, best of 2 rounds:");
    println!(
        "{:<16} {:>10} {:>10} {:>7}",
        "metric", "plain", "encrypted", "ratio"
    );
    for metric in ["seq_write_mibs", "seq_read_mibs", "rand_read_ops"] {
        let best = |kind: &str| {
            values
                .get(&(kind.to_owned(), metric.to_owned()))
                .map(|v| v.iter().copied().fold(f64::MIN, f64::max))
                .unwrap_or(f64::NAN)
        };
        let (plain, xts) = (best("plain"), best("xts"));
        println!(
            "{metric:<16} {plain:>10.1} {xts:>10.1} {:>6.2}x",
            xts / plain
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("identity-bench-")
        .tempdir()?;
    boot_time(dir.path())?;
    storage_throughput(dir.path())?;
    Ok(())
}
