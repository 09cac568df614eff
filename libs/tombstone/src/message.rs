//! The crash message a handler sends the dumper: one SOCK_SEQPACKET packet of
//! [`MESSAGE_LEN`] bytes, little-endian:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `MDCR` |
//! | 4 | version u32 (1) |
//! | 8 | signal i32 |
//! | 12 | si_code i32 |
//! | 16 | pid i32 (as the process sees itself) |
//! | 20 | tid i32 |
//! | 24 | fault address u64 (`si_addr`) |
//! | 32 | 23 × u64: the faulting context's `gregs` (glibc's `REG_R8` … `REG_CR2` order) |

pub const MAGIC: &[u8; 4] = b"MDCR";
pub const VERSION: u32 = 1;
pub const NGREG: usize = 23;
pub const MESSAGE_LEN: usize = 32 + NGREG * 8;

/// Indices into `gregs` (glibc's `<sys/ucontext.h>` for x86_64).
pub mod reg {
    pub const R8: usize = 0;
    pub const R9: usize = 1;
    pub const R10: usize = 2;
    pub const R11: usize = 3;
    pub const R12: usize = 4;
    pub const R13: usize = 5;
    pub const R14: usize = 6;
    pub const R15: usize = 7;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RBP: usize = 10;
    pub const RBX: usize = 11;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RCX: usize = 14;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const EFL: usize = 17;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashMessage {
    pub signal: i32,
    pub code: i32,
    pub pid: i32,
    pub tid: i32,
    pub fault_addr: u64,
    pub gregs: [u64; NGREG],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("crash message of {0} bytes; expected {MESSAGE_LEN}")]
    BadLength(usize),
    #[error("crash message has bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("crash message version {0}; this dumper reads {VERSION}")]
    BadVersion(u32),
    #[error("crash message names signal {0}, which is not a crash signal")]
    NotACrashSignal(i32),
}

/// The signals a handler reports (debuggerd's set).
pub const CRASH_SIGNALS: [i32; 8] = [
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGSTKFLT,
    libc::SIGSYS,
    libc::SIGTRAP,
];

impl CrashMessage {
    /// The wire bytes; a fixed-size array so that the signal handler needs no allocation.
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let mut out = [0u8; MESSAGE_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4..8].copy_from_slice(&VERSION.to_le_bytes());
        out[8..12].copy_from_slice(&self.signal.to_le_bytes());
        out[12..16].copy_from_slice(&self.code.to_le_bytes());
        out[16..20].copy_from_slice(&self.pid.to_le_bytes());
        out[20..24].copy_from_slice(&self.tid.to_le_bytes());
        out[24..32].copy_from_slice(&self.fault_addr.to_le_bytes());
        for (i, r) in self.gregs.iter().enumerate() {
            out[32 + i * 8..40 + i * 8].copy_from_slice(&r.to_le_bytes());
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<CrashMessage, MessageError> {
        if bytes.len() != MESSAGE_LEN {
            return Err(MessageError::BadLength(bytes.len()));
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if &magic != MAGIC {
            return Err(MessageError::BadMagic(magic));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(4);
        if version != VERSION {
            return Err(MessageError::BadVersion(version));
        }
        let signal = u32_at(8) as i32;
        if !CRASH_SIGNALS.contains(&signal) {
            return Err(MessageError::NotACrashSignal(signal));
        }
        let mut gregs = [0u64; NGREG];
        for (i, r) in gregs.iter_mut().enumerate() {
            *r = u64_at(32 + i * 8);
        }
        Ok(CrashMessage {
            signal,
            code: u32_at(12) as i32,
            pid: u32_at(16) as i32,
            tid: u32_at(20) as i32,
            fault_addr: u64_at(24),
            gregs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CrashMessage {
        let mut gregs = [0u64; NGREG];
        gregs[reg::RIP] = 0x5555_0000_1139;
        CrashMessage {
            signal: libc::SIGSEGV,
            code: 1,
            pid: 7,
            tid: 8,
            fault_addr: 0,
            gregs,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(CrashMessage::parse(&m.encode()).unwrap(), m);
    }

    #[test]
    fn bad_messages() {
        let good = sample().encode();
        assert_eq!(
            CrashMessage::parse(&good[..10]).unwrap_err(),
            MessageError::BadLength(10)
        );
        let mut b = good;
        b[0] = b'X';
        assert!(matches!(
            CrashMessage::parse(&b).unwrap_err(),
            MessageError::BadMagic(_)
        ));
        let mut b = good;
        b[4] = 2;
        assert_eq!(
            CrashMessage::parse(&b).unwrap_err(),
            MessageError::BadVersion(2)
        );
        let mut b = good;
        b[8..12].copy_from_slice(&libc::SIGTERM.to_le_bytes());
        assert_eq!(
            CrashMessage::parse(&b).unwrap_err(),
            MessageError::NotACrashSignal(libc::SIGTERM)
        );
    }
}
