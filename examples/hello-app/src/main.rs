//! The demo payload: prints `Hello from Microdroid`, counts its boots in the VM's encrypted
//! storage and prints the count with a short fingerprint of a VM instance secret (the same on
//! every boot of one instance, different for every other instance), tells the host it is ready
//! (`notifyPayloadReady` through microdroid_manager's IVmPayloadService) and exits 0.
//!
//! Arguments (for the boot tests, passed through `task.args` of vm_config.json):
//! `--exit N` exits with N; `--hang` never returns (after ready); `--signal N` kills itself with
//! signal N; `--exec PATH` runs PATH and exits with its status, or 126 if it cannot be executed
//! (to show that extra APKs are mounted noexec); `--ready-twice` calls ready a second time and
//! exits 0 if the host refused it, 1 if it was accepted; `--store TEXT` writes TEXT to the
//! encrypted storage, `--show-store` prints what is there (3: the VM has no storage); `--dice`
//! prints the VM's DICE chain (hex) and the size of its CDI; `--serve PORT` serves `IHello`
//! (this crate's library) to the host on vsock PORT until the host calls `quit()`;
//! `--reach-host-service` tries to call the host's IVirtualMachineService itself and exits 0 if
//! it is refused; `--try-escape` tries what the payload's confinement must refuse (escape.rs).
//!
//! Outside a VM (no `/dev/socket/vm_payload_service`) it says so and carries on.

use std::process::ExitCode;

mod escape;

use vm_payload_service::vm_payload;

fn main() -> ExitCode {
    println!("Hello from Microdroid");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(code) = show_identity() {
        return code;
    }
    // A server tells the host it is ready once it listens (AOSP's pattern), not before.
    let serves = args.first().map(String::as_str) == Some("--serve");
    if !serves {
        if let Err(code) = notify_ready() {
            return code;
        }
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
        ["--store", text] => match store_path() {
            Some(path) => match std::fs::write(&path, text).and_then(|_| sync_dir(&path)) {
                Ok(()) => {
                    println!("stored {} bytes in {}", text.len(), path.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("cannot write {}: {err}", path.display());
                    ExitCode::from(1)
                }
            },
            None => ExitCode::from(3),
        },
        ["--serve", port] => match port.parse::<u32>() {
            Ok(port) => serve(port),
            Err(_) => usage(),
        },
        ["--try-escape"] => escape::try_escape(),
        ["--reach-host-service"] => {
            // What only microdroid_manager may do: report to the host's IVirtualMachineService.
            let result = vm_service::VirtualMachineServiceClient::connect_vsock(Some(
                std::time::Duration::from_secs(5),
            ))
            .and_then(|host| host.notify_payload_finished(77));
            match result {
                Ok(()) => {
                    println!("the host service accepted a payload's call");
                    ExitCode::from(1)
                }
                Err(err) => {
                    println!("the host service refused the payload: {err}");
                    ExitCode::SUCCESS
                }
            }
        }
        ["--dice"] => match (
            vm_payload::dice_attestation_chain(),
            vm_payload::dice_attestation_cdi(),
        ) {
            (Ok(chain), Ok(cdi)) => {
                let hex: String = chain.iter().map(|b| format!("{b:02x}")).collect();
                println!("dice chain: {hex}");
                println!("dice cdi: {} bytes", cdi.len());
                // The host's handover came through fw_cfg; its driver must be gone by now. (The
                // payload's sandbox has no /sys: the module list says whether it is loaded.)
                println!(
                    "fw_cfg visible: {}",
                    std::fs::read_to_string("/proc/modules")
                        .map(|m| m.lines().any(|l| l.starts_with("qemu_fw_cfg ")))
                        .unwrap_or(true)
                );
                ExitCode::SUCCESS
            }
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("cannot read the DICE chain and CDI: {err}");
                ExitCode::from(1)
            }
        },
        ["--show-store"] => match store_path().map(|p| std::fs::read_to_string(&p)) {
            Some(Ok(text)) => {
                println!("stored text: {text}");
                ExitCode::SUCCESS
            }
            Some(Err(err)) => {
                eprintln!("cannot read the stored text: {err}");
                ExitCode::from(1)
            }
            None => ExitCode::from(3),
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

/// The file in the encrypted storage that counts boots.
const BOOT_COUNT_FILE: &str = "boot_count";
/// The identifier of the secret whose first bytes are printed.
const FINGERPRINT_ID: &[u8] = b"hello-app fingerprint";

/// Prints `boot N, secret fingerprint XXXXXXXX` (or what is missing). Outside a VM it notes
/// that and carries on; a failure inside one ends the payload with status 1.
fn show_identity() -> Result<(), ExitCode> {
    let fingerprint = match vm_payload::vm_instance_secret(FINGERPRINT_ID, 32) {
        Ok(secret) => secret
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        Err(err) if err.is_not_in_vm() => return Ok(()),
        Err(err) if err.is_unsupported() => {
            println!("no VM instance (no secrets or storage): {err}");
            return Ok(());
        }
        Err(err) => {
            eprintln!("getVmInstanceSecret failed: {err}");
            return Err(ExitCode::from(1));
        }
    };
    let Some(storage) = vm_payload::encrypted_storage_path() else {
        println!("no encrypted storage; secret fingerprint {fingerprint}");
        return Ok(());
    };
    match count_boot(&storage.join(BOOT_COUNT_FILE)) {
        Ok(count) => {
            println!("boot {count}, secret fingerprint {fingerprint}");
            Ok(())
        }
        Err(err) => {
            eprintln!("counting boots in {}: {err}", storage.display());
            Err(ExitCode::from(1))
        }
    }
}

/// Reads the count (0 when the file is new), writes count + 1 durably, returns it.
fn count_boot(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Write;
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let count = previous + 1;
    // Write a new file and rename it over the old one: a crash leaves one or the other.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{count}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(count)
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

/// Serves `IHello` to the host on vsock `port` (`AVmPayload_runVsockRpcServer`), plus a plain
/// stream echo on `port + 1` (the benchmark's baseline); exits 0 when the host calls `quit()`.
fn serve(port: u32) -> ExitCode {
    let cid = rpcbinder::vsock::get_local_cid().unwrap_or(0);
    let greeter = hello_payload::Greeter::new(cid, std::sync::Arc::new(|| std::process::exit(0)));
    // Listening before ready is told, like the RPC server.
    let echo = port.checked_add(1).and_then(|echo_port| {
        rpcbinder::vsock::VsockListener::bind(rpcbinder::vsock::VMADDR_CID_ANY, echo_port)
            .inspect_err(|e| eprintln!("echo: cannot listen on vsock port {echo_port}: {e}"))
            .ok()
    });
    if let Some(listener) = echo {
        std::thread::spawn(move || raw_echo(listener));
    }
    let result = vm_payload::run_vsock_rpc_server(std::sync::Arc::new(greeter), port, || {
        println!("serving IHello on vsock port {port}");
        if notify_ready().is_err() {
            std::process::exit(1);
        }
    });
    match result {
        Ok(never) => match never {},
        Err(err) => {
            eprintln!("IHello server: {err}");
            ExitCode::from(1)
        }
    }
}

/// A plain vsock stream echo for the host (no RPC): what the channel costs without binder.
fn raw_echo(listener: rpcbinder::vsock::VsockListener) {
    use std::io::{Read, Write};
    while let Ok((mut stream, _peer)) = listener.accept() {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// The file `--store` writes and `--show-store` reads, in the encrypted storage.
fn store_path() -> Option<std::path::PathBuf> {
    match vm_payload::encrypted_storage_path() {
        Some(dir) => Some(dir.join("stored_text")),
        None => {
            eprintln!("this VM has no encrypted storage");
            None
        }
    }
}

fn sync_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hello_payload [--exit N | --hang | --signal N | --exec PATH | --ready-twice | \
         --store TEXT | --show-store | --dice | --serve PORT | --reach-host-service]"
    );
    ExitCode::from(2)
}

extern "C" {
    #[link_name = "raise"]
    fn libc_raise(sig: i32) -> i32;
}
