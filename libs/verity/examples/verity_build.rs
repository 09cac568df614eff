//! Builds the dm-verity hash tree of a file and prints the root digest and throughput.
//!
//! Usage: `verity_build <data-file> [salt-hex|-] [tree-output-file]`
//! Used by `scripts/bench/verity.sh` against `veritysetup format --no-superblock`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: verity_build <data-file> [salt-hex|-] [tree-output-file]");
        std::process::exit(2);
    };
    let salt = verity::from_hex(args.get(1).map_or("-", String::as_str))?;
    let params = verity::Params::new(&salt)?;
    let start = Instant::now();
    let tree = verity::HashTree::build_from_file(path, &params)?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(out) = args.get(2) {
        std::fs::write(out, tree.tree())?;
    }
    let mib = tree.layout().data_size as f64 / (1024.0 * 1024.0);
    println!("Root hash: {}", tree.root_hex());
    println!("Hash blocks: {}", tree.layout().num_hash_blocks(&params));
    println!("Seconds: {secs:.4}");
    println!("MiB/s: {:.1}", mib / secs.max(1e-9));
    Ok(())
}
