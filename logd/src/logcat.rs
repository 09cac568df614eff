//! logcat: reads logd's records on `logdr` and prints them (threadtime by default), with the
//! options `adb logcat` users type most: `-d`, `-c`, `-b`, `-v`, `-s`, `-t N`, `--pid`, and
//! filter specs (`TAG:P`, `*:S`; `$ANDROID_LOG_TAGS` when none is given).

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use android_log::{Entry, Filter, Format, LogId};
use anyhow::{bail, Context, Result};

use android_log::seqpacket;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub dump: bool,
    pub clear: bool,
    pub lids: Vec<LogId>,
    pub format: Format,
    pub filter: Filter,
    pub tail: Option<usize>,
    pub pid: Option<i32>,
    pub socket_dir: PathBuf,
}

/// Format adverbs logcat accepts with `-v`; they change nothing here.
const ADVERBS: &[&str] = &[
    "color",
    "descriptive",
    "epoch",
    "monotonic",
    "printable",
    "uid",
    "usec",
    "UTC",
    "year",
    "zone",
];

pub fn parse_args(args: &[String], log_tags_env: Option<&str>) -> Result<Options> {
    let mut o = Options {
        dump: false,
        clear: false,
        lids: Vec::new(),
        format: Format::ThreadTime,
        filter: Filter::default(),
        tail: None,
        pid: None,
        socket_dir: PathBuf::from("/dev/socket"),
    };
    let mut specs = Vec::new();
    let mut silent = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<String> {
            it.next()
                .cloned()
                .with_context(|| format!("option {name} needs a value"))
        };
        match a.as_str() {
            "-d" => o.dump = true,
            "-c" | "--clear" => o.clear = true,
            "-s" => silent = true,
            "-b" | "--buffer" => {
                for name in value(a)?.split(',') {
                    match name {
                        "all" => o.lids = LogId::ALL.to_vec(),
                        "default" => o.lids.extend([LogId::Main, LogId::System, LogId::Crash]),
                        n => o.lids.push(
                            LogId::from_name(n).with_context(|| format!("unknown buffer {n:?}"))?,
                        ),
                    }
                }
            }
            "-v" | "--format" => {
                let v = value(a)?;
                match Format::from_name(&v) {
                    Some(f) => o.format = f,
                    None if ADVERBS.contains(&v.as_str()) => {}
                    None => bail!("unknown format {v:?}"),
                }
            }
            "-t" | "-T" => {
                let v = value(a)?;
                o.tail = Some(v.parse().with_context(|| format!("bad count {v:?}"))?);
                o.dump = true;
            }
            "--pid" => {
                let v = value(a)?;
                o.pid = Some(v.parse().with_context(|| format!("bad pid {v:?}"))?);
            }
            "--socket-dir" => o.socket_dir = value(a)?.into(),
            s if s.starts_with('-') => bail!("unsupported option {s:?}"),
            spec => specs.push(spec.to_owned()),
        }
    }
    if o.lids.is_empty() {
        o.lids = vec![LogId::Main, LogId::System, LogId::Crash, LogId::Kernel];
    }
    let mut seen = HashSet::new();
    o.lids.retain(|l| seen.insert(*l));
    if silent {
        o.filter.set_default(8);
    }
    let specs = if specs.is_empty() {
        log_tags_env.unwrap_or("").to_owned()
    } else {
        specs.join(" ")
    };
    o.filter.add_specs(&specs).map_err(anyhow::Error::msg)?;
    Ok(o)
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = std::env::var("ANDROID_LOG_TAGS").ok();
    match parse_args(&args, env.as_deref()).and_then(|o| run(&o, &mut std::io::stdout().lock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logcat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn clear(dir: &Path, lids: &[LogId]) -> Result<()> {
    for lid in lids {
        let mut s = UnixStream::connect(dir.join("logd")).context("connecting to logd")?;
        s.write_all(format!("clear {}\0", *lid as u8).as_bytes())?;
        let mut reply = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut reply)?;
        let text = String::from_utf8_lossy(&reply);
        if !text.starts_with("success") {
            bail!("clearing {}: {}", lid.name(), text.trim_end_matches('\0'));
        }
    }
    Ok(())
}

pub fn run(o: &Options, out: &mut impl Write) -> Result<()> {
    if o.clear {
        return clear(&o.socket_dir, &o.lids);
    }
    let conn = seqpacket::connect_to(&o.socket_dir.join("logdr"))
        .context("connecting to logd (is this VM debuggable?)")?;
    let lids: Vec<String> = o.lids.iter().map(|l| (*l as u8).to_string()).collect();
    let mut command = format!(
        "{} lids={}",
        if o.dump { "dumpAndClose" } else { "stream" },
        lids.join(",")
    );
    if let Some(t) = o.tail {
        command.push_str(&format!(" tail={t}"));
    }
    if let Some(p) = o.pid {
        command.push_str(&format!(" pid={p}"));
    }
    seqpacket::send_packet(&conn, command.as_bytes())?;
    let mut started = HashSet::new();
    let mut buf = vec![0u8; android_log::ENTRY_HEADER_LEN + android_log::MAX_PAYLOAD + 1];
    loop {
        let n = seqpacket::recv_packet(&conn, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let entry = match Entry::parse(&buf[..n]) {
            Ok(e) => e,
            Err(e) => bail!("bad record from logd: {e}"),
        };
        if !o.filter.matches(&entry) {
            continue;
        }
        if started.insert(entry.lid) {
            writeln!(out, "--------- beginning of {}", entry.lid.name())?;
        }
        out.write_all(android_log::format_entry(&entry, o.format).as_bytes())?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn what_adb_logcat_sends() {
        // `adb logcat -d` runs: export ANDROID_LOG_TAGS="''"; exec logcat '-d'
        let o = parse_args(&args(&["-d"]), Some("")).unwrap();
        assert!(o.dump && o.format == Format::ThreadTime);
        assert_eq!(
            o.lids,
            [LogId::Main, LogId::System, LogId::Crash, LogId::Kernel]
        );
        let o = parse_args(
            &args(&[
                "-b",
                "main,crash",
                "-v",
                "brief",
                "-v",
                "color",
                "-s",
                "hello:I",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(o.lids, [LogId::Main, LogId::Crash]);
        assert_eq!(o.format, Format::Brief);
        let o = parse_args(&args(&["-t", "5"]), None).unwrap();
        assert!(o.dump && o.tail == Some(5));
        assert!(parse_args(&args(&["-b", "nope"]), None).is_err());
        assert!(parse_args(&args(&["-v", "nope"]), None).is_err());
        assert!(parse_args(&args(&["-x"]), None).is_err());
    }
}
