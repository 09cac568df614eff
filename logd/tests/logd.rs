//! logd and logcat as processes: writers' datagrams in, `logcat -d` out, the tee file, `-c`,
//! `-t`, filters, and bad datagrams dropped without harm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use android_log::{LogId, Logger};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, tee: &Path) -> Daemon {
    std::fs::write(tee, b"").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_logd"))
        .arg("--socket-dir")
        .arg(dir)
        .arg("--tee")
        .arg(tee)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("logd").exists() {
        assert!(Instant::now() < deadline, "logd did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Daemon(child)
}

fn logcat(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_logcat"))
        .arg("--socket-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "logcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `logcat -d` shows `needle` (datagrams are asynchronous).
fn wait_for(dir: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = logcat(dir, &["-d"]);
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never logged; got:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn write_read_tee_filter_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("socket");
    let tee = tmp.path().join("log.txt");
    let _logd = start(&dir, &tee);
    let main = Logger::with_path(LogId::Main, &dir.join("logdw"));
    let system = Logger::with_path(LogId::System, &dir.join("logdw"));
    // Garbage first: logd drops it and goes on.
    let raw = UnixDatagram::unbound().unwrap();
    for bad in [
        &b""[..],
        b"\x09garbage-with-a-bad-buffer-id",
        &[0u8; 5],
        &vec![0u8; 9000],
    ] {
        let _ = raw.send_to(bad, dir.join("logdw"));
    }
    main.log(android_log::INFO, "hello_tag", "first line");
    main.log(android_log::DEBUG, "other", "debug line");
    system.log(android_log::WARN, "sys", "a system line");
    let text = wait_for(&dir, "a system line");
    let pid = std::process::id();
    let line = text.lines().find(|l| l.contains("first line")).unwrap();
    // Threadtime: date, time, pid, tid, priority, tag.
    assert!(line.contains(&format!(" {pid:5} ")), "{line}");
    assert!(line.ends_with(" I hello_tag: first line"), "{line}");
    assert!(text.starts_with("--------- beginning of main\n"), "{text}");
    assert!(text.contains("--------- beginning of system\n"), "{text}");
    // Filters, buffers, tail, formats.
    let only = logcat(&dir, &["-d", "-s", "hello_tag:I"]);
    assert!(
        only.contains("first line") && !only.contains("debug line"),
        "{only}"
    );
    let errors = logcat(&dir, &["-d", "*:E"]);
    assert!(!errors.contains("first line"), "{errors}");
    let sys = logcat(&dir, &["-d", "-b", "system", "-v", "brief"]);
    assert_eq!(
        sys,
        format!("--------- beginning of system\nW/sys     ({pid:5}): a system line\n")
    );
    let last = logcat(&dir, &["-t", "1", "-b", "main"]);
    assert!(
        last.contains("debug line") && !last.contains("first line"),
        "{last}"
    );
    // The tee file has every record, threadtime.
    let teed = std::fs::read_to_string(&tee).unwrap();
    assert!(
        teed.contains(" I hello_tag: first line\n")
            && teed.contains(" W sys     : a system line\n"),
        "{teed}"
    );
    // -c empties the buffers.
    logcat(&dir, &["-c"]);
    assert_eq!(logcat(&dir, &["-d"]), "");
    main.log(android_log::ERROR, "after", "after clear");
    wait_for(&dir, "after clear");
}

#[test]
fn logcat_without_logd_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logcat"))
        .args(["-d", "--socket-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to logd"));
}
