//! The demo payload: prints `Hello from Microdroid` and exits 0.
//!
//! Arguments (for the boot tests, passed through `task.args` of vm_config.json):
//! `--exit N` exits with N; `--hang` never returns; `--signal N` kills itself with signal N;
//! `--exec PATH` runs PATH and exits with its status, or 126 if it cannot be executed (to show
//! that extra APKs are mounted noexec).

use std::process::ExitCode;

fn main() -> ExitCode {
    println!("Hello from Microdroid");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => ExitCode::SUCCESS,
        ["--exit", code] => match code.parse::<u8>() {
            Ok(code) => {
                eprintln!("exiting with status {code} as asked");
                ExitCode::from(code)
            }
            Err(_) => usage(),
        },
        ["--exec", path] => match std::process::Command::new(path).status() {
            Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
            Err(err) => {
                eprintln!("cannot execute {path}: {err}");
                ExitCode::from(126)
            }
        },
        ["--hang"] => loop {
            std::thread::park();
        },
        ["--signal", signo] => match signo.parse::<i32>() {
            Ok(signo) => {
                eprintln!("raising signal {signo} as asked");
                // SAFETY: raise() has no memory-safety preconditions.
                unsafe { libc_raise(signo) };
                ExitCode::from(1)
            }
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: hello_payload [--exit N | --hang | --signal N | --exec PATH]");
    ExitCode::from(2)
}

extern "C" {
    #[link_name = "raise"]
    fn libc_raise(sig: i32) -> i32;
}
