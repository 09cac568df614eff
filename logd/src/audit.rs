//! SELinux denials into the log, as AOSP's logd does (LogAudit): logd registers itself as the
//! kernel's audit daemon on a NETLINK_AUDIT socket and logs every AVC record to the main
//! buffer, tag `auditd`, priority WARN, so that `logcat` and the host's `--log` file show
//! `avc:  denied { ... }` lines. (Without a registered daemon the kernel prints them to its
//! ring buffer only, below the console's level.)

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// Netlink and audit constants (linux/netlink.h, linux/audit.h).
const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const AUDIT_SET: u16 = 1001;
const AUDIT_STATUS_ENABLED: u32 = 0x1;
const AUDIT_STATUS_PID: u32 = 0x4;
/// Record types logged: kernel AVC decisions and userspace ones.
pub const AUDIT_AVC: u16 = 1400;
pub const AUDIT_USER_AVC: u16 = 1107;
/// The tag and priority of audit lines in the log.
pub const AUDIT_TAG: &str = "auditd";

/// The record a datagram from the kernel's audit socket carries: (type, payload). The kernel
/// sends one record per datagram, and its `nlmsg_len` counts the payload only, without the
/// 16-byte header (a long-standing quirk auditd works around too), so the payload is the rest
/// of the datagram. `None` if the datagram is shorter than a header.
pub fn record(datagram: &[u8]) -> Option<(u16, &[u8])> {
    let header = datagram.get(..NLMSG_HDRLEN)?;
    let kind = u16::from_ne_bytes([header[4], header[5]]);
    Some((kind, &datagram[NLMSG_HDRLEN..]))
}

/// The text of an audit record, without trailing NULs or newlines.
pub fn record_text(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end])
        .trim_end()
        .to_owned()
}

/// The AUDIT_SET request that makes the calling process the audit daemon (and auditing on).
pub fn register_request(pid: u32) -> Vec<u8> {
    // struct audit_status: mask, enabled, failure, pid (the rest may be left out).
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&(AUDIT_STATUS_PID | AUDIT_STATUS_ENABLED).to_ne_bytes());
    body.extend_from_slice(&1u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&pid.to_ne_bytes());
    let len = u32::try_from(NLMSG_HDRLEN + body.len()).unwrap_or(u32::MAX);
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&AUDIT_SET.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    msg.extend_from_slice(&body);
    msg
}

/// Opens the audit socket and registers this process as the audit daemon.
pub fn open() -> Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkAudit,
    )
    .context("socket(NETLINK_AUDIT)")?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).context("binding the audit socket")?;
    send(
        fd.as_raw_fd(),
        &register_request(std::process::id()),
        MsgFlags::empty(),
    )
    .context("registering as the audit daemon (AUDIT_SET)")?;
    Ok(fd)
}

/// Reads audit records forever, handing each AVC line to `log`.
pub fn serve(fd: &OwnedFd, mut log: impl FnMut(String)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ENOBUFS) => continue,
            Err(e) => {
                eprintln!("logd: audit socket: {e}");
                return;
            }
        };
        if let Some((kind, payload)) = record(buf.get(..n).unwrap_or_default()) {
            if kind == AUDIT_AVC || kind == AUDIT_USER_AVC {
                log(record_text(payload));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_record_is_the_whole_datagram_after_the_header() {
        let text = b"audit(1.2:3): avc:  denied  { connect } tclass=vsock_socket permissive=0\0";
        let mut d = Vec::new();
        // nlmsg_len as the kernel sets it for audit records: the payload's length only.
        d.extend_from_slice(&u32::try_from(text.len()).unwrap().to_ne_bytes());
        d.extend_from_slice(&AUDIT_AVC.to_ne_bytes());
        d.extend_from_slice(&[0; 10]);
        d.extend_from_slice(text);
        let (kind, payload) = record(&d).unwrap();
        assert_eq!(kind, AUDIT_AVC);
        assert!(record_text(payload).ends_with("tclass=vsock_socket permissive=0"));
        assert!(record(&d[..15]).is_none());
        assert_eq!(record_text(record(&d[..16]).unwrap().1), "");
    }

    #[test]
    fn the_registration_names_our_pid() {
        let req = register_request(77);
        assert_eq!(req.len(), 32);
        assert_eq!(u16::from_ne_bytes([req[4], req[5]]), AUDIT_SET);
        assert_eq!(u32::from_ne_bytes(req[28..32].try_into().unwrap()), 77);
    }
}
