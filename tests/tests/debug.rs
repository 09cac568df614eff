//! Debugging a VM: `--gdb PORT` exposes the guest kernel through the VMM's gdb stub (GDB's
//! remote serial protocol, checked byte by byte and then with Debian's gdb in batch mode), for
//! debuggable VMs only. tests/debugging.rs covers adb, logs, tombstones and gdbserver.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use boot_tests::{build_image, free_port, ImageChanges};

const HANG: &str = r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--hang"]}}"#;

/// One RSP packet: `$<data>#<checksum>`.
fn packet(data: &str) -> String {
    let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("${data}#{sum:02x}")
}

/// Sends `data` and returns the reply packet's data (after the `+` acknowledgement).
fn exchange(stream: &mut TcpStream, data: &str) -> String {
    stream.write_all(packet(data).as_bytes()).unwrap();
    read_packet(stream)
}

/// Reads the next packet's data and acknowledges it.
fn read_packet(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    // Skip acks until '$', then read to '#' and the two checksum digits.
    loop {
        stream.read_exact(&mut byte).unwrap();
        if byte[0] == b'$' {
            break;
        }
    }
    loop {
        stream.read_exact(&mut byte).unwrap();
        if byte[0] == b'#' {
            break;
        }
        reply.push(byte[0]);
    }
    let mut sum = [0u8; 2];
    stream.read_exact(&mut sum).unwrap();
    stream.write_all(b"+").unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn gdb_reaches_the_guest_kernel_of_a_debuggable_vm() {
    let image = build_image(&ImageChanges {
        vm_config: Some(HANG),
        ..Default::default()
    })
    .unwrap();
    let port = free_port();
    let mut config = boot_tests::vm_config(image.path(), Duration::from_secs(20));
    config.gdb_port = Some(port);
    let (result, answer) = boot_tests::run_with_ready_payload(&config, move |_uds| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // Why did the target stop (gdb stops it on attach): a stop reply, S or T.
        let stop = exchange(&mut stream, "?");
        // The registers of the vCPU: x86-64, so at least 16 8-byte registers in hex. (A stop
        // notification may come first.)
        let mut registers = exchange(&mut stream, "g");
        for _ in 0..4 {
            if !registers.starts_with('T') && !registers.starts_with('S') {
                break;
            }
            registers = read_packet(&mut stream);
        }
        // Detach: the VM runs on until the test's timeout ends it.
        let _ = stream.write_all(packet("D").as_bytes());
        drop(stream);
        // And Debian's gdb itself, as a developer types it.
        let gdb = std::process::Command::new("timeout")
            .args(["30", "gdb", "-batch", "-nx"])
            .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
            .args(["-ex", "info registers rip"])
            .args(["-ex", "detach"])
            .output()
            .expect("running gdb (Debian package gdb, from make setup)");
        let gdb = String::from_utf8_lossy(&gdb.stdout).into_owned()
            + &String::from_utf8_lossy(&gdb.stderr);
        (stop, registers, gdb)
    })
    .unwrap();
    let (stop, registers, gdb) = answer.expect("the payload never became ready");
    assert!(
        gdb.lines()
            .any(|l| l.starts_with("rip ") && l.contains("0x")),
        "gdb batch session:\n{gdb}"
    );
    assert!(
        stop.starts_with('S') || stop.starts_with('T'),
        "stop reply {stop:?}"
    );
    assert!(registers.len() >= 17 * 16, "registers {registers:?}");
    assert!(registers
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'x'));
    // rip, after the 16 general registers: where the vCPU was (kernel or user space).
    let rip = &registers[16 * 16..17 * 16];
    assert_ne!(rip, "0000000000000000", "rip {rip}");
    println!("outcome after detaching: {}", result.outcome);
}

#[test]
fn gdb_is_refused_for_a_vm_at_debug_level_none() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let mut config = boot_tests::vm_config(image.path(), Duration::from_secs(60));
    config.debuggable = false;
    config.gdb_port = Some(free_port());
    let err = host_tools::vm::run(&config).unwrap_err();
    assert!(
        format!("{err:#}").contains("--gdb needs a debuggable VM"),
        "{err:#}"
    );
}
