//! `make bench` (scripts/bench/memory.sh): the guest's own memory. The resident set of PID 1,
//! microdroid_manager and zipfuse when the demo payload starts (microdroid_manager logs it),
//! and the smallest `--memory-mib` at which the demo app still runs to its exit code 0.

use std::time::Duration;

use anyhow::{Context, Result};
use boot_tests::{build_image, console_text, ImageChanges, TestSigner};
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;

/// Tried from the default down to the host's minimum (`host_tools::vm::MIN_MEMORY_MIB`, below
/// which a Microdroid VM is refused); the first that fails ends the search.
const SIZES_MIB: &[u32] = &[256, 192, 128, 112, 96, 88, 80];

fn main() -> Result<()> {
    let image = build_image(&ImageChanges::default())?;
    let dir = image.path();
    let (apk, idsig) = boot_tests::demo_apk(
        dir,
        "demo",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#,
        "com.example.memory",
        1,
        TestSigner::Rsa,
    );
    let run = |memory_mib: u32| -> Result<(VmOutcome, String)> {
        let mut config = host_tools::vm::VmConfig::new(&dir.join(image::MANIFEST_NAME));
        config.device_secret = dir.join("device_secret");
        config.console_log = Some(dir.join(format!("console-{memory_mib}.log")));
        config.memory_mib = memory_mib;
        config.timeout = Duration::from_secs(120);
        config.app = Some(AppPayload::from_config_path(
            apk.clone(),
            idsig.clone(),
            "assets/vm_config.json",
        ));
        config.instance = Some(dir.join(format!("instance-{memory_mib}.img")));
        let result = host_tools::vm::run(&config)?;
        Ok((result.outcome.clone(), console_text(&result)))
    };
    let (outcome, console) = run(256)?;
    let rss = console
        .lines()
        .find_map(|l| {
            l.split("microdroid_manager: ")
                .nth(1)
                .filter(|r| r.starts_with("userspace RSS"))
        })
        .with_context(|| format!("no RSS line ({outcome}):\n{console}"))?;
    println!("at 256 MiB: {rss}");
    let mut smallest = None;
    for &mib in SIZES_MIB {
        let (outcome, _) = run(mib)?;
        let ok = outcome == VmOutcome::PayloadFinished(0);
        println!("--memory-mib {mib:>3}: {outcome}");
        if !ok {
            break;
        }
        smallest = Some(mib);
    }
    match smallest {
        Some(mib) => println!("smallest --memory-mib at which the demo runs: {mib}"),
        None => println!("the demo did not run at any size tried"),
    }
    let below = host_tools::vm::MIN_MEMORY_MIB - 1;
    match run(below) {
        Err(e) => println!("--memory-mib {below:>3}: refused by the host ({e})"),
        Ok((outcome, _)) => println!("--memory-mib {below:>3}: {outcome} (not refused?)"),
    }
    Ok(())
}
