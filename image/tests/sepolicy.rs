//! The compiled policy queried with setools' `sesearch` (an oracle we did not write): the rules
//! that make the payload's confinement, and the ones only one domain may hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use image::sepolicy;

fn policy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = sepolicy::compile(sepolicy::POLICY_CIL, &dir.path().join("work")).unwrap();
    let path = dir.path().join("policy");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// `sesearch -A ARGS POLICY`, one rule per line.
fn rules(policy: &std::path::Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("sesearch")
        .arg("-A")
        .args(args)
        .arg(policy)
        .output()
        .expect("sesearch (package setools, installed by `make setup`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_payload_holds_none_of_the_rules_its_confinement_forbids() {
    let (_dir, policy) = policy();
    for (class, perm) in [
        ("vsock_socket", "connect"),
        ("blk_file", "read"),
        ("blk_file", "write"),
        ("capability", "sys_admin"),
        ("capability", "sys_module"),
        ("capability2", "bpf"),
        ("system", "module_load"),
        ("security", "setenforce"),
        ("security", "load_policy"),
        ("process", "ptrace"),
        ("process", "dyntransition"),
        ("bpf", "prog_load"),
        ("perf_event", "open"),
        ("chr_file", "write"),
        ("file", "write"),
    ] {
        let found: Vec<String> = rules(&policy, &["-s", "payload", "-c", class, "-p", perm])
            .into_iter()
            // Its own files and pipes, its storage, and the public devices are the exceptions.
            .filter(|r| {
                !(r.contains(" payload:")
                    || r.contains("encryptedstore_file:")
                    || r.contains("payload_device:chr_file"))
            })
            .collect();
        assert!(found.is_empty(), "payload may {perm} {class}: {found:?}");
    }
    // It reaches other domains only through the sockets of its services.
    let to_others: Vec<String> = rules(&policy, &["-s", "payload", "-t", "microdroid_manager"]);
    assert!(!to_others.is_empty());
    for rule in &to_others {
        assert!(
            rule.contains(":fd use")
                || rule.contains(":fifo_file")
                || rule.contains(":unix_stream_socket connectto"),
            "{rule}"
        );
    }
}

#[test]
fn the_instance_disk_is_microdroid_manager_s_and_the_policy_is_init_s() {
    let (_dir, policy) = policy();
    let readers = rules(
        &policy,
        &["-t", "vm_instance_device", "-c", "blk_file", "-p", "read"],
    );
    assert_eq!(readers.len(), 1, "{readers:?}");
    assert!(
        readers[0].starts_with("allow microdroid_manager vm_instance_device:blk_file"),
        "{readers:?}"
    );
    for perm in ["setenforce", "load_policy"] {
        let holders = rules(&policy, &["-c", "security", "-p", perm]);
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert!(
            holders[0].starts_with("allow init selinuxfs:security"),
            "{holders:?}"
        );
    }
}

#[test]
fn every_service_domain_has_its_entrypoint() {
    let (_dir, policy) = policy();
    for (domain, exec) in [
        ("microdroid_manager", "microdroid_manager_exec"),
        ("zipfuse", "zipfuse_exec"),
        ("apexd", "apexd_exec"),
        ("logd", "logd_exec"),
        ("adbd", "adbd_exec"),
        ("shell", "shell_exec"),
    ] {
        let found = rules(
            &policy,
            &["-s", domain, "-t", exec, "-c", "file", "-p", "entrypoint"],
        );
        assert_eq!(found.len(), 1, "{domain}: {found:?}");
    }
}
