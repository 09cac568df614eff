//! Which kernel modules the guest loads, in which order: computed from the kernel's
//! `modules.dep` (written by depmod), so a new kernel brings its own dependency graph.

use std::collections::{BTreeMap, HashSet};

use thiserror::Error;

/// The drivers the guest needs, in the order they should come up. pvpanic is first so that a
/// crash anywhere after module loading reaches the host as a panic event.
pub const GUEST_MODULES: &[&str] = &[
    "pvpanic",
    "pvpanic-mmio",
    "virtio_pci",
    // An entropy source: without it the first read of /dev/urandom (an RPC session id) waits
    // about a second for jitter entropy under TCG.
    "virtio-rng",
    "virtio_blk",
    "dm-verity",
    "loop",
    "erofs",
    "fuse",
    "vmw_vsock_virtio_transport",
    // The DICE handover from the host (fw_cfg); microdroid_manager removes it once read.
    "qemu_fw_cfg",
    // The encrypted store: dm-crypt with AES-XTS over ECB (no HCTR2 in this kernel; the
    // guest has no modprobe for the kernel to load crypto templates on demand).
    "dm-crypt",
    "ecb",
    "xts",
    // AES-NI for it (vmctl gives TCG guests AES-NI): about twice the generic C AES.
    "aesni-intel",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModuleError {
    #[error("modules.dep line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("module {0:?} is not in modules.dep (not built as a module for this kernel?)")]
    Missing(String),
    #[error("module dependency cycle through {0:?}")]
    Cycle(String),
}

/// Module names compare with `-` and `_` the same, as the kernel does.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    normalize(file.split(".ko").next().unwrap_or(file))
}

/// The dependency graph of `modules.dep`: module name → (path, hard dependencies' paths).
pub struct ModuleDeps {
    modules: BTreeMap<String, (String, Vec<String>)>,
}

impl ModuleDeps {
    pub fn parse(text: &str) -> Result<Self, ModuleError> {
        let mut modules = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (path, deps) = line.split_once(':').ok_or_else(|| ModuleError::Syntax {
                line: index + 1,
                message: "no ':' after the module path".into(),
            })?;
            let path = path.trim();
            if !path.contains(".ko") || path.starts_with('/') || path.split('/').any(|c| c == "..")
            {
                return Err(ModuleError::Syntax {
                    line: index + 1,
                    message: format!("bad module path {path:?}"),
                });
            }
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            modules.insert(module_name(path), (path.to_owned(), deps));
        }
        Ok(ModuleDeps { modules })
    }

    /// The paths of `wanted` and everything they depend on, each dependency before its users,
    /// each module once, in the order `wanted` asks for them.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<String>, ModuleError> {
        let mut order = Vec::new();
        let mut done = HashSet::new();
        let mut visiting = HashSet::new();
        for name in wanted {
            self.visit(&normalize(name), &mut order, &mut done, &mut visiting)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        order: &mut Vec<String>,
        done: &mut HashSet<String>,
        visiting: &mut HashSet<String>,
    ) -> Result<(), ModuleError> {
        if done.contains(name) {
            return Ok(());
        }
        if !visiting.insert(name.to_owned()) {
            return Err(ModuleError::Cycle(name.to_owned()));
        }
        let (path, deps) = self
            .modules
            .get(name)
            .ok_or_else(|| ModuleError::Missing(name.to_owned()))?;
        // modprobe loads the list's last entry first; keep that order for siblings.
        for dep in deps.iter().rev() {
            self.visit(&module_name(dep), order, done, visiting)?;
        }
        visiting.remove(name);
        done.insert(name.to_owned());
        order.push(path.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon/reed_solomon.ko
kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mod.ko:
kernel/lib/reed_solomon/reed_solomon.ko:
";

    #[test]
    fn dependencies_come_first_once() {
        let deps = ModuleDeps::parse(DEP).unwrap();
        let order = deps
            .load_order(&["dm_verity", "virtio_pci", "dm-mod"])
            .unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "reed_solomon",
                "dm_mod",
                "dm_bufio",
                "dm_verity",
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio_pci"
            ]
        );
    }

    #[test]
    fn errors() {
        let deps = ModuleDeps::parse(DEP).unwrap();
        assert_eq!(
            deps.load_order(&["nope"]),
            Err(ModuleError::Missing("nope".into()))
        );
        assert!(matches!(
            ModuleDeps::parse("garbage\n"),
            Err(ModuleError::Syntax { line: 1, .. })
        ));
        let cyclic = ModuleDeps::parse("a.ko: b.ko\nb.ko: a.ko\n").unwrap();
        assert!(matches!(
            cyclic.load_order(&["a"]),
            Err(ModuleError::Cycle(_))
        ));
    }
}
