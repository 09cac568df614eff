//! The image builder's outputs are a function of its inputs: two builds, byte-identical files.

use boot_tests::{build_image, ImageChanges};

#[test]
fn building_the_image_twice_gives_identical_bytes() {
    let a = build_image(&ImageChanges::default()).unwrap();
    let b = build_image(&ImageChanges::default()).unwrap();
    for name in ["initramfs.img", "system.img", "vmlinuz", "vm_os.json"] {
        let first = std::fs::read(a.path().join(name)).unwrap();
        let second = std::fs::read(b.path().join(name)).unwrap();
        assert!(!first.is_empty(), "{name} is empty");
        assert!(first == second, "{name} differs between two builds");
    }
}
