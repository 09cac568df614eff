//! The VirtualizationService interfaces on the wire: transaction codes and descriptors as
//! AOSP's 24Q4 AIDL assigns them, parcel bytes of the small types, and every method through a
//! real session (proxy → bytes → stub), with fds and binder objects both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rpcbinder::{
    Parcel, ParcelReader, RpcSession, SessionConfig, SessionServer, SpIBinder, Status,
};
use virtualizationservice::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn codes_follow_aosp_declaration_order() {
    use callback_codes::*;
    use service_codes::*;
    use vm_codes::*;
    assert_eq!(
        [
            CREATE_VM,
            ALLOCATE_INSTANCE_ID,
            INITIALIZE_WRITABLE_PARTITION,
            CREATE_OR_UPDATE_IDSIG_FILE,
            DEBUG_LIST_VMS,
            GET_ASSIGNABLE_DEVICES,
            GET_SUPPORTED_OS_LIST,
            IS_FEATURE_ENABLED,
            ENABLE_TEST_ATTESTATION,
            IS_REMOTE_ATTESTATION_SUPPORTED,
            IS_UPDATABLE_VM_SUPPORTED,
            REMOVE_VM_INSTANCE,
            CLAIM_VM_INSTANCE
        ],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    );
    assert_eq!(
        [
            GET_CID,
            GET_STATE,
            REGISTER_CALLBACK,
            START,
            STOP,
            GET_MEMORY_BALLOON,
            SET_MEMORY_BALLOON,
            CONNECT_VSOCK,
            SET_HOST_CONSOLE_NAME,
            SUSPEND,
            RESUME
        ],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    assert_eq!(
        [
            ON_PAYLOAD_STARTED,
            ON_PAYLOAD_READY,
            ON_PAYLOAD_FINISHED,
            ON_ERROR,
            ON_DIED
        ],
        [1, 2, 3, 4, 5]
    );
    // Descriptor lengths in UTF-16 units, as the interface token carries them.
    assert_eq!(VIRTUALIZATION_SERVICE_DESCRIPTOR.encode_utf16().count(), 59);
    assert_eq!(VIRTUAL_MACHINE_DESCRIPTOR.encode_utf16().count(), 52);
    assert_eq!(
        VIRTUAL_MACHINE_CALLBACK_DESCRIPTOR.encode_utf16().count(),
        60
    );
    assert_eq!(VirtualMachineState::DEAD.0, 6);
}

#[test]
fn small_parcelables_have_aosp_bytes() {
    let mut p = Parcel::new();
    VirtualMachineDebugInfo {
        cid: 2048,
        temporary_directory: "/t".into(),
        requester_uid: 0,
        requester_pid: 7,
        host_console_name: None,
    }
    .write(&mut p);
    // i32 1 (non-null), i32 size (32: the size word itself and the fields), then cid,
    // String16 "/t" (length, 2 units, terminator, pad), uid, pid, null String16.
    assert_eq!(
        hex(p.data()),
        concat!(
            "01000000", "20000000", "00080000", "02000000", "2f007400", "00000000", "00000000",
            "07000000", "ffffffff"
        )
    );
    let mut r = ParcelReader::new(p.data());
    let info = VirtualMachineDebugInfo::read(&mut r).unwrap();
    assert_eq!(info.cid, 2048);
    assert_eq!(info.host_console_name, None);
}

#[test]
fn union_tags_and_bad_input() {
    // A config union with an unknown tag is refused (BAD_VALUE), not misread.
    let mut p = Parcel::new();
    p.write_i32(7);
    let err = VirtualMachineConfig::read(&mut ParcelReader::new(p.data())).unwrap_err();
    assert_eq!(err, rpcbinder::ParcelError::BadValue(7));
    // A huge list count cannot make the reader allocate: it is bounded by the bytes left.
    let mut p = Parcel::new();
    p.write_i32(1);
    p.write_i32(0x7fff_0000);
    let err = read_strings(&mut ParcelReader::new(&p.data()[4..])).unwrap_err();
    assert!(
        matches!(err, rpcbinder::ParcelError::BadLength(_)),
        "{err:?}"
    );
}

/// What the fake service saw.
#[derive(Default)]
struct Seen {
    configs: Vec<String>,
    /// The VM and instance methods called, with their arguments.
    calls: Vec<String>,
    /// What the next yes/no query answers; each answer flips it, so that a test sees both.
    answer: bool,
}

fn record(seen: &Mutex<Seen>, call: String) {
    seen.lock().unwrap().calls.push(call);
}

fn next_answer(seen: &Mutex<Seen>) -> bool {
    let mut seen = seen.lock().unwrap();
    seen.answer = !seen.answer;
    seen.answer
}

struct FakeService {
    seen: Arc<Mutex<Seen>>,
}

struct FakeVm {
    callbacks: Mutex<Vec<VirtualMachineCallbackProxy>>,
    seen: Arc<Mutex<Seen>>,
}

impl IVirtualMachine for FakeVm {
    fn get_cid(&self) -> ServiceResult<i32> {
        Ok(2049)
    }
    fn get_state(&self) -> ServiceResult<VirtualMachineState> {
        Ok(VirtualMachineState::NOT_STARTED)
    }
    fn register_callback(&self, callback: SpIBinder) -> ServiceResult<()> {
        self.callbacks
            .lock()
            .unwrap()
            .push(VirtualMachineCallbackProxy(callback));
        Ok(())
    }
    fn start(&self) -> ServiceResult<()> {
        let callbacks = self.callbacks.lock().unwrap().clone();
        std::thread::spawn(move || {
            for cb in callbacks {
                cb.on_payload_started(2049).unwrap();
                cb.on_payload_ready(2049).unwrap();
                cb.on_error(2049, ErrorCode::PAYLOAD_CHANGED, "changed")
                    .unwrap();
                cb.on_payload_finished(2049, 3).unwrap();
                cb.on_died(2049, DeathReason(3)).unwrap();
            }
        });
        Ok(())
    }
    fn stop(&self) -> ServiceResult<()> {
        Err(service_error("VM is not running"))
    }
    fn get_memory_balloon(&self) -> ServiceResult<i64> {
        Ok(1 << 33)
    }
    fn set_memory_balloon(&self, n: i64) -> ServiceResult<()> {
        record(&self.seen, format!("balloon {n}"));
        Ok(())
    }
    fn connect_vsock(&self, port: i32) -> ServiceResult<OwnedFd> {
        let (a, b) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut b = b;
            let _ = b.write_all(&port.to_le_bytes());
        });
        Ok(a.into())
    }
    fn set_host_console_name(&self, name: &str) -> ServiceResult<()> {
        record(&self.seen, format!("console {name}"));
        Ok(())
    }
    fn suspend(&self) -> ServiceResult<()> {
        record(&self.seen, "suspend".into());
        Ok(())
    }
    fn resume(&self) -> ServiceResult<()> {
        Err(unsupported("resume"))
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut f = std::fs::File::from(fd);
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

impl IVirtualizationService for FakeService {
    fn create_vm(
        &self,
        config: VirtualMachineConfig,
        console_out: Option<OwnedFd>,
        console_in: Option<OwnedFd>,
        os_log: Option<OwnedFd>,
    ) -> ServiceResult<SpIBinder> {
        let text = match config {
            VirtualMachineConfig::AppConfig(a) => {
                let payload = match &a.payload {
                    Payload::ConfigPath(p) => p.clone(),
                    Payload::PayloadConfig(c) => {
                        format!("{}+{}", c.payload_binary_name, c.extra_apks.len())
                    }
                };
                format!(
                    "app {} apk={} idsig={} extra={} inst={} storage={} payload={payload} os={} debug={} mem={} cpu={} custom={:?} {}{}",
                    a.name,
                    read_all(a.apk),
                    read_all(a.idsig),
                    a.extra_idsigs.len(),
                    read_all(a.instance_image),
                    a.encrypted_storage_image.is_some(),
                    a.os_name,
                    a.debug_level,
                    a.memory_mib,
                    a.cpu_topology,
                    a.custom_config.map(|c| (c.gdb_port, c.extra_kernel_cmdline_params)),
                    a.huge_pages,
                    a.instance_id[63],
                )
            }
            VirtualMachineConfig::RawConfig(r) => format!(
                "raw {} kernel={} params={:?} disks={} parts={} version={} console={:?} usb={:?}",
                r.name,
                read_all(r.kernel.unwrap()),
                r.params,
                r.disks.len(),
                r.disks.iter().map(|d| d.partitions.len()).sum::<usize>(),
                r.platform_version,
                r.console_input_device,
                r.usb_config,
            ),
        };
        let text = format!(
            "{text} fds={}{}{}",
            u8::from(console_out.is_some()),
            u8::from(console_in.is_some()),
            u8::from(os_log.is_some())
        );
        self.seen.lock().unwrap().configs.push(text);
        Ok(SpIBinder::local(Arc::new(BnVirtualMachine(FakeVm {
            callbacks: Mutex::new(Vec::new()),
            seen: self.seen.clone(),
        }))))
    }
    fn allocate_instance_id(&self) -> ServiceResult<[u8; INSTANCE_ID_SIZE]> {
        Ok([9; INSTANCE_ID_SIZE])
    }
    fn initialize_writable_partition(
        &self,
        image: OwnedFd,
        size: i64,
        t: PartitionType,
    ) -> ServiceResult<()> {
        let mut f = std::fs::File::from(image);
        write!(f, "{size} {t}").unwrap();
        Ok(())
    }
    fn create_or_update_idsig_file(&self, input: OwnedFd, idsig: OwnedFd) -> ServiceResult<()> {
        let text = read_all(input);
        let mut f = std::fs::File::from(idsig);
        write!(f, "idsig of {text}").unwrap();
        Ok(())
    }
    fn debug_list_vms(&self) -> ServiceResult<Vec<VirtualMachineDebugInfo>> {
        Ok(vec![VirtualMachineDebugInfo {
            cid: 2049,
            temporary_directory: "/tmp/x".into(),
            requester_uid: 1,
            requester_pid: 2,
            host_console_name: Some("pts".into()),
        }])
    }
    fn get_assignable_devices(&self) -> ServiceResult<Vec<AssignableDevice>> {
        Ok(vec![AssignableDevice {
            node: "/sys/x".into(),
            dtbo_label: "l".into(),
        }])
    }
    fn get_supported_os_list(&self) -> ServiceResult<Vec<String>> {
        Ok(vec!["microdroid".into()])
    }
    fn is_feature_enabled(&self, feature: &str) -> ServiceResult<bool> {
        Ok(feature == features::DICE_CHANGES)
    }
    fn enable_test_attestation(&self) -> ServiceResult<()> {
        Err(unsupported("no"))
    }
    fn is_remote_attestation_supported(&self) -> ServiceResult<bool> {
        Ok(next_answer(&self.seen))
    }
    fn is_updatable_vm_supported(&self) -> ServiceResult<bool> {
        Ok(next_answer(&self.seen))
    }
    fn remove_vm_instance(&self, id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()> {
        record(&self.seen, format!("remove {}", id[0]));
        Ok(())
    }
    fn claim_vm_instance(&self, id: [u8; INSTANCE_ID_SIZE]) -> ServiceResult<()> {
        Err(Status::service_specific(-1, format!("nope {}", id[0])))
    }
    fn extension(&self) -> Option<SpIBinder> {
        Some(SpIBinder::local(Arc::new(BnVirtualMachineCallback(
            Recorder(mpsc::channel().0),
        ))))
    }
}

fn connect() -> (RpcSession, VirtualizationServiceProxy, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let root = BnVirtualizationService::new_binder(FakeService { seen: seen.clone() });
    let server = SessionServer::new(
        root,
        SessionConfig {
            unix_fds: true,
            ..SessionConfig::default()
        },
    );
    let connector = move || {
        let (mine, theirs) = UnixStream::pair()?;
        let server = server.clone();
        std::thread::spawn(move || server.accept(theirs.into()));
        Ok(mine.into())
    };
    let session = RpcSession::connect(
        SessionConfig {
            unix_fds: true,
            threads: 2,
            ..SessionConfig::default()
        },
        connector,
    )
    .unwrap();
    let proxy = VirtualizationServiceProxy::from_binder(session.root().unwrap()).unwrap();
    (session, proxy, seen)
}

fn file_with(text: &str) -> OwnedFd {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.into()
}

#[test]
fn every_service_method_through_a_session() {
    let (_session, service, seen) = connect();
    assert_eq!(service.allocate_instance_id().unwrap(), [9; 64]);
    assert!(service.is_feature_enabled(features::DICE_CHANGES).unwrap());
    assert!(!service.is_feature_enabled(features::NETWORK).unwrap());
    assert_eq!(service.get_supported_os_list().unwrap(), ["microdroid"]);
    // The fake flips its answer on every query: each proxy must pass on what it was told.
    assert!(service.is_updatable_vm_supported().unwrap());
    assert!(!service.is_updatable_vm_supported().unwrap());
    assert!(service.is_remote_attestation_supported().unwrap());
    assert!(!service.is_remote_attestation_supported().unwrap());
    assert_eq!(service.get_assignable_devices().unwrap()[0].dtbo_label, "l");
    let vms = service.debug_list_vms().unwrap();
    assert_eq!(
        (vms[0].cid, vms[0].host_console_name.as_deref()),
        (2049, Some("pts"))
    );

    let part = tempfile::tempfile().unwrap();
    service
        .initialize_writable_partition(
            part.try_clone().unwrap().into(),
            4096,
            PartitionType::ENCRYPTEDSTORE,
        )
        .unwrap();
    assert_eq!(read_all(part.into()), "4096 ENCRYPTEDSTORE");
    let idsig = tempfile::tempfile().unwrap();
    service
        .create_or_update_idsig_file(file_with("apk"), idsig.try_clone().unwrap().into())
        .unwrap();
    assert_eq!(read_all(idsig.into()), "idsig of apk");

    let mut instance_id = [0u8; 64];
    instance_id[63] = 5;
    let app = VirtualMachineConfig::AppConfig(Box::new(VirtualMachineAppConfig {
        name: "n".into(),
        instance_id,
        apk: file_with("A"),
        idsig: file_with("I"),
        extra_idsigs: vec![file_with("x")],
        instance_image: file_with("N"),
        encrypted_storage_image: Some(file_with("S")),
        payload: Payload::PayloadConfig(VirtualMachinePayloadConfig {
            payload_binary_name: "libp.so".into(),
            extra_apks: vec![file_with("e")],
        }),
        os_name: "microdroid".into(),
        debug_level: DebugLevel::FULL,
        protected_vm: false,
        memory_mib: 300,
        cpu_topology: CpuTopology::MATCH_HOST,
        custom_config: Some(CustomConfig {
            gdb_port: 1234,
            extra_kernel_cmdline_params: vec!["a=b".into()],
            ..CustomConfig::default()
        }),
        huge_pages: true,
        boost_uclamp: false,
    }));
    let vm = service
        .create_vm(&app, Some(file_with("")), None, None)
        .unwrap();
    assert_eq!(vm.get_cid().unwrap(), 2049);
    let raw = VirtualMachineConfig::RawConfig(Box::new(VirtualMachineRawConfig {
        name: "r".into(),
        kernel: Some(file_with("K")),
        params: Some("console=ttyS0".into()),
        disks: vec![
            DiskImage {
                image: Some(file_with("D")),
                writable: true,
                partitions: vec![],
            },
            DiskImage {
                image: None,
                writable: false,
                partitions: vec![Partition {
                    label: "p".into(),
                    image: file_with("P"),
                    writable: false,
                    guid: None,
                }],
            },
        ],
        platform_version: "~1.0".into(),
        console_input_device: Some("ttyS0".into()),
        usb_config: Some(UsbConfig { controller: false }),
        ..VirtualMachineRawConfig::default()
    }));
    drop(
        service
            .create_vm(&raw, None, Some(file_with("")), Some(file_with("")))
            .unwrap(),
    );
    let configs = seen.lock().unwrap().configs.clone();
    assert_eq!(
        configs,
        [
            "app n apk=A idsig=I extra=1 inst=N storage=true payload=libp.so+1 os=microdroid \
             debug=FULL mem=300 cpu=MATCH_HOST custom=Some((1234, [\"a=b\"])) true5 fds=100",
            "raw r kernel=K params=Some(\"console=ttyS0\") disks=2 parts=1 version=~1.0 \
             console=Some(\"ttyS0\") usb=Some(UsbConfig { controller: false }) fds=011",
        ]
    );
    let mut id = [0u8; INSTANCE_ID_SIZE];
    id[0] = 7;
    let err = service.claim_vm_instance(&id).unwrap_err();
    match err {
        rpcbinder::CallError::Service(status) => {
            assert_eq!(status.service_specific_error(), -1);
            assert_eq!(status.message(), "nope 7");
        }
        other => panic!("{other:?}"),
    }
    id[0] = 8;
    service.remove_vm_instance(&id).unwrap();
    let err = service.enable_test_attestation().unwrap_err().to_string();
    assert!(err.contains("no"), "{err}");
    assert_eq!(seen.lock().unwrap().calls, ["remove 8"]);
    // The extension object comes through as the binder the service named.
    let extension = service.extension().unwrap().expect("an extension");
    let descriptor = extension
        .as_remote()
        .unwrap()
        .interface_descriptor()
        .unwrap();
    assert_eq!(descriptor, VIRTUAL_MACHINE_CALLBACK_DESCRIPTOR);
}

#[test]
fn helpers_carry_aosp_exception_codes() {
    use rpcbinder::ExceptionCode;
    let s = service_error("e");
    assert_eq!(
        (s.exception_code(), s.service_specific_error(), s.message()),
        (ExceptionCode::SERVICE_SPECIFIC, -1, "e")
    );
    assert_eq!(
        unsupported("u").exception_code(),
        ExceptionCode::UNSUPPORTED_OPERATION
    );
    assert_eq!(
        illegal_argument("i").exception_code(),
        ExceptionCode::ILLEGAL_ARGUMENT
    );
}

#[test]
fn proxies_check_the_descriptor_and_liveness() {
    let (session, service, _) = connect();
    // The root object is not an IVirtualMachine: wrapping it as one is refused.
    let err = VirtualMachineProxy::from_binder(service.0.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            rpcbinder::CallError::Rpc(rpcbinder::Error::DescriptorMismatch { .. })
        ),
        "{err:?}"
    );
    // A local object is not a remote service.
    let local = SpIBinder::local(Arc::new(BnVirtualMachineCallback(Recorder(
        mpsc::channel().0,
    ))));
    assert!(VirtualizationServiceProxy::from_binder(local.clone()).is_err());
    assert!(!VirtualMachineProxy(local).is_alive());
    let raw = VirtualMachineConfig::RawConfig(Box::new(VirtualMachineRawConfig {
        kernel: Some(file_with("K")),
        platform_version: "1.0.0".into(),
        ..VirtualMachineRawConfig::default()
    }));
    let vm = service.create_vm(&raw, None, None, None).unwrap();
    assert!(vm.is_alive());
    drop(session);
}

struct Recorder(mpsc::Sender<String>);

impl IVirtualMachineCallback for Recorder {
    fn on_payload_started(&self, cid: i32) {
        self.0.send(format!("started {cid}")).unwrap();
    }
    fn on_payload_ready(&self, cid: i32) {
        self.0.send(format!("ready {cid}")).unwrap();
    }
    fn on_payload_finished(&self, cid: i32, exit_code: i32) {
        self.0.send(format!("finished {cid} {exit_code}")).unwrap();
    }
    fn on_error(&self, cid: i32, code: ErrorCode, message: &str) {
        self.0
            .send(format!("error {cid} {code} {message}"))
            .unwrap();
    }
    fn on_died(&self, cid: i32, reason: DeathReason) {
        self.0.send(format!("died {cid} {reason}")).unwrap();
    }
}

#[test]
fn vm_methods_callbacks_and_connect_vsock() {
    let (_session, service, seen) = connect();
    let raw = VirtualMachineConfig::RawConfig(Box::new(VirtualMachineRawConfig {
        kernel: Some(file_with("K")),
        platform_version: "1.0.0".into(),
        ..VirtualMachineRawConfig::default()
    }));
    let vm = service.create_vm(&raw, None, None, None).unwrap();
    assert_eq!(vm.get_state().unwrap(), VirtualMachineState::NOT_STARTED);
    let (tx, rx) = mpsc::channel();
    let cb = SpIBinder::local(Arc::new(BnVirtualMachineCallback(Recorder(tx))));
    vm.register_callback(&cb).unwrap();
    vm.start().unwrap();
    let got: Vec<String> = (0..5)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "started 2049",
            "ready 2049",
            "error 2049 PAYLOAD_CHANGED changed",
            "finished 2049 3",
            "died 2049 SHUTDOWN"
        ]
    );
    let err = vm.stop().unwrap_err().to_string();
    assert!(err.contains("VM is not running"), "{err}");
    assert_eq!(vm.get_memory_balloon().unwrap(), 1 << 33);
    vm.set_memory_balloon(1 << 20).unwrap();
    vm.set_host_console_name("/dev/pts/3").unwrap();
    vm.suspend().unwrap();
    let err = vm.resume().unwrap_err().to_string();
    assert!(err.contains("resume"), "{err}");
    assert_eq!(
        seen.lock().unwrap().calls,
        ["balloon 1048576", "console /dev/pts/3", "suspend"]
    );
    let fd = vm.connect_vsock(5678).unwrap();
    let mut port = [0u8; 4];
    std::fs::File::from(fd).read_exact(&mut port).unwrap();
    assert_eq!(i32::from_le_bytes(port), 5678);
}

#[test]
fn bad_parcels_get_their_errors() {
    use rpcbinder::ParcelError;
    use virtualizationservice::fuzzing::read;
    let words = |w: &[i32]| -> Vec<u8> {
        let mut b = vec![0u8]; // reader 0: VirtualMachineConfig
        for x in w {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    };
    // Empty: not enough data for the tag.
    assert!(matches!(read(&[0]), Err(ParcelError::NotEnoughData { .. })));
    // Unknown union tag.
    assert_eq!(read(&words(&[2])), Err(ParcelError::BadValue(2)));
    // App config marked null.
    assert_eq!(read(&words(&[0, 0])), Err(ParcelError::UnexpectedNull));
    // A parcelable size past the end.
    assert_eq!(
        read(&words(&[0, 1, 400])),
        Err(ParcelError::BadParcelableSize(400))
    );
    // Raw config: name "", instance id of 3 bytes instead of 64.
    assert_eq!(
        read(&words(&[1, 1, 20, 0, 0, 3, 0])),
        Err(ParcelError::BadValue(3))
    );
    // An fd index the message did not carry.
    let mut raw = vec![1, 1, 96, 0, 0, 64];
    raw.extend([0; 16]);
    raw.extend([1, 0, 2, 99]); // kernel: a PFD whose fd index is 99
    assert_eq!(read(&words(&raw)), Err(ParcelError::BadFdIndex(99)));
    // Reader 1 is the debug-info list: one entry whose size runs past the end (read as a
    // string list, the same words are one short string).
    let mut b = vec![1u8];
    for w in [1i32, 1, 400] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(read(&b), Err(ParcelError::BadParcelableSize(400)));
    b[0] = 2;
    assert_eq!(read(&b), Ok(()));
    // A string list count past what the bytes left could hold (3 entries need at least 12
    // bytes; 8 are left) is refused before any entry is read.
    let mut b = vec![2u8];
    for w in [3i32, 0, 0] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(read(&b), Err(ParcelError::BadLength(3)));
    // A string list count larger than the parcel.
    let mut b = vec![2u8];
    b.extend_from_slice(&1000i32.to_le_bytes());
    assert_eq!(read(&b), Err(ParcelError::BadLength(1000)));
}
