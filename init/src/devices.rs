//! Block device naming, the part of Android's ueventd that Microdroid needs: every partition
//! whose GPT entry has a name gets `/dev/block/by-name/<name>` → `/dev/<devname>`, from the
//! kernel's `PARTNAME` uevent field. Devices present at boot are found in sysfs ("coldplug");
//! later ones arrive on a kernel uevent netlink socket, which the supervisor keeps reading.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::console::log;

pub const BY_NAME_DIR: &str = "/dev/block/by-name";

/// The fields of one block uevent that matter here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockEvent {
    pub action: String,
    pub devname: String,
    pub partname: Option<String>,
}

/// Parses a kernel uevent message (`action@devpath\0KEY=VALUE\0...`) or a sysfs `uevent` file
/// (`KEY=VALUE\n...`). Returns `None` for anything that is not a block device event.
pub fn parse_block_uevent(raw: &[u8], default_action: &str) -> Option<BlockEvent> {
    let text = String::from_utf8_lossy(raw);
    let mut event = BlockEvent {
        action: default_action.to_owned(),
        ..Default::default()
    };
    let mut subsystem_block = default_action == "coldplug";
    for field in text.split(['\0', '\n']) {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "ACTION" => event.action = value.to_owned(),
            "SUBSYSTEM" => subsystem_block = value == "block",
            "DEVNAME" => event.devname = value.to_owned(),
            "PARTNAME" if !value.is_empty() => event.partname = Some(value.to_owned()),
            _ => {}
        }
    }
    let safe = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    if !subsystem_block || !safe(&event.devname) {
        return None;
    }
    if event.partname.as_deref().is_some_and(|p| !safe(p)) {
        event.partname = None;
    }
    Some(event)
}

/// The `uevent` fuzz target: the first byte chooses the source (even: a sysfs `uevent` file at
/// coldplug, odd: a netlink message), the rest is the message. Asserts what the links rely on:
/// whatever the kernel (or anything that can write to the netlink socket) sends, an accepted
/// event names a device and a partition that are single path components, so
/// `/dev/block/by-name/<partname>` → `/dev/<devname>` never leaves its directory.
pub fn fuzz_uevent(data: &[u8]) -> Option<BlockEvent> {
    let (source, raw) = data.split_first()?;
    let default_action = if source % 2 == 0 { "coldplug" } else { "" };
    let event = parse_block_uevent(raw, default_action)?;
    let single_component = |s: &str| {
        let mut components = Path::new(s).components();
        matches!(components.next(), Some(std::path::Component::Normal(_)))
            && components.next().is_none()
    };
    assert!(single_component(&event.devname), "{:?}", event.devname);
    if let Some(partname) = &event.partname {
        assert!(single_component(partname), "{partname:?}");
    }
    Some(event)
}

pub struct DeviceManager {
    socket: OwnedFd,
    /// Partition name → device node.
    by_name: BTreeMap<String, PathBuf>,
    root: PathBuf,
    /// Label device nodes as the SELinux policy says (set once the policy is loaded).
    label_nodes: bool,
}

impl DeviceManager {
    pub fn new() -> Result<Self> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .context("socket(NETLINK_KOBJECT_UEVENT)")?;
        // Multicast group 1: events from the kernel.
        bind(socket.as_raw_fd(), &NetlinkAddr::new(0, 1)).context("binding the uevent socket")?;
        Ok(DeviceManager {
            socket,
            by_name: BTreeMap::new(),
            root: PathBuf::from("/"),
            label_nodes: false,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// From now on labels the device nodes the SELinux policy singles out
    /// (`sepolicy::LABELLED_PARTITIONS`), starting with those already named.
    pub fn label_nodes(&mut self) {
        self.label_nodes = true;
        let known: Vec<(String, PathBuf)> = self
            .by_name
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        for (name, target) in known {
            self.label(&name, &target);
        }
    }

    fn label(&self, name: &str, target: &Path) {
        let Some((_, context)) = crate::sepolicy::LABELLED_PARTITIONS
            .iter()
            .find(|(n, _)| *n == name)
        else {
            return;
        };
        let node = self.root.join(target.strip_prefix("/").unwrap_or(target));
        if let Err(e) = selinux::set_file_context(&node, context) {
            log(&format!("cannot label partition {name:?}: {e}"));
        }
    }

    /// Names every block device already known to the kernel.
    pub fn coldplug(&mut self) -> Result<()> {
        let class = self.root.join("sys/class/block");
        for entry in fs::read_dir(&class).with_context(|| format!("reading {}", class.display()))? {
            let uevent = entry?.path().join("uevent");
            let Ok(raw) = fs::read(&uevent) else { continue };
            if let Some(event) = parse_block_uevent(&raw, "coldplug") {
                self.apply(&event)?;
            }
        }
        Ok(())
    }

    /// Reads every pending uevent from the socket and applies the block ones.
    pub fn handle_pending_events(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match nix::sys::socket::recv(
                self.socket.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Ok(n) => {
                    let raw = buf.get(..n).unwrap_or_default();
                    if let Some(event) = parse_block_uevent(raw, "") {
                        self.apply(&event)?;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                // The kernel drops events when the socket buffer overflows; rescan to catch up.
                Err(nix::errno::Errno::ENOBUFS) => return self.coldplug(),
                Err(e) => return Err(e).context("reading uevents"),
            }
        }
    }

    fn apply(&mut self, event: &BlockEvent) -> Result<()> {
        let Some(name) = &event.partname else {
            return Ok(());
        };
        let link = self
            .root
            .join(BY_NAME_DIR.trim_start_matches('/'))
            .join(name);
        match event.action.as_str() {
            "add" | "change" | "coldplug" => {
                let target = Path::new("/dev").join(&event.devname);
                if self.by_name.get(name) == Some(&target) {
                    return Ok(());
                }
                if let Some(parent) = link.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).with_context(|| {
                    format!("linking {} -> {}", link.display(), target.display())
                })?;
                if self.label_nodes {
                    self.label(name, &target);
                }
                if let Some(old) = self.by_name.insert(name.clone(), target.clone()) {
                    log(&format!(
                        "partition name {name:?} moved from {} to {}",
                        old.display(),
                        target.display()
                    ));
                }
            }
            "remove"
                if self
                    .by_name
                    .get(name)
                    .is_some_and(|t| t.ends_with(&event.devname)) =>
            {
                self.by_name.remove(name);
                let _ = fs::remove_file(&link);
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits until a partition with this GPT name exists, reading uevents as they come.
    pub fn wait_for_partition(&mut self, name: &str, timeout: Duration) -> Result<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.by_name.contains_key(name) {
                return Ok(Path::new(BY_NAME_DIR).join(name));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                bail!(
                    "no partition named {name:?} appeared within {} s (partitions found: {})",
                    timeout.as_secs(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => self.handle_pending_events()?,
                Err(e) => return Err(e).context("waiting for uevents"),
            }
        }
    }

    pub fn partitions(&self) -> &BTreeMap<String, PathBuf> {
        &self.by_name
    }

    #[cfg(test)]
    fn for_test(root: &Path) -> Result<Self> {
        let mut manager = Self::new()?;
        manager.root = root.to_path_buf();
        Ok(manager)
    }
}

/// Device node modes that differ from devtmpfs's defaults, as Android's `ueventd.rc` sets them:
/// `/dev/vsock` is 0666 so that any process (a payload too) can ask its CID
/// (`IOCTL_VM_SOCKETS_GET_LOCAL_CID`); sockets themselves need no device node.
pub const DEVICE_MODES: &[(&str, u32)] = &[("vsock", 0o666)];

/// Applies [`DEVICE_MODES`] under `dev`; a node that does not exist is skipped.
pub fn apply_device_modes(dev: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in DEVICE_MODES {
        let path = dev.join(name);
        if path.exists() {
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            {
                crate::console::log(&format!("chmod {:o} {}: {e}", mode, path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_netlink_and_sysfs_events() {
        let netlink = b"add@/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1\0ACTION=add\0\
DEVPATH=/devices/x\0SUBSYSTEM=block\0MAJOR=254\0MINOR=1\0DEVNAME=vda1\0DEVTYPE=partition\0PARTN=1\0PARTNAME=system_a\0";
        let ev = parse_block_uevent(netlink, "").unwrap();
        assert_eq!(
            (
                ev.action.as_str(),
                ev.devname.as_str(),
                ev.partname.as_deref()
            ),
            ("add", "vda1", Some("system_a"))
        );
        let sysfs = b"MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=9\n";
        let ev = parse_block_uevent(sysfs, "coldplug").unwrap();
        assert_eq!((ev.devname.as_str(), ev.partname), ("vda", None));
        let net = b"add@/devices/virtual/net/lo\0ACTION=add\0SUBSYSTEM=net\0DEVNAME=lo\0";
        assert_eq!(parse_block_uevent(net, ""), None);
        let evil = b"ACTION=add\0SUBSYSTEM=block\0DEVNAME=vda1\0PARTNAME=../../etc\0";
        assert_eq!(parse_block_uevent(evil, "").unwrap().partname, None);
    }

    /// The fuzz entry over the seeds in fuzz/seeds/uevent and their bit flips and cuts.
    #[test]
    fn fuzz_uevent_survives_its_seeds_and_mutations() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/uevent");
        let mut seeds = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            seeds += 1;
            let _ = fuzz_uevent(&bytes);
            for i in 0..bytes.len() {
                let mut m = bytes.clone();
                m[i] = b"/.\0=\n"[i % 5];
                let _ = fuzz_uevent(&m);
                let _ = fuzz_uevent(&bytes[..i]);
            }
        }
        assert!(seeds >= 4, "{seeds} seeds in {}", dir.display());
        let accepted = fuzz_uevent(b"\x01ACTION=add\0SUBSYSTEM=block\0DEVNAME=vdc\0PARTNAME=x\0");
        assert_eq!(accepted.unwrap().partname.as_deref(), Some("x"));
        for evil in ["..", ".", "a/b", "", "/"] {
            let raw = format!("\x01SUBSYSTEM=block\0DEVNAME={evil}\0");
            assert_eq!(fuzz_uevent(raw.as_bytes()), None, "{evil:?}");
        }
    }

    #[test]
    fn links_by_name_and_waits() {
        let root = tempfile::tempdir().unwrap();
        let mut manager = DeviceManager::for_test(root.path()).unwrap();
        let sys = root.path().join("sys/class/block/vdb1");
        fs::create_dir_all(&sys).unwrap();
        fs::write(
            sys.join("uevent"),
            "DEVNAME=vdb1\nDEVTYPE=partition\nPARTNAME=super\n",
        )
        .unwrap();
        manager.coldplug().unwrap();
        let link = root.path().join("dev/block/by-name/super");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("/dev/vdb1"));
        assert!(manager
            .wait_for_partition("super", Duration::from_millis(10))
            .is_ok());
        let err = manager
            .wait_for_partition("missing", Duration::from_millis(20))
            .unwrap_err();
        assert!(
            format!("{err}").contains("partitions found: super"),
            "{err}"
        );
        manager
            .apply(&BlockEvent {
                action: "remove".into(),
                devname: "vdb1".into(),
                partname: Some("super".into()),
            })
            .unwrap();
        assert!(!link.exists());
    }
}
