//! AOSP's custom-VM JSON, as `libs/vmconfig` reads it for `vm run CONFIG.json`: the same keys
//! and defaults (`platform_version` required, a disk's `writable` required, `memory_mib`
//! positive, unknown keys ignored), the same validation, and the `VirtualMachineRawConfig` it
//! becomes with its files opened. Errors name the field (`disks[0].writable`).
//!
//! ```json
//! { "kernel": "/path/bzImage", "initrd": "/path/initrd.img", "params": "console=ttyS0",
//!   "disks": [ { "image": "/path/disk.img", "writable": false } ],
//!   "memory_mib": 256, "cpu_topology": "one_cpu", "platform_version": "~1.0" }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::fs::{File, OpenOptions};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use virtualizationservice::{
    CpuTopology, DiskImage, Partition, UsbConfig, VirtualMachineRawConfig,
};

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The JSON does not fit the schema; `field` is its path (`disks[0].writable`).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// A semantic rule failed.
    #[error("{0}")]
    Invalid(String),
    #[error("opening {field} {path}: {source}")]
    Open {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `cpu_topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CpuTopologyName {
    #[default]
    OneCpu,
    MatchHost,
}

/// A partition of a composite disk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionJson {
    pub label: String,
    pub path: PathBuf,
    #[serde(default)]
    pub writable: bool,
    /// Parsed, then dropped, as AOSP does (`guid: None` in the parcelable).
    #[serde(default)]
    pub guid: Option<String>,
}

/// A disk: exactly one of `image` and a non-empty `partitions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiskJson {
    #[serde(default)]
    pub image: Option<PathBuf>,
    #[serde(default)]
    pub partitions: Vec<PartitionJson>,
    pub writable: bool,
}

/// `usb_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct UsbConfigJson {
    pub controller: bool,
}

/// The JSON file (`VmConfig` in AOSP's vmconfig crate).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VmConfig {
    /// Parsed, then dropped (the name comes from `--name`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub params: Option<String>,
    #[serde(default)]
    pub bootloader: Option<PathBuf>,
    #[serde(default)]
    pub disks: Vec<DiskJson>,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub memory_mib: Option<NonZeroU32>,
    #[serde(default)]
    pub cpu_topology: CpuTopologyName,
    pub platform_version: String,
    #[serde(default)]
    pub devices: Vec<PathBuf>,
    #[serde(default)]
    pub console_input_device: Option<String>,
    #[serde(default)]
    pub usb_config: Option<UsbConfigJson>,
}

impl VmConfig {
    /// Parses JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: VmConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Field {
                field: if field == "." { "config".into() } else { field },
                message: inner.to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// AOSP's `VmConfig::validate` (and virtmgr's platform version check).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootloader.is_none() && self.kernel.is_none() {
            return Err(ConfigError::Invalid(
                "kernel: one of kernel and bootloader is required".into(),
            ));
        }
        if self.bootloader.is_some() && (self.kernel.is_some() || self.initrd.is_some()) {
            return Err(ConfigError::Invalid(
                "bootloader: cannot be combined with kernel or initrd".into(),
            ));
        }
        for (i, disk) in self.disks.iter().enumerate() {
            if disk.image.is_some() != disk.partitions.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "disks[{i}]: exactly one of image and partitions is required"
                )));
            }
        }
        let req =
            semver::VersionReq::parse(&self.platform_version).map_err(|e| ConfigError::Field {
                field: "platform_version".into(),
                message: e.to_string(),
            })?;
        if !req.matches(&semver::Version::new(1, 0, 0)) {
            return Err(ConfigError::Field {
                field: "platform_version".into(),
                message: format!("{:?} does not match 1.0.0", self.platform_version),
            });
        }
        Ok(())
    }

    /// The parcelable, with every file opened (read-only, or read-write where `writable`).
    pub fn to_parcelable(&self, name: &str) -> Result<VirtualMachineRawConfig, ConfigError> {
        let open = |field: String, path: &Path, writable: bool| -> Result<File, ConfigError> {
            OpenOptions::new()
                .read(true)
                .write(writable)
                .open(path)
                .map_err(|source| ConfigError::Open {
                    field,
                    path: path.to_owned(),
                    source,
                })
        };
        let mut disks = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            let image = d
                .image
                .as_deref()
                .map(|p| open(format!("disks[{i}].image"), p, d.writable))
                .transpose()?
                .map(Into::into);
            let partitions = d
                .partitions
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    Ok(Partition {
                        label: p.label.clone(),
                        image: open(
                            format!("disks[{i}].partitions[{j}].path"),
                            &p.path,
                            p.writable,
                        )?
                        .into(),
                        writable: p.writable,
                        guid: None,
                    })
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            disks.push(DiskImage {
                image,
                writable: d.writable,
                partitions,
            });
        }
        let file = |field: &str, p: &Option<PathBuf>| -> Result<_, ConfigError> {
            p.as_deref()
                .map(|p| open(field.to_owned(), p, false).map(Into::into))
                .transpose()
        };
        // `instance_id` stays the default, all zeros: a raw VM has no instance.
        Ok(VirtualMachineRawConfig {
            name: name.to_owned(),
            kernel: file("kernel", &self.kernel)?,
            initrd: file("initrd", &self.initrd)?,
            params: self.params.clone(),
            bootloader: file("bootloader", &self.bootloader)?,
            disks,
            protected_vm: self.protected,
            memory_mib: self
                .memory_mib
                .map_or(0, |m| i32::try_from(m.get()).unwrap_or(i32::MAX)),
            cpu_topology: match self.cpu_topology {
                CpuTopologyName::OneCpu => CpuTopology::ONE_CPU,
                CpuTopologyName::MatchHost => CpuTopology::MATCH_HOST,
            },
            platform_version: self.platform_version.clone(),
            devices: self
                .devices
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
            console_input_device: self.console_input_device.clone(),
            usb_config: self.usb_config.map(|u| UsbConfig {
                controller: u.controller,
            }),
            ..VirtualMachineRawConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtualizationservice::INSTANCE_ID_SIZE;

    fn field_error(json: &str) -> String {
        match VmConfig::from_json(json) {
            Err(ConfigError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_aosp_example() {
        let c = VmConfig::from_json(
            r#"{"name":"x","kernel":"/k","initrd":"/i","params":"console=ttyS0",
                "disks":[{"image":"/d","writable":false},
                         {"partitions":[{"label":"a","path":"/p","guid":"x"}],"writable":true}],
                "memory_mib":512,"cpu_topology":"match_host","platform_version":"~1.0",
                "debuggable":true}"#,
        )
        .unwrap();
        assert_eq!(c.memory_mib.map(|m| m.get()), Some(512));
        assert_eq!(c.cpu_topology, CpuTopologyName::MatchHost);
        assert_eq!(c.disks[1].partitions[0].label, "a");
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(
            field_error(r#"{"kernel":"/k","platform_version":"~1.0","disks":[{"image":"/d"}]}"#),
            "disks[0]"
        );
        assert_eq!(
            field_error(
                r#"{"kernel":"/k","platform_version":"~1.0","disks":[{"image":"/d","writable":"yes"}]}"#
            ),
            "disks[0].writable"
        );
        assert_eq!(
            field_error(r#"{"kernel":"/k","platform_version":"~1.0","memory_mib":0}"#),
            "memory_mib"
        );
        assert_eq!(
            field_error(r#"{"kernel":"/k","platform_version":"~1.0","cpu_topology":"two"}"#),
            "cpu_topology"
        );
        assert_eq!(field_error(r#"{"kernel":"/k"}"#), "config");
        assert_eq!(
            field_error(r#"{"kernel":"/k","platform_version":"~2.0"}"#),
            "platform_version"
        );
    }

    #[test]
    fn aosp_validation_rules() {
        let err = |json: &str| VmConfig::from_json(json).unwrap_err().to_string();
        assert!(err(r#"{"platform_version":"~1.0"}"#).contains("kernel"));
        assert!(
            err(r#"{"bootloader":"/b","kernel":"/k","platform_version":"~1.0"}"#)
                .contains("bootloader")
        );
        assert!(
            err(r#"{"kernel":"/k","platform_version":"~1.0","disks":[{"writable":false}]}"#)
                .contains("disks[0]: exactly one")
        );
    }

    /// Every field of the JSON reaches the parcelable (the bootloader in a config of its own:
    /// AOSP allows a kernel or a bootloader, not both).
    #[test]
    fn every_field_reaches_the_parcelable() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, name).unwrap();
            path
        };
        let (kernel, initrd, boot) = (file("k"), file("i"), file("b"));
        let json = format!(
            r#"{{"kernel":{kernel:?},"initrd":{initrd:?},"params":"console=hvc0",
                "protected":true,"memory_mib":300,"cpu_topology":"match_host",
                "platform_version":"~1.0","devices":["/sys/bus/platform/devices/x"],
                "console_input_device":"ttyS0","usb_config":{{"controller":true}}}}"#
        );
        let raw = VmConfig::from_json(&json)
            .unwrap()
            .to_parcelable("all")
            .unwrap();
        assert!(raw.kernel.is_some() && raw.initrd.is_some() && raw.bootloader.is_none());
        assert_eq!(raw.params.as_deref(), Some("console=hvc0"));
        assert!(raw.protected_vm);
        assert_eq!(raw.memory_mib, 300);
        assert_eq!(raw.cpu_topology, CpuTopology::MATCH_HOST);
        assert_eq!(raw.platform_version, "~1.0");
        assert_eq!(raw.devices, ["/sys/bus/platform/devices/x"]);
        assert_eq!(raw.console_input_device.as_deref(), Some("ttyS0"));
        assert!(raw.usb_config.is_some_and(|u| u.controller));
        assert_eq!(raw.instance_id, [0; INSTANCE_ID_SIZE]);

        let json = format!(r#"{{"bootloader":{boot:?},"platform_version":"~1.0"}}"#);
        let raw = VmConfig::from_json(&json)
            .unwrap()
            .to_parcelable("boot")
            .unwrap();
        assert!(raw.bootloader.is_some() && raw.kernel.is_none());
        assert_eq!(raw.memory_mib, 0, "0: the service's default");
        assert_eq!(raw.cpu_topology, CpuTopology::ONE_CPU);
    }

    #[test]
    fn opens_files_into_the_parcelable() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("k");
        std::fs::write(&kernel, b"kernel").unwrap();
        let json = format!(
            r#"{{"kernel":{:?},"platform_version":"1.0.0","disks":[{{"image":{:?},"writable":true}}]}}"#,
            kernel, kernel
        );
        let raw = VmConfig::from_json(&json)
            .unwrap()
            .to_parcelable("VmRun")
            .unwrap();
        assert!(raw.kernel.is_some() && raw.initrd.is_none());
        assert_eq!(raw.name, "VmRun");
        assert!(raw.disks[0].image.is_some() && raw.disks[0].writable);
        let missing =
            VmConfig::from_json(r#"{"kernel":"/nonexistent/k","platform_version":"1.0.0"}"#)
                .unwrap()
                .to_parcelable("VmRun")
                .unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("opening kernel /nonexistent/k"));
    }
}
