//! The demo payload: prints `Hello from Microdroid`, tells the host it is ready
//! (`notifyPayloadReady` through microdroid_manager's IVmPayloadService) and exits 0.
//!
//! Arguments (for the boot tests, passed through `task.args` of vm_config.json):
//! `--exit N` exits with N; `--hang` never returns (after ready); `--signal N` kills itself with
//! signal N; `--exec PATH` runs PATH and exits with its status, or 126 if it cannot be executed
//! (to show that extra APKs are mounted noexec); `--ready-twice` calls ready a second time and
//! exits 0 if the host refused it, 1 if it was accepted.
//!
//! Outside a VM (no `/dev/socket/vm_payload_service`) it says so and carries on.

use std::process::ExitCode;

use vm_payload_service::vm_payload;

fn main() -> ExitCode {
    println!("Hello from Microdroid");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(code) = notify_ready() {
        return code;
    }
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
        ["--ready-twice"] => match vm_payload::notify_payload_ready() {
            Ok(()) => {
                eprintln!("second notifyPayloadReady was accepted");
                ExitCode::from(1)
            }
            Err(err) => {
                eprintln!("second notifyPayloadReady refused: {err}");
                ExitCode::SUCCESS
            }
        },
        _ => usage(),
    }
}

/// Tells the host the payload is ready. Not being in a VM is fine (a note); any other failure
/// ends the payload with status 1.
fn notify_ready() -> Result<(), ExitCode> {
    match vm_payload::notify_payload_ready() {
        Ok(()) => {
            println!("notified the host that the payload is ready");
            Ok(())
        }
        Err(err) if err.is_not_in_vm() => {
            eprintln!("note: not in a Microdroid VM ({err}); not notifying readiness");
            Ok(())
        }
        Err(err) => {
            eprintln!("notifyPayloadReady failed: {err}");
            Err(ExitCode::from(1))
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hello_payload [--exit N | --hang | --signal N | --exec PATH | --ready-twice]"
    );
    ExitCode::from(2)
}

extern "C" {
    #[link_name = "raise"]
    fn libc_raise(sig: i32) -> i32;
}
