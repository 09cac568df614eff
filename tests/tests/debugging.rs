//! Debugging a VM as an AVF developer does, against Debian's stock tools: in a debuggable VM,
//! `vmctl adb CID` + `adb` (shell with exit codes, push/pull of 10 MiB, logcat with the
//! payload's liblog line), gdbserver on the payload through `adb forward`, the guest log in the
//! `--log` file, a tombstone on the host for a payload that writes through NULL (and none with
//! `export_tombstones: false`); and at debug level NONE, none of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boot_tests::{
    build_image, cc_shared, console_text, sign_tree, workspace_root, write_manifest, AdbClient,
    ImageChanges, TestSigner,
};
use host_tools::app::AppPayload;
use host_tools::outcome::VmOutcome;
use host_tools::vm::VmConfig;

const TIMEOUT: Duration = Duration::from_secs(180);

/// Logs a line with its tag, tells the host it is ready, then waits (up to WAIT_TENTHS/10 s)
/// for SIGUSR1 (sent from `adb shell`: the payload's sandbox does not show adb's files).
const WAITING_PAYLOAD: &str = r#"
#include <android/log.h>
#include <signal.h>
#include <unistd.h>
#include <vm_payload.h>
static volatile sig_atomic_t quit;
static void on_usr1(int signo) { (void)signo; quit = 1; }
int AVmPayload_main(void) {
    signal(SIGUSR1, on_usr1);
    __android_log_print(ANDROID_LOG_INFO, "adb_test", "payload logged %d", 42);
    AVmPayload_notifyPayloadReady();
    for (int i = 0; i < WAIT_TENTHS && !quit; i++) usleep(100000);
    return 0;
}
"#;

/// Writes through NULL in a function of its own.
const CRASHING_PAYLOAD: &str = r#"
#include <android/log.h>
#include <vm_payload.h>
__attribute__((noinline)) void crash_now(volatile int *where) { *where = 42; }
int AVmPayload_main(void) {
    __android_log_write(ANDROID_LOG_INFO, "crasher", "about to crash");
    crash_now((volatile int *)0);
    return 0;
}
"#;

/// An APK whose payload is `source` as libpayload.so, with `config_extra` merged into its
/// vm_config.json.
fn app(dir: &Path, name: &str, source: &str, config_extra: serde_json::Value) -> AppPayload {
    let tree = dir.join(format!("{name}.tree"));
    std::fs::create_dir_all(tree.join("assets")).unwrap();
    std::fs::create_dir_all(tree.join("lib/x86_64")).unwrap();
    let mut config =
        serde_json::json!({"task": {"type": "microdroid_launcher", "command": "libpayload.so"}});
    if let (Some(c), Some(extra)) = (config.as_object_mut(), config_extra.as_object()) {
        c.extend(extra.clone());
    }
    std::fs::write(tree.join("assets/vm_config.json"), config.to_string()).unwrap();
    write_manifest(&tree, &format!("com.example.{name}"), 1);
    cc_shared(
        &tree.join("lib/x86_64/libpayload.so"),
        source,
        &["log", "vm_payload"],
    );
    let (apk, idsig) = sign_tree(&tree, &dir.join(format!("{name}.apk")), TestSigner::Rsa);
    AppPayload::from_config_path(apk, idsig, "assets/vm_config.json")
}

fn config(dir: &Path, name: &str, app: AppPayload, debuggable: bool) -> VmConfig {
    let mut config = boot_tests::vm_config(dir, TIMEOUT);
    config.app = Some(app);
    config.instance = Some(dir.join(format!("{name}-instance.img")));
    config.debuggable = debuggable;
    config.log_file = Some(dir.join(format!("{name}.log")));
    config.tombstone_dir = Some(dir.join(format!("{name}-tombstones")));
    config
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CID of the VM whose guest vsock socket is `uds`.
fn cid_of(uds: &Path) -> u32 {
    let run_dir = uds.parent().unwrap();
    host_tools::registry::list(&host_tools::registry::default_runtime_dir())
        .into_iter()
        .find(|r| r.run_dir == run_dir)
        .map(|r| r.cid)
        .expect("the running VM is listed")
}

fn vmctl() -> PathBuf {
    workspace_root().join("target/release/vmctl")
}

/// What the host side saw while the debuggable VM ran.
#[derive(Debug, Default)]
struct Seen {
    port: u16,
    connect_line: String,
    connect_ran: String,
    echo: (String, Option<i32>),
    exit_false: Option<i32>,
    exit_7_stderr: (String, Option<i32>),
    pushed_pulled_equal: bool,
    logcat: String,
    gdb: String,
    garbage_closed: bool,
    after_garbage: String,
    selinux: String,
    privileges: String,
}

fn drive_debuggable_vm(uds: PathBuf) -> Seen {
    let cid = cid_of(&uds);
    let mut seen = Seen::default();
    // `vmctl adb CID --port P --connect`: the forward on the port asked for, the line to type,
    // and the client's `adb connect` run (a stand-in that records it, so as not to touch the
    // user's own adb server).
    let port = boot_tests::free_port();
    let recorder = uds.parent().unwrap().join("adb-args");
    let fake_adb = uds.parent().unwrap().join("fake-adb");
    std::fs::write(
        &fake_adb,
        format!("#!/bin/sh\necho \"$@\" > {}\n", recorder.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_adb,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut forward = Command::new(vmctl())
        .args([
            "adb",
            &cid.to_string(),
            "--port",
            &port.to_string(),
            "--connect",
            "--adb",
        ])
        .arg(&fake_adb)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(forward.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("vmctl adb printed its line").unwrap();
        if line.starts_with("adb connect ") {
            seen.connect_line = line.clone();
            break;
        }
    }
    seen.port = port;
    let c = AdbClient::connect(port);
    let out = c.on(&["shell", "echo hello from $(uname -s)"]);
    seen.echo = (text(&out.stdout), out.status.code());
    seen.exit_false = c.on(&["shell", "false"]).status.code();
    // Each service's bounding set and domain (docs/security.md's table).
    seen.privileges = text(
        &c.on(&[
            "shell",
            "for n in logd microdroid_manager zipfuse; do p=$(pidof $n); \
             echo $n $(grep CapBnd /proc/$p/status | cut -f2) $(cat /proc/$p/attr/current); done",
        ])
        .stdout,
    );
    // getenforce's answer, and the shell's own domain.
    seen.selinux = text(
        &c.on(&[
            "shell",
            "cat /sys/fs/selinux/enforce; echo; cat /proc/self/attr/current",
        ])
        .stdout,
    );
    let out = c.on(&["shell", "echo to-stderr >&2; exit 7"]);
    seen.exit_7_stderr = (text(&out.stderr), out.status.code());
    // 10 MiB there and back.
    let host = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(host.path().join("big"), &data).unwrap();
    let push = c.on(&[
        "push",
        host.path().join("big").to_str().unwrap(),
        "/data/local/tmp/big",
    ]);
    let pull = c.on(&[
        "pull",
        "/data/local/tmp/big",
        host.path().join("back").to_str().unwrap(),
    ]);
    seen.pushed_pulled_equal = push.status.success()
        && pull.status.success()
        && std::fs::read(host.path().join("back")).unwrap_or_default() == data;
    seen.logcat = text(&c.on(&["logcat", "-d"]).stdout);
    seen.gdb = gdbserver_session(&c);
    // Garbage on the adb port: that connection ends, adbd serves the next.
    seen.garbage_closed = {
        use std::io::{Read, Write};
        let mut s = host_tools::vsock::connect(&uds, 5555, Duration::from_secs(10)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"GARBAGE! this is not an adb packet header at all");
        let mut b = [0u8; 64];
        matches!(s.read(&mut b), Ok(0) | Err(_))
    };
    seen.after_garbage = text(&c.on(&["shell", "echo still here"]).stdout);
    // A service that dies of a signal leaves a tombstone too (AOSP's test sends SIGSEGV with
    // kill); init restarts logd.
    let _ = c.on(&["shell", "kill -SEGV $(pidof logd)"]);
    std::thread::sleep(Duration::from_secs(2));
    // --connect ran the client (long done by now).
    seen.connect_ran = std::fs::read_to_string(&recorder).unwrap_or_default();
    let _ = c.on(&[
        "shell",
        "kill -USR1 $(ps -o pid,comm | awk '/ microdroid_laun$/ {print $1}')",
    ]);
    let _ = forward.kill();
    let _ = forward.wait();
    seen
}

/// gdbserver attached to the payload in the guest, gdb on the host through `adb forward`.
fn gdbserver_session(c: &AdbClient) -> String {
    // The launcher names itself (comm, 15 characters) as AOSP's.
    let ps = text(&c.on(&["shell", "ps -o pid,comm"]).stdout);
    let Some(pid) = ps
        .lines()
        .find(|l| l.ends_with(" microdroid_laun"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
    else {
        return format!("no microdroid_launcher in ps:\n{ps}");
    };
    let _ = c.on(&[
        "shell",
        &format!(
            "gdbserver --once --attach 127.0.0.1:5039 {pid} >/data/local/tmp/gdbserver.log 2>&1 &"
        ),
    ]);
    let local = boot_tests::free_port();
    let _ = c.on(&["forward", &format!("tcp:{local}"), "tcp:5039"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("timeout")
            .args(["60", "gdb", "-batch", "-nx"])
            .args(["-ex", "set sysroot /nonexistent"])
            .args(["-ex", &format!("target remote 127.0.0.1:{local}")])
            .args(["-ex", "info registers rip"])
            .args(["-ex", "detach"])
            .output()
            .expect("running gdb (Debian package gdb, from make setup)");
        let all = text(&out.stdout) + &text(&out.stderr);
        if all.contains("rip ") || Instant::now() > deadline {
            return all
                + "\n--- gdbserver.log:\n"
                + &text(&c.on(&["shell", "cat /data/local/tmp/gdbserver.log"]).stdout);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn adb_logcat_gdbserver_and_the_log_file_in_a_debuggable_vm() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let source = format!("#define WAIT_TENTHS 1500\n{WAITING_PAYLOAD}");
    let app = app(dir, "debuggable", &source, serde_json::json!({}));
    let config = config(dir, "debuggable", app, true);
    let (result, seen) = boot_tests::run_with_ready_payload(&config, drive_debuggable_vm).unwrap();
    let console = console_text(&result);
    let seen = seen.unwrap_or_else(|| panic!("the payload never became ready:\n{console}"));
    println!("{seen:#?}");
    assert_eq!(result.outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert_eq!(
        seen.connect_line,
        format!("adb connect 127.0.0.1:{}", seen.port)
    );
    assert_eq!(
        seen.connect_ran,
        format!("connect 127.0.0.1:{}\n", seen.port)
    );
    assert_eq!(seen.echo, ("hello from Linux\n".into(), Some(0)));
    assert_eq!(seen.exit_false, Some(1));
    assert_eq!(seen.exit_7_stderr, ("to-stderr\n".into(), Some(7)));
    assert!(seen.pushed_pulled_equal, "10 MiB push/pull differ");
    // Threadtime, with the payload's tag, as Android's logcat prints it.
    let logged = seen
        .logcat
        .lines()
        .find(|l| l.ends_with(" I adb_test: payload logged 42"))
        .unwrap_or_else(|| panic!("no payload line in logcat:\n{}", seen.logcat));
    assert_eq!(logged.as_bytes()[2], b'-', "{logged}");
    assert!(
        seen.logcat.contains("--------- beginning of main"),
        "{}",
        seen.logcat
    );
    assert!(
        seen.logcat.contains(" I microdroid_manager: "),
        "{}",
        seen.logcat
    );
    assert!(seen.gdb.contains("rip "), "gdb session:\n{}", seen.gdb);
    assert!(
        seen.garbage_closed,
        "adbd kept a connection that sent garbage"
    );
    assert_eq!(seen.after_garbage, "still here\n");
    let mask = |names: &[&str]| format!("{:016x}", caps::CapSet::parse(names).unwrap().0);
    let expected = format!(
        "logd {} u:r:logd:s0\nmicrodroid_manager {} u:r:microdroid_manager:s0\nzipfuse {} u:r:zipfuse:s0\n",
        mask(&["AUDIT_CONTROL"]),
        mask(&[
            "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_CHROOT", "SETUID", "SETGID", "SETPCAP",
            "MKNOD", "CHOWN", "FOWNER", "DAC_OVERRIDE", "DAC_READ_SEARCH", "KILL",
        ]),
        mask(&["SYS_ADMIN"]),
    );
    assert_eq!(seen.privileges.replace('\0', ""), expected);
    assert_eq!(
        seen.selinux.trim_end_matches(['\0', '\n']),
        "1\nu:r:shell:s0",
        "SELinux enforcing, adb's shell in its domain"
    );
    // The --log file has the guest's log, kernel messages stay on the console.
    let log = std::fs::read_to_string(dir.join("debuggable.log")).unwrap();
    assert!(log.contains(" I adb_test: payload logged 42\n"), "{log}");
    assert!(!log.contains("Linux version"), "{log}");
    // The one tombstone is logd's, for a signal sent with kill.
    assert_eq!(
        result.tombstones.len(),
        1,
        "{:?}\n{console}",
        result.tombstones
    );
    let tombstone = std::fs::read_to_string(&result.tombstones[0]).unwrap();
    assert!(
        tombstone.contains(", name: logd  >>> /system/bin/logd <<<"),
        "{tombstone}"
    );
    assert!(
        tombstone.contains("signal 11 (SIGSEGV), code 0 (SI_USER), fault addr --------"),
        "{tombstone}"
    );
}

fn crash(
    dir: &Path,
    name: &str,
    extra: serde_json::Value,
    debuggable: bool,
) -> (host_tools::vm::VmResult, String) {
    let app = app(dir, name, CRASHING_PAYLOAD, extra);
    let result = boot_tests::boot(&config(dir, name, app, debuggable)).unwrap();
    let console = console_text(&result);
    match &result.outcome {
        VmOutcome::GuestError(d) => assert!(
            d.detail
                .as_deref()
                .unwrap_or("")
                .contains("signal: 11 (SIGSEGV)"),
            "{d:?}\n{console}"
        ),
        other => {
            panic!("expected the payload's SIGSEGV as the death reason, got {other:?}\n{console}")
        }
    }
    (result, console)
}

#[test]
fn a_null_dereference_leaves_a_tombstone_on_the_host() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let (result, console) = crash(dir, "crash", serde_json::json!({}), true);
    assert_eq!(result.tombstones.len(), 1, "{console}");
    let path = &result.tombstones[0];
    assert!(path.starts_with(dir.join("crash-tombstones")), "{path:?}");
    // The death reason points at it.
    let reason = result.outcome.to_string();
    assert!(
        reason.ends_with(&format!("; tombstone: {})", path.display())),
        "{reason}"
    );
    let tombstone = std::fs::read_to_string(path).unwrap();
    println!("{tombstone}");
    assert!(
        tombstone.starts_with(&format!("{}\n", ["***"; 16].join(" "))),
        "{tombstone}"
    );
    assert!(
        tombstone
            .contains("signal 11 (SIGSEGV), code 1 (SEGV_MAPERR), fault addr 0x0000000000000000\n"),
        "{tombstone}"
    );
    let top = tombstone
        .lines()
        .find(|l| l.starts_with("      #00 pc "))
        .unwrap_or_else(|| panic!("no backtrace:\n{tombstone}"));
    assert!(
        top.contains("/mnt/apk/lib/x86_64/libpayload.so (crash_now+"),
        "{top}"
    );
    assert!(tombstone.contains("(AVmPayload_main+"), "{tombstone}");
    assert!(tombstone.contains("uid: "), "{tombstone}");
    assert!(tombstone.contains("memory map ("), "{tombstone}");
    // The last log lines, with the payload's own.
    assert!(
        tombstone.contains(" I crasher : about to crash"),
        "{tombstone}"
    );
    // The crash is in the guest's log too (the crash buffer, as debuggerd).
    let log = std::fs::read_to_string(dir.join("crash.log")).unwrap();
    assert!(log.contains(" F DEBUG   : signal 11 (SIGSEGV)"), "{log}");

    // The config can turn export off.
    let (result, console) = crash(
        dir,
        "noexport",
        serde_json::json!({"export_tombstones": false}),
        true,
    );
    assert!(
        result.tombstones.is_empty(),
        "{:?}\n{console}",
        result.tombstones
    );
}

#[test]
fn debug_level_none_exposes_nothing() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let source = format!("#define WAIT_TENTHS 40\n{WAITING_PAYLOAD}");
    let app = app(dir, "none", &source, serde_json::json!({}));
    let config = config(dir, "none", app, false);
    let (result, seen) = boot_tests::run_with_ready_payload(&config, |uds| {
        let direct = host_tools::vsock::connect(&uds, 5555, Duration::from_secs(10))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let cli = Command::new(vmctl())
            .args(["adb", &cid_of(&uds).to_string()])
            .output()
            .unwrap();
        (format!("{direct:?}"), cli.status.code(), text(&cli.stderr))
    })
    .unwrap();
    let (direct, cli_status, cli_stderr) = seen.expect("the payload became ready");
    assert_eq!(
        result.outcome,
        VmOutcome::PayloadFinished(0),
        "{}",
        console_text(&result)
    );
    assert!(
        direct.contains("does not serve vsock port 5555"),
        "{direct}"
    );
    assert_eq!(cli_status, Some(1));
    assert!(
        cli_stderr.contains("not debuggable (debug level NONE): it runs no adbd"),
        "{cli_stderr}"
    );
    // No log stream: the file the host gave stays empty.
    assert_eq!(std::fs::read(dir.join("none.log")).unwrap_or_default(), b"");
    // No tombstone by default.
    let (result, console) = crash(dir, "nonecrash", serde_json::json!({}), false);
    assert!(
        result.tombstones.is_empty(),
        "{:?}\n{console}",
        result.tombstones
    );
}
