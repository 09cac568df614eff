//! PID 1's reaper with real children (its own test binary: nothing else here makes children
//! that it could take). The test process becomes a child subreaper, so that, like PID 1, it
//! inherits the orphans of its children; many children and orphans exit at about the same time
//! (their SIGCHLDs coalesce) and `reap_all` must collect every one, leaving no zombie.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;
use std::time::{Duration, Instant};

/// Our children that are zombies.
fn zombies() -> usize {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let mut f = rest.split_whitespace();
            let state = f.next();
            let ppid = f.next().and_then(|p| p.parse::<u32>().ok());
            state == Some("Z") && ppid == Some(me)
        })
        .count()
}

#[test]
fn every_child_and_orphan_is_reaped_whatever_the_signals_coalesce_into() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0);
    // Nothing to reap: ECHILD is "done", not an error.
    assert_eq!(init::supervisor::reap_all(|_| {}), 0);
    let mut expected = 0;
    for _ in 0..64 {
        // Dropped without a wait: each becomes a zombie only the reaper collects.
        drop(Command::new("true").spawn().unwrap());
        expected += 1;
    }
    for _ in 0..16 {
        // Each leaves two orphans behind, handed to us as to PID 1.
        drop(
            Command::new("sh")
                .args(["-c", "sleep 0.2 & sleep 0.3 & exit 0"])
                .spawn()
                .unwrap(),
        );
        expected += 3;
    }
    let mut reaped = 0;
    let mut exit_codes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reaped < expected {
        assert!(
            Instant::now() < deadline,
            "reaped {reaped} of {expected}; zombies left: {}",
            zombies()
        );
        reaped += init::supervisor::reap_all(|status| {
            if let nix::sys::wait::WaitStatus::Exited(_, code) = status {
                exit_codes.push(code);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(reaped, expected);
    assert!(exit_codes.iter().all(|&c| c == 0), "{exit_codes:?}");
    assert_eq!(zombies(), 0);
    assert_eq!(init::supervisor::reap_all(|_| {}), 0);
}
