//! `/system/bin/apexd`: activates the payload disk's APEXes (see the library).

use std::process::ExitCode;

fn main() -> ExitCode {
    // In a VM that exports tombstones, a crash leaves one on the host.
    let _ = tombstone::handler::install(tombstone::CRASH_SOCKET);
    // AOSP: so that /apex/apex-info-list.xml and the mount points are world-readable.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    match apexd_lite::run(&apexd_lite::Config::default()) {
        Ok(active) => {
            println!("apexd: {} APEX(es) active", active.len());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("apexd: error: {:#}", anyhow::Error::from(err));
            ExitCode::FAILURE
        }
    }
}
