//! vmctl: runs Microdroid VMs. Everything lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    host_tools::cli::main(host_tools::cli::Cli::parse())
}
