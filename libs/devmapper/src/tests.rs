#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use super::*;

/// sizeof/offsetof/ioctl numbers from <linux/dm-ioctl.h>, printed by a C program on the
/// build host (gcc, linux-libc-dev 6.1): see docs/formats/verity.md "devmapper".
#[test]
fn abi_constants_match_the_kernel_header() {
    assert_eq!(DM_IOCTL_SIZE, 312);
    assert_eq!(DM_TARGET_SPEC_SIZE, 40);
    assert_eq!(
        (
            OFF_DATA_SIZE,
            OFF_DATA_START,
            OFF_TARGET_COUNT,
            OFF_OPEN_COUNT
        ),
        (12, 16, 20, 24)
    );
    assert_eq!(
        (OFF_FLAGS, OFF_EVENT_NR, OFF_DEV, OFF_NAME, OFF_UUID),
        (28, 32, 40, 48, 176)
    );
    assert_eq!(cmd::VERSION, 0xc138_fd00);
    assert_eq!(cmd::DEV_CREATE, 0xc138_fd03);
    assert_eq!(cmd::DEV_REMOVE, 0xc138_fd04);
    assert_eq!(cmd::DEV_SUSPEND, 0xc138_fd06);
    assert_eq!(cmd::DEV_STATUS, 0xc138_fd07);
    assert_eq!(cmd::TABLE_LOAD, 0xc138_fd09);
    assert_eq!(cmd::TABLE_STATUS, 0xc138_fd0c);
}

#[test]
fn ioctl_header_encoding() -> Result<()> {
    let b = encode_ioctl(
        "system_a",
        Some("uuid-1"),
        DM_READONLY_FLAG,
        &[1, 2, 3],
        1,
        0,
    )?;
    assert_eq!(b.len(), 320); // 312 + 3, rounded to 8
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    assert_eq!([u32_at(0), u32_at(4), u32_at(8)], [4, 0, 0]);
    assert_eq!(u32_at(OFF_DATA_SIZE), 320);
    assert_eq!(u32_at(OFF_DATA_START), 312);
    assert_eq!(u32_at(OFF_TARGET_COUNT), 1);
    assert_eq!(u32_at(OFF_FLAGS), DM_READONLY_FLAG);
    assert_eq!(&b[48..57], b"system_a\0");
    assert_eq!(&b[176..183], b"uuid-1\0");
    assert_eq!(&b[312..315], &[1, 2, 3]);
    assert!(encode_ioctl(&"x".repeat(128), None, 0, &[], 0, 0).is_err());
    assert!(encode_ioctl("a\0b", None, 0, &[], 0, 0).is_err());
    assert!(encode_ioctl("a", Some(&"u".repeat(129)), 0, &[], 0, 0).is_err());
    // Spare room for replies.
    assert_eq!(encode_ioctl("a", None, 0, &[], 0, 1000)?.len(), 1312);
    Ok(())
}

#[test]
fn target_spec_encoding_and_decoding() -> Result<()> {
    let table = [
        Target::linear(0, 200, "/dev/vda2", 2048),
        Target::zero(200, 8),
        Target::linear(208, 16, "7:0", 4096),
    ];
    let specs = encode_targets(&table)?;
    // 40 + len("/dev/vda2 2048") + 1 = 55 → 56; 40 + 1 → 48; 40 + len("7:0 4096") + 1 = 49 → 56.
    assert_eq!(specs.len(), 56 + 48 + 56);
    let next = |o: usize| u32::from_ne_bytes(specs[o + 20..o + 24].try_into().unwrap());
    assert_eq!((next(0), next(56), next(104)), (56, 48, 56));
    assert_eq!(&specs[24..30], b"linear");
    assert_eq!(&specs[40..54], b"/dev/vda2 2048");
    assert_eq!(u64::from_ne_bytes(specs[56..64].try_into().unwrap()), 200);
    assert_eq!(&specs[56 + 24..56 + 28], b"zero");
    // The kernel's reply uses offsets from the data start instead; rebuild one and decode it.
    let mut reply = encode_ioctl("x", None, 0, &[], 0, 0)?;
    let mut data = specs.clone();
    let mut acc = 0u32;
    for o in [0usize, 56, 104] {
        acc += next(o);
        data[o + 20..o + 24].copy_from_slice(&acc.to_ne_bytes());
    }
    reply.extend_from_slice(&data);
    assert_eq!(decode_targets(&reply, 312, 3)?, table.to_vec());
    assert!(matches!(
        decode_targets(&reply, 312, 4),
        Err(Error::BadReply(_))
    ));
    // Bad targets.
    assert!(encode_targets(&[Target::new(0, 1, "", "")]).is_err());
    assert!(encode_targets(&[Target::new(0, 1, "a-very-long-type-name", "")]).is_err());
    assert!(encode_targets(&[Target::new(0, 1, "linear", "a\0b")]).is_err());
    Ok(())
}

#[test]
fn verity_target_conversion() -> std::result::Result<(), verity::Error> {
    let data = vec![3u8; 64 * 4096];
    let tree = verity::HashTree::build(&data, &verity::Params::new(&[0xaa])?)?;
    let t = Target::from(&tree.dm_target("7:0", "7:0", 64));
    assert_eq!(
        (t.start, t.length, t.target_type.as_str()),
        (0, 512, "verity")
    );
    assert!(t.params.starts_with("1 7:0 7:0 4096 4096 64 64 sha256 "));
    assert!(t.to_string().starts_with("0 512 verity 1 7:0 "));
    Ok(())
}

#[test]
fn dev_decoding() {
    // huge_encode_dev(MKDEV(254, 3)) = 3 | 254 << 8
    assert_eq!(decode_dev(3 | (254 << 8)), (254, 3));
    // minor 300: (300 & 0xff) | (254 << 8) | ((300 & !0xff) << 12)
    assert_eq!(
        decode_dev((300 & 0xff) | (254 << 8) | ((300 & !0xff) << 12)),
        (254, 300)
    );
    let d = DmDevice {
        name: "x".into(),
        major: 254,
        minor: 300,
    };
    assert_eq!(d.path(), PathBuf::from("/dev/dm-300"));
    assert_eq!(d.dev_string(), "254:300");
    assert_eq!(libc::major(d.dev_t()), 254);
    assert_eq!(libc::minor(d.dev_t()), 300);
}

#[test]
fn open_reports_a_clear_error_without_device_mapper() {
    let e = DeviceMapper::open_path(Path::new("/nonexistent/control")).unwrap_err();
    assert!(matches!(e, Error::Open { .. }));
    assert!(e.to_string().contains("/nonexistent/control"));
}
