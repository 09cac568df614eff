//! Verified boot of the OS: the good image boots through dm-verity; every kind of tampering with
//! what the trust anchor covers stops the boot with a message naming what failed.

use std::path::Path;
use std::time::Duration;

use boot_tests::{boot, build_image, console_text, vm_config, workspace_root, ImageChanges};
use host_tools::outcome::VmOutcome;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Boots and returns init's fatal message, failing the test if the boot was not refused.
fn refused_boot(image: &Path) -> (String, String) {
    let result = boot(&vm_config(image, TIMEOUT)).unwrap();
    let VmOutcome::InitFailed(Some(death)) = &result.outcome else {
        panic!("the boot was not refused: {:?}", result.outcome)
    };
    (
        death.detail.clone().unwrap_or_default(),
        console_text(&result),
    )
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("marker not found in the image")
}

#[test]
fn good_image_mounts_system_and_vendor_through_dm_verity() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let result = boot(&vm_config(image.path(), TIMEOUT)).unwrap();
    let console = console_text(&result);
    assert!(console.contains("matches the bootconfig"), "{console}");
    assert!(
        console.contains("init: mounted system_a read-only at /system"),
        "{console}"
    );
    assert!(
        console.contains("init: mounted vendor_a read-only at /vendor"),
        "{console}"
    );
    assert!(
        console.contains("system_a: dm-verity /dev/dm-"),
        "{console}"
    );
}

#[test]
fn one_flipped_byte_in_system_data_fails_the_read_and_the_boot() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let super_img = image.path().join("super.img");
    // A byte of /system/etc/init/init.rc, which init must read to go on. erofs may inline a
    // small file next to its metadata, so depending on the layout the EIO comes from the mount,
    // from reading the SELinux policy that shares the block, or from reading the file: either
    // way /system, verified, refuses the corrupted block.
    let offset = find(
        &std::fs::read(&super_img).unwrap(),
        b"Microdroid services (see libs/init_config",
    );
    flip_byte(&super_img, offset + 3);
    let (detail, console) = refused_boot(image.path());
    assert!(
        detail.contains("mounting /dev/dm-1 (erofs) on /system")
            || detail.contains("reading the SELinux policy /system/etc/selinux/")
            || detail.contains("reading /system/etc/init/init.rc"),
        "{detail}"
    );
    assert!(
        detail.contains("Input/output error") || detail.contains("EIO"),
        "{detail}"
    );
    assert!(console.contains("device-mapper: verity"), "{console}");
}

#[test]
fn vbmeta_signed_by_another_key_is_refused() {
    let other =
        std::fs::read_to_string(workspace_root().join("libs/avb/testkeys/testkey_rsa2048.pub.pem"))
            .unwrap();
    let image = build_image(&ImageChanges {
        trusted_key_pem: Some(&other),
        ..Default::default()
    })
    .unwrap();
    let (detail, _) = refused_boot(image.path());
    assert!(
        detail.contains("vbmeta_a is not signed by the trusted key"),
        "{detail}"
    );
}

#[test]
fn changed_vbmeta_descriptor_is_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let vbmeta = image.path().join("vbmeta.img");
    // The partition name inside the system hashtree descriptor, in the signed auxiliary block.
    let offset = find(&std::fs::read(&vbmeta).unwrap(), b"system");
    flip_byte(&vbmeta, offset);
    let (detail, _) = refused_boot(image.path());
    assert!(detail.contains("vbmeta_a failed verification"), "{detail}");
}

#[test]
fn vbmeta_digest_other_than_the_bootconfig_is_refused() {
    // Two properly signed images; the second one's vbmeta is not the one the first one's
    // initramfs expects.
    let image = build_image(&ImageChanges::default()).unwrap();
    let other_config =
        r#"{"task": {"command": "/system/bin/hello_payload", "args": ["--exit", "1"]}}"#;
    let other = build_image(&ImageChanges {
        vm_config: Some(other_config),
        ..Default::default()
    })
    .unwrap();
    std::fs::copy(
        other.path().join("vbmeta.img"),
        image.path().join("vbmeta.img"),
    )
    .unwrap();
    let (detail, console) = refused_boot(image.path());
    assert!(
        detail.contains("[libfs_avb] Failed to verify vbmeta digest"),
        "{detail}"
    );
    assert!(
        console.contains("init: FATAL: verified boot: [libfs_avb] Failed to verify vbmeta digest"),
        "{console}"
    );
}

#[test]
fn corrupted_super_metadata_is_refused() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let super_img = image.path().join("super.img");
    // Both geometry copies (primary at 4096, backup at 8192): byte 20 is in the metadata size.
    flip_byte(&super_img, 4096 + 20);
    flip_byte(&super_img, 8192 + 20);
    let (detail, _) = refused_boot(image.path());
    assert!(
        detail.contains("reading the super partition's metadata"),
        "{detail}"
    );
}
