//! Oracle: PyPI `liblp` 1.0.2's `lpunpack` (a Python port of AOSP liblp that checks the
//! geometry, header and table SHA-256s) extracts byte-identical partitions from our super
//! image. scripts/setup.sh installs it (scripts/setup/pip-packages.txt).

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::PathBuf;
use std::process::Command;

use liblp::{ImageSource, SuperBuilder, PARTITION_ATTR_READONLY};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("liblp-oracle-{}", std::process::id()))
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lpunpack(args: &[&str], image: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new("lpunpack")
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(image)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run lpunpack: {e} (pip install liblp==1.0.2; scripts/setup.sh does)")
        })
}

fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn check(tag: &str, parts: &[(&str, Vec<u8>)], expect_size: Option<u64>) {
    let dir = scratch(tag);
    let mut b = SuperBuilder::new();
    for (name, data) in parts {
        b.add_partition(
            name,
            "default",
            PARTITION_ATTR_READONLY,
            ImageSource::Bytes(data.clone()),
        )
        .unwrap();
    }
    let img = dir.join("super.img");
    let md = b.write(&img).unwrap();
    if let Some(s) = expect_size {
        assert_eq!(std::fs::metadata(&img).unwrap().len(), s);
    }
    for slot in ["0", "1"] {
        let out = dir.join(format!("out{slot}"));
        std::fs::create_dir_all(&out).unwrap();
        let o = lpunpack(&["-S", slot], &img, &out);
        assert!(
            o.status.success(),
            "lpunpack failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        for (name, data) in parts {
            let got = std::fs::read(out.join(format!("{name}.img"))).unwrap();
            let p = md.partition(name).unwrap();
            let mut want = data.clone();
            want.resize(md.partition_size(p) as usize, 0);
            assert!(got == want, "{tag}: {name} differs (slot {slot})");
            assert!(got.starts_with(data));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lpunpack_extracts_microdroid_layout() {
    // docs/formats/liblp.md: 102400-byte system_a + 8192-byte vendor_a → a 3256320-byte image.
    check(
        "kat",
        &[("system_a", noise(102400, 1)), ("vendor_a", noise(8192, 2))],
        Some(3256320),
    );
}

#[test]
fn lpunpack_extracts_larger_and_unaligned_partitions() {
    check(
        "big",
        &[
            ("system_a", noise((5 << 20) + 1234, 3)),
            ("vendor_a", noise(3 << 20, 4)),
            ("odm_a", noise(100, 5)),
        ],
        None,
    );
}

#[test]
fn lpunpack_rejects_corrupted_metadata() {
    let dir = scratch("corrupt");
    let mut b = SuperBuilder::new();
    b.add_partition(
        "system_a",
        "default",
        PARTITION_ATTR_READONLY,
        ImageSource::Bytes(noise(8192, 6)),
    )
    .unwrap();
    let img = dir.join("super.img");
    b.write(&img).unwrap();
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[4096 + 45] ^= 1; // primary geometry, inside the checksummed struct
    std::fs::write(&img, &bytes).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = lpunpack(&[], &img, &out);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !o.status.success() && text.contains("invalid geometry checksum"),
        "{text}"
    );
    // Our reader falls back to the backup geometry, as AOSP's C++ reader does.
    assert!(liblp::read_metadata_from_bytes(&bytes, 0).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
