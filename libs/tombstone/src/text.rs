//! The text tombstone, laid out as Android's debuggerd prints it (tombstone_proto_to_text): the
//! `*** ***` banner, header lines, the signal line, registers four to a row, the backtrace
//! (`#NN pc <rel pc>  <module> (<function>+<offset>) (BuildId: …)`), the memory map, and the
//! tail of the log.

use std::fmt::Write;

use crate::dump::Tombstone;
use crate::message::reg;

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => "?",
    }
}

pub fn code_name(signal: i32, code: i32) -> &'static str {
    match (signal, code) {
        (_, 0) => "SI_USER",
        (_, -1) => "SI_QUEUE",
        (_, -6) => "SI_TKILL",
        (_, 0x80) => "SI_KERNEL",
        (libc::SIGSEGV, 1) => "SEGV_MAPERR",
        (libc::SIGSEGV, 2) => "SEGV_ACCERR",
        (libc::SIGBUS, 1) => "BUS_ADRALN",
        (libc::SIGBUS, 2) => "BUS_ADRERR",
        (libc::SIGBUS, 3) => "BUS_OBJERR",
        (libc::SIGILL, 1) => "ILL_ILLOPC",
        (libc::SIGILL, 2) => "ILL_ILLOPN",
        (libc::SIGILL, 3) => "ILL_ILLADR",
        (libc::SIGILL, 4) => "ILL_ILLTRP",
        (libc::SIGILL, 5) => "ILL_PRVOPC",
        (libc::SIGFPE, 1) => "FPE_INTDIV",
        (libc::SIGFPE, 2) => "FPE_INTOVF",
        (libc::SIGFPE, 3) => "FPE_FLTDIV",
        (libc::SIGTRAP, 1) => "TRAP_BRKPT",
        (libc::SIGTRAP, 2) => "TRAP_TRACE",
        (libc::SIGSYS, 1) => "SYS_SECCOMP",
        _ => "?",
    }
}

/// Whether the signal carries an address (a fault, not a `kill`).
fn has_address(signal: i32, code: i32) -> bool {
    matches!(
        signal,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
    ) && code > 0
        && code != 0x80
}

fn timestamp(secs: u64, nanos: u32) -> String {
    let (y, mo, d, h, mi, s) = android_log::civil_time(secs);
    format!(
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:09}+0000",
        nanos
    )
}

/// The line debuggerd adds after the signal line for a recognisable cause.
fn cause(t: &Tombstone) -> Option<String> {
    if t.signal == libc::SIGSEGV && t.code > 0 && t.fault_addr < 4096 {
        Some("null pointer dereference".into())
    } else {
        None
    }
}

pub fn render(t: &Tombstone) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", ["***"; 16].join(" "));
    let _ = writeln!(o, "Build fingerprint: '{}'", t.build_fingerprint);
    let _ = writeln!(o, "Revision: '0'");
    let _ = writeln!(o, "ABI: 'x86_64'");
    let _ = writeln!(o, "Timestamp: {}", timestamp(t.timestamp.0, t.timestamp.1));
    let _ = writeln!(o, "Process uptime: {}s", t.process_uptime_secs);
    if t.cmdline.is_empty() {
        let _ = writeln!(o, "Cmdline: <unknown>");
    } else {
        let _ = writeln!(o, "Cmdline: {}", t.cmdline.join(" "));
    }
    let argv0 = t.cmdline.first().map(String::as_str).unwrap_or("<unknown>");
    let _ = writeln!(
        o,
        "pid: {}, tid: {}, name: {}  >>> {} <<<",
        t.pid, t.tid, t.thread_name, argv0
    );
    let _ = writeln!(o, "uid: {}", t.uid);
    let addr = if has_address(t.signal, t.code) {
        format!("0x{:016x}", t.fault_addr)
    } else {
        "--------".into()
    };
    let _ = writeln!(
        o,
        "signal {} ({}), code {} ({}), fault addr {addr}",
        t.signal,
        signal_name(t.signal),
        t.code,
        code_name(t.signal, t.code)
    );
    if let Some(c) = cause(t) {
        let _ = writeln!(o, "Cause: {c}");
    }
    let g = &t.gregs;
    let rows: [&[(&str, usize)]; 5] = [
        &[
            ("rax", reg::RAX),
            ("rbx", reg::RBX),
            ("rcx", reg::RCX),
            ("rdx", reg::RDX),
        ],
        &[
            ("r8", reg::R8),
            ("r9", reg::R9),
            ("r10", reg::R10),
            ("r11", reg::R11),
        ],
        &[
            ("r12", reg::R12),
            ("r13", reg::R13),
            ("r14", reg::R14),
            ("r15", reg::R15),
        ],
        &[("rdi", reg::RDI), ("rsi", reg::RSI)],
        &[("rbp", reg::RBP), ("rsp", reg::RSP), ("rip", reg::RIP)],
    ];
    for row in rows {
        let mut line = String::from("  ");
        for (name, i) in row {
            let _ = write!(line, "  {name:<3} {:016x}", g[*i]);
        }
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{} total frames", t.frames.len());
    let _ = writeln!(o, "backtrace:");
    for (i, f) in t.frames.iter().enumerate() {
        let mut line = format!(
            "      #{i:02} pc {:016x}  {}",
            f.rel_pc,
            f.module.as_deref().unwrap_or("<unknown>")
        );
        if let Some((name, off)) = &f.function {
            let _ = write!(line, " ({name}+{off})");
        }
        if let Some(id) = &f.build_id {
            let _ = write!(line, " (BuildId: {id})");
        }
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "memory map ({} entries):", t.maps.len());
    // debuggerd's marker: the mapping holding the fault address is flagged `--->`; an address
    // outside every mapping gets a line where it falls (before, between or after them).
    let mut fault = has_address(t.signal, t.code).then_some(t.fault_addr);
    for (i, m) in t.maps.iter().enumerate() {
        let mut prefix = "    ";
        if let Some(a) = fault {
            if a < m.start {
                let place = if i == 0 {
                    "before any mapping"
                } else {
                    "between mappings"
                };
                let _ = writeln!(o, "--->Fault address falls at {a:016x} {place}");
                fault = None;
            } else if a < m.end {
                prefix = "--->";
                fault = None;
            }
        }
        let _ = writeln!(
            o,
            "{prefix}{:016x}-{:016x} {} {:8x}  {}",
            m.start,
            m.end.saturating_sub(1),
            m.perms,
            m.offset,
            m.path
        );
    }
    if let Some(a) = fault {
        let _ = writeln!(o, "--->Fault address falls at {a:016x} after any mapping");
    }
    if !t.log_tail.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "--------- tail end of log main");
        for l in &t.log_tail {
            let _ = writeln!(o, "{l}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::NGREG;
    use crate::unwind::{Frame, Mapping};

    fn sample() -> Tombstone {
        let mut gregs = [0u64; NGREG];
        gregs[reg::RIP] = 0x7f00_0000_1139;
        Tombstone {
            build_fingerprint: "microdroid/x86_64".into(),
            timestamp: (1_796_514_586, 5),
            process_uptime_secs: 1,
            cmdline: vec![
                "/system/bin/microdroid_launcher".into(),
                "libcrash.so".into(),
            ],
            pid: 133,
            tid: 134,
            thread_name: "microdroid_laun".into(),
            uid: 1000,
            signal: libc::SIGSEGV,
            code: 1,
            fault_addr: 0,
            gregs,
            frames: vec![Frame {
                pc: 0x7f00_0000_1139,
                rel_pc: 0x1139,
                module: Some("/mnt/apk/lib/x86_64/libcrash.so".into()),
                function: Some(("crash_now".into(), 9)),
                build_id: Some("abcd".into()),
            }],
            maps: vec![Mapping {
                start: 0x7f00_0000_0000,
                end: 0x7f00_0000_2000,
                perms: "r-xp".into(),
                offset: 0,
                path: "/mnt/apk/lib/x86_64/libcrash.so".into(),
            }],
            log_tail: vec!["12-05 23:49:46.000   133   134 I payload : about to crash".into()],
        }
    }

    #[test]
    fn layout_as_debuggerd() {
        let text = render(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "*** *** *** *** *** *** *** *** *** *** *** *** *** *** *** ***"
        );
        assert_eq!(lines[4], "Timestamp: 2026-12-05 23:49:46.000000005+0000");
        assert_eq!(
            lines[7],
            "pid: 133, tid: 134, name: microdroid_laun  >>> /system/bin/microdroid_launcher <<<"
        );
        assert!(text.contains(
            "signal 11 (SIGSEGV), code 1 (SEGV_MAPERR), fault addr 0x0000000000000000\nCause: null pointer dereference\n"
        ));
        assert!(
            text.contains("    rbp 0000000000000000  rsp 0000000000000000  rip 00007f0000001139\n")
        );
        assert!(text.contains(
            "      #00 pc 0000000000001139  /mnt/apk/lib/x86_64/libcrash.so (crash_now+9) (BuildId: abcd)\n"
        ));
        assert!(text.contains("--->Fault address falls at 0000000000000000 before any mapping"));
        assert!(text.ends_with("--------- tail end of log main\n12-05 23:49:46.000   133   134 I payload : about to crash\n"));
    }

    /// A null pointer is any address in the first page; 4096 is the second page. The fault
    /// arrow is printed once, before the first mapping above the address, and not for an
    /// address a mapping starts at.
    #[test]
    fn null_page_cause_and_fault_arrow_bounds() {
        let mut t = sample();
        t.fault_addr = 4095;
        assert!(render(&t).contains("Cause: null pointer dereference\n"));
        t.fault_addr = 4096;
        assert!(!render(&t).contains("Cause:"));

        t.maps.push(Mapping {
            start: 0x7f00_0001_0000,
            end: 0x7f00_0001_1000,
            perms: "rw-p".into(),
            offset: 0,
            path: "[stack]".into(),
        });
        // Before, inside (first and last byte), between and after the mappings: one marker,
        // where debuggerd puts it.
        let map_line =
            "00007f0000000000-00007f0000001fff r-xp        0  /mnt/apk/lib/x86_64/libcrash.so\n";
        let cases = [
            (0x10, "memory map (2 entries):\n--->Fault address falls at 0000000000000010 before any mapping\n    00007f0000000000-".to_owned()),
            (0x7f00_0000_0000, format!("--->{map_line}    00007f0000010000-")),
            (0x7f00_0000_1fff, format!("--->{map_line}    00007f0000010000-")),
            (0x7f00_0000_2000, "libcrash.so\n--->Fault address falls at 00007f0000002000 between mappings\n    00007f0000010000-".to_owned()),
            (0x7f00_0001_1000, "[stack]\n--->Fault address falls at 00007f0000011000 after any mapping\n".to_owned()),
        ];
        for (address, expected) in cases {
            t.fault_addr = address;
            let text = render(&t);
            assert_eq!(text.matches("--->").count(), 1, "{text}");
            assert!(text.contains(&expected), "{address:#x}: {text}");
        }
    }

    #[test]
    fn sent_signals_have_no_address() {
        let mut t = sample();
        t.code = 0;
        let text = render(&t);
        assert!(
            text.contains("code 0 (SI_USER), fault addr --------"),
            "{text}"
        );
        assert!(!text.contains("Cause:"));
    }

    /// The names debuggerd prints, for every signal and code it names (asm-generic/siginfo.h).
    #[test]
    fn signal_and_code_names_are_debuggerds() {
        use super::{code_name, signal_name};
        let signals = [
            (libc::SIGABRT, "SIGABRT"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGSTKFLT, "SIGSTKFLT"),
            (libc::SIGSYS, "SIGSYS"),
            (libc::SIGTRAP, "SIGTRAP"),
            (libc::SIGUSR1, "?"),
        ];
        for (signal, name) in signals {
            assert_eq!(signal_name(signal), name);
        }
        let codes = [
            (libc::SIGSEGV, 0, "SI_USER"),
            (libc::SIGSEGV, -1, "SI_QUEUE"),
            (libc::SIGABRT, -6, "SI_TKILL"),
            (libc::SIGSEGV, 0x80, "SI_KERNEL"),
            (libc::SIGSEGV, 1, "SEGV_MAPERR"),
            (libc::SIGSEGV, 2, "SEGV_ACCERR"),
            (libc::SIGBUS, 1, "BUS_ADRALN"),
            (libc::SIGBUS, 2, "BUS_ADRERR"),
            (libc::SIGBUS, 3, "BUS_OBJERR"),
            (libc::SIGILL, 1, "ILL_ILLOPC"),
            (libc::SIGILL, 2, "ILL_ILLOPN"),
            (libc::SIGILL, 3, "ILL_ILLADR"),
            (libc::SIGILL, 4, "ILL_ILLTRP"),
            (libc::SIGILL, 5, "ILL_PRVOPC"),
            (libc::SIGFPE, 1, "FPE_INTDIV"),
            (libc::SIGFPE, 2, "FPE_INTOVF"),
            (libc::SIGFPE, 3, "FPE_FLTDIV"),
            (libc::SIGTRAP, 1, "TRAP_BRKPT"),
            (libc::SIGTRAP, 2, "TRAP_TRACE"),
            (libc::SIGSYS, 1, "SYS_SECCOMP"),
            (libc::SIGSEGV, 3, "?"),
        ];
        for (signal, code, name) in codes {
            assert_eq!(code_name(signal, code), name, "{signal} {code}");
        }
    }
}
