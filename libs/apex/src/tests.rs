#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::write::{build_apex, build_apex_zip, build_payload_image};
use crate::{ApexFile, Error, Expectations, FsType};

fn key(bits: u32) -> avb::SigningKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../avb/testkeys/testkey_rsa{bits}.pem"));
    avb::SigningKey::from_pem_file(path).unwrap()
}

fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("tree");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    fs::set_permissions(root.join("bin/hello"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(root.join("etc/greeting.txt"), vec![b'x'; 20000]).unwrap();
    root
}

#[test]
fn round_trip_parses_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.apex");
    let key = key(4096);
    build_apex(&tree(dir.path()), "com.example.hello", 7, &key, &out).unwrap();
    let data = fs::read(&out).unwrap();
    let apex = ApexFile::parse(data.as_slice()).unwrap();
    assert_eq!(apex.manifest.name, "com.example.hello");
    assert_eq!(apex.manifest.version, 7);
    assert_eq!(apex.manifest.package_id(), "com.example.hello@7");
    assert_eq!(apex.manifest.version_name, "7");
    // The same through an owned buffer.
    assert_eq!(ApexFile::parse(&data).unwrap().manifest, apex.manifest);
    assert_eq!(apex.public_key, key.public_key().unwrap().to_avb_bytes());
    assert_eq!(apex.payload.offset % 4096, 0, "payload is page-aligned");
    let verified = apex
        .verify(data.as_slice(), &Expectations::default())
        .unwrap();
    assert_eq!(verified.fs_type, FsType::Erofs);
    assert_eq!(verified.hashtree.partition_name, "com.example.hello");
    // The same through a file, as the guest reads a block device.
    let file = fs::File::open(&out).unwrap();
    let from_file = ApexFile::parse(&file).unwrap();
    assert_eq!(from_file, apex);
    from_file.verify(&file, &Expectations::default()).unwrap();
    // Pinned values from the payload metadata.
    let good = Expectations {
        public_key: Some(&apex.public_key),
        root_digest: Some(&verified.hashtree.root_digest),
        name: Some("com.example.hello"),
        version: Some(7),
    };
    apex.verify(data.as_slice(), &good).unwrap();
    let other_key = crate::tests::key(2048).public_key().unwrap().to_avb_bytes();
    for (expect, check) in [
        (
            Expectations {
                public_key: Some(&other_key),
                ..good
            },
            (|e: &Error| matches!(e, Error::PublicKeyMismatch)) as fn(&Error) -> bool,
        ),
        (
            Expectations {
                root_digest: Some(&[0; 32]),
                ..good
            },
            |e| matches!(e, Error::RootDigestMismatch { .. }),
        ),
        (
            Expectations {
                name: Some("com.example.other"),
                ..good
            },
            |e| matches!(e, Error::NameMismatch { .. }),
        ),
        (
            Expectations {
                version: Some(8),
                ..good
            },
            |e| {
                matches!(
                    e,
                    Error::VersionMismatch {
                        expected: 8,
                        actual: 7
                    }
                )
            },
        ),
    ] {
        let err = apex.verify(data.as_slice(), &expect).unwrap_err();
        assert!(check(&err), "{err:?}");
    }
}

#[test]
fn payload_content_is_the_directory() {
    // Oracle: erofs-utils' own fsck extracts what we put in.
    let dir = tempfile::tempdir().unwrap();
    let (image, info) =
        build_payload_image(&tree(dir.path()), "com.example.hello", &key(2048)).unwrap();
    let raw = dir.path().join("fs.img");
    fs::write(&raw, &image[..info.descriptor.image_size as usize]).unwrap();
    let out = dir.path().join("extracted");
    let status = std::process::Command::new("fsck.erofs")
        .arg(format!("--extract={}", out.display()))
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        fs::read(out.join("etc/greeting.txt")).unwrap(),
        vec![b'x'; 20000]
    );
    let mode = fs::metadata(out.join("bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "owner-executable files become 0755");
    let mode = fs::metadata(out.join("etc/greeting.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "other files become 0644");
    // And the hashtree footer verifies the data (the whole image, as dm-verity would).
    let full = dir.path().join("payload.img");
    fs::write(&full, &image).unwrap();
    info.descriptor
        .verify_partition(&fs::File::open(&full).unwrap())
        .unwrap();
}

#[test]
fn zero_padding_after_the_zip_is_accepted() {
    // The payload disk pads each partition to 4 KiB.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.apex");
    build_apex(&tree(dir.path()), "com.example.a", 1, &key(2048), &out).unwrap();
    let mut data = fs::read(&out).unwrap();
    let parsed = ApexFile::parse(data.as_slice()).unwrap();
    data.resize(data.len() + 4095, 0);
    assert_eq!(ApexFile::parse(data.as_slice()).unwrap(), parsed);
    parsed
        .verify(data.as_slice(), &Expectations::default())
        .unwrap();
}

#[test]
fn mismatched_pubkey_and_flipped_payload_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (image, info) =
        build_payload_image(&tree(dir.path()), "com.example.k", &key(4096)).unwrap();
    let manifest = crate::ApexManifest {
        name: "com.example.k".into(),
        version: 1,
        ..Default::default()
    };
    let wrong = key(2048).public_key().unwrap().to_avb_bytes();
    let zip = build_apex_zip(&manifest, &wrong, &image).unwrap();
    let apex = ApexFile::parse(zip.as_slice()).unwrap();
    assert!(matches!(
        apex.verify(zip.as_slice(), &Expectations::default()),
        Err(Error::SignatureRejected(avb::Error::PublicKeyMismatch))
    ));
    // A flipped data byte passes the signature check (the vbmeta is intact) but not the tree:
    // that is dm-verity's job at read time, shown here with the user-space verifier.
    let right = key(4096).public_key().unwrap().to_avb_bytes();
    let mut bad = image.clone();
    bad[0] ^= 0xff;
    let zip = build_apex_zip(&manifest, &right, &bad).unwrap();
    let apex = ApexFile::parse(zip.as_slice()).unwrap();
    apex.verify(zip.as_slice(), &Expectations::default())
        .unwrap();
    let path = dir.path().join("bad.img");
    fs::write(&path, &bad).unwrap();
    assert!(info
        .descriptor
        .verify_partition(&fs::File::open(&path).unwrap())
        .is_err());
}

#[test]
fn writer_refuses_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "a/b", "..", ".hidden", "a@1", &"x".repeat(101)] {
        let err = build_apex(
            &tree(dir.path()),
            name,
            1,
            &key(2048),
            &dir.path().join("x.apex"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidName(_)), "{name:?}: {err:?}");
    }
}

/// A manifest whose encoding is exactly `size` bytes (its version name fills it up).
fn manifest_of_size(size: usize) -> crate::ApexManifest {
    use prost::Message;
    let mut m = crate::ApexManifest {
        name: "com.example.big".into(),
        version: 0,
        ..crate::ApexManifest::default()
    };
    let mut fill = size.saturating_sub(32);
    loop {
        m.version_name = "v".repeat(fill);
        let len = m.encode_to_vec().len();
        if len == size {
            return m;
        }
        fill = fill + size - len.min(size) - usize::from(len > size);
        assert!(fill < size, "cannot reach {size} bytes");
    }
}

#[test]
fn small_entries_are_read_up_to_their_limits() {
    let key = key(2048).public_key().unwrap().to_avb_bytes();
    let at_limit = build_apex_zip(&manifest_of_size(64 * 1024), &key, b"payload").unwrap();
    let parsed = ApexFile::parse(at_limit.as_slice()).unwrap();
    assert_eq!(parsed.manifest.version, 0, "version 0 is valid");
    let over = build_apex_zip(&manifest_of_size(64 * 1024 + 1), &key, b"payload").unwrap();
    assert!(matches!(
        ApexFile::parse(over.as_slice()),
        Err(Error::EntryTooLarge {
            name: crate::MANIFEST_ENTRY,
            size: 65537,
            limit: 65536
        })
    ));
    let manifest = manifest_of_size(100);
    let big_key = vec![7u8; 4096];
    let parsed = ApexFile::parse(
        build_apex_zip(&manifest, &big_key, b"p")
            .unwrap()
            .as_slice(),
    );
    assert_eq!(parsed.unwrap().public_key, big_key);
    let too_big_key = vec![7u8; 4097];
    assert!(matches!(
        ApexFile::parse(
            build_apex_zip(&manifest, &too_big_key, b"p")
                .unwrap()
                .as_slice()
        ),
        Err(Error::EntryTooLarge {
            name: crate::PUBKEY_ENTRY,
            size: 4097,
            limit: 4096
        })
    ));
}

#[test]
fn versions_from_zero_are_built_and_negative_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zero.apex");
    let manifest = build_apex(&tree(dir.path()), "com.example.zero", 0, &key(2048), &out).unwrap();
    assert_eq!(manifest.version, 0);
    assert!(matches!(
        build_apex(&tree(dir.path()), "com.example.neg", -1, &key(2048), &out),
        Err(Error::InvalidVersion(-1))
    ));
}

#[test]
fn the_salt_is_fixed_per_name() {
    use sha2::{Digest, Sha256};
    let expected: [u8; 32] = Sha256::digest(b"apex-com.example.a").into();
    assert_eq!(crate::write::salt_for("com.example.a"), expected);
    assert_ne!(
        crate::write::salt_for("com.example.a"),
        crate::write::salt_for("com.example.b")
    );
}

/// The payload's file system is chosen by its superblock magic: erofs at 1024, ext4's 0xef53 at
/// 1024 + 0x38; an image too short to hold a superblock's first 64 bytes is neither.
#[test]
fn file_system_by_magic() {
    assert_eq!(
        (FsType::Erofs.name(), FsType::Ext4.name()),
        ("erofs", "ext4")
    );
    let apex = |size: u64| ApexFile {
        manifest: crate::ApexManifest::default(),
        public_key: Vec::new(),
        payload: crate::EntryRange { offset: 0, size },
    };
    let mut erofs = vec![0u8; 4096];
    erofs[1024..1028].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
    assert_eq!(apex(1088).fs_type(erofs.as_slice()).unwrap(), FsType::Erofs);
    assert!(matches!(
        apex(1087).fs_type(erofs.as_slice()),
        Err(Error::UnknownFilesystem)
    ));
    let mut ext4 = vec![0u8; 4096];
    ext4[1024 + 0x38..1024 + 0x3a].copy_from_slice(&[0x53, 0xef]);
    assert_eq!(apex(4096).fs_type(ext4.as_slice()).unwrap(), FsType::Ext4);
    assert!(matches!(
        apex(4096).fs_type(vec![0u8; 4096].as_slice()),
        Err(Error::UnknownFilesystem)
    ));
}

/// The vbmeta a footer names may be at most 64 KiB (avbtool's limit): one byte more is refused
/// before it is read.
#[test]
fn the_vbmeta_size_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.apex");
    build_apex(&tree(dir.path()), "com.example.big", 1, &key(2048), &out).unwrap();
    let mut data = fs::read(&out).unwrap();
    let apex = ApexFile::parse(data.as_slice()).unwrap();
    // The AVB footer is the payload's last 64 bytes, the vbmeta size (BE) at 28.
    let footer = (apex.payload.offset + apex.payload.size - 64) as usize;
    data[footer + 28..footer + 36].copy_from_slice(&(64u64 * 1024 + 1).to_be_bytes());
    let err = apex
        .verify(data.as_slice(), &Expectations::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::PayloadAvb(avb::Error::SizeOutOfRange(_))),
        "{err:?}"
    );
}

#[test]
fn the_fuzz_entry_verifies_what_parses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.apex");
    build_apex(&tree(dir.path()), "com.example.f", 1, &key(2048), &out).unwrap();
    let data = fs::read(&out).unwrap();
    assert!(crate::fuzzing::apex(&data));
    assert!(!crate::fuzzing::apex(&data[..data.len() - 1]));
}
