//! Root-only tests against the real device-mapper: a dm-linear device over a loop device,
//! and a dm-verity device that reads clean data and returns EIO on a corrupted block.
//! Skipped (with a message) when `/dev/mapper/control` is missing or we are not root: the
//! development VM has no device-mapper; the guest kernel (dm-verity module) does.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use devmapper::{DeviceMapper, Target};

fn dm_or_skip() -> Option<DeviceMapper> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new(devmapper::CONTROL_PATH).exists() {
        eprintln!(
            "SKIPPED: needs root and {} (modprobe dm-verity)",
            devmapper::CONTROL_PATH
        );
        return None;
    }
    Some(DeviceMapper::open().expect("open control"))
}

/// A read-only loop device over a file, set up with the loop ioctls (no losetup needed).
struct Loop(String, std::fs::File);
impl Loop {
    fn attach(file: &Path) -> Self {
        const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
        const LOOP_SET_FD: libc::c_ulong = 0x4C00;
        use std::os::fd::AsRawFd;
        let ctl = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .expect("loop-control");
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        assert!(
            n >= 0,
            "LOOP_CTL_GET_FREE: {}",
            std::io::Error::last_os_error()
        );
        let dev = format!("/dev/loop{n}");
        let backing = std::fs::File::open(file).expect("backing file");
        let lo = std::fs::File::open(&dev).expect("loop device node");
        // SAFETY: LOOP_SET_FD takes a file descriptor by value; both fds are open.
        let r = unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) };
        assert!(r == 0, "LOOP_SET_FD: {}", std::io::Error::last_os_error());
        Self(dev, lo)
    }
}
impl Drop for Loop {
    fn drop(&mut self) {
        const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
        use std::os::fd::AsRawFd;
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is open.
        unsafe { libc::ioctl(self.1.as_raw_fd(), LOOP_CLR_FD as _) };
    }
}

fn image(blocks: usize) -> (Vec<u8>, verity::HashTree) {
    let data: Vec<u8> = (0..blocks * 4096)
        .map(|i| (i / 4096) as u8 ^ (i as u8))
        .collect();
    let tree = verity::HashTree::build(&data, &verity::Params::new(b"salty").unwrap()).unwrap();
    let mut img = data.clone();
    img.extend_from_slice(tree.tree());
    (img, tree)
}

fn read_dev(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

#[test]
fn linear_and_verity_over_loop() {
    let Some(dm) = dm_or_skip() else { return };
    let dir = std::env::temp_dir().join(format!("dm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let blocks = 300;
    let (img, tree) = image(blocks);
    let good = dir.join("good.img");
    std::fs::write(&good, &img).unwrap();
    let lo = Loop::attach(&good);

    // dm-linear: the data part of the loop device.
    let name = format!("test-linear-{}", std::process::id());
    let lin = dm
        .create(
            &name,
            None,
            &[Target::linear(0, (blocks * 8) as u64, &lo.0, 0)],
            true,
        )
        .unwrap();
    lin.create_node(&lin.path()).unwrap();
    assert_eq!(
        read_dev(&lin.path(), 0, blocks * 4096).unwrap(),
        img[..blocks * 4096]
    );
    let table = dm.table(&name).unwrap();
    assert_eq!(
        (table.len(), table[0].target_type.as_str(), table[0].length),
        (1, "linear", (blocks * 8) as u64)
    );

    // dm-verity on top of the linear device, tree on the loop device after the data.
    let vname = format!("test-verity-{}", std::process::id());
    let target = tree.dm_target(&lin.dev_string(), &lo.0, blocks as u64);
    let ver = dm
        .create(&vname, None, &[Target::from(&target)], true)
        .unwrap();
    ver.create_node(&ver.path()).unwrap();
    assert_eq!(
        read_dev(&ver.path(), 0, blocks * 4096).unwrap(),
        img[..blocks * 4096]
    );
    let st = dm.table_status(&vname).unwrap();
    assert_eq!(st[0].target_type, "verity");
    assert!(st[0].params.starts_with('V'), "status {:?}", st[0].params);
    dm.remove(&vname).unwrap();
    dm.remove(&name).unwrap();
    drop(lo);

    // One flipped byte in block 123 → EIO on that block, status C; other blocks still read.
    let mut bad = img.clone();
    bad[123 * 4096 + 7] ^= 1;
    let badf = dir.join("bad.img");
    std::fs::write(&badf, &bad).unwrap();
    let lo = Loop::attach(&badf);
    let target = tree.dm_target(&lo.0, &lo.0, blocks as u64);
    let bname = format!("test-verity-bad-{}", std::process::id());
    let dev = dm
        .create(&bname, None, &[Target::from(&target)], true)
        .unwrap();
    dev.create_node(&dev.path()).unwrap();
    assert_eq!(read_dev(&dev.path(), 0, 4096).unwrap(), img[..4096]);
    let err = read_dev(&dev.path(), 123 * 4096, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(dm.table_status(&bname).unwrap()[0].params.starts_with('C'));
    let s = dm.status(&bname).unwrap();
    assert_eq!(s.target_count, 1);
    dm.remove(&bname).unwrap();
    drop(lo);
    std::fs::remove_dir_all(&dir).unwrap();
}
