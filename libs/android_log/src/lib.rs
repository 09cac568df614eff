//! Android's logging formats, as liblog, logd and logcat use them:
//! - the datagram a writer sends to `/dev/socket/logdw`: `{log id u8, tid u16, sec u32, nsec
//!   u32}` (packed, little-endian), then `priority u8`, `tag\0`, `message\0`;
//! - the record logd sends a reader on `/dev/socket/logdr`: `logger_entry {len u16, hdr_size
//!   u16, pid i32, tid u32, sec u32, nsec u32, lid u32, uid u32}` (28 bytes), then the same
//!   priority/tag/message payload;
//! - logcat's output formats (threadtime, brief, tag, process, thread, time, raw) and filter
//!   specs (`TAG:P`, `*:S`);
//! - [`Logger`], a writer for Rust programs of the guest.
//!
//! docs/formats/android-log.md describes them. Both parsers take untrusted bytes: lengths are
//! checked, nothing panics.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod seqpacket;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where writers send their datagrams, readers connect, and the control socket is.
pub const LOGDW_PATH: &str = "/dev/socket/logdw";
pub const LOGDR_PATH: &str = "/dev/socket/logdr";
pub const LOGD_PATH: &str = "/dev/socket/logd";
/// The largest payload (priority + tag + message) of one record (LOGGER_ENTRY_MAX_PAYLOAD).
pub const MAX_PAYLOAD: usize = 4068;
/// The writer header's size.
pub const WRITE_HEADER_LEN: usize = 11;
/// `logger_entry`'s size (v4, the one logd sends).
pub const ENTRY_HEADER_LEN: usize = 28;

/// Log buffers (`log_id_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogId {
    Main = 0,
    Radio = 1,
    Events = 2,
    System = 3,
    Crash = 4,
    Stats = 5,
    Security = 6,
    Kernel = 7,
}

impl LogId {
    pub const ALL: [LogId; 8] = [
        LogId::Main,
        LogId::Radio,
        LogId::Events,
        LogId::System,
        LogId::Crash,
        LogId::Stats,
        LogId::Security,
        LogId::Kernel,
    ];

    pub fn from_u8(v: u8) -> Option<LogId> {
        LogId::ALL.get(usize::from(v)).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            LogId::Main => "main",
            LogId::Radio => "radio",
            LogId::Events => "events",
            LogId::System => "system",
            LogId::Crash => "crash",
            LogId::Stats => "stats",
            LogId::Security => "security",
            LogId::Kernel => "kernel",
        }
    }

    pub fn from_name(name: &str) -> Option<LogId> {
        LogId::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// Priorities (`android_LogPriority`): 2 VERBOSE … 7 FATAL, 8 SILENT (filters only).
pub fn priority_letter(priority: u8) -> char {
    match priority {
        2 => 'V',
        3 => 'D',
        4 => 'I',
        5 => 'W',
        6 => 'E',
        7 => 'F',
        8 => 'S',
        _ => '?',
    }
}

pub fn priority_from_letter(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        'V' | '*' => Some(2),
        'D' => Some(3),
        'I' => Some(4),
        'W' => Some(5),
        'E' => Some(6),
        'F' => Some(7),
        'S' => Some(8),
        _ => None,
    }
}

pub const VERBOSE: u8 = 2;
pub const DEBUG: u8 = 3;
pub const INFO: u8 = 4;
pub const WARN: u8 = 5;
pub const ERROR: u8 = 6;
pub const FATAL: u8 = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("unknown log buffer {0}")]
    UnknownBuffer(u32),
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    Oversized(usize),
    #[error("record header says {declared} bytes, {actual} present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("header size {0} is not one this reader knows")]
    BadHeaderSize(u16),
    #[error("payload has no priority")]
    NoPriority,
}

/// One log message with its writer's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub lid: LogId,
    pub pid: i32,
    pub tid: u32,
    pub uid: u32,
    pub sec: u32,
    pub nsec: u32,
    pub priority: u8,
    pub tag: String,
    pub message: String,
}

fn split_payload(payload: &[u8]) -> Result<(u8, String, String), LogError> {
    let (&priority, rest) = payload.split_first().ok_or(LogError::NoPriority)?;
    // tag\0message\0; a missing terminator ends at the payload's end, as logd tolerates.
    let (tag, rest) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let message = &rest[..end];
    Ok((
        priority,
        String::from_utf8_lossy(tag).into_owned(),
        String::from_utf8_lossy(message)
            .trim_end_matches('\n')
            .to_owned(),
    ))
}

fn payload_bytes(priority: u8, tag: &str, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + tag.len() + message.len() + 1);
    p.push(priority);
    p.extend_from_slice(tag.as_bytes());
    p.push(0);
    // Truncated to what one record holds (keeping the terminator).
    let room = MAX_PAYLOAD.saturating_sub(p.len() + 1);
    let mut cut = message.len().min(room);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    p.extend_from_slice(&message.as_bytes()[..cut]);
    p.push(0);
    p.truncate(MAX_PAYLOAD);
    p
}

/// A writer's datagram.
pub fn encode_write(
    lid: LogId,
    tid: u16,
    sec: u32,
    nsec: u32,
    priority: u8,
    tag: &str,
    message: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRITE_HEADER_LEN + 64);
    out.push(lid as u8);
    out.extend_from_slice(&tid.to_le_bytes());
    out.extend_from_slice(&sec.to_le_bytes());
    out.extend_from_slice(&nsec.to_le_bytes());
    out.extend(payload_bytes(priority, tag, message));
    out
}

/// What a writer's datagram says; pid and uid come from the socket's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub lid: LogId,
    pub tid: u16,
    pub sec: u32,
    pub nsec: u32,
    pub priority: u8,
    pub tag: String,
    pub message: String,
}

pub fn parse_write(bytes: &[u8]) -> Result<Written, LogError> {
    if bytes.len() < WRITE_HEADER_LEN + 1 {
        return Err(LogError::Short(bytes.len()));
    }
    let payload = &bytes[WRITE_HEADER_LEN..];
    if payload.len() > MAX_PAYLOAD {
        return Err(LogError::Oversized(payload.len()));
    }
    let lid = LogId::from_u8(bytes[0]).ok_or(LogError::UnknownBuffer(u32::from(bytes[0])))?;
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (priority, tag, message) = split_payload(payload)?;
    Ok(Written {
        lid,
        tid: u16::from_le_bytes([bytes[1], bytes[2]]),
        sec: u32_at(3),
        nsec: u32_at(7),
        priority,
        tag,
        message,
    })
}

impl Entry {
    /// The record logd sends readers.
    pub fn encode(&self) -> Vec<u8> {
        let payload = payload_bytes(self.priority, &self.tag, &self.message);
        let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + payload.len());
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(&(ENTRY_HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        for v in [self.tid, self.sec, self.nsec, self.lid as u32, self.uid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend(payload);
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Entry, LogError> {
        if bytes.len() < ENTRY_HEADER_LEN {
            return Err(LogError::Short(bytes.len()));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let len = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        let hdr = u16::from_le_bytes([bytes[2], bytes[3]]);
        if usize::from(hdr) != ENTRY_HEADER_LEN {
            return Err(LogError::BadHeaderSize(hdr));
        }
        if len > MAX_PAYLOAD {
            return Err(LogError::Oversized(len));
        }
        let actual = bytes.len() - ENTRY_HEADER_LEN;
        if actual != len {
            return Err(LogError::LengthMismatch {
                declared: len,
                actual,
            });
        }
        let lid_raw = u32_at(20);
        let lid = u8::try_from(lid_raw)
            .ok()
            .and_then(LogId::from_u8)
            .ok_or(LogError::UnknownBuffer(lid_raw))?;
        let (priority, tag, message) = split_payload(&bytes[ENTRY_HEADER_LEN..])?;
        Ok(Entry {
            lid,
            pid: u32_at(4) as i32,
            tid: u32_at(8),
            sec: u32_at(12),
            nsec: u32_at(16),
            uid: u32_at(24),
            priority,
            tag,
            message,
        })
    }
}

/// `(year, month, day, hour, minute, second)` of a Unix time, UTC (the guest has no time zone).
pub fn civil_time(sec: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (sec / 86_400) as i64;
    let rem = sec % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = rem as u32;
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// logcat's `-v` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Brief,
    Process,
    Tag,
    Thread,
    Raw,
    Time,
    ThreadTime,
    Long,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "brief" => Format::Brief,
            "process" => Format::Process,
            "tag" => Format::Tag,
            "thread" => Format::Thread,
            "raw" => Format::Raw,
            "time" => Format::Time,
            "threadtime" => Format::ThreadTime,
            "long" => Format::Long,
            _ => return None,
        })
    }
}

fn timestamp(e: &Entry) -> String {
    let (_, mo, d, h, mi, s) = civil_time(u64::from(e.sec));
    format!(
        "{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}",
        e.nsec / 1_000_000
    )
}

/// The entry as logcat prints it: one output line per message line, prefix repeated.
pub fn format_entry(e: &Entry, format: Format) -> String {
    let p = priority_letter(e.priority);
    if format == Format::Long {
        return format!(
            "[ {} {:5}:{:5} {}/{:<8} ]\n{}\n\n",
            timestamp(e),
            e.pid,
            e.tid,
            p,
            e.tag,
            e.message
        );
    }
    let prefix = match format {
        Format::Brief => format!("{p}/{:<8}({:5}): ", e.tag, e.pid),
        Format::Process => format!("{p}({:5}) ", e.pid),
        Format::Tag => format!("{p}/{:<8}: ", e.tag),
        Format::Thread => format!("{p}({:5}:{:5}) ", e.pid, e.tid),
        Format::Raw => String::new(),
        Format::Time => format!("{} {p}/{:<8}({:5}): ", timestamp(e), e.tag, e.pid),
        Format::ThreadTime | Format::Long => {
            format!(
                "{} {:5} {:5} {p} {:<8}: ",
                timestamp(e),
                e.pid,
                e.tid,
                e.tag
            )
        }
    };
    let suffix = if format == Format::Process {
        format!("  ({})", e.tag)
    } else {
        String::new()
    };
    let mut out = String::new();
    for line in e.message.split('\n') {
        out.push_str(&prefix);
        out.push_str(line);
        out.push_str(&suffix);
        out.push('\n');
    }
    out
}

/// logcat filter specs: `TAG:P` rules and a default priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    rules: Vec<(String, u8)>,
    default: u8,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            rules: Vec::new(),
            default: VERBOSE,
        }
    }
}

impl Filter {
    /// Adds whitespace-separated specs (`TAG[:P]`, `*:P`); a bare TAG means `TAG:V`.
    pub fn add_specs(&mut self, specs: &str) -> Result<(), String> {
        for spec in specs.split_whitespace() {
            let (tag, prio) = match spec.rsplit_once(':') {
                Some((t, p)) => {
                    let mut chars = p.chars();
                    let prio = match (chars.next().and_then(priority_from_letter), chars.next()) {
                        (Some(prio), None) => prio,
                        _ => return Err(format!("invalid filter expression {spec:?}")),
                    };
                    (t, prio)
                }
                None => (spec, VERBOSE),
            };
            if tag == "*" {
                self.default = prio;
            } else {
                self.rules.push((tag.to_owned(), prio));
            }
        }
        Ok(())
    }

    pub fn set_default(&mut self, priority: u8) {
        self.default = priority;
    }

    pub fn matches(&self, e: &Entry) -> bool {
        let min = self
            .rules
            .iter()
            .rev()
            .find(|(t, _)| *t == e.tag)
            .map_or(self.default, |(_, p)| *p);
        e.priority >= min && min < 8
    }
}

/// A line in liblog's file-logger format (what AOSP's Microdroid writes to its log device).
pub fn format_file_line(e: &Entry) -> String {
    format_entry(e, Format::ThreadTime)
}

/// Sends log messages to logd. Failures are silent: logging never stops its caller.
#[derive(Debug)]
pub struct Logger {
    socket: Mutex<Option<UnixDatagram>>,
    path: std::path::PathBuf,
    lid: LogId,
}

impl Logger {
    pub fn new(lid: LogId) -> Logger {
        Logger::with_path(lid, Path::new(LOGDW_PATH))
    }

    pub fn with_path(lid: LogId, path: &Path) -> Logger {
        Logger {
            socket: Mutex::new(None),
            path: path.to_owned(),
            lid,
        }
    }

    /// Logs `message` (each line its own record, as logcat shows them anyway).
    pub fn log(&self, priority: u8, tag: &str, message: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // SAFETY: gettid(2) has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() } as u16;
        let datagram = encode_write(
            self.lid,
            tid,
            now.as_secs() as u32,
            now.subsec_nanos(),
            priority,
            tag,
            message,
        );
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        if socket.is_none() {
            *socket = UnixDatagram::unbound().ok();
        }
        if let Some(s) = socket.as_ref() {
            let _ = s.send_to(&datagram, &self.path);
        }
    }
}

/// The last `tail` entries of the given buffers, from logd's reader socket in `socket_dir`
/// (`dumpAndClose`, as `logcat -d -t N`).
pub fn read_tail(socket_dir: &Path, lids: &[LogId], tail: usize) -> std::io::Result<Vec<Entry>> {
    let conn = seqpacket::connect_to(&socket_dir.join("logdr"))?;
    let lids: Vec<String> = lids.iter().map(|l| (*l as u8).to_string()).collect();
    let command = format!("dumpAndClose lids={} tail={tail}", lids.join(","));
    seqpacket::send_packet(&conn, command.as_bytes())?;
    let mut buf = vec![0u8; ENTRY_HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::new();
    loop {
        let n = seqpacket::recv_packet(&conn, &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        if let Ok(e) = Entry::parse(&buf[..n]) {
            out.push(e);
        }
    }
}

/// Everything logd and logcat parse from other processes, for the fuzz target (fuzz/) and the
/// bad-input corpus test: the bytes as a writer's datagram, as a reader record (formatted if it
/// parses), and as filter specs. It must return, never panic, whatever the input.
pub fn fuzz_entry(data: &[u8]) {
    let _ = parse_write(data);
    if let Ok(e) = Entry::parse(data) {
        let _ = format_entry(&e, Format::ThreadTime);
        let _ = format_entry(&e, Format::Long);
        let _ = Filter::default().matches(&e);
    }
    let mut filter = Filter::default();
    let _ = filter.add_specs(&String::from_utf8_lossy(data));
}

#[cfg(test)]
mod tests {

    /// A message longer than a record holds is cut at a character boundary, keeping the
    /// terminator: tag "tt" leaves 4068 − 4 − 1 = 4063 bytes, so 4062 of two-byte characters.
    #[test]
    fn long_messages_are_cut_whole() {
        let long = "\u{e9}".repeat(3000);
        let datagram = encode_write(
            LogId::Main,
            0x0102,
            0x0304_0506,
            0x0708_090a,
            INFO,
            "tt",
            &long,
        );
        let payload = &datagram[WRITE_HEADER_LEN..];
        assert_eq!(payload.len(), 4 + 4062 + 1);
        assert_eq!(payload.last(), Some(&0));
        let w = parse_write(&datagram).unwrap();
        assert_eq!(w.message.len(), 4062);
        assert!(long.starts_with(&w.message));
        assert_eq!(
            (w.lid, w.tid, w.sec, w.nsec, w.priority, w.tag.as_str()),
            (LogId::Main, 0x0102, 0x0304_0506, 0x0708_090a, INFO, "tt")
        );
    }

    #[test]
    fn record_sizes_at_their_limits() {
        // The smallest datagram: the header and a priority byte.
        let mut smallest = encode_write(LogId::Main, 1, 2, 3, INFO, "", "");
        smallest.truncate(WRITE_HEADER_LEN + 1);
        let w = parse_write(&smallest).unwrap();
        assert_eq!(
            (w.priority, w.tag.as_str(), w.message.as_str()),
            (INFO, "", "")
        );
        assert!(matches!(
            parse_write(&smallest[..WRITE_HEADER_LEN]),
            Err(LogError::Short(11))
        ));
        // A payload of exactly MAX_PAYLOAD bytes, as writer and as logd record.
        let full = "m".repeat(MAX_PAYLOAD - 4);
        let datagram = encode_write(LogId::Main, 1, 2, 3, INFO, "t", &full);
        assert_eq!(datagram.len() - WRITE_HEADER_LEN, MAX_PAYLOAD);
        assert_eq!(parse_write(&datagram).unwrap().message, full);
        let mut over = datagram.clone();
        over.push(0);
        assert!(matches!(parse_write(&over), Err(LogError::Oversized(_))));
        let entry = Entry {
            lid: LogId::Main,
            pid: 1,
            tid: 2,
            uid: 3,
            sec: 4,
            nsec: 5,
            priority: INFO,
            tag: "t".into(),
            message: full,
        };
        assert_eq!(Entry::parse(&entry.encode()).unwrap(), entry);
    }

    #[test]
    fn filters_default_and_silence() {
        let entry = |priority| Entry {
            lid: LogId::Main,
            pid: 1,
            tid: 1,
            uid: 0,
            sec: 0,
            nsec: 0,
            priority,
            tag: "t".into(),
            message: "m".into(),
        };
        let mut f = Filter::default();
        assert!(f.matches(&entry(VERBOSE)));
        f.set_default(INFO);
        assert!(!f.matches(&entry(VERBOSE)));
        assert!(f.matches(&entry(INFO)));
        // Silent (8) hides everything, even an entry claiming priority 8.
        f.set_default(8);
        assert!(!f.matches(&entry(8)));
        assert_eq!(
            format_file_line(&entry(INFO)),
            format_entry(&entry(INFO), Format::ThreadTime)
        );
    }

    /// Leap days and centuries (values from Python's datetime).
    #[test]
    fn civil_time_across_centuries() {
        for (sec, date) in [
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (4_107_542_399, (2100, 2, 28, 23, 59, 59)),
            (4_107_542_400, (2100, 3, 1, 0, 0, 0)),
            (13_574_563_199, (2400, 2, 28, 23, 59, 59)),
            (13_574_563_200, (2400, 2, 29, 0, 0, 0)),
            (1_733_446_861, (2024, 12, 6, 1, 1, 1)),
        ] {
            assert_eq!(civil_time(sec), date, "{sec}");
        }
    }

    /// logcat's names for buffers, priorities and formats, both ways.
    #[test]
    fn names_of_buffers_priorities_and_formats() {
        let names = [
            "main", "radio", "events", "system", "crash", "stats", "security", "kernel",
        ];
        for (id, name) in LogId::ALL.into_iter().zip(names) {
            assert_eq!(id.name(), name);
            assert_eq!(LogId::from_name(name), Some(id));
        }
        assert_eq!(LogId::from_name("nope"), None);
        for (p, c) in (2..=8).zip(['V', 'D', 'I', 'W', 'E', 'F', 'S']) {
            assert_eq!(priority_letter(p), c);
            assert_eq!(priority_from_letter(c), Some(p));
            assert_eq!(priority_from_letter(c.to_ascii_lowercase()), Some(p));
        }
        assert_eq!(priority_letter(9), '?');
        assert_eq!(priority_from_letter('*'), Some(2));
        assert_eq!(priority_from_letter('x'), None);
        let formats = [
            ("brief", Format::Brief),
            ("process", Format::Process),
            ("tag", Format::Tag),
            ("thread", Format::Thread),
            ("raw", Format::Raw),
            ("time", Format::Time),
            ("threadtime", Format::ThreadTime),
            ("long", Format::Long),
        ];
        for (name, format) in formats {
            assert_eq!(Format::from_name(name), Some(format), "{name}");
        }
        assert_eq!(Format::from_name("json"), None);
    }
    use super::*;

    /// Logger::log sends one writer datagram to the socket it was given, stamped now, with the
    /// caller's thread id.
    #[test]
    fn logger_sends_a_writer_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logdw");
        let logd = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let logger = Logger::with_path(LogId::Crash, &path);
        logger.log(6, "payload", "it broke");
        logger.log(4, "payload", "again");
        let mut buf = [0u8; 256];
        let n = logd.recv(&mut buf).unwrap();
        let written = parse_write(&buf[..n]).unwrap();
        assert_eq!(written.lid, LogId::Crash);
        assert_eq!(
            (
                written.priority,
                written.tag.as_str(),
                written.message.as_str()
            ),
            (6, "payload", "it broke")
        );
        // SAFETY: gettid(2) has no arguments and cannot fail.
        assert_eq!(written.tid, unsafe { libc::gettid() } as u16);
        assert!(written.sec >= before && written.sec <= before + 60);
        let n = logd.recv(&mut buf).unwrap();
        assert_eq!(parse_write(&buf[..n]).unwrap().message, "again");
    }

    /// read_tail asks logd's reader socket for `dumpAndClose` of the buffers and the tail, and
    /// returns the records until logd closes, skipping those that do not parse.
    #[test]
    fn read_tail_asks_and_collects_until_close() {
        let dir = tempfile::tempdir().unwrap();
        let listener = seqpacket::listen_at(&dir.path().join("logdr")).unwrap();
        let entry = |message: &str| Entry {
            lid: LogId::Main,
            pid: 7,
            tid: 8,
            uid: 1000,
            sec: 1,
            nsec: 2,
            priority: 4,
            tag: "t".into(),
            message: message.into(),
        };
        let records = [entry("one"), entry("two")];
        let sent = records.clone();
        let logd = std::thread::spawn(move || {
            let conn = seqpacket::accept_from(&listener).unwrap();
            let mut buf = [0u8; 256];
            let n = seqpacket::recv_packet(&conn, &mut buf).unwrap();
            let command = String::from_utf8_lossy(&buf[..n]).into_owned();
            seqpacket::send_packet(&conn, &sent[0].encode()).unwrap();
            seqpacket::send_packet(&conn, b"not a record").unwrap();
            seqpacket::send_packet(&conn, &sent[1].encode()).unwrap();
            command
        });
        let got = read_tail(dir.path(), &[LogId::Main, LogId::Crash], 50).unwrap();
        assert_eq!(logd.join().unwrap(), "dumpAndClose lids=0,4 tail=50");
        assert_eq!(got, records);
        assert!(read_tail(&dir.path().join("none"), &[LogId::Main], 1).is_err());
    }

    fn entry() -> Entry {
        Entry {
            lid: LogId::Main,
            pid: 412,
            tid: 430,
            uid: 0,
            sec: 1_764_959_462, // 2025-12-05 18:31:02 UTC
            nsec: 417_000_000,
            priority: INFO,
            tag: "microdroid_manager".into(),
            message: "payload started".into(),
        }
    }

    #[test]
    fn threadtime_as_logcat_prints_it() {
        assert_eq!(
            format_entry(&entry(), Format::ThreadTime),
            "12-05 18:31:02.417   412   430 I microdroid_manager: payload started\n"
        );
        let mut e = entry();
        e.tag = "hi".into();
        e.message = "a\nb".into();
        assert_eq!(
            format_entry(&e, Format::Brief),
            "I/hi      (  412): a\nI/hi      (  412): b\n"
        );
        assert_eq!(format_entry(&e, Format::Raw), "a\nb\n");
    }

    #[test]
    fn records_round_trip() {
        let e = entry();
        assert_eq!(Entry::parse(&e.encode()).unwrap(), e);
        let w = encode_write(LogId::System, 7, 1, 2, WARN, "tag", "msg\n");
        let parsed = parse_write(&w).unwrap();
        assert_eq!(
            (parsed.lid, parsed.tid, parsed.sec, parsed.nsec),
            (LogId::System, 7, 1, 2)
        );
        assert_eq!(
            (
                parsed.priority,
                parsed.tag.as_str(),
                parsed.message.as_str()
            ),
            (WARN, "tag", "msg")
        );
        // A long message is cut to one record.
        let long = "x".repeat(10_000);
        assert!(
            encode_write(LogId::Main, 1, 0, 0, INFO, "t", &long).len()
                <= WRITE_HEADER_LEN + MAX_PAYLOAD
        );
    }

    #[test]
    fn bad_records() {
        assert_eq!(parse_write(&[0; 5]).unwrap_err(), LogError::Short(5));
        let mut w = encode_write(LogId::Main, 1, 0, 0, INFO, "t", "m");
        w[0] = 9;
        assert_eq!(parse_write(&w).unwrap_err(), LogError::UnknownBuffer(9));
        let big = vec![0u8; WRITE_HEADER_LEN + MAX_PAYLOAD + 1];
        assert_eq!(
            parse_write(&big).unwrap_err(),
            LogError::Oversized(MAX_PAYLOAD + 1)
        );
        let mut r = entry().encode();
        r.push(0);
        assert!(matches!(
            Entry::parse(&r).unwrap_err(),
            LogError::LengthMismatch { .. }
        ));
        let mut r = entry().encode();
        r[2] = 20;
        assert_eq!(Entry::parse(&r).unwrap_err(), LogError::BadHeaderSize(20));
        assert_eq!(Entry::parse(&[0; 3]).unwrap_err(), LogError::Short(3));
    }

    #[test]
    fn filters() {
        let e = entry();
        let mut f = Filter::default();
        assert!(f.matches(&e));
        f.add_specs("*:S microdroid_manager:I").unwrap();
        assert!(f.matches(&e));
        let mut f = Filter::default();
        f.add_specs("*:S").unwrap();
        assert!(!f.matches(&e));
        let mut f = Filter::default();
        f.add_specs("*:E").unwrap();
        assert!(!f.matches(&e));
        assert!(Filter::default().add_specs("x:Q").is_err());
    }

    #[test]
    fn civil() {
        assert_eq!(civil_time(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_time(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_time(1_796_514_586), (2026, 12, 5, 23, 49, 46));
    }
}
