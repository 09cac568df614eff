//! `make bench` (scripts/bench/launcher.sh): what loading a payload library costs. In one run,
//! alternating, 3 boots each: from microdroid_manager's "starting payload" to the payload's
//! first line, for a static executable payload (hello_payload) and for an `AVmPayload_main`
//! library (C, through the system loader and microdroid_launcher); medians and the
//! difference (the launcher's overhead). And the system partition's bytes the payload runtime
//! adds (launcher, libvm_payload.so, libbinder_ndk.so and the libraries they need beyond those
//! mke2fs already brings).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use boot_tests::{
    build_image, cc_shared, guest_dyn_dir, sign_tree, write_manifest, ImageChanges, TestSigner,
};
use host_tools::app::AppPayload;

const RUNS: usize = 3;

/// Seconds between two console lines (kernel timestamps).
fn stamp(console: &str, needle: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(needle))?;
    let inside = line.strip_prefix('[')?.split(']').next()?;
    inside.trim().parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let image = build_image(&ImageChanges::default())?;
    let dir = image.path();
    let (static_apk, static_idsig) = boot_tests::demo_apk(
        dir,
        "static",
        r#"{"task": {"type": "microdroid_launcher", "command": "hello_payload"}}"#,
        "com.example.static",
        1,
        TestSigner::Rsa,
    );
    let tree = dir.join("library.tree");
    std::fs::create_dir_all(tree.join("assets"))?;
    std::fs::create_dir_all(tree.join("lib/x86_64"))?;
    std::fs::write(
        tree.join("assets/vm_config.json"),
        r#"{"task": {"type": "microdroid_launcher", "command": "libentry.so"}}"#,
    )?;
    write_manifest(&tree, "com.example.library", 1);
    cc_shared(
        &tree.join("lib/x86_64/libentry.so"),
        "#include <stdio.h>\n#include <vm_payload.h>\n\
         int AVmPayload_main(void) { fprintf(stderr, \"entered AVmPayload_main\\n\"); return 0; }\n",
        &["vm_payload"],
    );
    let (lib_apk, lib_idsig) = sign_tree(&tree, &dir.join("library.apk"), TestSigner::Rsa);
    let mut static_times = Vec::new();
    let mut library_times = Vec::new();
    for run in 0..RUNS {
        for (label, apk, idsig, first_line, out) in [
            (
                "static",
                &static_apk,
                &static_idsig,
                "payload: Hello from Microdroid",
                &mut static_times,
            ),
            (
                "library",
                &lib_apk,
                &lib_idsig,
                "payload: entered AVmPayload_main",
                &mut library_times,
            ),
        ] {
            let mut config = boot_tests::vm_config(dir, Duration::from_secs(120));
            config.app = Some(AppPayload::from_config_path(
                apk.clone(),
                idsig.clone(),
                "assets/vm_config.json",
            ));
            config.instance = Some(dir.join(format!("instance-{run}-{label}.img")));
            let result = host_tools::vm::run(&config)?;
            let console = String::from_utf8_lossy(&result.console);
            let start =
                stamp(&console, "microdroid_manager: starting payload").with_context(|| {
                    format!(
                        "no 'starting payload' line ({}):\n{console}",
                        result.outcome
                    )
                })?;
            let first =
                stamp(&console, first_line).with_context(|| format!("no {first_line:?}"))?;
            out.push((first - start) * 1000.0);
        }
    }
    let (s, l) = (median(static_times), median(library_times));
    println!(
        "payload start -> first line of the payload, TCG, medians of {RUNS} alternating boots:"
    );
    println!("  static executable: {s:.1} ms   AVmPayload_main library: {l:.1} ms   launcher overhead: {:.1} ms", l - s);

    // Bytes the payload runtime adds to the system partition.
    let runtime: Vec<(PathBuf, String)> = image::PAYLOAD_RUNTIME_PROGRAMS
        .iter()
        .map(|n| (guest_dyn_dir().join(n), format!("bin/{n}")))
        .chain(
            image::PAYLOAD_RUNTIME_LIBRARIES
                .iter()
                .map(|n| (guest_dyn_dir().join(n), format!("lib64/{n}"))),
        )
        .collect();
    let base = image::elfdeps::resolve(
        &[(PathBuf::from("/sbin/mke2fs"), "mke2fs".into())],
        image::elfdeps::DEFAULT_LIBRARY_DIRS,
    )?;
    let with = image::elfdeps::resolve_roots(&runtime, image::elfdeps::DEFAULT_LIBRARY_DIRS)?;
    let mut added = 0u64;
    for (dest, source) in &with {
        if !base.iter().any(|(d, _)| d == dest) {
            let size = std::fs::metadata(source)?.len();
            println!("  + {dest} ({} KiB)", size / 1024);
            added += size;
        }
    }
    println!(
        "payload runtime adds {:.2} MiB to the system partition",
        added as f64 / (1 << 20) as f64
    );
    Ok(())
}
