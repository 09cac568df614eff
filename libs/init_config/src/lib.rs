//! The service configuration PID 1 reads from `/system/etc/init/init.rc`: a small subset of
//! Android's init language, enough to describe Microdroid's services.
//!
//! ```text
//! # comment
//! service <name> <absolute path> [args...]
//!     oneshot | restart       # restart (the default, as in Android) or run once
//!     setenv <KEY> <VALUE>    # repeatable
//!     console                 # tag stdout/stderr lines and forward them to the console;
//!                             # without it they go to /dev/null
//!     disabled                # parsed but not started at boot
//!     poweroff_on_exit        # when this service exits, init shuts the VM down
//!                             # (what Android does with sys.powerctl=shutdown)
//!     only_if_cmdline <WORD>  # start it only when the kernel command line has WORD
//!                             # (e.g. androidboot.adb.enabled=1: Android's debug policy)
//!     wait_for <PATH>         # after starting it, wait (up to 1 s) for PATH to exist before
//!                             # starting the next service (logd's sockets)
//! ```
//! Options are indented under their service. Arguments are separated by whitespace; a double
//! quoted argument may contain spaces. Errors name the line.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use std::collections::HashSet;

use thiserror::Error;

/// Configs are a few hundred bytes; a much larger one is a mistake, not a config.
pub const MAX_CONFIG_SIZE: usize = 256 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("init config is {0} bytes, over the {MAX_CONFIG_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("init config is not UTF-8")]
    NotUtf8,
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("init config defines no service")]
    NoServices,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Run once; do not restart when it exits.
    Oneshot,
    /// Restart whenever it exits.
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub path: String,
    pub args: Vec<String>,
    pub restart: RestartPolicy,
    pub env: Vec<(String, String)>,
    /// Forward stdout/stderr, tagged, to the console.
    pub console: bool,
    pub disabled: bool,
    pub poweroff_on_exit: bool,
    /// Start only when the kernel command line has this word.
    pub only_if_cmdline: Option<String>,
    /// Paths to wait for after starting it.
    pub wait_for: Vec<String>,
    /// `capabilities NAME...`: the only capabilities it may hold (its bounding set); `None`
    /// leaves init's.
    pub capabilities: Option<caps::CapSet>,
    /// Line of the `service` statement, for messages.
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitConfig {
    pub services: Vec<Service>,
}

impl InitConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8)?;
        let mut services: Vec<Service> = Vec::new();
        let mut names = HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |message: String| ConfigError::Syntax { line, message };
            let words = split_words(raw).map_err(err)?;
            let Some((keyword, rest)) = words.split_first() else {
                continue;
            };
            let indented = raw.starts_with([' ', '\t']);
            if !indented {
                if keyword != "service" {
                    return Err(err(format!(
                        "unknown statement {keyword:?} (expected \"service\")"
                    )));
                }
                let [name, path, args @ ..] = rest else {
                    return Err(err("usage: service <name> <path> [args...]".into()));
                };
                if !valid_name(name) {
                    return Err(err(format!(
                        "bad service name {name:?}: use letters, digits, '_', '-', '.'"
                    )));
                }
                if !path.starts_with('/') {
                    return Err(err(format!(
                        "service {name:?}: path {path:?} is not absolute"
                    )));
                }
                if !names.insert(name.clone()) {
                    return Err(err(format!("service {name:?} is defined twice")));
                }
                services.push(Service {
                    name: name.clone(),
                    path: path.clone(),
                    args: args.to_vec(),
                    restart: RestartPolicy::Restart,
                    env: Vec::new(),
                    console: false,
                    disabled: false,
                    poweroff_on_exit: false,
                    only_if_cmdline: None,
                    wait_for: Vec::new(),
                    capabilities: None,
                    line,
                });
                continue;
            }
            let Some(service) = services.last_mut() else {
                return Err(err(format!("option {keyword:?} outside a service")));
            };
            let no_args = |opt: &str| -> Result<(), ConfigError> {
                if rest.is_empty() {
                    Ok(())
                } else {
                    Err(err(format!("option {opt:?} takes no arguments")))
                }
            };
            match keyword.as_str() {
                "oneshot" => {
                    no_args(keyword)?;
                    service.restart = RestartPolicy::Oneshot;
                }
                "restart" => {
                    no_args(keyword)?;
                    service.restart = RestartPolicy::Restart;
                }
                "console" => {
                    no_args(keyword)?;
                    service.console = true;
                }
                "disabled" => {
                    no_args(keyword)?;
                    service.disabled = true;
                }
                "poweroff_on_exit" => {
                    no_args(keyword)?;
                    service.poweroff_on_exit = true;
                }
                "only_if_cmdline" => match rest {
                    [word] if !word.is_empty() => service.only_if_cmdline = Some(word.clone()),
                    _ => return Err(err("usage: only_if_cmdline <WORD>".into())),
                },
                "wait_for" => match rest {
                    [path] if path.starts_with('/') => service.wait_for.push(path.clone()),
                    _ => return Err(err("usage: wait_for <ABSOLUTE PATH>".into())),
                },
                "capabilities" => {
                    if service.capabilities.is_some() {
                        return Err(err("capabilities given twice".into()));
                    }
                    service.capabilities =
                        Some(caps::CapSet::parse(rest).map_err(|e| err(e.to_string()))?);
                }
                "setenv" => match rest {
                    [key, value] if valid_env_key(key) => {
                        service.env.push((key.clone(), value.clone()))
                    }
                    [key, _] => return Err(err(format!("bad environment variable name {key:?}"))),
                    _ => return Err(err("usage: setenv <KEY> <VALUE>".into())),
                },
                other => {
                    return Err(err(format!(
                        "unknown option {other:?} in service {:?}",
                        service.name
                    )))
                }
            }
        }
        if services.is_empty() {
            return Err(ConfigError::NoServices);
        }
        Ok(InitConfig { services })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_env_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a line into words: whitespace separates, `#` outside quotes starts a comment, double
/// quotes group (with `\"` and `\\` escapes).
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(words),
            _ => {}
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if !quoted && c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some(e @ ('"' | '\\')) => word.push(e),
                    _ => return Err("bad escape in quoted argument (only \\\" and \\\\)".into()),
                },
                _ => word.push(c),
            }
        }
        if quoted {
            return Err("unterminated quote".into());
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRODROID: &str = r#"
# Microdroid services
service microdroid_manager /system/bin/microdroid_manager
    oneshot
    console
    setenv RUST_LOG info
    poweroff_on_exit

service logger /system/bin/logger --tag "a b" x   # trailing comment
    disabled

service adbd /system/bin/adbd
    only_if_cmdline androidboot.adb.enabled=1
    wait_for /dev/socket/a
    wait_for /dev/socket/b

service logd /system/bin/logd
    capabilities AUDIT_CONTROL SYS_ADMIN

service nocaps /system/bin/nocaps
    capabilities
"#;

    #[test]
    fn parses_services_and_options() {
        let config = InitConfig::parse(MICRODROID.as_bytes()).unwrap();
        let mm = config.service("microdroid_manager").unwrap();
        assert_eq!(mm.restart, RestartPolicy::Oneshot);
        assert!(mm.console && mm.poweroff_on_exit && !mm.disabled);
        assert_eq!(mm.env, [("RUST_LOG".to_string(), "info".to_string())]);
        assert_eq!(mm.line, 3);
        let logger = config.service("logger").unwrap();
        assert_eq!(logger.args, ["--tag", "a b", "x"]);
        assert_eq!(logger.restart, RestartPolicy::Restart);
        assert!(logger.disabled && !logger.console);
        assert_eq!(logger.only_if_cmdline, None);
        let adbd = config.service("adbd").unwrap();
        assert_eq!(
            adbd.only_if_cmdline.as_deref(),
            Some("androidboot.adb.enabled=1")
        );
        assert_eq!(adbd.wait_for, ["/dev/socket/a", "/dev/socket/b"]);
        assert_eq!(adbd.capabilities, None, "no option: init's own set");
        let logd = config.service("logd").unwrap();
        assert_eq!(
            logd.capabilities.map(|c| c.names()),
            Some(vec!["SYS_ADMIN", "AUDIT_CONTROL"])
        );
        assert_eq!(
            config.service("nocaps").unwrap().capabilities,
            Some(caps::CapSet::EMPTY)
        );
    }

    fn syntax_error(text: &str) -> (usize, String) {
        match InitConfig::parse(text.as_bytes()) {
            Err(ConfigError::Syntax { line, message }) => (line, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(syntax_error("service a /x\n    bogus\n").0, 2);
        assert!(syntax_error("service a /x\n    bogus\n")
            .1
            .contains("unknown option \"bogus\""));
        assert!(syntax_error("on boot\n").1.contains("unknown statement"));
        assert!(syntax_error("  oneshot\n").1.contains("outside a service"));
        assert!(syntax_error("service a x\n").1.contains("not absolute"));
        assert!(syntax_error("service a /x\nservice a /y\n")
            .1
            .contains("defined twice"));
        assert!(syntax_error("service a\n").1.contains("usage"));
        assert!(syntax_error("service a /x \"open\n")
            .1
            .contains("unterminated"));
        assert!(syntax_error("service a /x\n  oneshot now\n")
            .1
            .contains("takes no arguments"));
        assert!(syntax_error("service a /x\n  only_if_cmdline\n")
            .1
            .contains("usage: only_if_cmdline"));
        assert!(syntax_error("service a /x\n  capabilities SYS_WIZARD\n")
            .1
            .contains("unknown capability \"SYS_WIZARD\""));
        assert!(
            syntax_error("service a /x\n  capabilities\n  capabilities KILL\n")
                .1
                .contains("capabilities given twice")
        );
        assert!(syntax_error("service a /x\n  wait_for rel/path\n")
            .1
            .contains("usage: wait_for"));
        assert!(syntax_error("service a /x\n  setenv 1A b\n")
            .1
            .contains("bad environment"));
        assert!(syntax_error("service a/b /x\n")
            .1
            .contains("bad service name"));
    }

    /// Quoting: inside quotes `\"` and `\\` are escapes; outside, a backslash is itself.
    /// An empty quoted word is a word, and an empty `only_if_cmdline` word is refused.
    #[test]
    fn quotes_escapes_and_empty_words() {
        let config = InitConfig::parse(
            b"service a /x \"say \\\"hi\\\" \\\\ now\" back\\slash\n  setenv K \"\"\n",
        )
        .unwrap();
        let service = &config.services[0];
        assert_eq!(service.args, ["say \"hi\" \\ now", "back\\slash"]);
        assert_eq!(service.env, [("K".to_owned(), String::new())]);
        assert!(syntax_error("service a /x \"bad \\n escape\"\n")
            .1
            .contains("bad escape in quoted argument"));
        assert!(syntax_error("service a /x\n  only_if_cmdline \"\"\n")
            .1
            .contains("usage: only_if_cmdline"));
    }

    #[test]
    fn rejects_empty_and_binary() {
        assert_eq!(
            InitConfig::parse(b"# nothing\n"),
            Err(ConfigError::NoServices)
        );
        assert_eq!(InitConfig::parse(&[0xff, 0xfe]), Err(ConfigError::NotUtf8));
        assert!(matches!(
            InitConfig::parse(&vec![b'#'; MAX_CONFIG_SIZE + 1]),
            Err(ConfigError::TooLarge(_))
        ));
        // Exactly the limit is read.
        let mut at_limit = b"service a /x\n#".to_vec();
        at_limit.resize(MAX_CONFIG_SIZE, b'#');
        assert_eq!(InitConfig::parse(&at_limit).unwrap().services.len(), 1);
    }
}
