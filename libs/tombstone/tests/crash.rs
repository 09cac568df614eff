//! A real crash, end to end on the host: a process with the handler installed writes through
//! NULL (or aborts); the dumper receives its message, unwinds its stack while it waits, and
//! the process then dies of its signal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use tombstone::dumper::Dumper;

fn crash(how: &str) -> (String, std::process::ExitStatus) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("crash");
    let dumper = Dumper::bind(&socket).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tombstone_crasher"))
        .arg(&socket)
        .arg(how)
        .spawn()
        .unwrap();
    let mut dumped = dumper
        .next("test/fingerprint", &|| vec!["a log line".into()])
        .unwrap();
    // The crashed process waits for its release.
    dumped.release();
    let status = child.wait().unwrap();
    assert_eq!(dumped.pid, child.id() as i32);
    (std::mem::take(&mut dumped.text), status)
}

#[test]
fn null_write_gives_a_tombstone_naming_the_function() {
    let (text, status) = crash("null");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{text}");
    assert!(
        text.contains("signal 11 (SIGSEGV), code 1 (SEGV_MAPERR), fault addr 0x0000000000000000"),
        "{text}"
    );
    assert!(text.contains("Cause: null pointer dereference"), "{text}");
    assert!(
        text.contains("Build fingerprint: 'test/fingerprint'"),
        "{text}"
    );
    let backtrace: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "backtrace:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    // The faulting function (or, unoptimized, the write it calls) is on top.
    assert!(
        backtrace[..2]
            .iter()
            .any(|l| l.contains("(tombstone_crasher_write_null+")),
        "{text}"
    );
    // Rust names are demangled.
    assert!(
        backtrace
            .iter()
            .any(|l| l.contains("(tombstone_crasher::main+")),
        "{text}"
    );
    // The unwinder got past the first frame through .eh_frame.
    assert!(
        backtrace
            .iter()
            .any(|l| l.contains("(tombstone_crasher_outer+")),
        "{text}"
    );
    assert!(backtrace.len() >= 3, "{text}");
    assert!(text.contains("memory map ("), "{text}");
    assert!(
        text.ends_with("--------- tail end of log main\na log line\n"),
        "{text}"
    );
}

/// A process that closed its standard input gets descriptor 0 for the crash socket: still a
/// descriptor, so the crash is still dumped.
#[test]
fn a_crash_with_stdin_closed_is_dumped() {
    let (text, status) = crash("null-no-stdin");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{text}");
    assert!(text.contains("Cause: null pointer dereference"), "{text}");
}

#[test]
fn abort_is_reported_as_sent_and_still_kills() {
    let (text, status) = crash("abort");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{text}");
    assert!(
        text.contains("signal 6 (SIGABRT), code -6 (SI_TKILL), fault addr --------"),
        "{text}"
    );
}

/// A crash signal sent from outside (kill: SI_USER, code 0) is dumped, and the handler raises
/// it again once released, so the process still dies of it rather than carrying on.
#[test]
fn a_sent_crash_signal_is_dumped_and_still_kills() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("crash");
    let dumper = Dumper::bind(&socket).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tombstone_crasher"))
        .arg(&socket)
        .arg("wait")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSEGV).unwrap();
    let mut dumped = dumper.next("fp", &Vec::new).unwrap();
    assert!(
        dumped
            .text
            .contains("signal 11 (SIGSEGV), code 0 (SI_USER), fault addr --------"),
        "{}",
        dumped.text
    );
    dumped.release();
    // Not a timing check: a handler that swallowed the signal would leave the child sleeping
    // for good; 20 s is only how long the test waits before calling it that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child survived its SIGSEGV");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
}

/// Sends `message` to a fresh dumper from a thread of this process; what the dumper refuses.
fn refused(message: Vec<u8>) -> tombstone::dumper::DumpError {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("crash");
    let dumper = Dumper::bind(&socket).unwrap();
    let sender = std::thread::spawn(move || {
        let conn = android_log::seqpacket::connect_to(&socket).unwrap();
        android_log::seqpacket::send_packet(&conn, &message).unwrap();
        conn
    });
    let err = dumper.next("fp", &Vec::new).unwrap_err();
    drop(sender.join());
    err
}

fn segv_message(pid: i32, tid: i32) -> Vec<u8> {
    tombstone::message::CrashMessage {
        signal: libc::SIGSEGV,
        code: 1,
        pid,
        tid,
        fault_addr: 0,
        gregs: [0; tombstone::message::NGREG],
    }
    .encode()
    .to_vec()
}

#[test]
fn a_message_naming_another_process_thread_is_refused() {
    // init's thread, not the sender's.
    let err = refused(segv_message(1, 1));
    assert!(
        matches!(
            err,
            tombstone::dumper::DumpError::ForeignThread { tid: 1, .. }
        ),
        "{err}"
    );
}

/// A crash message one byte longer than the format is refused as such, not cut to size.
#[test]
fn an_oversized_crash_message_is_refused() {
    let own = std::process::id() as i32;
    let mut message = segv_message(own, own);
    message.push(0);
    let err = refused(message);
    assert!(
        matches!(
            err,
            tombstone::dumper::DumpError::Message(tombstone::message::MessageError::BadLength(n))
                if n == tombstone::message::MESSAGE_LEN + 1
        ),
        "{err}"
    );
}
