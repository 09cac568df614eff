//! Known answers (docs/formats/composite-disk.md), the VMDK view compared with `qemu-img compare`
//! against the raw concatenation, and the GPT read back by `sgdisk`. The external tools come
//! from Debian's qemu-utils and gdisk (scripts/setup/apt-packages.txt); without them these
//! checks are skipped, except under CI where they must exist.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use composite::{
    create_composite_disk, resolve_component_path, AuxPaths, OutputPaths, ParsedComposite,
    Partition,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("composite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kat(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/kat")
        .join(name)
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--help").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required under CI"
        );
        eprintln!("SKIP: {name} not installed");
    }
    found
}

/// Reads the disk through a parsed spec, as crosvm would (zero past a file's EOF).
fn read_through_spec(spec_path: &Path) -> Vec<u8> {
    let spec = ParsedComposite::read(spec_path).unwrap();
    let mut disk = Vec::new();
    for c in &spec.components {
        let mut data = std::fs::read(resolve_component_path(spec_path, &c.file_path)).unwrap();
        data.resize(c.length as usize, 0);
        disk.extend(data);
    }
    disk
}

struct Kat {
    dir: PathBuf,
    out: OutputPaths,
    flat: Vec<u8>,
}

fn build_kat(name: &str, p1: PathBuf, p2: PathBuf) -> Kat {
    let dir = tmpdir(name);
    let disk = Uuid::parse_str("12345678-1234-5678-abcd-12345678abcd").unwrap();
    let parts = vec![
        Partition {
            label: "vbmeta_a".into(),
            path: p1,
            size: 10000,
            writable: false,
            part_guid: Some(Uuid::from_u128(1)),
        },
        Partition {
            label: "super".into(),
            path: p2,
            size: 8192,
            writable: true,
            part_guid: Some(Uuid::from_u128(2)),
        },
    ];
    let out = OutputPaths {
        composite: dir.join("composite.img"),
        vmdk: Some(dir.join("composite.vmdk")),
        aux: AuxPaths {
            header: dir.join("hdr.img"),
            footer: dir.join("ftr.img"),
            zero_filler: dir.join("zero.img"),
        },
    };
    let layout = create_composite_disk(disk, parts, &out).unwrap();
    assert_eq!(layout.disk_size(), 61440);
    let mut flat = std::fs::read(&out.aux.header).unwrap();
    flat.extend(std::fs::read(kat("p1.img")).unwrap());
    flat.extend(vec![0u8; 2288]);
    flat.extend(std::fs::read(kat("p2.img")).unwrap());
    flat.extend(std::fs::read(&out.aux.footer).unwrap());
    Kat { dir, out, flat }
}

#[test]
fn known_answer_files() {
    let k = build_kat("kat", kat("p1.img"), kat("p2.img"));
    assert_eq!(
        sha(&std::fs::read(&k.out.aux.header).unwrap()),
        "50c50315db79d7f20fee9d178a3edab18fe6019134360689112e9975930b957c"
    );
    assert_eq!(
        sha(&std::fs::read(&k.out.aux.footer).unwrap()),
        "f2ed9c903ac3ead71ae1d459ea164c89745107d1067f97309b30decfbde6281f"
    );
    assert_eq!(
        sha(&k.flat),
        "b2f0176d52039e6886c8f92a71a81b2d3adacb7467a0a4f512d808b45b327393"
    );
    assert_eq!(
        std::fs::read(&k.out.aux.zero_filler).unwrap(),
        vec![0u8; 4096]
    );
    // Reading the disk through the spec gives the flat image.
    assert_eq!(sha(&read_through_spec(&k.out.composite)), sha(&k.flat));
    std::fs::remove_dir_all(&k.dir).unwrap();
}

#[test]
fn qemu_img_compare_vmdk_with_raw() {
    if !tool("qemu-img") {
        return;
    }
    let k = build_kat("qemu", kat("p1.img"), kat("p2.img"));
    let raw = k.dir.join("flat.raw");
    std::fs::write(&raw, &k.flat).unwrap();
    let vmdk = k.out.vmdk.clone().unwrap();
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "vmdk", "-F", "raw", "-U"])
        .arg(&vmdk)
        .arg(&raw)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Images are identical."), "{stdout}");
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&vmdk)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("\"virtual-size\": 61440"), "{info}");
    std::fs::remove_dir_all(&k.dir).unwrap();
}

#[test]
fn sgdisk_reads_back_gpt() {
    if !tool("sgdisk") {
        return;
    }
    let k = build_kat("sgdisk", kat("p1.img"), kat("p2.img"));
    let raw = k.dir.join("flat.raw");
    std::fs::write(&raw, &k.flat).unwrap();
    let p = Command::new("sgdisk").arg("-p").arg(&raw).output().unwrap();
    let text = String::from_utf8_lossy(&p.stdout);
    assert!(p.status.success(), "{text}");
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| w.len() >= 7 && (w[0] == "1" || w[0] == "2"))
        .collect();
    assert_eq!(
        rows[0][1..3],
        ["40".to_string(), "63".to_string()],
        "{text}"
    );
    assert_eq!(rows[0].last().unwrap(), "vbmeta_a");
    assert_eq!(
        rows[1][1..3],
        ["64".to_string(), "79".to_string()],
        "{text}"
    );
    assert_eq!(rows[1].last().unwrap(), "super");
    assert!(text.contains("last usable sector is 86"), "{text}");
    let v = Command::new("sgdisk").arg("-v").arg(&raw).output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("No problems found"),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    std::fs::remove_dir_all(&k.dir).unwrap();
}

/// AVF style: partitions referred to as /proc/self/fd/N (fds held open by this process).
#[test]
fn proc_self_fd_paths() {
    let f1 = File::open(kat("p1.img")).unwrap();
    let f2 = File::open(kat("p2.img")).unwrap();
    let fd_path = |f: &File| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
    let k = build_kat("fd", fd_path(&f1), fd_path(&f2));
    let spec = ParsedComposite::read(&k.out.composite).unwrap();
    assert_eq!(
        spec.components[1].file_path,
        format!("/proc/self/fd/{}", f1.as_raw_fd())
    );
    assert_eq!(sha(&read_through_spec(&k.out.composite)), sha(&k.flat));
    let vmdk = std::fs::read_to_string(k.out.vmdk.as_ref().unwrap()).unwrap();
    assert!(
        vmdk.contains(&format!(
            "RW 20 FLAT \"/proc/self/fd/{}\" 0",
            f1.as_raw_fd()
        )),
        "{vmdk}"
    );
    std::fs::remove_dir_all(&k.dir).unwrap();
}
