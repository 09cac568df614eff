//! The SELinux policy and file labels (image/sepolicy/, docs/security.md): the CIL source is
//! compiled with Debian's `secilc` into the binary policy that init loads from the verified system
//! partition; the file-context files label the erofs images through mkfs.erofs.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// The policy source.
pub const POLICY_CIL: &str = include_str!("../sepolicy/microdroid.cil");
/// Labels of the system and vendor partitions, paths relative to each partition's root.
pub const SYSTEM_FILE_CONTEXTS: &str = include_str!("../sepolicy/system_file_contexts");
pub const VENDOR_FILE_CONTEXTS: &str = include_str!("../sepolicy/vendor_file_contexts");
/// Where the compiled policy goes on the system partition (init's `selinux::POLICY_PATH`).
pub const POLICY_PATH_IN_SYSTEM: &str = "etc/selinux/microdroid_precompiled_sepolicy";
/// The binary policy version: what Debian 12's kernel (6.1) and secilc 3.4 both support.
pub const POLICY_VERSION: &str = "33";

/// Compiles the policy source with `secilc` in `work` and returns the binary policy.
pub fn compile(source: &str, work: &Path) -> Result<Vec<u8>> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let cil = work.join("microdroid.cil");
    let out = work.join("policy");
    std::fs::write(&cil, source).with_context(|| format!("writing {}", cil.display()))?;
    let output = Command::new("secilc")
        .args(["--mls=true", "-c", POLICY_VERSION, "-f", "/dev/null", "-o"])
        .arg(&out)
        .arg(&cil)
        .output()
        .context("running secilc (package secilc, installed by `make setup`)")?;
    ensure!(
        output.status.success(),
        "secilc rejected the policy: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let policy = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    std::fs::remove_dir_all(work).ok();
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_compiles_and_is_a_selinux_binary_policy() {
        let dir = tempfile::tempdir().unwrap();
        let policy = compile(POLICY_CIL, &dir.path().join("work")).unwrap();
        // The kernel's policydb magic (SELINUX_MAGIC, little-endian) and "SE Linux".
        assert_eq!(&policy[..4], &0xf97c_ff8cu32.to_le_bytes());
        assert_eq!(&policy[8..16], b"SE Linux");
    }

    #[test]
    fn a_bad_policy_is_refused_with_secilc_s_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = compile(
            "(allow nosuchtype self (file (read)))",
            &dir.path().join("w"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("secilc rejected the policy"), "{err}");
    }

    #[test]
    fn every_label_names_a_type_of_the_policy() {
        for contexts in [SYSTEM_FILE_CONTEXTS, VENDOR_FILE_CONTEXTS] {
            for line in contexts
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let context = line.split_whitespace().nth(1).unwrap();
                let ty = context.split(':').nth(2).unwrap();
                assert!(
                    POLICY_CIL.contains(&format!("(type {ty})")),
                    "{line}: type {ty} is not declared in microdroid.cil"
                );
            }
        }
    }
}
