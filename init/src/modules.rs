//! Kernel modules: the image builder computes the load order from the kernel's `modules.dep`
//! and writes it to `modules.load`; PID 1 loads each file in that order with `finit_module`.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::kmod::{finit_module, ModuleInitFlags};

pub const MODULES_DIR: &str = "/lib/modules";
pub const LOAD_ORDER_FILE: &str = "modules.load";

/// Parses `modules.load`: one module file name per line, `#` comments and blank lines ignored.
/// Names must be plain file names inside the modules directory.
pub fn parse_load_order(text: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        if name.contains('/') || !name.ends_with(".ko") {
            bail!(
                "{LOAD_ORDER_FILE} line {}: {name:?} is not a module file name",
                i + 1
            );
        }
        names.push(name);
    }
    Ok(names)
}

/// What loading a list of modules took: each module's `finit_module` (signature check,
/// relocation, its init function and the probes it runs), in load order.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub modules: Vec<(String, Duration)>,
}

impl LoadReport {
    pub fn total(&self) -> Duration {
        self.modules.iter().map(|(_, took)| *took).sum()
    }

    /// One console line: the count, the total and the `n` slowest modules.
    pub fn summary(&self, n: usize) -> String {
        let mut slowest: Vec<&(String, Duration)> = self.modules.iter().collect();
        slowest.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
        let slowest: Vec<String> = slowest
            .iter()
            .take(n)
            .map(|(name, took)| {
                format!("{} {:.3}", name.trim_end_matches(".ko"), took.as_secs_f64())
            })
            .collect();
        format!(
            "loaded {} kernel modules in {:.3} s (slowest: {})",
            self.modules.len(),
            self.total().as_secs_f64(),
            slowest.join(", ")
        )
    }
}

/// Loads every module in `dir/modules.load`, in order. A module that is already loaded (or built
/// in) is fine; so is one that refuses with ENODEV because the CPU lacks what it drives (e.g.
/// `aesni-intel` on a CPU model without AES-NI: the generic code serves instead), which is
/// logged. Any other failure stops the boot, since the next steps need these drivers.
pub fn load_modules(dir: &Path) -> Result<LoadReport> {
    let order_path = dir.join(LOAD_ORDER_FILE);
    let text = std::fs::read_to_string(&order_path)
        .with_context(|| format!("reading {}", order_path.display()))?;
    let names = parse_load_order(&text)?;
    let params = CString::default();
    let mut report = LoadReport::default();
    for name in &names {
        let path = dir.join(name);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let start = Instant::now();
        match finit_module(&file, &params, ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(nix::errno::Errno::ENODEV) => crate::console::log(&format!(
                "module {name}: no such device here (ENODEV), skipped"
            )),
            Err(e) => return Err(e).with_context(|| format!("loading module {name}")),
        }
        report.modules.push((name.to_string(), start.elapsed()));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_order_and_rejects_paths() {
        let names = parse_load_order("# order\nvirtio.ko\n\n virtio_pci.ko # pci\n").unwrap();
        assert_eq!(names, ["virtio.ko", "virtio_pci.ko"]);
        assert!(parse_load_order("../evil.ko\n").is_err());
        assert!(parse_load_order("notamodule\n").is_err());
    }

    #[test]
    fn summary_names_the_slowest_first() {
        let ms = Duration::from_millis;
        let report = LoadReport {
            modules: vec![
                ("virtio.ko".into(), ms(5)),
                ("aesni-intel.ko".into(), ms(57)),
                ("dm-mod.ko".into(), ms(30)),
            ],
        };
        assert_eq!(report.total(), ms(92));
        assert_eq!(
            report.summary(2),
            "loaded 3 kernel modules in 0.092 s (slowest: aesni-intel 0.057, dm-mod 0.030)"
        );
        assert_eq!(
            LoadReport::default().summary(3),
            "loaded 0 kernel modules in 0.000 s (slowest: )"
        );
    }
}
