//! zipfuse: a read-only FUSE filesystem for zip archives (APKs), see `docs/zipfuse.md`.
//!
//! * [`archive`] (the `ziparchive` crate) parses and validates the central directory and local
//!   headers.
//! * [`inode`] builds the directory tree.
//! * [`zran`] serves random reads of deflated entries through a lazily built checkpoint index.
//! * [`fs`] is the FUSE filesystem, [`mount`] mounts it and signals readiness.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub use ziparchive::archive;
pub mod check;
pub mod error;
pub mod inode;
pub mod rawinflate;
pub mod zran;

pub use error::ZipError;
pub mod fs;
pub mod mount;
