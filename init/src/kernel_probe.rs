//! The startup probe: after the modules are loaded, PID 1 checks that the kernel has every
//! feature the boot relies on, and fails the boot naming each missing one and what needs it.
//! Without it a kernel built differently fails later and obscurely (a mount with ENODEV, a
//! device-mapper ioctl on a file that does not exist, a vsock connect with EAFNOSUPPORT).
//!
//! Everything is read from the filesystems the kernel exports, under `root` (`/` in the
//! guest; a directory tree in tests).

use std::path::Path;

/// How a feature shows itself.
#[derive(Debug, Clone, Copy)]
enum Evidence {
    /// A line `nodev\t<name>` or `\t<name>` in /proc/filesystems.
    Filesystem(&'static str),
    /// A path that exists once the feature is there (a device node, a /sys/module directory).
    Path(&'static str),
}

/// One feature and the part of the boot that needs it.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    name: &'static str,
    needed_for: &'static str,
    evidence: Evidence,
}

/// What the boot needs of the kernel (the modules of `image::modules::GUEST_MODULES`, and
/// what the Debian kernel has built in).
pub const REQUIRED: &[Feature] = &[
    Feature {
        name: "erofs",
        needed_for: "the system and vendor partitions",
        evidence: Evidence::Filesystem("erofs"),
    },
    Feature {
        name: "fuse",
        needed_for: "zipfuse, which mounts the APK",
        evidence: Evidence::Filesystem("fuse"),
    },
    Feature {
        name: "ext4",
        needed_for: "the encrypted storage",
        evidence: Evidence::Filesystem("ext4"),
    },
    Feature {
        name: "device-mapper",
        needed_for: "the logical partitions, dm-verity and dm-crypt",
        evidence: Evidence::Path("dev/mapper/control"),
    },
    Feature {
        name: "dm-verity",
        needed_for: "verified boot and the APK's verification",
        evidence: Evidence::Path("sys/module/dm_verity"),
    },
    Feature {
        name: "dm-crypt",
        needed_for: "the encrypted storage",
        evidence: Evidence::Path("sys/module/dm_crypt"),
    },
    Feature {
        name: "loop",
        needed_for: "the APK's hash tree, read from its idsig",
        evidence: Evidence::Path("dev/loop-control"),
    },
    Feature {
        name: "vsock",
        needed_for: "the link to the host",
        evidence: Evidence::Path("dev/vsock"),
    },
];

/// The features of `features` the kernel under `root` lacks.
pub fn missing<'a>(root: &Path, features: &'a [Feature]) -> Vec<&'a Feature> {
    let filesystems = std::fs::read_to_string(root.join("proc/filesystems")).unwrap_or_default();
    let has_filesystem = |name: &str| {
        filesystems
            .lines()
            .any(|line| line.split_whitespace().last() == Some(name))
    };
    features
        .iter()
        .filter(|f| match f.evidence {
            Evidence::Filesystem(name) => !has_filesystem(name),
            Evidence::Path(path) => !root.join(path).exists(),
        })
        .collect()
}

/// Fails naming every missing feature of [`REQUIRED`] and what needs it.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let missing = missing(root, REQUIRED);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|f| format!("{} (for {})", f.name, f.needed_for))
        .collect();
    anyhow::bail!(
        "this kernel lacks what Microdroid needs: {}; is it built without them, or are their \
         modules missing from lib/modules/modules.load?",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(dir: &Path, filesystems: &str, paths: &[&str]) {
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(dir.join("proc/filesystems"), filesystems).unwrap();
        for path in paths {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
    }

    /// Fault matrix row 57: a kernel with everything passes; one without fuse and vsock fails
    /// naming both and what needs them.
    #[test]
    fn missing_kernel_features_are_named_with_what_needs_them() {
        let all_paths = [
            "dev/mapper/control",
            "sys/module/dm_verity/x",
            "sys/module/dm_crypt/x",
            "dev/loop-control",
            "dev/vsock",
        ];
        let full = tempfile::tempdir().unwrap();
        kernel(
            full.path(),
            "nodev\tsysfs\nnodev\tproc\n\text4\n\terofs\nnodev\tfuse\n",
            &all_paths,
        );
        check(full.path()).unwrap();

        let lacking = tempfile::tempdir().unwrap();
        kernel(
            lacking.path(),
            "nodev\tsysfs\n\text4\n\terofs\nnodev\tfuseblk\n",
            &all_paths[..4],
        );
        let names: Vec<&str> = missing(lacking.path(), REQUIRED)
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["fuse", "vsock"]);
        let err = format!("{:#}", check(lacking.path()).unwrap_err());
        assert!(
            err.starts_with(
                "this kernel lacks what Microdroid needs: fuse (for zipfuse, which mounts the \
                 APK), vsock (for the link to the host);"
            ),
            "{err}"
        );
        // No /proc/filesystems at all: every filesystem is missing, not a panic.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(missing(empty.path(), REQUIRED).len(), REQUIRED.len());
    }
}
