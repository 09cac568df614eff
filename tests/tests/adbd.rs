//! The guest's adbd (its static build runs on the host too) against Debian's stock `adb`
//! client (the oracle), over loopback TCP: shell
//! with exit codes and separate stderr, stdin, signals, push/pull of 10 MiB, ls, exec-out, root,
//! forward to a TCP port; and bad input from the host side: adbd drops that connection and
//! keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adb::packet::{self, read_packet, Command as Cmd, Packet};
use boot_tests::{free_port, guest_bin_dir, AdbClient as Client};

/// What the guest adbd announces as its maximum payload.
const ADBD_MAX_PAYLOAD: u32 = 256 * 1024;

struct Adbd {
    child: Child,
    port: u16,
    _tmp: tempfile::TempDir,
    tmpdir: PathBuf,
}

impl Drop for Adbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_adbd() -> Adbd {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("data/local/tmp");
    let mut child = Command::new(guest_bin_dir().join("adbd"))
        .args([
            "--listen",
            "tcp:127.0.0.1:0",
            "--shell",
            "/bin/sh",
            "--path",
            "/usr/bin:/bin",
            "--tmpdir",
        ])
        .arg(&tmpdir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    Adbd {
        child,
        port,
        _tmp: tmp,
        tmpdir,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn shell_exit_codes_streams_stdin_and_signals() {
    let adbd = start_adbd();
    let c = Client::connect(adbd.port);
    let out = c.on(&["shell", "echo out; echo err >&2; exit 7"]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr), out.status.code()),
        ("out\n".into(), "err\n".into(), Some(7))
    );
    assert_eq!(c.on(&["shell", "false"]).status.code(), Some(1));
    assert_eq!(c.on(&["shell", "kill -9 $$"]).status.code(), Some(137));
    let echoed = c.adb_with_input(&["-s", &c.serial, "shell", "cat"], Some(b"from stdin\n"));
    assert_eq!(text(&echoed.stdout), "from stdin\n");
    assert_eq!(text(&c.on(&["exec-out", "printf", "raw"]).stdout), "raw");
    assert!(text(&c.on(&["root"]).stdout).contains("already running as root"));
    // The banner names the device as adb shows it.
    let devices = c.adb(&["devices", "-l"]);
    assert!(
        text(&devices.stdout)
            .contains("device product:microdroid model:microdroid device:microdroid"),
        "{devices:?}"
    );
}

#[test]
fn push_pull_ls_of_10_mib() {
    let adbd = start_adbd();
    let c = Client::connect(adbd.port);
    let host = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(host.path().join("big"), &data).unwrap();
    let remote = adbd.tmpdir.join("sub/dir/big");
    let remote_s = remote.to_str().unwrap();
    let out = c.on(&["push", host.path().join("big").to_str().unwrap(), remote_s]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&remote).unwrap(), data, "pushed bytes differ");
    let back = host.path().join("back");
    let out = c.on(&["pull", remote_s, back.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&back).unwrap(), data, "pulled bytes differ");
    let missing = c.on(&["pull", "/nonexistent/file", back.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    // Debian's adb prints this error on stdout.
    let said = text(&missing.stdout) + &text(&missing.stderr);
    assert!(
        said.contains(
            "failed to stat remote object '/nonexistent/file': No such file or directory"
        ),
        "{missing:?}"
    );
    let ls = c.on(&["ls", remote.parent().unwrap().to_str().unwrap()]);
    // mode, size, mtime, name.
    let line = text(&ls.stdout);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{ls:?}");
    assert_eq!(
        (fields[1], fields[3]),
        (format!("{:08x}", 10 * 1024 * 1024).as_str(), "big"),
        "{ls:?}"
    );
}

#[test]
fn forward_reaches_a_local_tcp_port() {
    let adbd = start_adbd();
    let c = Client::connect(adbd.port);
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = service.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = service.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        s.write_all(&b.map(|x| x.to_ascii_uppercase())).unwrap();
    });
    let local = free_port();
    let out = c.on(&["forward", &format!("tcp:{local}"), &format!("tcp:{remote}")]);
    assert!(out.status.success(), "{out:?}");
    let mut s = TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"hello").unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"HELLO");
}

/// Sends `bytes` on a fresh connection and says whether adbd closed it.
fn closes_on(port: u16, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a CNXN answer to a good prefix
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false, // timed out: still open
        }
    }
}

fn handshake(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cnxn = Packet::new(
        Cmd::Cnxn,
        packet::VERSION_SKIP_CHECKSUM,
        packet::MAX_PAYLOAD,
        b"host::features=shell_v2".to_vec(),
    );
    s.write_all(&cnxn.encode(true)).unwrap();
    let reply = read_packet(&mut s, packet::MAX_PAYLOAD).unwrap();
    assert_eq!(reply.command, Cmd::Cnxn);
    assert_eq!(reply.arg1, ADBD_MAX_PAYLOAD);
    s
}

#[test]
fn bad_input_drops_the_connection_and_adbd_keeps_serving() {
    let adbd = start_adbd();
    let good = Packet::new(
        Cmd::Cnxn,
        packet::VERSION_SKIP_CHECKSUM,
        4096,
        b"host::".to_vec(),
    )
    .encode(true);
    let mut bad_magic = good.clone();
    bad_magic[20] ^= 0xff;
    let mut bad_sum = good.clone();
    bad_sum[16] ^= 0x01;
    let mut oversized = good.clone();
    oversized[12..16].copy_from_slice(&(ADBD_MAX_PAYLOAD + 1).to_le_bytes());
    let mut unknown = Packet::new(Cmd::Okay, 0, 0, vec![]).encode(false);
    unknown[..4].copy_from_slice(b"ZZZZ");
    let not = (!u32::from_le_bytes(*b"ZZZZ")).to_le_bytes();
    unknown[20..24].copy_from_slice(&not);
    for (name, bytes) in [
        (
            "garbage",
            b"this is not the adb protocol at all, not even close".to_vec(),
        ),
        ("bad magic", bad_magic),
        ("wrong checksum", bad_sum),
        ("oversized payload", oversized),
        ("unknown command", unknown),
    ] {
        assert!(
            closes_on(adbd.port, &bytes),
            "{name}: connection stayed open"
        );
    }
    // Two WRTEs on one stream without waiting for OKAY: a protocol violation.
    let mut s = handshake(adbd.port);
    s.write_all(&Packet::new(Cmd::Open, 9, 0, b"shell,v2,raw:cat\0".to_vec()).encode(false))
        .unwrap();
    let okay = read_packet(&mut s, packet::MAX_PAYLOAD).unwrap();
    assert_eq!((okay.command, okay.arg1), (Cmd::Okay, 9));
    let wrte = Packet::new(Cmd::Wrte, 9, okay.arg0, adb::shell::encode(0, b"x")).encode(false);
    for _ in 0..4 {
        let _ = s.write_all(&wrte);
    }
    assert!(
        closes_on_stream(&mut s),
        "WRTE flood: connection stayed open"
    );
    // Unknown services are refused with CLSE(0, id); the connection stays.
    let mut s = handshake(adbd.port);
    s.write_all(&Packet::new(Cmd::Open, 5, 0, b"jdwp:1\0".to_vec()).encode(false))
        .unwrap();
    let clse = read_packet(&mut s, packet::MAX_PAYLOAD).unwrap();
    assert_eq!((clse.command, clse.arg0, clse.arg1), (Cmd::Clse, 0, 5));
    // And the stock client still works.
    let c = Client::connect(adbd.port);
    assert_eq!(
        text(&c.on(&["shell", "echo still serving"]).stdout),
        "still serving\n"
    );
}

fn closes_on_stream(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
