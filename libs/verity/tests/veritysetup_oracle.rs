//! Oracle: our tree bytes and root digest equal `veritysetup format --no-superblock`
//! (cryptsetup-bin, installed by scripts/setup.sh) on the same data and salt.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

use verity::{from_hex, to_hex, HashTree, Params};

fn veritysetup() -> &'static str {
    for p in [
        "/usr/sbin/veritysetup",
        "/sbin/veritysetup",
        "/usr/bin/veritysetup",
    ] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("veritysetup not found: install cryptsetup-bin (scripts/setup.sh does)");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("verity-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Runs veritysetup format and returns (root hex, hash file bytes).
fn oracle(data: &[u8], salt_hex: &str, dbs: u32, hbs: u32, tag: &str) -> (String, Vec<u8>) {
    let data_path = scratch(&format!("{tag}.data"));
    let hash_path = scratch(&format!("{tag}.hash"));
    std::fs::write(&data_path, data).expect("write data");
    let _ = std::fs::remove_file(&hash_path);
    let out = Command::new(veritysetup())
        .arg("format")
        .arg(&data_path)
        .arg(&hash_path)
        .arg("--no-superblock")
        .arg(format!("--salt={salt_hex}"))
        .arg(format!("--data-block-size={dbs}"))
        .arg(format!("--hash-block-size={hbs}"))
        .output()
        .expect("run veritysetup");
    assert!(
        out.status.success(),
        "veritysetup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|s| s.trim().to_owned())
        .expect("root hash line");
    let tree = std::fs::read(&hash_path).unwrap_or_default();
    (root, tree)
}

fn check(blocks_bytes: usize, salt_hex: &str, dbs: u32, hbs: u32, seed: u64) {
    let tag = format!("{blocks_bytes}-{}-{dbs}-{hbs}-{seed}", salt_hex.len());
    let data = noise(blocks_bytes, seed);
    let params =
        Params::with_block_sizes(dbs, hbs, &from_hex(salt_hex).expect("hex")).expect("params");
    let ours = HashTree::build(&data, &params).expect("build");
    let streamed =
        HashTree::build_from_reader(&mut &data[..], data.len() as u64, &params).expect("stream");
    assert_eq!(ours, streamed);
    let (root, tree) = oracle(&data, salt_hex, dbs, hbs, &tag);
    assert_eq!(ours.root_hex(), root, "root for {tag}");
    assert_eq!(ours.tree().len(), tree.len(), "tree size for {tag}");
    assert!(ours.tree() == tree.as_slice(), "tree bytes for {tag}");
    // And veritysetup accepts our tree.
    let hash_path = scratch(&format!("{tag}.ours"));
    std::fs::write(&hash_path, ours.tree()).expect("write tree");
    if !ours.tree().is_empty() {
        let st = Command::new(veritysetup())
            .arg("verify")
            .arg(scratch(&format!("{tag}.data")))
            .arg(&hash_path)
            .arg(to_hex(ours.root_digest()))
            .arg("--no-superblock")
            .arg(format!("--salt={salt_hex}"))
            .arg(format!("--data-block-size={dbs}"))
            .arg(format!("--hash-block-size={hbs}"))
            .status()
            .expect("run veritysetup verify");
        assert!(
            st.success(),
            "veritysetup verify rejected our tree for {tag}"
        );
    }
    for ext in ["data", "hash", "ours"] {
        let _ = std::fs::remove_file(scratch(&format!("{tag}.{ext}")));
    }
}

#[test]
fn matches_veritysetup_4k() {
    let salts = [
        "-",
        "aabbccdd",
        "0011223344556677889900112233445566778899001122334455667788990011",
    ];
    for (i, blocks) in [1usize, 2, 127, 128, 129, 301, 1000]
        .into_iter()
        .enumerate()
    {
        for salt in salts {
            check(blocks * 4096, salt, 4096, 4096, i as u64 + 1);
        }
    }
}

#[test]
fn matches_veritysetup_long_salt_and_small_blocks() {
    let salt256 = "5a".repeat(256);
    check(50 * 4096, &salt256, 4096, 4096, 7);
    // 512-byte hash blocks: 16 digests per block, so 257 data blocks need 3 levels.
    check(257 * 4096, "01", 4096, 512, 8);
    check(33 * 512, "", 512, 512, 9);
}

#[test]
fn matches_veritysetup_three_levels_4k() {
    // 128*128 + 1 data blocks: three levels at 4 KiB (64 MiB of data).
    check((128 * 128 + 1) * 4096, "aabbccdd", 4096, 4096, 10);
}
