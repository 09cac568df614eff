//! The demo's host program: what an app does with AVF, with this project's vmclient.
//!
//! It spawns virtmgr, creates the hello app's VM (instance and storage images made if missing,
//! as `vm run-app` does), starts it with the console on stdout, waits until the payload serves
//! `IHello` on vsock, calls `greet`, prints the reply the VM computed, asks the payload to quit
//! and waits for the VM to end. Dropping the `VmInstance` would stop the VM as well.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hello_payload::HelloProxy;
use vmclient::aidl::{
    CpuTopology, DebugLevel, PartitionType, Payload, VirtualMachineAppConfig, VirtualMachineConfig,
    INSTANCE_ID_SIZE,
};
use vmclient::{VirtmgrOptions, VirtualizationService, VmCallback, VmInstance};

/// The vsock port the payload (libhello.so) serves IHello on.
const HELLO_PORT: u32 = 5678;

#[derive(Parser, Debug)]
struct Args {
    /// The OS manifest virtmgr boots.
    #[arg(long)]
    os: Option<PathBuf>,
    #[arg(long)]
    apk: PathBuf,
    #[arg(long)]
    idsig: PathBuf,
    #[arg(long)]
    instance: PathBuf,
    /// Encrypted storage (created with --storage-size if missing).
    #[arg(long)]
    storage: Option<PathBuf>,
    #[arg(long, default_value_t = 8 << 20)]
    storage_size: i64,
    /// The payload config in the APK that serves IHello.
    #[arg(long, default_value = "assets/vm_config.json")]
    config_path: String,
    /// Who the VM greets.
    #[arg(long, default_value = "host")]
    name: String,
    /// How long the payload may take to become ready.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
}

/// Prints what virtmgr reports, as AOSP's `vm` tool does.
struct Printer;

impl VmCallback for Printer {
    fn on_payload_started(&self, _cid: i32) {
        eprintln!("hello_host: payload started");
    }
    fn on_payload_ready(&self, _cid: i32) {
        eprintln!("hello_host: payload is ready");
    }
    fn on_payload_finished(&self, _cid: i32, exit_code: i32) {
        eprintln!("hello_host: payload finished with exit code {exit_code}");
    }
    fn on_error(&self, _cid: i32, code: vmclient::aidl::ErrorCode, message: &str) {
        eprintln!("hello_host: VM encountered an error: code={code}, message={message}");
    }
}

fn open_or_create(
    service: &VirtualizationService,
    path: &Path,
    size: i64,
    kind: PartitionType,
) -> Result<OwnedFd> {
    if !path.exists() {
        let file =
            File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
        service
            .proxy()
            .initialize_writable_partition(file.into(), size, kind)
            .with_context(|| format!("initializing {}", path.display()))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(file.into())
}

fn run(args: Args) -> Result<i32> {
    let mut options = VirtmgrOptions::default();
    if let Some(os) = &args.os {
        options.args.extend(["--os".into(), os.clone().into()]);
    }
    let service = VirtualizationService::new_with(&options).context("starting virtmgr")?;
    let instance = open_or_create(
        &service,
        &args.instance,
        10 << 20,
        PartitionType::ANDROID_VM_INSTANCE,
    )?;
    let storage = args
        .storage
        .as_deref()
        .map(|s| {
            open_or_create(
                &service,
                s,
                args.storage_size,
                PartitionType::ENCRYPTEDSTORE,
            )
        })
        .transpose()?;
    let config = VirtualMachineConfig::AppConfig(Box::new(VirtualMachineAppConfig {
        name: "hello".into(),
        instance_id: [0; INSTANCE_ID_SIZE],
        apk: File::open(&args.apk)
            .with_context(|| format!("opening {}", args.apk.display()))?
            .into(),
        idsig: File::open(&args.idsig)
            .with_context(|| format!("opening {}", args.idsig.display()))?
            .into(),
        extra_idsigs: Vec::new(),
        instance_image: instance,
        encrypted_storage_image: storage,
        payload: Payload::ConfigPath(args.config_path.clone()),
        os_name: "microdroid".into(),
        debug_level: DebugLevel::FULL,
        protected_vm: false,
        memory_mib: 0,
        cpu_topology: CpuTopology::ONE_CPU,
        custom_config: None,
        huge_pages: false,
        boost_uclamp: false,
    }));
    let console: File = std::io::stdout().as_fd_owned()?.into();
    let vm = VmInstance::create(
        &service,
        &config,
        Some(console),
        None,
        None,
        Some(Box::new(Printer)),
    )
    .context("creating the VM")?;
    vm.start().context("starting the VM")?;
    eprintln!("hello_host: VM {} started through virtmgr", vm.cid());
    vm.wait_until_ready(Duration::from_secs(args.ready_timeout))
        .context("waiting for the payload to be ready")?;
    let (_session, root) = vm
        .connect_service(HELLO_PORT)
        .with_context(|| format!("connecting to IHello on vsock port {HELLO_PORT}"))?;
    let hello = HelloProxy::from_binder(root).context("the payload's service")?;
    let reply = hello.greet(&args.name).context("IHello.greet")?;
    println!("hello_host: greet({:?}) -> {reply:?}", args.name);
    hello.quit().context("IHello.quit")?;
    let Some(reason) = vm.wait_for_death_with_timeout(Duration::from_secs(60)) else {
        bail!("the VM did not end within 60 s of quit()");
    };
    eprintln!("hello_host: VM ended: {reason}");
    Ok(0)
}

trait StdoutFd {
    fn as_fd_owned(&self) -> std::io::Result<OwnedFd>;
}

impl StdoutFd for std::io::Stdout {
    fn as_fd_owned(&self) -> std::io::Result<OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("hello_host: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
