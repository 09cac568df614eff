//! `vmctl info`: the kernel command line it prints is the one VMs get (`make run` keeps its
//! instance per command line by hashing that line, so it must be there and exact).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn vmctl_info(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vmctl"))
        .arg("info")
        .args(args)
        .env("VMCTL_STATE_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn info_prints_the_kernel_command_line_vms_get() {
    let want = host_tools::qemu::kernel_cmdline(true, &[]);
    let text = vmctl_info(&[]);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kernel cmdline:"))
        .collect();
    assert_eq!(lines, [format!("     {want}")], "{text}");
    let json: serde_json::Value = serde_json::from_str(&vmctl_info(&["--json"])).unwrap();
    assert_eq!(json["kernel_cmdline"], want.as_str());
    assert!(want.contains(host_tools::qemu::CRYPTO_SELF_TESTS_OFF));
}
