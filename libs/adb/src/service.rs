//! The destination an OPEN names (its payload, trailing NULs stripped).

/// How a shell service runs its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellMode {
    /// Pipes: separate stdout and stderr, stdin closable (id 4).
    Raw,
    /// A pseudo-terminal: interactive, window size changes (id 5).
    Pty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// `shell[,v2][,raw|,pty][,TERM=t]:[command]`; an empty command is an interactive shell.
    Shell {
        v2: bool,
        mode: ShellMode,
        term: Option<String>,
        command: String,
    },
    /// `exec:command`: raw pipes with no protocol and no exit status.
    Exec(String),
    /// `sync:`: the file sync protocol.
    Sync,
    /// `root:` / `unroot:`.
    Root,
    Unroot,
    /// `reboot:[arg]`.
    Reboot(String),
    /// `tcp:port` or `tcp:localhost:port` (adbd connects only to the VM itself).
    Tcp(u16),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("service name is not UTF-8")]
    NotUtf8,
    #[error("unsupported service {0:?}")]
    Unsupported(String),
    #[error("bad port in {0:?}")]
    BadPort(String),
    #[error("adbd connects only to the VM's own TCP ports, not {0:?}")]
    RemoteHost(String),
}

impl Service {
    pub fn parse(raw: &[u8]) -> Result<Service, ServiceError> {
        let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&raw[..end]).map_err(|_| ServiceError::NotUtf8)?;
        if let Some(rest) = text.strip_prefix("shell") {
            if rest.starts_with(':') || rest.starts_with(',') {
                return Ok(parse_shell(rest));
            }
        }
        if let Some(cmd) = text.strip_prefix("exec:") {
            return Ok(Service::Exec(cmd.to_owned()));
        }
        match text {
            "sync:" => return Ok(Service::Sync),
            "root:" => return Ok(Service::Root),
            "unroot:" => return Ok(Service::Unroot),
            _ => {}
        }
        if let Some(arg) = text.strip_prefix("reboot:") {
            return Ok(Service::Reboot(arg.to_owned()));
        }
        if let Some(spec) = text.strip_prefix("tcp:") {
            let (host, port) = match spec.rsplit_once(':') {
                Some((h, p)) => (Some(h), p),
                None => (None, spec),
            };
            if let Some(h) = host {
                if !matches!(h, "localhost" | "127.0.0.1" | "::1" | "[::1]") {
                    return Err(ServiceError::RemoteHost(h.to_owned()));
                }
            }
            let port: u16 = port
                .parse()
                .map_err(|_| ServiceError::BadPort(text.to_owned()))?;
            if port == 0 {
                return Err(ServiceError::BadPort(text.to_owned()));
            }
            return Ok(Service::Tcp(port));
        }
        Err(ServiceError::Unsupported(text.chars().take(64).collect()))
    }
}

/// `rest` is what follows `shell`: `,arg,arg:command` or `:command`.
fn parse_shell(rest: &str) -> Service {
    let (args, command) = rest.split_once(':').unwrap_or((rest, ""));
    let mut v2 = false;
    let mut mode = None;
    let mut term = None;
    for arg in args.split(',').filter(|a| !a.is_empty()) {
        match arg {
            "v2" => v2 = true,
            "raw" => mode = Some(ShellMode::Raw),
            "pty" => mode = Some(ShellMode::Pty),
            // Unknown arguments are ignored, as adbd does.
            a => {
                if let Some(t) = a.strip_prefix("TERM=") {
                    term = Some(t.to_owned());
                }
            }
        }
    }
    // adbd's default: a terminal for an interactive shell, pipes for a command.
    let mode = mode.unwrap_or(if command.is_empty() {
        ShellMode::Pty
    } else {
        ShellMode::Raw
    });
    Service::Shell {
        v2,
        mode,
        term,
        command: command.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_debian_adb_sends() {
        assert_eq!(
            Service::parse(b"shell,v2,TERM=xterm,raw:echo hi; exit 7\0").unwrap(),
            Service::Shell {
                v2: true,
                mode: ShellMode::Raw,
                term: Some("xterm".into()),
                command: "echo hi; exit 7".into()
            }
        );
        assert_eq!(
            Service::parse(b"shell,v2,TERM=xterm,pty:\0").unwrap(),
            Service::Shell {
                v2: true,
                mode: ShellMode::Pty,
                term: Some("xterm".into()),
                command: String::new()
            }
        );
        // adb logcat: no raw/pty argument, a command: raw.
        let logcat = Service::parse(
            b"shell,v2,TERM=xterm:export ANDROID_LOG_TAGS=\"''\"; exec logcat '-d'\0",
        )
        .unwrap();
        assert!(matches!(
            logcat,
            Service::Shell {
                v2: true,
                mode: ShellMode::Raw,
                ..
            }
        ));
        assert_eq!(
            Service::parse(b"shell:ls").unwrap(),
            Service::Shell {
                v2: false,
                mode: ShellMode::Raw,
                term: None,
                command: "ls".into()
            }
        );
        assert_eq!(
            Service::parse(b"exec:echo 'hi'\0").unwrap(),
            Service::Exec("echo 'hi'".into())
        );
        assert_eq!(Service::parse(b"sync:\0").unwrap(), Service::Sync);
        assert_eq!(Service::parse(b"root:\0").unwrap(), Service::Root);
        assert_eq!(
            Service::parse(b"reboot:\0").unwrap(),
            Service::Reboot(String::new())
        );
        assert_eq!(Service::parse(b"tcp:5039\0").unwrap(), Service::Tcp(5039));
        assert_eq!(
            Service::parse(b"tcp:localhost:5039").unwrap(),
            Service::Tcp(5039)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Service::parse(b"tcp:10.0.0.1:80").unwrap_err(),
            ServiceError::RemoteHost("10.0.0.1".into())
        );
        assert!(matches!(
            Service::parse(b"tcp:0"),
            Err(ServiceError::BadPort(_))
        ));
        assert!(matches!(
            Service::parse(b"tcp:99999"),
            Err(ServiceError::BadPort(_))
        ));
        assert!(matches!(
            Service::parse(b"jdwp:12"),
            Err(ServiceError::Unsupported(_))
        ));
        assert!(matches!(
            Service::parse(b"shellx:"),
            Err(ServiceError::Unsupported(_))
        ));
        assert_eq!(
            Service::parse(b"\xff\xfe").unwrap_err(),
            ServiceError::NotUtf8
        );
        assert!(matches!(
            Service::parse(b""),
            Err(ServiceError::Unsupported(_))
        ));
    }
}
