//! AOSP bootconfig: the `key = "value"` text the kernel exposes as `/proc/bootconfig` (and
//! Android init turns into `ro.boot.*`), and the trailer that attaches it to an initrd:
//!
//! ```text
//! initrd ‖ bootconfig ‖ zero padding (total to a multiple of 4) ‖ u32 LE size (padding +
//! bootconfig) ‖ u32 LE checksum (byte sum of the bootconfig) ‖ "#BOOTCONFIG\n"
//! ```
//!
//! The text functions do not depend on the trailer: the Debian kernel lacks
//! CONFIG_BOOT_CONFIG, so init reads the text from a file in the initramfs.
//! See `docs/formats/bootconfig.md`.
//!
//! ```
//! let mut bc = bootconfig::Bootconfig::new();
//! bc.set("androidboot.vbmeta.digest", "ab12")?;
//! bc.set("androidboot.slot_suffix", "_a")?;
//! let text = bc.to_text()?;
//! assert_eq!(text, "androidboot.vbmeta.digest = \"ab12\"\nandroidboot.slot_suffix = \"_a\"\n");
//! let back = bootconfig::Bootconfig::parse(&text)?;
//! assert_eq!(back.get("androidboot.slot_suffix"), Some("_a"));
//! let initrd = bootconfig::attach(b"cpio...", text.as_bytes())?;
//! let (cpio, bc_bytes) = bootconfig::detach(&initrd)?;
//! assert_eq!(cpio, b"cpio...");
//! # Ok::<(), bootconfig::Error>(())
//! ```

/// The trailer magic.
pub const MAGIC: &[u8; 12] = b"#BOOTCONFIG\n";
/// Trailer length: size, checksum, magic.
pub const TRAILER_SIZE: usize = 8 + MAGIC.len();
/// The kernel's limit on bootconfig data (`XBC_DATA_MAX`).
pub const MAX_SIZE: usize = 32767;

/// Errors from parsing or (de)attaching bootconfig.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A syntax error in the text.
    #[error("bootconfig line {line}: {msg}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: &'static str,
    },
    /// A key that is not `word(.word)*` with words of `[A-Za-z0-9_-]`.
    #[error("bootconfig line {line}: invalid key {key:?}")]
    InvalidKey {
        /// 1-based line (0 when setting from code).
        line: usize,
        /// The key.
        key: String,
    },
    /// `key = ...` for a key that already has a value (use `+=` to append).
    #[error("bootconfig line {line}: duplicate key {key:?}")]
    DuplicateKey {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
    },
    /// Key-tree syntax (`key { ... }`), which AOSP does not use and we do not support.
    #[error("bootconfig line {line}: unsupported syntax: {what}")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// What.
        what: &'static str,
    },
    /// A value that cannot be written (contains both quote kinds or control characters).
    #[error("value for {key:?} cannot be represented in bootconfig")]
    InvalidValue {
        /// The key.
        key: String,
    },
    /// No `#BOOTCONFIG\n` at the end.
    #[error("no bootconfig trailer (magic not found)")]
    BadMagic,
    /// The blob is shorter than the trailer needs.
    #[error("{what} truncated: needs {needed} bytes, have {available}")]
    Truncated {
        /// Which part.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// Sizes out of range (bootconfig larger than the blob or than the kernel accepts).
    #[error("size out of range: {0}")]
    SizeOutOfRange(&'static str),
    /// The checksum in the trailer does not match the bootconfig bytes.
    #[error("bootconfig checksum mismatch: trailer says {expected:#x}, bytes sum to {actual:#x}")]
    ChecksumMismatch {
        /// From the trailer.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The text is not UTF-8.
    #[error("bootconfig is not UTF-8")]
    NotUtf8,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An ordered set of keys, each with zero or more values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bootconfig {
    entries: Vec<(String, Vec<String>)>,
}

impl Bootconfig {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses bootconfig text: `key = value[, value...]`, `key += value` (append), bare `key`,
    /// values unquoted or in `"..."` / `'...'` (no escapes), statements ended by a newline or
    /// `;`, `#` comments. Key trees (`{ }`) are refused.
    pub fn parse(text: &str) -> Result<Self> {
        Parser {
            s: text.as_bytes(),
            pos: 0,
            line: 1,
        }
        .parse()
    }

    /// Parses bytes (must be UTF-8; trailing NUL padding is ignored).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self> {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let text = std::str::from_utf8(bytes.get(..end).unwrap_or_default())
            .map_err(|_| Error::NotUtf8)?;
        Self::parse(text)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_all(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// All values of `key` (empty for a bare key).
    pub fn get_all(&self, key: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets `key` to the single `value`, replacing any values, keeping the key's position.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        check_key(key, 0)?;
        check_value(key, value)?;
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = vec![value.to_owned()],
            None => self.entries.push((key.to_owned(), vec![value.to_owned()])),
        }
        Ok(())
    }

    /// Appends `value` to `key` (`+=`).
    pub fn append(&mut self, key: &str, value: &str) -> Result<()> {
        check_key(key, 0)?;
        check_value(key, value)?;
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => v.push(value.to_owned()),
            None => self.entries.push((key.to_owned(), vec![value.to_owned()])),
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        before != self.entries.len()
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Serializes as `/proc/bootconfig` does: one `key = "value"[, "value"...]` line per key
    /// (single quotes for a value containing `"`), a bare `key` line for a key without values.
    pub fn to_text(&self) -> Result<String> {
        let mut out = String::new();
        for (k, vals) in &self.entries {
            out.push_str(k);
            for (i, v) in vals.iter().enumerate() {
                check_value(k, v)?;
                out.push_str(if i == 0 { " = " } else { ", " });
                let q = if v.contains('"') { '\'' } else { '"' };
                out.push(q);
                out.push_str(v);
                out.push(q);
            }
            out.push('\n');
        }
        Ok(out)
    }
}

fn check_key(key: &str, line: usize) -> Result<()> {
    let ok = !key.is_empty()
        && key.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidKey {
            line,
            key: key.to_owned(),
        })
    }
}

fn check_value(key: &str, v: &str) -> Result<()> {
    let bad =
        (v.contains('"') && v.contains('\'')) || v.chars().any(|c| c.is_control() && c != '\t');
    if bad {
        Err(Error::InvalidValue {
            key: key.to_owned(),
        })
    } else {
        Ok(())
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces and tabs (not newlines).
    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.bump();
        }
    }

    fn skip_comment(&mut self) {
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.bump();
            }
        }
    }

    fn err(&self, msg: &'static str) -> Error {
        Error::Syntax {
            line: self.line,
            msg,
        }
    }

    fn parse(mut self) -> Result<Bootconfig> {
        let mut bc = Bootconfig::new();
        loop {
            // Between statements: blanks, newlines, ';' and comments.
            loop {
                self.skip_blank();
                self.skip_comment();
                match self.peek() {
                    Some(b'\n' | b';') => {
                        self.bump();
                    }
                    _ => break,
                }
            }
            let Some(c) = self.peek() else { break };
            if c == b'{' || c == b'}' {
                return Err(Error::Unsupported {
                    line: self.line,
                    what: "key trees ({ })",
                });
            }
            let line = self.line;
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                self.bump();
            }
            let key = std::str::from_utf8(self.s.get(start..self.pos).unwrap_or_default())
                .map_err(|_| Error::NotUtf8)?;
            if key.is_empty() {
                return Err(self.err("expected a key"));
            }
            check_key(key, line)?;
            self.skip_blank();
            let op = match self.peek() {
                Some(b'=') => {
                    self.bump();
                    "="
                }
                Some(b'+') | Some(b':') => {
                    let c = self.bump();
                    if self.bump() != Some(b'=') {
                        return Err(self.err("expected '=' after '+' or ':'"));
                    }
                    if c == Some(b'+') {
                        "+="
                    } else {
                        ":="
                    }
                }
                None | Some(b'\n' | b';' | b'#') => {
                    // A bare key.
                    if bc.get_all(key).is_some() {
                        return Err(Error::DuplicateKey {
                            line,
                            key: key.to_owned(),
                        });
                    }
                    bc.entries.push((key.to_owned(), Vec::new()));
                    continue;
                }
                Some(b'{') => {
                    return Err(Error::Unsupported {
                        line,
                        what: "key trees ({ })",
                    })
                }
                Some(_) => return Err(self.err("expected '=' after the key")),
            };
            let values = self.values()?;
            match (op, bc.entries.iter_mut().find(|(k, _)| k == key)) {
                ("=", Some(_)) => {
                    return Err(Error::DuplicateKey {
                        line,
                        key: key.to_owned(),
                    })
                }
                ("+=", Some((_, v))) => v.extend(values),
                (_, Some((_, v))) => *v = values, // ":="
                (_, None) => bc.entries.push((key.to_owned(), values)),
            }
        }
        Ok(bc)
    }

    /// `value[, value...]` up to the end of the statement.
    fn values(&mut self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            self.skip_blank();
            let v = match self.peek() {
                Some(q @ (b'"' | b'\'')) => {
                    self.bump();
                    let start = self.pos;
                    loop {
                        match self.bump() {
                            None => return Err(self.err("unterminated quoted value")),
                            Some(c) if c == q => break,
                            Some(_) => {}
                        }
                    }
                    self.s.get(start..self.pos - 1).unwrap_or_default()
                }
                _ => {
                    let start = self.pos;
                    while !matches!(
                        self.peek(),
                        None | Some(b'\n' | b';' | b'#' | b',' | b'}' | b' ' | b'\t' | b'\r')
                    ) {
                        self.bump();
                    }
                    self.s.get(start..self.pos).unwrap_or_default()
                }
            };
            let v = std::str::from_utf8(v).map_err(|_| Error::NotUtf8)?;
            if v.chars().any(|c| c.is_control() && c != '\t' && c != '\n') {
                return Err(self.err("control character in value"));
            }
            out.push(v.to_owned());
            self.skip_blank();
            match self.peek() {
                Some(b',') => {
                    self.bump();
                    // A newline may follow the comma (arrays over several lines).
                    loop {
                        self.skip_blank();
                        self.skip_comment();
                        if self.peek() == Some(b'\n') {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                None | Some(b'\n' | b';' | b'#') => return Ok(out),
                Some(b'{' | b'}') => {
                    return Err(Error::Unsupported {
                        line: self.line,
                        what: "key trees ({ })",
                    })
                }
                Some(_) => return Err(self.err("unexpected text after the value")),
            }
        }
    }
}

/// Byte sum of `data` (the trailer checksum, `xbc_calc_checksum`).
pub fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

/// Attaches `bootconfig` to `initrd` exactly as AVF's `initrd_bootconfig attach` does: zero
/// padding so that initrd + bootconfig + padding is a multiple of 4, then size (padding +
/// bootconfig), checksum (byte sum of the bootconfig) and the magic.
pub fn attach(initrd: &[u8], bootconfig: &[u8]) -> Result<Vec<u8>> {
    let padding = (4 - (initrd.len() + bootconfig.len()) % 4) % 4;
    let size = bootconfig.len() + padding;
    if size > MAX_SIZE {
        return Err(Error::SizeOutOfRange(
            "bootconfig larger than the kernel's 32 KiB limit",
        ));
    }
    let mut out = Vec::with_capacity(initrd.len() + size + TRAILER_SIZE);
    out.extend_from_slice(initrd);
    out.extend_from_slice(bootconfig);
    out.resize(out.len() + padding, 0);
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&checksum(bootconfig).to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Splits a blob with an attached bootconfig into (initrd, bootconfig bytes incl. padding),
/// checking the magic (also 1–3 bytes before the end, as the kernel tolerates for
/// bootloader alignment), the size and the checksum.
pub fn detach(blob: &[u8]) -> Result<(&[u8], &[u8])> {
    if blob.len() < TRAILER_SIZE {
        return Err(Error::Truncated {
            what: "bootconfig trailer",
            needed: TRAILER_SIZE as u64,
            available: blob.len() as u64,
        });
    }
    let magic_at = (0..4)
        .filter_map(|slack| blob.len().checked_sub(MAGIC.len() + slack))
        .find(|&at| blob.get(at..at + MAGIC.len()) == Some(&MAGIC[..]))
        .ok_or(Error::BadMagic)?;
    let hdr = magic_at.checked_sub(8).ok_or(Error::Truncated {
        what: "bootconfig trailer",
        needed: TRAILER_SIZE as u64,
        available: blob.len() as u64,
    })?;
    let field = |at: usize| -> u32 {
        let mut b = [0u8; 4];
        if let Some(s) = blob.get(at..at + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    };
    let size = field(hdr) as usize;
    let expected = field(hdr + 4);
    if size > MAX_SIZE {
        return Err(Error::SizeOutOfRange(
            "bootconfig larger than the kernel's 32 KiB limit",
        ));
    }
    let start = hdr.checked_sub(size).ok_or(Error::SizeOutOfRange(
        "bootconfig size is larger than the blob",
    ))?;
    let (initrd, rest) = blob.split_at(start);
    let bc = rest.get(..size).unwrap_or_default();
    let actual = checksum(bc);
    if actual != expected {
        return Err(Error::ChecksumMismatch { expected, actual });
    }
    Ok((initrd, bc))
}

/// [`detach`] and parse the bootconfig text.
pub fn read_attached(blob: &[u8]) -> Result<Bootconfig> {
    let (_, bc) = detach(blob)?;
    Bootconfig::parse_bytes(bc)
}

/// Entry point shared by the `cargo fuzz` target and the corpus tests: must never panic.
#[doc(hidden)]
pub fn fuzz_entry(data: &[u8]) {
    if let Ok(bc) = Bootconfig::parse_bytes(data) {
        if let Ok(text) = bc.to_text() {
            assert_eq!(
                Bootconfig::parse(&text).ok(),
                Some(bc),
                "serialize/parse round trip"
            );
        }
    }
    let _ = read_attached(data);
}

#[cfg(test)]
mod tests;
