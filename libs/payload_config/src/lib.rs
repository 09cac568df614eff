//! `vm_config.json`, AOSP's `VmPayloadConfig` (docs/vm-config.md): the payload's task,
//! the APEXes and extra APKs it needs. Unknown keys are ignored, as in AOSP, so configs written
//! for Android load here unchanged.
//!
//! One extension: `task.args`, a list of arguments for an `executable` task. AOSP ignores the key.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Upper bound on the size of a config file; real ones are a few hundred bytes.
pub const MAX_CONFIG_SIZE: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("payload config is {0} bytes, more than the {MAX_CONFIG_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("payload config is not valid JSON for VmPayloadConfig: {0}")]
    Json(#[from] serde_json::Error),
    #[error("'os' in payload config is deprecated and must be \"\" or \"microdroid\", not {0:?}")]
    UnsupportedOs(String),
    #[error("No task in VM config")]
    NoTask,
    #[error("task command is empty")]
    EmptyCommand,
    #[error("executable task command {0:?} is not an absolute path")]
    RelativeExecutable(String),
    #[error("microdroid_launcher task command {0:?} must be a file name in the APK's lib/<abi>/")]
    BadLauncherName(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsConfig {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskType {
    #[default]
    #[serde(rename = "executable")]
    Executable,
    #[serde(rename = "microdroid_launcher")]
    MicrodroidLauncher,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    #[serde(default, rename = "type")]
    pub type_: TaskType,
    pub command: String,
    /// Our extension: the task's arguments (either task type), passed to the program as is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApexConfig {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApkConfig {
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmPayloadConfig {
    #[serde(default)]
    pub os: OsConfig,
    #[serde(default)]
    pub task: Option<Task>,
    #[serde(default)]
    pub apexes: Vec<ApexConfig>,
    #[serde(default)]
    pub extra_apks: Vec<ApkConfig>,
    #[serde(default)]
    pub prefer_staged: bool,
    #[serde(default)]
    pub export_tombstones: Option<bool>,
    #[serde(default)]
    pub enable_authfs: bool,
    #[serde(default)]
    pub hugepages: bool,
}

impl VmPayloadConfig {
    /// Parses a config and checks what the guest needs to run it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_SIZE {
            return Err(ConfigError::TooLarge(bytes.len()));
        }
        let config: Self = serde_json::from_slice(bytes)?;
        if !(config.os.name.is_empty() || config.os.name == "microdroid") {
            return Err(ConfigError::UnsupportedOs(config.os.name));
        }
        Ok(config)
    }

    /// The task to run, checked.
    pub fn task(&self) -> Result<&Task, ConfigError> {
        let task = self.task.as_ref().ok_or(ConfigError::NoTask)?;
        if task.command.is_empty() {
            return Err(ConfigError::EmptyCommand);
        }
        match task.type_ {
            TaskType::Executable if !task.command.starts_with('/') => {
                Err(ConfigError::RelativeExecutable(task.command.clone()))
            }
            TaskType::MicrodroidLauncher
                if task.command.contains('/') || task.command == "." || task.command == ".." =>
            {
                Err(ConfigError::BadLauncherName(task.command.clone()))
            }
            _ => Ok(task),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aosp_examples() {
        let testapk = br#"{"task":{"type":"microdroid_launcher","command":"MicrodroidTestNativeLib.so"},"export_tombstones":true}"#;
        let c = VmPayloadConfig::from_json(testapk).unwrap();
        assert_eq!(c.task().unwrap().type_, TaskType::MicrodroidLauncher);
        assert_eq!(c.export_tombstones, Some(true));
        let compos = br#"{"version":1,"os":{"name":"microdroid"},
           "task":{"type":"executable","command":"/apex/com.android.compos/bin/compsvc"},
           "extra_apks":[{"path":"/system/etc/security/fsverity/BuildManifest.apk"}],
           "apexes":[{"name":"com.android.art"},{"name":"{CLASSPATH}"}],
           "export_tombstones":true,"enable_authfs":true,"hugepages":true}"#;
        let c = VmPayloadConfig::from_json(compos).unwrap();
        assert_eq!(
            c.task().unwrap().command,
            "/apex/com.android.compos/bin/compsvc"
        );
        assert_eq!(c.apexes.len(), 2);
        assert!(c.hugepages && c.enable_authfs);
    }

    /// A config of exactly `MAX_CONFIG_SIZE` bytes is read; one byte more is `TooLarge`.
    #[test]
    fn the_size_limit_is_inclusive() {
        let mut config = br#"{"task": {"type": "executable", "command": "/bin/x"}}"#.to_vec();
        config.resize(MAX_CONFIG_SIZE, b' ');
        assert!(VmPayloadConfig::from_json(&config).is_ok());
        config.push(b' ');
        assert!(matches!(
            VmPayloadConfig::from_json(&config),
            Err(ConfigError::TooLarge(n)) if n == MAX_CONFIG_SIZE + 1
        ));
    }

    #[test]
    fn rejects_bad_configs() {
        let no_task = VmPayloadConfig::from_json(br#"{"export_tombstones": true}"#).unwrap();
        assert!(matches!(no_task.task(), Err(ConfigError::NoTask)));
        assert!(matches!(
            VmPayloadConfig::from_json(b"{"),
            Err(ConfigError::Json(_))
        ));
        assert!(matches!(
            VmPayloadConfig::from_json(br#"{"os":{"name":"linux"}}"#),
            Err(ConfigError::UnsupportedOs(_))
        ));
        let rel = VmPayloadConfig::from_json(br#"{"task":{"command":"bin/x"}}"#).unwrap();
        assert!(matches!(
            rel.task(),
            Err(ConfigError::RelativeExecutable(_))
        ));
        let launcher = br#"{"task":{"type":"microdroid_launcher","command":"../x.so"}}"#;
        let c = VmPayloadConfig::from_json(launcher).unwrap();
        assert!(matches!(c.task(), Err(ConfigError::BadLauncherName(_))));
        for name in [".", ".."] {
            let json = format!(r#"{{"task":{{"type":"microdroid_launcher","command":"{name}"}}}}"#);
            let c = VmPayloadConfig::from_json(json.as_bytes()).unwrap();
            assert!(
                matches!(c.task(), Err(ConfigError::BadLauncherName(n)) if n == name),
                "{name}"
            );
        }
        let big = vec![b' '; MAX_CONFIG_SIZE + 1];
        assert!(matches!(
            VmPayloadConfig::from_json(&big),
            Err(ConfigError::TooLarge(_))
        ));
    }

    #[test]
    fn args_extension() {
        let c = VmPayloadConfig::from_json(br#"{"task":{"command":"/bin/x","args":["-a","b"]}}"#)
            .unwrap();
        assert_eq!(c.task().unwrap().args, ["-a", "b"]);
    }
}
