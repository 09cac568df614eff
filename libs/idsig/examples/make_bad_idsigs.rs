//! Writes `libs/idsig/testdata/bad/*.idsig`: `cargo run -p idsig --example make_bad_idsigs`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad");
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in common::bad_idsigs() {
        std::fs::write(dir.join(name), bytes)?;
        println!("wrote testdata/bad/{name}");
    }
    Ok(())
}
