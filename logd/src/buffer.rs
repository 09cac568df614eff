//! The log ring: entries in arrival order with a sequence number, each log buffer bounded in
//! bytes; the oldest entries of a full buffer are dropped first.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use android_log::{Entry, LogId};

/// Bytes of messages kept per log buffer (AOSP's default is 256 KiB).
pub const BUFFER_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(u64, Entry)>,
    bytes: [usize; 8],
    next_seq: u64,
    /// Entries dropped to make room, per buffer.
    dropped: [u64; 8],
}

fn cost(e: &Entry) -> usize {
    32 + e.tag.len() + e.message.len()
}

#[derive(Debug, Default)]
pub struct LogBuffer {
    ring: Mutex<Ring>,
    arrived: Condvar,
    limit: usize,
}

/// Which entries a reader wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub lids: Vec<LogId>,
    pub pid: Option<i32>,
    pub tail: Option<usize>,
}

impl Selection {
    fn wants(&self, e: &Entry) -> bool {
        self.lids.contains(&e.lid) && self.pid.is_none_or(|p| p == e.pid)
    }
}

impl LogBuffer {
    pub fn new(limit: usize) -> LogBuffer {
        LogBuffer {
            ring: Mutex::new(Ring::default()),
            arrived: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, e: Entry) {
        let mut r = self.lock();
        let lid = e.lid as usize;
        r.bytes[lid] += cost(&e);
        while r.bytes[lid] > self.limit {
            let Some(pos) = r
                .entries
                .iter()
                .position(|(_, old)| old.lid as usize == lid)
            else {
                break;
            };
            if let Some((_, old)) = r.entries.remove(pos) {
                r.bytes[lid] -= cost(&old);
                r.dropped[lid] += 1;
            }
        }
        let seq = r.next_seq;
        r.next_seq += 1;
        r.entries.push_back((seq, e));
        drop(r);
        self.arrived.notify_all();
    }

    pub fn clear(&self, lid: LogId) {
        let mut r = self.lock();
        r.entries.retain(|(_, e)| e.lid != lid);
        r.bytes[lid as usize] = 0;
    }

    /// The selected entries now, and the sequence number to follow from.
    pub fn snapshot(&self, sel: &Selection) -> (Vec<Entry>, u64) {
        let r = self.lock();
        let mut out: Vec<Entry> = r
            .entries
            .iter()
            .filter(|(_, e)| sel.wants(e))
            .map(|(_, e)| e.clone())
            .collect();
        if let Some(n) = sel.tail {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        (out, r.next_seq)
    }

    /// Entries from sequence `from` on, waiting up to `wait` for one to arrive.
    pub fn since(&self, sel: &Selection, from: u64, wait: Duration) -> (Vec<Entry>, u64) {
        let mut r = self.lock();
        if r.next_seq <= from {
            r = self
                .arrived
                .wait_timeout(r, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let out = r
            .entries
            .iter()
            .filter(|(seq, e)| *seq >= from && sel.wants(e))
            .map(|(_, e)| e.clone())
            .collect();
        (out, r.next_seq)
    }

    pub fn dropped(&self, lid: LogId) -> u64 {
        self.lock().dropped[lid as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lid: LogId, message: &str) -> Entry {
        Entry {
            lid,
            pid: 1,
            tid: 1,
            uid: 0,
            sec: 0,
            nsec: 0,
            priority: 4,
            tag: "t".into(),
            message: message.into(),
        }
    }

    #[test]
    fn bounded_per_buffer_oldest_first() {
        let b = LogBuffer::new(200);
        for i in 0..10 {
            b.push(entry(LogId::Main, &format!("{i:040}")));
        }
        b.push(entry(LogId::System, "kept"));
        let all = Selection {
            lids: vec![LogId::Main, LogId::System],
            pid: None,
            tail: None,
        };
        let (got, next) = b.snapshot(&all);
        assert_eq!(next, 11);
        let main: Vec<_> = got.iter().filter(|e| e.lid == LogId::Main).collect();
        assert!(main.len() < 10 && main.last().unwrap().message.ends_with('9'));
        assert!(got.iter().any(|e| e.message == "kept"));
        assert!(b.dropped(LogId::Main) > 0);
        let tail = Selection {
            tail: Some(1),
            ..all.clone()
        };
        assert_eq!(b.snapshot(&tail).0.len(), 1);
        b.clear(LogId::Main);
        assert_eq!(b.snapshot(&all).0.len(), 1);
        let (later, _) = b.since(&all, next, Duration::from_millis(1));
        assert!(later.is_empty());
    }
}
