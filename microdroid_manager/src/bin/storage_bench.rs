//! Guest side of `make bench`'s encrypted-storage benchmark (scripts/bench/identity.sh). Not
//! part of the OS image: the benchmark builds an image whose init runs this, as root, instead
//! of microdroid_manager.
//!
//! On the `encryptedstore` partition it measures the same ext4 (AOSP's mke2fs options) twice
//! per round: directly on the virtio disk, then through dm-crypt as `encrypted_store` sets it
//! up (its cipher, a random key). Each pass: sequential write of a file (1 MiB writes,
//! then fsync), sequential read after dropping the page cache, random 4 KiB reads after
//! dropping it again. One line per pass: `BENCH <plain|xts> seq_write_mibs=.. ...`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use microdroid_manager::encrypted_store;
use nix::mount::{mount, umount, MsFlags};

const DEVICE: &str = "/dev/block/by-name/encryptedstore";
const FILE_MIB: usize = 64;
const RANDOM_READS: usize = 4096;
const ROUNDS: usize = 2;

fn drop_caches() -> Result<()> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping the page cache")
}

/// One pass over `dir`: (seq write MiB/s, seq read MiB/s, random 4 KiB reads/s).
fn workload(dir: &Path) -> Result<(f64, f64, f64)> {
    let path = dir.join("bench.dat");
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + 3) as u8).collect();
    let start = Instant::now();
    let mut file = File::create(&path)?;
    for _ in 0..FILE_MIB {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    let write = FILE_MIB as f64 / start.elapsed().as_secs_f64();
    drop(file);

    drop_caches()?;
    let start = Instant::now();
    let mut file = File::open(&path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    if total != FILE_MIB << 20 {
        bail!("read {total} bytes back");
    }
    let read = FILE_MIB as f64 / start.elapsed().as_secs_f64();

    drop_caches()?;
    let blocks = (FILE_MIB << 20) / 4096;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut page = [0u8; 4096];
    let start = Instant::now();
    for _ in 0..RANDOM_READS {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let block = (state >> 33) as usize % blocks;
        file.read_exact_at(&mut page, (block * 4096) as u64)?;
    }
    let random = RANDOM_READS as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok((write, read, random))
}

fn plain_pass() -> Result<(f64, f64, f64)> {
    let mount_point = Path::new("/mnt/plain");
    std::fs::create_dir_all(mount_point)?;
    encrypted_store::mke2fs(Path::new(DEVICE), 0, 0)?;
    mount(
        Some(DEVICE),
        mount_point,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    let result = workload(mount_point);
    umount(mount_point)?;
    result
}

fn crypt_pass() -> Result<(f64, f64, f64)> {
    // Mark the partition unformatted, as the host does, so that the store formats it.
    let mut dev = OpenOptions::new().write(true).open(DEVICE)?;
    dev.write_all(encrypted_store::UNFORMATTED_MAGIC)?;
    dev.sync_all()?;
    drop(dev);
    let mut key = [0u8; 64];
    getrandom::getrandom(&mut key)?;
    let mount_point = Path::new(encrypted_store::MOUNT_POINT);
    let store = encrypted_store::open(Path::new(DEVICE), mount_point, &key, 0, 0)?;
    let result = workload(&store.mount_point);
    umount(mount_point)?;
    devmapper::DeviceMapper::open()?.remove(encrypted_store::DM_NAME)?;
    result
}

fn main() -> ExitCode {
    let run = || -> Result<()> {
        for round in 0..ROUNDS {
            for (name, pass) in [("plain", plain_pass as fn() -> _), ("xts", crypt_pass)] {
                let result = pass();
                let (write, read, random) = result.with_context(|| format!("{name} pass"))?;
                println!(
                    "BENCH {name} round={round} seq_write_mibs={write:.1} seq_read_mibs={read:.1} rand_read_ops={random:.0}"
                );
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!("BENCH done");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("BENCH failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
