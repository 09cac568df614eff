//! Mount tests: run the real `zipfuse` binary on archives written by the `zip` crate and check
//! what the kernel shows. They need root and /dev/fuse (they are skipped, with a message,
//! otherwise). Each test mounts in its own temporary directory; the guard unmounts on drop, so
//! a failing test leaves no mount behind, and tests can run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

fn can_mount() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("skipping: mount tests need root and /dev/fuse");
    }
    ok
}

/// A running zipfuse; unmounts and reaps on drop.
struct Mounted {
    child: Option<Child>,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn path(&self, p: &str) -> PathBuf {
        self.mnt.join(p)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = terminate(&mut c, Duration::from_secs(2));
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever happened above, never leave the mount behind.
        let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Sends zipfuse SIGTERM (as init does at power-off: it unmounts and exits) and waits up to
/// `limit` for it to exit; None if it did not.
fn terminate(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawns zipfuse with `--ready-fd` and waits for `ready\n` (or EOF = failure).
fn spawn(zip: &Path, extra: &[&str]) -> Result<Mounted, String> {
    spawn_at(zip, "mnt", extra)
}

/// As [`spawn`], mounted at `name` in a new temporary directory.
fn spawn_at(zip: &Path, name: &str, extra: &[&str]) -> Result<Mounted, String> {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join(name);
    fs::create_dir(&mnt).unwrap();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zipfuse"));
    cmd.args(extra)
        .arg("--ready-fd")
        .arg(wfd.to_string())
        .arg(zip)
        .arg(&mnt)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe, on a descriptor that
    // is open in the child (it was inherited across fork).
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(wfd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(w);
    let mut msg = String::new();
    File::from(r).read_to_string(&mut msg).unwrap();
    if msg == "ready\n" {
        return Ok(Mounted {
            child: Some(child),
            mnt,
            _dir: dir,
        });
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
    Err(format!("{status}: {err}"))
}

fn mount(zip: &Path, extra: &[&str]) -> Mounted {
    spawn(zip, extra).unwrap_or_else(|e| panic!("zipfuse failed: {e}"))
}

/// Writes an archive with the zip crate: (name, data, deflated, unix mode).
fn write_zip(path: &Path, files: &[(&str, &[u8], bool, u32)]) {
    fs::write(
        path,
        ziparchive::testzip::zip_crate_archive_with_modes(files, false),
    )
    .unwrap();
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Every file's hash, read through the zip crate (the oracle).
fn zip_hashes(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut a = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..a.len() {
        let mut f = a.by_index(i).unwrap();
        if f.is_dir() {
            continue;
        }
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        out.insert(f.name().unwrap().to_string(), sha(&v));
    }
    out
}

/// Every regular file's hash, read through the mount.
fn tree_hashes(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, sha(&fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    let r = pseudo_random(len, seed);
    let mut out = Vec::with_capacity(len);
    for (i, b) in r.iter().enumerate() {
        out.push(if i % 37 == 36 { b'\n' } else { b'a' + b % 8 });
    }
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn empty_zip() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("e.zip");
    write_zip(&z, &[]);
    let m = mount(&z, &[]);
    assert!(names(&m.mnt).is_empty());
    let md = fs::metadata(&m.mnt).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o777, 0o500);
    // `.` and `..` are listed by readdir itself.
    let out = Command::new("ls").arg("-a").arg(&m.mnt).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec![".", ".."]
    );
}

/// `--readahead-kb` reaches the mount's bdi (named after its device), found in mountinfo even
/// where the kernel escapes the mount point's name there (a space).
#[test]
fn readahead_is_set_on_the_mounts_bdi() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("ra.zip");
    write_zip(&z, &[("a", b"a", false, 0o644)]);
    for kb in ["1024", "16"] {
        let m = spawn_at(&z, "mount point", &["--readahead-kb", kb])
            .unwrap_or_else(|e| panic!("zipfuse failed: {e}"));
        let dev = fs::metadata(&m.mnt).unwrap().dev();
        let bdi = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        );
        assert_eq!(fs::read_to_string(&bdi).unwrap().trim(), kb, "{bdi}");
    }
}

#[test]
fn one_file_and_eof_reads() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("one.zip");
    write_zip(&z, &[("hello.txt", b"hello, world\n", false, 0o644)]);
    let m = mount(&z, &[]);
    assert_eq!(names(&m.mnt), vec!["hello.txt"]);
    let p = m.path("hello.txt");
    assert_eq!(fs::read(&p).unwrap(), b"hello, world\n");
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), 13);
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
    let f = File::open(&p).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read_at(&mut buf, 13).unwrap(), 0, "read at EOF");
    assert_eq!(f.read_at(&mut buf, 1 << 40).unwrap(), 0, "read past EOF");
    assert_eq!(f.read_at(&mut buf, 7).unwrap(), 6);
    assert_eq!(&buf[..6], b"world\n");
    // Read-only.
    assert!(fs::OpenOptions::new().write(true).open(&p).is_err());
    assert!(File::create(m.path("new")).is_err());
}

#[test]
fn nested_dirs_stored_deflated_and_hashes() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("tree.zip");
    let big_text = text(6 << 20, 1);
    let big_rand = pseudo_random(9 << 20, 2);
    let small: Vec<Vec<u8>> = (0..40)
        .map(|i| text(1000 + i * 300, 10 + i as u64))
        .collect();
    let mut files: Vec<(String, &[u8], bool, u32)> = vec![
        ("a/b/c/deep.txt".into(), b"deep", false, 0o644),
        ("big/text.log".into(), &big_text, true, 0o644),
        ("big/random.bin".into(), &big_rand, false, 0o644),
        ("explicit/".into(), b"", false, 0o755),
    ];
    for (i, s) in small.iter().enumerate() {
        files.push((format!("res/d{}/f{i}.xml", i % 5), s, i % 3 != 0, 0o644));
    }
    let refs: Vec<(&str, &[u8], bool, u32)> = files
        .iter()
        .map(|(n, d, z, m)| (n.as_str(), *d, *z, *m))
        .collect();
    write_zip(&z, &refs);
    let m = mount(&z, &[]);
    assert_eq!(names(&m.mnt), vec!["a", "big", "explicit", "res"]);
    assert_eq!(tree_hashes(&m.mnt), zip_hashes(&z));
    // Second pass (page cache / kept cache) still equal.
    assert_eq!(tree_hashes(&m.mnt), zip_hashes(&z));
    // Implicit directories get 0500, explicit ones their own mode.
    assert_eq!(
        fs::metadata(m.path("a/b")).unwrap().permissions().mode() & 0o777,
        0o500
    );
    assert_eq!(
        fs::metadata(m.path("explicit"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(fs::metadata(m.path("res")).unwrap().nlink(), 2 + 5);
    // Random reads in the deflated entry.
    let f = File::open(m.path("big/text.log")).unwrap();
    let mut buf = vec![0u8; 4096];
    for i in 0..200u64 {
        let off = (i * 7_919_993) % (big_text.len() as u64 - 4096);
        f.read_exact_at(&mut buf, off).unwrap();
        assert_eq!(&buf[..], &big_text[off as usize..off as usize + 4096]);
    }
}

#[test]
fn directory_larger_than_one_readdir_buffer() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("dir.zip");
    let names_in: Vec<String> = (0..1500).map(|i| format!("d/{:0>100}", i)).collect();
    let files: Vec<(&str, &[u8], bool, u32)> = names_in
        .iter()
        .map(|n| (n.as_str(), &b"x"[..], false, 0o644))
        .collect();
    write_zip(&z, &files);
    let m = mount(&z, &[]);
    let listed = names(&m.path("d"));
    assert_eq!(listed.len(), 1500);
    let mut want: Vec<String> = names_in.iter().map(|n| n[2..].to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    // Stable order across two listings.
    let a: Vec<_> = fs::read_dir(m.path("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let b: Vec<_> = fs::read_dir(m.path("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(a, b);
}

#[test]
fn uid_gid_and_default_modes() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("ug.zip");
    // Mode 0 (no permission bits) falls back to the defaults.
    write_zip(
        &z,
        &[
            ("bin/tool", b"#!/bin/sh\n", false, 0),
            ("lib/data", b"d", false, 0),
        ],
    );
    let m = mount(&z, &["-u", "100", "-g", "200"]);
    for p in ["bin", "bin/tool", "lib/data"] {
        let md = fs::metadata(m.path(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (100, 200), "{p}");
    }
    assert_eq!(
        fs::metadata(m.path("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o500
    );
    assert_eq!(
        fs::metadata(m.path("lib/data"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
}

#[test]
fn noexec() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("x.zip");
    // Fault matrix row 7: executables stored deflated run too: a script, and an ELF binary
    // the kernel loads by random reads into the deflated entry.
    let echo = std::fs::read("/bin/echo").unwrap();
    write_zip(
        &z,
        &[
            ("bin/hello", b"#!/bin/sh\necho hi\n", false, 0o755),
            (
                "bin/deflated-hello",
                b"#!/bin/sh\necho deflated\n",
                true,
                0o755,
            ),
            ("bin/echo", &echo, true, 0o755),
        ],
    );
    let m = mount(&z, &[]);
    let out = Command::new(m.path("bin/hello")).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
    let out = Command::new(m.path("bin/deflated-hello")).output().unwrap();
    assert_eq!(out.stdout, b"deflated\n");
    let out = Command::new(m.path("bin/echo"))
        .arg("from a deflated ELF")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"from a deflated ELF\n");
    drop(m);
    let m = mount(&z, &["--noexec"]);
    let err = Command::new(m.path("bin/hello")).output().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
}

#[test]
fn many_concurrent_readers() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("c.zip");
    let stored = Arc::new(pseudo_random(8 << 20, 5));
    let deflated = Arc::new(text(8 << 20, 6));
    write_zip(
        &z,
        &[
            ("s.bin", &stored, false, 0o644),
            ("d.txt", &deflated, true, 0o644),
        ],
    );
    let m = mount(&z, &["--threads", "4"]);
    let mut handles = Vec::new();
    for t in 0..8u64 {
        let (path, data) = if t % 2 == 0 {
            (m.path("s.bin"), stored.clone())
        } else {
            (m.path("d.txt"), deflated.clone())
        };
        handles.push(std::thread::spawn(move || {
            let f = File::open(path).unwrap();
            let mut buf = vec![0u8; 8192];
            let mut s = t + 1;
            for _ in 0..300 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let off = (s >> 16) % (data.len() as u64 - 8192);
                f.read_exact_at(&mut buf, off).unwrap();
                assert_eq!(&buf[..], &data[off as usize..off as usize + 8192]);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn zip_on_a_loop_device_with_padding() {
    if !can_mount() || Command::new("losetup").arg("--version").output().is_err() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("blk.zip");
    let data = text(300_000, 9);
    write_zip(
        &z,
        &[
            ("assets/a.txt", &data, true, 0o644),
            ("b", b"bee", false, 0o644),
        ],
    );
    let mut bytes = fs::read(&z).unwrap();
    bytes.resize(bytes.len().next_multiple_of(4096) + 4096, 0);
    fs::write(&z, &bytes).unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show", "-r"])
        .arg(&z)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "skipping: losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _detach = Detach(dev.clone());
    let m = mount(Path::new(&dev), &[]);
    assert_eq!(fs::read(m.path("assets/a.txt")).unwrap(), data);
    assert_eq!(fs::read(m.path("b")).unwrap(), b"bee");
}

#[test]
fn bad_archives_are_refused_with_a_message() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("bad.zip");
    fs::write(&z, b"this is not a zip").unwrap();
    let err = spawn(&z, &[]).err().expect("must fail");
    assert!(err.contains("no end-of-central-directory"), "{err}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad/duplicate_names.zip");
    let err = spawn(&dir, &[]).err().expect("must fail");
    assert!(err.contains("duplicate entry"), "{err}");
}

#[test]
fn ready_file_and_fifo() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("r.zip");
    write_zip(&z, &[("f", b"1", false, 0o644)]);
    let mnt = d.path().join("m");
    fs::create_dir(&mnt).unwrap();

    // FIFO: the reader blocks until zipfuse writes `ready\n`.
    let fifo = d.path().join("ready.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Open the read end first (non-blocking) so zipfuse's non-blocking open finds a reader.
    let cpath = CString::new(fifo.to_str().unwrap()).unwrap();
    let rfd = nix::fcntl::open(
        cpath.as_c_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_zipfuse"))
        .arg("-p")
        .arg(&fifo)
        .arg(&z)
        .arg(&mnt)
        .spawn()
        .unwrap();
    let guard = Mounted {
        child: Some(child),
        mnt: mnt.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let rfd: OwnedFd = rfd;
    // Wait (bounded) for zipfuse to write; a FIFO without a writer yet reads as EOF.
    let mut pfd = [nix::poll::PollFd::new(
        rfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    assert_eq!(
        nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(10_000u16)).unwrap(),
        1
    );
    let mut f = File::from(rfd);
    let mut buf = [0u8; 6];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    assert_eq!(fs::read(mnt.join("f")).unwrap(), b"1");
    drop(guard);

    // Plain file: created atomically once mounted.
    let ready = d.path().join("ready");
    let child = Command::new(env!("CARGO_BIN_EXE_zipfuse"))
        .arg("-p")
        .arg(&ready)
        .arg(&z)
        .arg(&mnt)
        .spawn()
        .unwrap();
    let _guard = Mounted {
        child: Some(child),
        mnt: mnt.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    for _ in 0..500 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists());
    assert_eq!(fs::read(mnt.join("f")).unwrap(), b"1");
}

/// Unmounts `m` (SIGTERM, as init does at power-off) and returns what `--stats` printed:
/// operation name to the number of FUSE requests of it.
fn requests_at_unmount(mut m: Mounted) -> BTreeMap<String, u64> {
    let mut child = m.child.take().unwrap();
    // It unmounts and exits at once unless something still holds the mount busy.
    let Some(status) = terminate(&mut child, Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("zipfuse did not exit within 10 s of SIGTERM");
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("zipfuse: requests: "))
        .unwrap_or_else(|| panic!("no request counts in {err:?}"));
    line.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// `getxattr(2)` or `listxattr(2)` on `path`: the errno it failed with (0 if it succeeded).
fn xattr_errno(path: &Path, list: bool) -> i32 {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let name = CString::new("user.test").unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and outlive the call; the buffer is writable for
    // the length given.
    let r = unsafe {
        if list {
            libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        } else {
            libc::getxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    };
    if r >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

#[test]
fn statfs_xattrs_and_close_get_their_answers() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("s.zip");
    let big = text(10_000, 1);
    write_zip(
        &z,
        &[
            ("a", &[7u8; 5000], false, 0o644),
            ("dir/b", &big, true, 0o644),
            ("dir/c", b"c", false, 0o644),
        ],
    );
    let m = mount(&z, &["--stats"]);
    // The files' 15,001 bytes in 4 KiB blocks, nothing free; one inode per file and directory,
    // the root included.
    let s = nix::sys::statvfs::statvfs(&m.mnt).unwrap();
    assert_eq!(
        (s.block_size(), s.fragment_size(), s.name_max()),
        (4096, 4096, 255)
    );
    assert_eq!(
        (s.blocks(), s.blocks_free(), s.blocks_available()),
        (4, 0, 0)
    );
    assert_eq!((s.files(), s.files_free()), (5, 0));
    // zipfuse answers the xattr calls ENOSYS: the kernel says "not supported" and stops asking.
    for _ in 0..3 {
        assert_eq!(xattr_errno(&m.path("a"), false), libc::EOPNOTSUPP);
        assert_eq!(xattr_errno(&m.path("dir/b"), true), libc::EOPNOTSUPP);
    }
    // FLUSH is answered ENOSYS too: close(2) succeeds, and later closes send nothing.
    for name in ["a", "dir/b", "dir/c", "a"] {
        let f = File::open(m.path(name)).unwrap();
        let mut buf = Vec::new();
        (&f).read_to_end(&mut buf).unwrap();
        let fd: OwnedFd = f.into();
        nix::unistd::close(fd).unwrap_or_else(|e| panic!("close of {name}: {e}"));
    }
    let requests = requests_at_unmount(m);
    assert!(requests["statfs"] >= 1, "{requests:?}");
    assert_eq!(
        (
            requests["getxattr"],
            requests["listxattr"],
            requests["flush"]
        ),
        (1, 1, 1),
        "{requests:?}"
    );
}

#[test]
fn opens_listings_and_lookups_are_sent_once() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("o.zip");
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("dir/f{i:02}"), text(100 + i, i as u64)))
        .collect();
    let entries: Vec<(&str, &[u8], bool, u32)> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice(), false, 0o644))
        .collect();
    write_zip(&z, &entries);

    // One listing, in a mount of its own: what it costs.
    let m = mount(&z, &["--stats"]);
    assert_eq!(names(&m.path("dir")).len(), 20);
    let once = requests_at_unmount(m);

    let m = mount(&z, &["--stats"]);
    // Listed twice: FOPEN_CACHE_DIR keeps the first listing in the page cache.
    assert_eq!(names(&m.path("dir")).len(), 20);
    assert_eq!(names(&m.path("dir")).len(), 20);
    // Opened three times: zero-message opens, so one OPEN (answered ENOSYS) at most.
    for _ in 0..3 {
        assert_eq!(fs::read(m.path("dir/f03")).unwrap(), files[3].1);
    }
    // Entries and attributes never change: a stat seconds later is answered from the cache.
    let before = fs::metadata(m.path("dir/f04")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(fs::metadata(m.path("dir/f04")).unwrap().len(), before.len());
    let twice = requests_at_unmount(m);

    let listing = |r: &BTreeMap<String, u64>| r["readdir"] + r["readdirplus"];
    assert!(once["readdirplus"] >= 1, "READDIRPLUS offered: {once:?}");
    assert_eq!(listing(&twice), listing(&once), "{once:?} {twice:?}");
    assert!(twice["open"] <= 1, "{twice:?}");
    // READDIRPLUS gave every entry's attributes: no LOOKUP for any of the 20 files, only for
    // `dir` itself.
    assert_eq!(twice["lookup"], 1, "{twice:?}");
    assert_eq!(twice["init"], 1);

    // Without READDIRPLUS the listing is plain READDIR.
    let m = mount(&z, &["--stats", "--no-readdirplus"]);
    assert_eq!(names(&m.path("dir")).len(), 20);
    let plain = requests_at_unmount(m);
    assert_eq!(plain["readdirplus"], 0, "{plain:?}");
    assert!(plain["readdir"] >= 1, "{plain:?}");
}

/// How many of the pages of `f` in `range` (bytes) are in the page cache (mincore(2) of a
/// mapping of it).
fn resident_pages(f: &File, len: usize, range: std::ops::Range<usize>) -> usize {
    let page = 4096;
    // SAFETY: a fresh read-only shared mapping of `len` bytes of an open file; it is only
    // passed to mincore and unmapped before returning.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "{}",
        std::io::Error::last_os_error()
    );
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr` is a mapping of `len` bytes and `vec` has one byte per page of it.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(r, 0, "mincore: {err}");
    vec[range.start / page..range.end / page]
        .iter()
        .filter(|&&b| b & 1 == 1)
        .count()
}

#[test]
fn inflated_blocks_no_read_asked_for_reach_the_page_cache() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("p.zip");
    let len = 2 << 20;
    let data = text(len, 9);
    write_zip(&z, &[("t", &data, true, 0o644)]);
    let resident_before = |extra: &[&str]| {
        let mut args = vec!["--stats"];
        args.extend_from_slice(extra);
        let m = mount(&z, &args);
        let f = File::open(m.path("t")).unwrap();
        // No read-ahead: the kernel asks for exactly the 4 KiB read below.
        nix::fcntl::posix_fadvise(
            f.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_RANDOM,
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let at = 3 * len / 4;
        f.read_exact_at(&mut buf, at as u64).unwrap();
        assert_eq!(&buf[..], &data[at..at + 4096]);
        // Reaching that offset inflated everything before it; the feeder thread stores those
        // blocks asynchronously.
        let mut resident = 0;
        for _ in 0..200 {
            resident = resident_pages(&f, len, 0..len / 2);
            if resident > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(f);
        let requests = requests_at_unmount(m);
        (resident, requests["read"])
    };
    let (fed, reads) = resident_before(&[]);
    assert!(fed > 0, "no page of the first half was fed");
    assert_eq!(reads, 1, "one FUSE read");
    let (not_fed, _) = resident_before(&["--no-page-cache-feed"]);
    assert_eq!(not_fed, 0);
}
