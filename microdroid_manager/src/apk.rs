//! The APK payload, verified before anything in it runs (AOSP packages/modules/Virtualization
//! `microdroid_manager/src/verify.rs` and `apkdmverity/src/main.rs`):
//!
//! 1. **apkdmverity**: dm-verity over the APK's block device, with the Merkle tree from its v4
//!    idsig (reached through a loop device, because the tree starts at an offset inside the
//!    idsig that dm-verity cannot express) and the idsig's root hash. Every block read from
//!    `/dev/block/mapper/<name>` is then checked against that root.
//! 2. **v3 signature**: the whole APK is verified by reading it through the verity device, which
//!    binds the idsig's root hash to the content the developer signed.
//! 3. **zipfuse** mounts the verified device read-only; microdroid_manager waits on a pipe for
//!    the mount (zipfuse's `--ready-fd`), without polling.
//!
//! Every failure of steps 1 and 2 is `PayloadVerificationFailed`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, ensure, Context, Result};
use devmapper::{DeviceMapper, Target};

use crate::error::MicrodroidError;

pub const BY_NAME: &str = "/dev/block/by-name";
pub const MAPPER_DIR: &str = "/dev/block/mapper";
pub const MAIN_APK_PARTITION: &str = "microdroid-apk";
pub const MAIN_IDSIG_PARTITION: &str = "microdroid-apk-idsig";
pub const APK_MOUNT_POINT: &str = "/mnt/apk";
pub const EXTRA_APK_MOUNT_DIR: &str = "/mnt/extra-apk";
pub const ZIPFUSE_BIN: &str = "/system/bin/zipfuse";
/// How long zipfuse may take to say its mount is up. It reads the archive's central directory
/// and mounts: well under a second under TCG even for large APKs. Past this, it is stopped and
/// the boot fails saying so, instead of waiting for the host's hang detection.
pub const ZIPFUSE_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// `ro.build.version.sdk` of the Microdroid this guest stands in for (Android 15).
pub const SDK_VERSION: u32 = 35;
const BLOCK_SIZE: u64 = 4096;

fn verification_failed(err: anyhow::Error) -> anyhow::Error {
    MicrodroidError::PayloadVerificationFailed(format!("{err:#}")).into()
}

fn block_device_size(path: &Path) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::End(0))
        .with_context(|| format!("sizing {}", path.display()))
}

/// Puts dm-verity over `apk` with the tree and root hash of `idsig`; returns the verified
/// device, `/dev/block/mapper/<name>`.
pub fn apkdmverity(apk: &Path, idsig: &Path, name: &str) -> Result<PathBuf> {
    (|| {
        let mut idsig_file =
            File::open(idsig).with_context(|| format!("opening {}", idsig.display()))?;
        let signature = idsig::V4Signature::read_from(&mut idsig_file)
            .with_context(|| format!("parsing {}", idsig.display()))?;
        let root = signature.root_hash()?;
        let data_size = block_device_size(apk)?;
        ensure!(
            data_size % BLOCK_SIZE == 0,
            "{} is {data_size} bytes, not a multiple of {BLOCK_SIZE}",
            apk.display()
        );
        let tree_size = u64::from(signature.merkle_tree_size);
        let layout = verity::Layout::new(data_size, &verity::Params::apk_v4())?;
        let expected_tree = layout.num_hash_blocks(&verity::Params::apk_v4()) * BLOCK_SIZE;
        ensure!(
            tree_size >= expected_tree,
            "the idsig's Merkle tree is {tree_size} bytes; {} bytes of APK need {expected_tree}",
            data_size
        );
        let tree =
            loopdev::LoopDevice::attach_read_only(idsig, signature.merkle_tree_offset, tree_size)?;
        let target = verity::DmVerityTarget {
            data_dev: devmapper::block_device_numbers(apk)?,
            hash_dev: devmapper::block_device_numbers(tree.path())?,
            data_block_size: BLOCK_SIZE as u32,
            hash_block_size: BLOCK_SIZE as u32,
            num_data_blocks: data_size / BLOCK_SIZE,
            hash_start_block: 0,
            root_digest: root,
            salt: Vec::new(),
            optional_args: Vec::new(),
        };
        let dm = DeviceMapper::open().context("opening /dev/mapper/control")?;
        let device = dm
            .create(name, None, &[Target::from(&target)], true)
            .with_context(|| format!("creating dm-verity {name}"))?;
        // The verity table holds the loop device now; ours can go.
        drop(tree);
        Ok(device.link_by_name(Path::new(MAPPER_DIR))?)
    })()
    .with_context(|| format!("apkdmverity {}", apk.display()))
    .map_err(verification_failed)
}

/// Verifies the APK's v3 (or v2) signature, reading every byte through the verified device.
pub fn verify_signature(device: &Path) -> Result<apksig::SignerInfo> {
    (|| {
        let mut file =
            File::open(device).with_context(|| format!("opening {}", device.display()))?;
        apksig::verify(&mut file, SDK_VERSION)
            .with_context(|| format!("verifying the APK signature on {}", device.display()))
    })()
    .map_err(verification_failed)
}

/// A zipfuse mount, alive while its daemon runs.
pub struct ZipfuseMount {
    pub mount_point: PathBuf,
    pub daemon: Child,
}

/// Mounts `device` at `mount_point` with zipfuse and waits until the mount is up: zipfuse
/// writes `ready` to the pipe we hand it once mount(2) has succeeded, or exits.
pub fn mount_zipfuse(
    device: &Path,
    mount_point: &Path,
    noexec: bool,
    uid: u32,
    gid: u32,
) -> Result<ZipfuseMount> {
    std::fs::create_dir_all(mount_point)
        .with_context(|| format!("creating {}", mount_point.display()))?;
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().context("creating the ready pipe")?;
    nix::fcntl::fcntl(
        read_end.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    let mut command = Command::new(ZIPFUSE_BIN);
    command
        .arg("--ready-fd")
        .arg(write_end.as_raw_fd().to_string());
    if noexec {
        command.arg("--noexec");
    }
    command
        .args(["-u", &uid.to_string(), "-g", &gid.to_string()])
        .arg(device)
        .arg(mount_point)
        .stdin(Stdio::null());
    crate::privileges::limit(&mut command, crate::privileges::ZIPFUSE);
    let mut daemon = command
        .spawn()
        .with_context(|| format!("starting {ZIPFUSE_BIN}"))?;
    // Only zipfuse may hold the write end, so that its exit means end of file here.
    drop(write_end);
    await_ready(read_end, &mut daemon, ZIPFUSE_READY_TIMEOUT).with_context(|| {
        format!(
            "zipfuse failed to mount {} on {}",
            device.display(),
            mount_point.display()
        )
    })?;
    Ok(ZipfuseMount {
        mount_point: mount_point.to_path_buf(),
        daemon,
    })
}

/// Waits until the helper `daemon` writes `ready` and closes the pipe whose other end is
/// `read_end` (zipfuse's `--ready-fd`). A helper that exits first, says something else, or says
/// nothing within `timeout` fails it; a silent one is killed and reaped first, so no helper is
/// left behind a failed boot.
pub fn await_ready(
    read_end: OwnedFd,
    daemon: &mut Child,
    timeout: std::time::Duration,
) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + timeout;
    let mut pipe = File::from(read_end);
    let mut answer = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let _ = daemon.kill();
            let _ = daemon.wait();
            bail!(
                "it did not say it was ready within {} s (it was stopped)",
                timeout.as_secs_f32()
            );
        }
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e).context("waiting on the ready pipe"),
        }
        let mut chunk = [0u8; 64];
        let n = pipe.read(&mut chunk).context("reading the ready pipe")?;
        if n == 0 {
            break;
        }
        // Bounded: "ready" is all a helper has to say.
        if answer.len() < 256 {
            answer.extend_from_slice(&chunk[..n]);
        }
    }
    if String::from_utf8_lossy(&answer).trim() != "ready" {
        let status = daemon.wait().context("reaping it")?;
        bail!("it ended without saying it was ready ({status})");
    }
    Ok(())
}

/// The extra APK partitions, `extra-apk-<i>` with `extra-idsig-<i>`, in numeric order.
pub fn extra_apk_partitions(count: usize) -> Result<Vec<(PathBuf, PathBuf)>> {
    extra_apk_partitions_in(Path::new(BY_NAME), count)
}

/// [`extra_apk_partitions`] in the directory `by_name`: each of the `count` APKs the config
/// names must have both its APK and its idsig partition.
pub fn extra_apk_partitions_in(by_name: &Path, count: usize) -> Result<Vec<(PathBuf, PathBuf)>> {
    (0..count)
        .map(|i| {
            let apk = by_name.join(format!("extra-apk-{i}"));
            let idsig = by_name.join(format!("extra-idsig-{i}"));
            if !apk.exists() || !idsig.exists() {
                return Err(anyhow!(
                    "the payload disk has no partitions extra-apk-{i} and extra-idsig-{i}"
                ));
            }
            Ok((apk, idsig))
        })
        .collect()
}

/// What the instance records of an APK (AOSP `ApkData`): the idsig's root hash, SHA-512 of the
/// signer's certificate, and the package name and version code from the binary
/// AndroidManifest.xml read through the verified mount at `mount_point`. An APK without a
/// readable manifest cannot be pinned, so it is refused (AOSP falls back to "" and 0).
pub fn apk_data(
    idsig: &Path,
    signer: &apksig::SignerInfo,
    mount_point: &Path,
) -> Result<instance::ApkData> {
    use sha2::{Digest, Sha512};
    (|| {
        let mut idsig_file =
            File::open(idsig).with_context(|| format!("opening {}", idsig.display()))?;
        let root_hash = idsig::V4Signature::read_from(&mut idsig_file)
            .with_context(|| format!("parsing {}", idsig.display()))?
            .root_hash()?
            .to_vec();
        let certificate = signer
            .certificates
            .first()
            .ok_or_else(|| anyhow!("the signer has no certificate"))?;
        let manifest_path = mount_point.join("AndroidManifest.xml");
        let manifest = std::fs::read(&manifest_path)
            .with_context(|| format!("the APK has no readable {}", manifest_path.display()))?;
        let info = axml::parse_manifest(&manifest)
            .with_context(|| format!("parsing {}", manifest_path.display()))?;
        Ok(instance::ApkData {
            root_hash,
            cert_hash: Sha512::digest(certificate).to_vec(),
            package_name: info.package,
            version_code: info.version_code,
        })
    })()
    .map_err(verification_failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A helper given the ready pipe's write end, running `script` (`$FD` is that end).
    fn helper(script: &str) -> (OwnedFd, Child) {
        let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        nix::fcntl::fcntl(
            read_end.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("FD", write_end.as_raw_fd().to_string())
            .spawn()
            .unwrap();
        drop(write_end);
        (read_end, child)
    }

    /// Fault matrix row 14: the config names two extra APKs; a payload disk with the first
    /// pair and only the second APK (its idsig missing) is refused naming the pair.
    #[test]
    fn every_extra_apk_needs_its_apk_and_idsig_partitions() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["extra-apk-0", "extra-idsig-0", "extra-apk-1"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(extra_apk_partitions_in(dir.path(), 1).unwrap().len(), 1);
        let err = extra_apk_partitions_in(dir.path(), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the payload disk has no partitions extra-apk-1 and extra-idsig-1"
        );
        std::fs::write(dir.path().join("extra-idsig-1"), b"").unwrap();
        let pairs = extra_apk_partitions_in(dir.path(), 2).unwrap();
        assert_eq!(pairs[1].1, dir.path().join("extra-idsig-1"));
        assert!(extra_apk_partitions_in(dir.path(), 0).unwrap().is_empty());
    }

    /// Fault matrix row 53: a helper that says ready, one that dies first, one that says
    /// something else, and one that never says anything (stopped at the deadline, reaped).
    #[test]
    fn a_helper_must_say_ready_before_its_deadline() {
        let (fd, mut child) = helper("echo ready >&$FD; eval \"exec $FD>&-\"; exec sleep 5");
        await_ready(fd, &mut child, Duration::from_secs(10)).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();

        let (fd, mut child) = helper("exit 3");
        let err = await_ready(fd, &mut child, Duration::from_secs(10)).unwrap_err();
        assert!(
            format!("{err:#}").contains("ended without saying it was ready (exit status: 3)"),
            "{err:#}"
        );

        let (fd, mut child) = helper("echo mounted >&$FD");
        let err = await_ready(fd, &mut child, Duration::from_secs(10)).unwrap_err();
        assert!(
            format!("{err:#}").contains("without saying it was ready"),
            "{err:#}"
        );

        let (fd, mut child) = helper("exec sleep 100");
        let started = Instant::now();
        let err = await_ready(fd, &mut child, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            format!("{err:#}").contains("did not say it was ready within 0.3 s (it was stopped)"),
            "{err:#}"
        );
        // Killed and reaped: nothing left.
        assert!(child.try_wait().unwrap().is_some());
    }
}
