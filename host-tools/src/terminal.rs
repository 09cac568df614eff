//! Guest bytes on the user's terminal: a guest (hostile, or just broken) must not be able to
//! drive the terminal with escape sequences (retitle it, move the cursor over earlier lines,
//! answer-back, hyperlinks). What reaches a terminal passes through [`Sanitizer`]: printable
//! text, UTF-8 included, newlines and tabs pass; C0 controls and DEL show in caret notation
//! (`ESC` → `^[`), C1 controls as `\u{9b}`, bytes that are not UTF-8 as `\xNN`, carriage returns
//! are dropped (a serial console ends lines with `\r\n`; alone, `\r` would let a line overwrite
//! another). Files and pipes get the bytes as they are; `--raw-console` asks for them on a
//! terminal too.

use std::io::{self, IsTerminal, Read, Write};

/// A streaming sanitizer: UTF-8 sequences split between reads are kept until complete.
#[derive(Debug, Default)]
pub struct Sanitizer {
    pending: Vec<u8>,
}

/// The longest incomplete UTF-8 sequence kept between reads.
const MAX_PENDING: usize = 3;

fn push_char(out: &mut Vec<u8>, c: char) {
    match c {
        '\n' | '\t' => out.push(c as u8),
        '\r' => {}
        '\u{0}'..='\u{1f}' => {
            out.push(b'^');
            out.push(c as u8 + 0x40);
        }
        '\u{7f}' => out.extend_from_slice(b"^?"),
        '\u{80}'..='\u{9f}' => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
    }
}

impl Sanitizer {
    pub fn new() -> Sanitizer {
        Sanitizer::default()
    }

    /// What `data` (after what came before) shows on a terminal.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(data);
        let mut out = Vec::with_capacity(input.len());
        let mut rest = &input[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    text.chars().for_each(|c| push_char(&mut out, c));
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    if let Ok(text) = std::str::from_utf8(good) {
                        text.chars().for_each(|c| push_char(&mut out, c));
                    }
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                            rest = &bad[n..];
                        }
                        // An incomplete sequence at the end: wait for the rest.
                        None if bad.len() <= MAX_PENDING => {
                            self.pending = bad.to_vec();
                            break;
                        }
                        None => {
                            for b in bad {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the stream (an incomplete sequence), escaped.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for b in std::mem::take(&mut self.pending) {
            let _ = write!(out, "\\x{b:02x}");
        }
        out
    }
}

/// The sanitizer guest bytes go through on their way to stdout: one when stdout is a terminal,
/// unless the user asked for raw bytes (`--raw-console`).
pub fn sanitizer_for_stdout(raw_console: bool) -> Option<Sanitizer> {
    sanitizer_for(raw_console, io::stdout().is_terminal())
}

fn sanitizer_for(raw_console: bool, is_terminal: bool) -> Option<Sanitizer> {
    (is_terminal && !raw_console).then(Sanitizer::new)
}

/// Copies `from` to `to`, sanitized, until the end of `from`.
pub fn copy_sanitized(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut s = Sanitizer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&s.push(&buf[..n]))?;
        to.flush()?;
    }
    to.write_all(&s.finish())?;
    to.flush()
}

/// Writes guest bytes to stdout: sanitized when stdout is a terminal.
pub fn write_guest_bytes_to_stdout(data: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if stdout.is_terminal() {
        let mut s = Sanitizer::new();
        out.write_all(&s.push(data))?;
        out.write_all(&s.finish())?;
    } else {
        out.write_all(data)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(data: &[u8]) -> String {
        let mut s = Sanitizer::new();
        let mut out = s.push(data);
        out.extend(s.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_passes_and_controls_are_shown() {
        assert_eq!(
            clean(b"[    1.2] init: hello\r\n\ttab"),
            "[    1.2] init: hello\n\ttab"
        );
        assert_eq!(clean("héllo wörld ✓\n".as_bytes()), "héllo wörld ✓\n");
        // A title change, a cursor move and a screen clear, and a bell.
        assert_eq!(clean(b"\x1b]0;pwned\x07"), "^[]0;pwned^G");
        assert_eq!(clean(b"\x1b[2J\x1b[1;1H"), "^[[2J^[[1;1H");
        assert_eq!(clean(b"a\rb"), "ab");
        assert_eq!(clean(b"\x7f\x00"), "^?^@");
        // C1 CSI as UTF-8 (U+009B), and bytes that are not UTF-8 (a raw 0x9b, an overlong).
        assert_eq!(clean("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(clean(b"\x9b31m\xc0\xaf"), "\\x9b31m\\xc0\\xaf");
    }

    #[test]
    fn utf8_split_between_reads_is_kept_whole() {
        let text = "✓ok".as_bytes();
        let mut s = Sanitizer::new();
        let mut out = s.push(&text[..1]);
        assert!(out.is_empty());
        out.extend(s.push(&text[1..2]));
        out.extend(s.push(&text[2..]));
        out.extend(s.finish());
        assert_eq!(String::from_utf8(out).unwrap(), "✓ok");
        // A stream that ends inside a sequence shows the bytes.
        let mut s = Sanitizer::new();
        assert!(s.push(&text[..2]).is_empty());
        assert_eq!(s.finish(), b"\\xe2\\x9c");
    }

    #[test]
    fn only_a_terminal_gets_sanitized_and_raw_console_turns_it_off() {
        assert!(sanitizer_for(false, true).is_some());
        assert!(sanitizer_for(true, true).is_none(), "--raw-console");
        assert!(sanitizer_for(false, false).is_none(), "a file or a pipe");
    }

    #[test]
    fn copy_sanitizes_a_stream() {
        let mut out = Vec::new();
        copy_sanitized(&b"line\x1b[31m red\r\n"[..], &mut out).unwrap();
        assert_eq!(out, b"line^[[31m red\n");
    }
}
