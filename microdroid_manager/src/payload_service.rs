//! The payload's channel to microdroid_manager: `IVmPayloadService` over RPC binder on the Unix
//! socket `/dev/socket/vm_payload_service` (AOSP's `microdroid_manager/src/vm_payload_service.rs`
//! in packages/modules/Virtualization).
//!
//! It is served on a background thread from before the payload is spawned until it has exited.
//! `notifyPayloadReady` is forwarded to the host over the host link, and the host's answer goes
//! back to the payload unchanged: a second ready, or a ready after the payload finished, is the
//! host's EX_ILLEGAL_STATE. `getVmInstanceSecret`, `getDiceAttestationChain` and
//! `getDiceAttestationCdi` answer from the payload's DICE node (see `identity`); a VM without
//! one (no instance) answers EX_UNSUPPORTED_OPERATION, as does `requestAttestation` (no remote
//! attestation service here).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rpcbinder::{ExceptionCode, Status};
use vm_payload_service::{
    PayloadServiceListener, VmPayloadService, VM_PAYLOAD_SERVICE_SOCKET_MODE,
    VM_PAYLOAD_SERVICE_SOCKET_PATH,
};
use zeroize::Zeroizing;

use crate::host_link::ReadyNotifier;
use crate::identity::VmSecret;

/// Mode of `/dev/socket` when we create it, as Android's init does: the payload (uid 6000) must
/// be able to reach the socket inside.
const SOCKET_DIR_MODE: u32 = 0o755;

/// What the payload's DICE node gives the payload: secrets derived from its CDI_Seal (never
/// the CDI_Seal itself), its chain and its CDI_Attest.
pub struct PayloadSecrets {
    pub vm_secret: VmSecret,
    pub dice_chain: Vec<u8>,
    pub cdi_attest: Zeroizing<[u8; dice::CDI_SIZE]>,
    /// AOSP's `allow_restricted_apis`: the DICE chain and CDI only for a payload started from a
    /// config file (`-71000`), not from a bare binary name.
    pub allow_restricted_apis: bool,
}

struct PayloadService {
    host: Arc<dyn ReadyNotifier>,
    secrets: Option<Arc<PayloadSecrets>>,
}

impl PayloadService {
    fn secrets(&self, method: &str) -> Result<&PayloadSecrets, Status> {
        self.secrets
            .as_deref()
            .ok_or_else(|| vm_payload_service::unsupported(method))
    }

    fn restricted(&self, method: &str) -> Result<&PayloadSecrets, Status> {
        let secrets = self.secrets(method)?;
        if !secrets.allow_restricted_apis {
            return Err(vm_payload_service::restricted(method));
        }
        Ok(secrets)
    }
}

impl VmPayloadService for PayloadService {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        crate::log("payload is ready, notifying the host");
        self.host.notify_payload_ready().inspect_err(|status| {
            crate::log(&format!("notifyPayloadReady refused by the host: {status}"))
        })
    }

    fn get_vm_instance_secret(&self, identifier: &[u8], size: i32) -> Result<Vec<u8>, Status> {
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= vm_payload_service::MAX_INSTANCE_SECRET_SIZE as usize)
            .ok_or_else(|| {
                Status::exception(
                    ExceptionCode::ILLEGAL_ARGUMENT,
                    format!("size {size} not in range (0..=32)"),
                )
            })?;
        let secret = self
            .secrets("getVmInstanceSecret")?
            .vm_secret
            .instance_secret(identifier, size)
            .map_err(|e| Status::service_specific(-1, format!("{e:#}")))?;
        Ok(secret.to_vec())
    }

    fn get_dice_attestation_chain(&self) -> Result<Vec<u8>, Status> {
        Ok(self
            .restricted("getDiceAttestationChain")?
            .dice_chain
            .clone())
    }

    fn get_dice_attestation_cdi(&self) -> Result<Vec<u8>, Status> {
        Ok(self
            .restricted("getDiceAttestationCdi")?
            .cdi_attest
            .to_vec())
    }
}

/// Binds `/dev/socket/vm_payload_service` (mode 0666) and serves the payload on a background
/// thread. Serving stops, and the socket is removed, when the returned listener is dropped.
pub fn start(
    host: Arc<dyn ReadyNotifier>,
    secrets: Option<Arc<PayloadSecrets>>,
) -> Result<PayloadServiceListener> {
    start_at(Path::new(VM_PAYLOAD_SERVICE_SOCKET_PATH), host, secrets)
}

/// [`start`] on another socket path (tests); its directory is created if missing.
pub fn start_at(
    path: &Path,
    host: Arc<dyn ReadyNotifier>,
    secrets: Option<Arc<PayloadSecrets>>,
) -> Result<PayloadServiceListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(SOCKET_DIR_MODE)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let listener = PayloadServiceListener::bind(
        path,
        VM_PAYLOAD_SERVICE_SOCKET_MODE,
        Arc::new(PayloadService { host, secrets }),
    )
    .with_context(|| format!("serving IVmPayloadService on {}", path.display()))?;
    crate::log(&format!(
        "IVmPayloadService listening on {}",
        path.display()
    ));
    Ok(listener)
}

/// The payload's side of the channel under hostile input (the `payload_service` fuzz target).
///
/// The first byte configures the service (bit 0: the VM has a DICE node, bit 1: the payload
/// may use the restricted APIs); the rest is what a payload sends on the socket (handshake,
/// commands, EOF), served by the real [`PayloadService`] whose `notifyPayloadReady` goes to a
/// real host state machine in the same process. Asserts that nothing the payload can ask for
/// puts the CDI_Seal on the wire, and that the chain and CDI_Attest reach only a payload
/// allowed the restricted APIs. Returns what the service wrote back.
pub mod fuzzing {
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use rpcbinder::fuzzing::{MemStream, Recording};
    use rpcbinder::{RpcServer, Status};
    use vm_payload_service::{VmPayloadServiceBinder, VmPayloadServiceClient};
    use vm_service::{HostService, VirtualMachineService};
    use zeroize::Zeroizing;

    use super::{PayloadSecrets, PayloadService};
    use crate::host_link::ReadyNotifier;
    use crate::identity::VmSecret;

    /// A CDI_Seal no output may contain.
    pub const CDI_SEAL: [u8; 32] = *b"cdi-seal:never-on-the-wire-12345";
    /// The CDI_Attest and DICE chain served to an allowed payload.
    pub const CDI_ATTEST: [u8; 32] = *b"cdi-attest:for-allowed-payloads!";
    /// The DICE chain (a CBOR array header and a marker).
    pub const DICE_CHAIN: &[u8] = b"\x82dice-chain-for-allowed-payloads";

    struct InProcessHost(HostService);

    impl ReadyNotifier for InProcessHost {
        fn notify_payload_ready(&self) -> Result<(), Status> {
            self.0.notify_payload_ready()
        }
    }

    fn service(config: u8) -> VmPayloadServiceBinder<PayloadService> {
        let (host, _state, _events) = HostService::new(3);
        let _ = host.notify_payload_started();
        let secrets = (config & 1 != 0).then(|| {
            let cdis = dice::CdiValues {
                cdi_attest: CDI_ATTEST,
                cdi_seal: CDI_SEAL,
            };
            Arc::new(PayloadSecrets {
                vm_secret: VmSecret::new(&cdis),
                dice_chain: DICE_CHAIN.to_vec(),
                cdi_attest: Zeroizing::new(CDI_ATTEST),
                allow_restricted_apis: config & 2 != 0,
            })
        });
        VmPayloadServiceBinder(PayloadService {
            host: Arc::new(InProcessHost(host)),
            secrets,
        })
    }

    /// Serves `data` (config byte, then the payload's bytes); see the module's description.
    pub fn serve_payload(data: &[u8]) -> Vec<u8> {
        crate::CONSOLE_LOG.store(false, std::sync::atomic::Ordering::Relaxed);
        let Some((&config, input)) = data.split_first() else {
            return Vec::new();
        };
        let server = RpcServer::new(Arc::new(service(config)));
        let mut stream = MemStream::new(input);
        let _ = server.serve_connection(&mut stream);
        let out = stream.output;
        let contains = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&CDI_SEAL), "the CDI_Seal reached the payload");
        if config & 3 != 3 {
            assert!(
                !contains(&CDI_ATTEST),
                "CDI_Attest served to a restricted payload"
            );
            assert!(
                !contains(DICE_CHAIN),
                "DICE chain served to a restricted payload"
            );
        }
        out
    }

    /// A payload's whole session through the real client (`config` byte first): ready, an
    /// instance secret, the chain, the CDI, attestation, a secret of a size out of range.
    pub fn recorded_payload_session(config: u8) -> std::io::Result<Vec<u8>> {
        let (client_end, server_end) = UnixStream::pair()?;
        let server = RpcServer::new(Arc::new(service(config)));
        let serving = std::thread::spawn(move || server.serve_connection(server_end));
        let (recording, written) = Recording::new(client_end);
        let client = VmPayloadServiceClient::connect(recording)
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let _ = client.notify_payload_ready();
        let _ = client.get_vm_instance_secret(b"my-key", 32);
        let _ = client.get_dice_attestation_chain();
        let _ = client.get_dice_attestation_cdi();
        let _ = client.request_attestation(b"challenge", false);
        let _ = client.get_vm_instance_secret(b"too-big", 33);
        let _ = client.close();
        drop(client);
        let _ = serving.join();
        let mut bytes = vec![config];
        bytes.extend(written.lock().map(|w| w.clone()).unwrap_or_default());
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    use rpcbinder::ExceptionCode;
    use vm_payload_service::{ClientError, VmPayloadServiceClient};
    use vm_service::{PayloadState, VmEventKind};

    use super::*;
    use crate::host_link::tests::serve;

    fn seed_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/payload_service")
    }

    /// The seeds are sessions the real client made, with each configuration; served again, an
    /// allowed payload gets its secret, chain and CDI, a restricted one only its secret, a VM
    /// without DICE none (set MICRODROID_MANAGER_REGEN_SEEDS=1 to record them again).
    #[test]
    fn fuzz_seeds_are_whole_sessions_and_secrets_follow_the_configuration() {
        let regen = std::env::var_os("MICRODROID_MANAGER_REGEN_SEEDS").is_some();
        let secret = VmSecret::new(&dice::CdiValues {
            cdi_attest: fuzzing::CDI_ATTEST,
            cdi_seal: fuzzing::CDI_SEAL,
        })
        .instance_secret(b"my-key", 32)
        .unwrap();
        for config in 0u8..4 {
            let path = seed_dir().join(format!("session-config-{config}.bin"));
            if regen {
                std::fs::create_dir_all(seed_dir()).unwrap();
                std::fs::write(&path, fuzzing::recorded_payload_session(config).unwrap()).unwrap();
            }
            let seed = std::fs::read(&path).unwrap();
            let out = fuzzing::serve_payload(&seed);
            let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
            assert_eq!(has(&secret), config & 1 == 1, "config {config}");
            assert_eq!(has(&fuzzing::CDI_ATTEST), config == 3, "config {config}");
            assert_eq!(has(fuzzing::DICE_CHAIN), config == 3, "config {config}");
            // Cuts and flips never break the rules.
            for i in 0..seed.len() {
                let mut m = seed.clone();
                m[i] ^= 0x11;
                fuzzing::serve_payload(&m);
                fuzzing::serve_payload(&seed[..i]);
            }
        }
    }
    use crate::host_link::HostLink;

    fn refusal(result: Result<(), ClientError>) -> Status {
        match result {
            Err(ClientError::Service(status)) => status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ready_is_forwarded_and_the_hosts_refusal_comes_back() {
        let (mut link, events) = serve();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket/vm_payload_service");
        let listener = start_at(&path, link.ready_notifier(), None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o666);
        assert_eq!(mode(dir.path().join("socket").as_path()), 0o755);

        link.notify_payload_started().unwrap();
        let payload = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
        payload.notify_payload_ready().unwrap();
        let again = refusal(payload.notify_payload_ready());
        assert_eq!(again.exception_code(), ExceptionCode::ILLEGAL_STATE);
        assert_eq!(
            again.message(),
            "Invalid payload state transition from Ready to Ready"
        );
        let secret = refusal(payload.get_vm_instance_secret(b"id", 32).map(|_| ()));
        assert_eq!(
            secret.exception_code(),
            ExceptionCode::UNSUPPORTED_OPERATION
        );
        link.notify_payload_finished(0).unwrap();
        payload.close().unwrap();
        drop(listener);
        assert!(!path.exists());
        drop(link);
        let kinds: Vec<VmEventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds[..4],
            [
                VmEventKind::PayloadStarted,
                VmEventKind::PayloadReady,
                VmEventKind::Rejected {
                    method: "notifyPayloadReady",
                    state: PayloadState::Ready
                },
                VmEventKind::PayloadFinished(0),
            ]
        );
    }

    #[test]
    fn secrets_chain_and_cdi_are_served_without_the_seal() {
        let (link, _events) = serve();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket/vm_payload_service");
        let cdis = dice::CdiValues {
            cdi_attest: [1; 32],
            cdi_seal: [2; 32],
        };
        let secrets = Arc::new(PayloadSecrets {
            vm_secret: VmSecret::new(&cdis),
            dice_chain: vec![0x82, 0x01, 0x02],
            cdi_attest: Zeroizing::new(cdis.cdi_attest),
            allow_restricted_apis: true,
        });
        let listener = start_at(&path, link.ready_notifier(), Some(secrets.clone())).unwrap();
        let payload = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
        let secret = payload.get_vm_instance_secret(b"id", 32).unwrap();
        assert_eq!(
            secret,
            secrets
                .vm_secret
                .instance_secret(b"id", 32)
                .unwrap()
                .to_vec()
        );
        assert_ne!(secret, vec![2u8; 32]);
        assert_eq!(
            payload.get_vm_instance_secret(b"id", 0).unwrap(),
            Vec::<u8>::new()
        );
        let too_big = refusal(payload.get_vm_instance_secret(b"id", 33).map(|_| ()));
        assert_eq!(too_big.exception_code(), ExceptionCode::ILLEGAL_ARGUMENT);
        assert_eq!(
            payload.get_dice_attestation_chain().unwrap(),
            vec![0x82, 0x01, 0x02]
        );
        assert_eq!(payload.get_dice_attestation_cdi().unwrap(), vec![1u8; 32]);
        payload.close().unwrap();
        drop(listener);

        // A payload started from a binary name gets the secret but not the DICE chain or CDI.
        let secrets = Arc::new(PayloadSecrets {
            vm_secret: VmSecret::new(&cdis),
            dice_chain: vec![0x80],
            cdi_attest: Zeroizing::new(cdis.cdi_attest),
            allow_restricted_apis: false,
        });
        let listener = start_at(&path, link.ready_notifier(), Some(secrets)).unwrap();
        let payload = VmPayloadServiceClient::connect(UnixStream::connect(&path).unwrap()).unwrap();
        assert_eq!(payload.get_vm_instance_secret(b"id", 32).unwrap(), secret);
        let denied = refusal(payload.get_dice_attestation_chain().map(|_| ()));
        assert_eq!(denied.exception_code(), ExceptionCode::SECURITY);
        let denied = refusal(payload.get_dice_attestation_cdi().map(|_| ()));
        assert_eq!(denied.exception_code(), ExceptionCode::SECURITY);
        payload.close().unwrap();
        drop(listener);
    }
}
