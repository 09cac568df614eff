//! `microdroid_image`: builds the guest OS images.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Builds the Microdroid guest OS (initramfs, system partition, manifest)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the images into OUT.
    Build {
        /// Directory prepared by `make setup` (vmlinuz, release, root/lib/modules).
        #[arg(long, default_value = "build/kernel")]
        kernel_dir: PathBuf,
        /// Directory with the static guest binaries.
        #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/release")]
        bin_dir: PathBuf,
        /// Directory with the dynamic guest binaries (the payload runtime); default: the
        /// guest-dyn build beside bin-dir (target/guest-dyn/x86_64-unknown-linux-gnu/release).
        #[arg(long)]
        dyn_bin_dir: Option<PathBuf>,
        /// Service configuration to install as /system/etc/init/init.rc.
        #[arg(long)]
        init_rc: Option<PathBuf>,
        /// Payload config to install as /system/etc/vm_config.json.
        #[arg(long)]
        vm_config: Option<PathBuf>,
        /// PEM private key (RSA 2048/4096) that signs vbmeta; default: the documented test key
        /// libs/avb/testkeys/testkey_rsa4096.pem.
        #[arg(long)]
        avb_key: Option<PathBuf>,
        #[arg(long, default_value = "build/image")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Build {
            kernel_dir,
            bin_dir,
            dyn_bin_dir,
            init_rc,
            vm_config,
            avb_key,
            out,
        } => {
            let mut spec = image::ImageSpec::new(&kernel_dir, &bin_dir);
            if let Some(dir) = dyn_bin_dir {
                spec.dyn_bin_dir = dir;
            }
            if let Some(path) = init_rc {
                spec.init_rc =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            }
            if let Some(path) = vm_config {
                spec.vm_config =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            }
            if let Some(path) = avb_key {
                spec.avb_key_pem = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            let built = image::build(&spec, &out)?;
            println!("vbmeta digest: {}", built.vbmeta_digest);
            for (partition, root) in &built.root_digests {
                println!("{partition} hash-tree root: {root}");
            }
            println!(
                "modules ({}): {}",
                built.modules.len(),
                built.modules.join(" ")
            );
            for (path, hash) in &built.outputs {
                println!("{hash}  {}", path.display());
            }
            Ok(())
        }
    }
}
