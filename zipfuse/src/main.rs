//! zipfuse: mount a zip archive (an APK) read-only with FUSE. See `docs/zipfuse.md`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use zipfuse::fs::FsOptions;
use zipfuse::mount::{run, MountConfig, Ready};
use zipfuse::zran::DeflateOptions;

/// Mount a zip archive read-only (AOSP zipfuse's command line, plus tuning options).
#[derive(Parser, Debug)]
#[command(name = "zipfuse", version)]
struct Args {
    /// Extra comma-separated mount options (e.g. SELinux `context=...`).
    #[arg(short = 'o')]
    options: Vec<String>,
    /// Mount with noexec.
    #[arg(long)]
    noexec: bool,
    /// Readiness: write `ready\n` to this FIFO, or create this file, once mounted.
    #[arg(short = 'p', value_name = "READY")]
    ready_path: Option<PathBuf>,
    /// Readiness: write `ready\n` to this inherited descriptor and close it, once mounted.
    #[arg(long, value_name = "FD", conflicts_with = "ready_path")]
    ready_fd: Option<i32>,
    /// Owner of every file and directory.
    #[arg(short = 'u', default_value_t = 0)]
    uid: u32,
    /// Group of every file and directory.
    #[arg(short = 'g', default_value_t = 0)]
    gid: u32,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Set the mount's read_ahead_kb (kernel default is 128).
    #[arg(long, value_name = "KB")]
    readahead_kb: Option<u32>,
    /// Memory for the deflate checkpoint index, all entries together, in MiB.
    #[arg(long, default_value_t = 24)]
    index_mib: u64,
    /// Memory for the inflated-block cache, in MiB.
    #[arg(long, default_value_t = 8)]
    cache_mib: u64,
    /// Do not push inflated blocks into the kernel page cache.
    #[arg(long)]
    no_page_cache_feed: bool,
    /// Do not offer READDIRPLUS to the kernel.
    #[arg(long)]
    no_readdirplus: bool,
    /// When unmounted, print the FUSE requests served, by operation, to stderr.
    #[arg(long)]
    stats: bool,
    /// The archive (file or block device).
    zipfile: PathBuf,
    /// Where to mount it.
    mountpoint: PathBuf,
}

fn main() -> anyhow::Result<()> {
    // In a VM that exports tombstones, a crash leaves one on the host.
    let _ = tombstone::handler::install(tombstone::CRASH_SOCKET);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser=error"))
        .init();
    let args = Args::parse();
    let ready = match (args.ready_path, args.ready_fd) {
        (Some(p), _) => Ready::Path(p),
        (None, Some(fd)) => Ready::Fd(fd),
        (None, None) => Ready::None,
    };
    let cfg = MountConfig {
        zip: args.zipfile.clone(),
        mountpoint: args.mountpoint.clone(),
        extra_options: args.options,
        noexec: args.noexec,
        ready,
        threads: args.threads,
        readahead_kb: args.readahead_kb,
        fs: FsOptions {
            uid: args.uid,
            gid: args.gid,
            deflate: DeflateOptions {
                index_budget: args.index_mib << 20,
                cache_bytes: args.cache_mib << 20,
                ..DeflateOptions::default()
            },
            feed_page_cache: !args.no_page_cache_feed,
            readdirplus: !args.no_readdirplus,
        },
        stats: args.stats,
    };
    run(&cfg).with_context(|| {
        format!(
            "zipfuse {} on {}",
            args.zipfile.display(),
            args.mountpoint.display()
        )
    })
}
