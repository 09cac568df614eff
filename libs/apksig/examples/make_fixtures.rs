//! Regenerates the fixtures under `libs/apksig/testdata/`:
//! `cargo run -p apksig --example make_fixtures` (then `testdata/apksigner.sh` for the
//! apksigner-signed ones). Deterministic: RSA PKCS#1 v1.5 and ECDSA (RFC 6979) signatures do not
//! depend on randomness, so rerunning reproduces the same bytes (a test checks this).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    std::fs::create_dir_all(dir.join("bad"))?;
    for (name, bytes) in apksig_fixtures::all()? {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
        println!("wrote testdata/{name}");
    }
    Ok(())
}

#[path = "../tests/fixtures/mod.rs"]
mod apksig_fixtures;
