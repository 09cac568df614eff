//! virtmgr: AOSP's per-client VM manager. It serves `IVirtualizationService` over RPC binder
//! (on the Unix bootstrap socket its client gave it, or on a socket path), creates VMs as
//! `IVirtualMachine` objects that live while the client holds them, and runs each with the
//! VM engine (`host_tools::vm`). CIDs come from the host-wide registry, which every virtmgr and
//! vmctl shares: the part AOSP puts in VirtualizationServiceInternal.
//!
//! docs/api.md describes the API and its process model.

pub mod config;
pub mod instance;
pub mod service;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rpcbinder::{SessionConfig, SessionServer};

pub use service::VirtualizationService;

/// Whether virtmgr says on stderr how each VM ended (`--verbose`); its clients hear it through
/// their callbacks either way.
pub static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Connections a client may open per session (virtmgr keeps libbinder's default of one).
pub const SERVER_THREADS: u32 = 1;

/// The session settings virtmgr serves with: fds allowed (the API passes files).
pub fn session_config() -> SessionConfig {
    SessionConfig {
        unix_fds: true,
        threads: SERVER_THREADS,
        ..SessionConfig::default()
    }
}

/// Serves the bootstrap socket `rpc_server_fd` until the client closes it, after writing
/// AOSP's readiness byte `o` to `ready_fd`. Every VM is stopped before this returns.
pub fn serve_bootstrap(
    service: Arc<VirtualizationService>,
    rpc_server_fd: OwnedFd,
    ready_fd: Option<OwnedFd>,
) -> Result<()> {
    let server = SessionServer::new(service.clone().binder(), session_config());
    if let Some(ready) = ready_fd {
        let mut ready = std::fs::File::from(ready);
        ready
            .write_all(b"o")
            .context("writing the readiness byte")?;
    }
    let result = server.serve_bootstrap(rpc_server_fd);
    service.stop_all();
    result.context("serving the bootstrap socket")
}

/// Serves on a Unix socket path (each connection a session) until the process is stopped.
pub fn serve_path(service: Arc<VirtualizationService>, path: &Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    let server = SessionServer::new(service.binder(), session_config());
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let server = server.clone();
        std::thread::spawn(move || {
            let _ = server.accept(stream.into());
        });
    }
    Ok(())
}
