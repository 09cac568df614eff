//! The guest's logging, shaped as Android's: `logd` keeps a ring buffer per log buffer and
//! serves Android's three sockets (`logdw` for writers, `logdr` for readers, `logd` for
//! control), and tees every record to the host's log port; `logcat` reads and prints them. The
//! formats are in libs/android_log. init starts logd only in debuggable VMs, before any other
//! service.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod buffer;
pub mod daemon;
pub mod logcat;
