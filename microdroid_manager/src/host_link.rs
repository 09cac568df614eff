//! How microdroid_manager tells the host what happens to the payload.
//!
//! `HostLink` has the methods of AOSP's IVirtualMachineService that the guest calls. Today's
//! implementation writes payload events to the status serial port and failures to the
//! death-reason port (AOSP's strings); the binder-RPC link implements the same trait.

use std::fs::OpenOptions;
use std::io::Write;

use vm_status::{FailureClass, PayloadEvent, DEATH_REASON_DEVICE, PAYLOAD_STATUS_DEVICE};

pub trait HostLink {
    fn notify_payload_started(&mut self);
    fn notify_payload_ready(&mut self);
    fn notify_payload_finished(&mut self, exit_code: i32);
    /// Reports a failure: to the host link, and always to the death-reason port, which is the
    /// one channel that works however early the failure happens.
    fn notify_error(&mut self, class: FailureClass, message: &str);
}

/// Writes to the guest's serial ports.
pub struct SerialHostLink {
    status_device: String,
    death_reason_device: String,
}

impl SerialHostLink {
    pub fn open() -> Self {
        Self::with_devices(PAYLOAD_STATUS_DEVICE, DEATH_REASON_DEVICE)
    }

    pub fn with_devices(status_device: &str, death_reason_device: &str) -> Self {
        SerialHostLink { status_device: status_device.into(), death_reason_device: death_reason_device.into() }
    }

    fn send(&self, event: PayloadEvent) {
        if let Err(e) = write_line(&self.status_device, &event.to_line()) {
            crate::log(&format!("cannot write to {}: {e}", self.status_device));
        }
    }
}

/// Writes once and waits for the bytes to leave the UART (`tcdrain`), as current AOSP does.
fn write_line(device: &str, line: &str) -> std::io::Result<()> {
    let mut port = OpenOptions::new().write(true).append(true).open(device)?;
    port.write_all(line.as_bytes())?;
    port.flush()?;
    // Not a tty when tests write to a file.
    let _ = nix::sys::termios::tcdrain(&port);
    Ok(())
}

impl HostLink for SerialHostLink {
    fn notify_payload_started(&mut self) {
        self.send(PayloadEvent::Started);
    }
    fn notify_payload_ready(&mut self) {
        self.send(PayloadEvent::Ready);
    }
    fn notify_payload_finished(&mut self, exit_code: i32) {
        self.send(PayloadEvent::Finished(exit_code));
    }
    fn notify_error(&mut self, class: FailureClass, message: &str) {
        let line = format!("{}\n", class.death_reason_line(message));
        if let Err(e) = write_line(&self.death_reason_device, &line) {
            crate::log(&format!("cannot write the death reason to {}: {e}", self.death_reason_device));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_events_and_death_reason() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        let death = dir.path().join("death");
        std::fs::write(&status, "").unwrap();
        std::fs::write(&death, "").unwrap();
        let mut link = SerialHostLink::with_devices(status.to_str().unwrap(), death.to_str().unwrap());
        link.notify_payload_started();
        link.notify_payload_finished(3);
        link.notify_error(FailureClass::UnknownRuntimeError, "boom");
        let events = vm_status::parse_payload_events(&std::fs::read(&status).unwrap());
        assert_eq!(events, [PayloadEvent::Started, PayloadEvent::Finished(3)]);
        let reason = vm_status::parse_death_reason(&std::fs::read(&death).unwrap()).unwrap();
        assert_eq!(reason.reason, vm_status::DeathReason::MicrodroidUnknownRuntimeError);
        assert_eq!(reason.detail.as_deref(), Some("boom"));
    }
}
