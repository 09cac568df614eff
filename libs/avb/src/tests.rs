//! Unit tests; known answers from avbtool 1.3.0 output (docs/formats/avb.md, Oracles and tests).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use super::*;

const KEY4096: &str = include_str!("../testkeys/testkey_rsa4096.pem");
const KEY2048: &str = include_str!("../testkeys/testkey_rsa2048.pem");

fn key4096() -> SigningKey {
    SigningKey::from_pem(KEY4096).expect("test key")
}
fn key2048() -> SigningKey {
    SigningKey::from_pem(KEY2048).expect("test key")
}

fn system_descriptor() -> HashtreeDescriptor {
    HashtreeDescriptor {
        dm_verity_version: 1,
        image_size: 102400,
        tree_offset: 102400,
        tree_size: 4096,
        data_block_size: 4096,
        hash_block_size: 4096,
        fec_num_roots: 0,
        fec_offset: 0,
        fec_size: 0,
        hash_algorithm: "sha256".into(),
        partition_name: "system".into(),
        salt: vec![0x00, 0x11, 0x22, 0x33],
        root_digest: vec![0xc6; 32],
        flags: 0,
    }
}

#[test]
fn algorithm_table() {
    // avbtool.py's ALGORITHMS (AOSP external/avb): value, hash bytes, signature bytes, public
    // key bytes.
    let want = [
        (0, 0, 0, 0),
        (1, 32, 256, 520),
        (2, 32, 512, 1032),
        (3, 32, 1024, 2056),
        (4, 64, 256, 520),
        (5, 64, 512, 1032),
        (6, 64, 1024, 2056),
    ];
    for (a, (v, h, s, p)) in Algorithm::ALL.iter().zip(want) {
        assert_eq!(*a as u32, v);
        assert_eq!(a.hash_size(), h);
        assert_eq!(a.signature_size(), s);
        assert_eq!(a.public_key_size(), p);
        assert_eq!(Algorithm::from_name(a.name()), Some(*a));
    }
    assert!(matches!(
        Algorithm::from_u32(7),
        Err(Error::UnsupportedAlgorithm(7))
    ));
}

#[test]
fn public_key_round_trip() -> Result<()> {
    for (k, bits) in [(key4096(), 4096u32), (key2048(), 2048)] {
        let pk = k.public_key()?;
        let blob = pk.to_avb_bytes();
        assert_eq!(blob.len(), 8 + 2 * bits as usize / 8);
        assert_eq!(&blob[..4], &bits.to_be_bytes());
        let back = PublicKey::from_avb_bytes(&blob)?;
        assert_eq!(back, pk);
        // n0inv * n[0] == -1 mod 2^32
        let n0 = u32::from_be_bytes(
            blob[4 + bits as usize / 8..8 + bits as usize / 8]
                .try_into()
                .expect("4"),
        );
        assert_eq!(pk.n0inv().wrapping_mul(n0), u32::MAX);
        // Tampered rr / n0inv are rejected.
        let mut bad = blob.clone();
        *bad.last_mut().expect("nonempty") ^= 1;
        assert!(matches!(
            PublicKey::from_avb_bytes(&bad),
            Err(Error::PublicKeyInvalid(_))
        ));
        let mut bad = blob.clone();
        bad[7] ^= 1;
        assert!(matches!(
            PublicKey::from_avb_bytes(&bad),
            Err(Error::PublicKeyInvalid(_))
        ));
        assert!(matches!(
            PublicKey::from_avb_bytes(&blob[..100]),
            Err(Error::Truncated { .. })
        ));
    }
    let pem = include_str!("../testkeys/testkey_rsa4096.pub.pem");
    assert_eq!(PublicKey::from_pem(pem)?, key4096().public_key()?);
    Ok(())
}

#[test]
fn hashtree_descriptor_kat_size() -> Result<()> {
    // avbtool output: "first descriptor tag 1 nbf 208" for partition "system", 4-byte salt, sha256.
    let enc = Descriptor::Hashtree(system_descriptor()).encode()?;
    assert_eq!(enc.len(), 224);
    assert_eq!(&enc[..8], &1u64.to_be_bytes());
    assert_eq!(&enc[8..16], &208u64.to_be_bytes());
    assert_eq!(&enc[16..20], &1u32.to_be_bytes());
    let (back, used) = Descriptor::parse(&enc)?;
    assert_eq!(used, 224);
    assert_eq!(back, Descriptor::Hashtree(system_descriptor()));
    Ok(())
}

#[test]
fn all_descriptor_kinds_round_trip() -> Result<()> {
    let ds = vec![
        Descriptor::Property(PropertyDescriptor {
            key: "com.android.build.system.os_version".into(),
            value: b"13".to_vec(),
        }),
        Descriptor::Hashtree(system_descriptor()),
        Descriptor::Hash(HashDescriptor {
            image_size: 12345,
            hash_algorithm: "sha256".into(),
            partition_name: "boot".into(),
            salt: vec![1; 32],
            digest: vec![2; 32],
            flags: 1,
        }),
        Descriptor::KernelCmdline(KernelCmdlineDescriptor {
            flags: 2,
            cmdline: "root=PARTUUID=$(ANDROID_SYSTEM_PARTUUID)".into(),
        }),
        Descriptor::ChainPartition(ChainPartitionDescriptor {
            rollback_index_location: 1,
            partition_name: "vendor".into(),
            public_key: key2048().public_key()?.to_avb_bytes(),
            flags: 0,
        }),
        Descriptor::Unknown {
            tag: 77,
            body: vec![9; 16],
        },
    ];
    let enc = encode_descriptors(&ds)?;
    assert_eq!(enc.len() % 8, 0);
    assert_eq!(parse_descriptors(&enc)?, ds);
    // Fixed sizes (header included) of libavb's descriptor structs (AOSP external/avb,
    // libavb/avb_*_descriptor.h).
    let fixed = |d: &Descriptor| d.encode().map(|e| e.len());
    assert_eq!(
        fixed(&Descriptor::KernelCmdline(KernelCmdlineDescriptor {
            flags: 0,
            cmdline: String::new()
        }))?,
        KERNEL_CMDLINE_FIXED_SIZE
    );
    assert_eq!(
        fixed(&Descriptor::Hash(HashDescriptor {
            image_size: 0,
            hash_algorithm: "sha256".into(),
            partition_name: String::new(),
            salt: vec![],
            digest: vec![],
            flags: 0
        }))?,
        HASH_FIXED_SIZE.div_ceil(8) * 8
    );
    assert_eq!(
        fixed(&Descriptor::ChainPartition(ChainPartitionDescriptor {
            rollback_index_location: 0,
            partition_name: String::new(),
            public_key: vec![],
            flags: 0
        }))?,
        CHAIN_PARTITION_FIXED_SIZE.div_ceil(8) * 8
    );
    assert_eq!(
        fixed(&Descriptor::Property(PropertyDescriptor {
            key: String::new(),
            value: vec![]
        }))?,
        PROPERTY_FIXED_SIZE + 8
    );
    let mut h = system_descriptor();
    h.partition_name.clear();
    h.salt.clear();
    h.root_digest.clear();
    assert_eq!(
        fixed(&Descriptor::Hashtree(h))?,
        HASHTREE_FIXED_SIZE.div_ceil(8) * 8
    );
    Ok(())
}

#[test]
fn vbmeta_layout_kat() -> Result<()> {
    // avbtool output: VBMeta size 2112; Header 256, Auth 576, Aux 1280; hash 0/32, sig 32/512,
    // pk 224/1032, descriptors 0/224; algorithm 2.
    let key = key4096();
    let blob = build_vbmeta(
        &VbmetaOptions::default(),
        &[Descriptor::Hashtree(system_descriptor())],
        Some(&key),
    )?;
    assert_eq!(blob.len(), 2112);
    let img = VbmetaImage::parse(&blob)?;
    let h = &img.header;
    assert_eq!(
        (
            h.authentication_data_block_size,
            h.auxiliary_data_block_size
        ),
        (576, 1280)
    );
    assert_eq!(h.algorithm, Algorithm::Sha256Rsa4096);
    assert_eq!(
        (
            h.hash_offset,
            h.hash_size,
            h.signature_offset,
            h.signature_size
        ),
        (0, 32, 32, 512)
    );
    assert_eq!(
        (
            h.public_key_offset,
            h.public_key_size,
            h.descriptors_offset,
            h.descriptors_size
        ),
        (224, 1032, 0, 224)
    );
    assert_eq!(h.release_string, "avbtool 1.3.0");
    assert_eq!(img.avb_version(), "1.0");
    assert_eq!(
        img.descriptors,
        vec![Descriptor::Hashtree(system_descriptor())]
    );
    assert_eq!(img.verify_signature()?, key.public_key()?);
    // Header re-encodes to the same bytes.
    assert_eq!(&h.encode()?[..], &blob[..256]);
    Ok(())
}

#[test]
fn verify_vbmeta_errors() -> Result<()> {
    let key = key4096();
    let trusted = key.public_key()?.to_avb_bytes();
    let descs = [Descriptor::Hashtree(system_descriptor())];
    let blob = build_vbmeta(&VbmetaOptions::default(), &descs, Some(&key))?;
    let digest = vbmeta_digest(&[&blob]);
    let ok = verify_vbmeta(&blob, &trusted, Some(&digest))?;
    assert_eq!(ok.digest(), digest);
    // Whole partition (zero padded) is fine.
    let mut padded = blob.clone();
    padded.resize(65536, 0);
    verify_vbmeta(&padded, &trusted, Some(&digest))?;

    // A descriptor byte changed (the root digest) without re-signing.
    let mut bad = blob.clone();
    let root_at = 256 + 576 + 224 - 32;
    bad[root_at] ^= 1;
    assert!(matches!(
        verify_vbmeta(&bad, &trusted, None),
        Err(Error::HashMismatch)
    ));
    // Signature byte flipped.
    let mut bad = blob.clone();
    bad[256 + 40] ^= 1;
    assert!(matches!(
        verify_vbmeta(&bad, &trusted, None),
        Err(Error::SignatureInvalid)
    ));
    // Signed by another key.
    let other = build_vbmeta(&VbmetaOptions::default(), &descs, Some(&key2048()))?;
    assert!(matches!(
        verify_vbmeta(&other, &trusted, None),
        Err(Error::PublicKeyMismatch)
    ));
    // Digest differs from the bootconfig's.
    let mut wrong = digest;
    wrong[0] ^= 1;
    assert!(matches!(
        verify_vbmeta(&blob, &trusted, Some(&wrong)),
        Err(Error::DigestMismatch { .. })
    ));
    // Unsigned.
    let unsigned = build_vbmeta(&VbmetaOptions::default(), &descs, None)?;
    assert!(matches!(
        verify_vbmeta(&unsigned, &trusted, None),
        Err(Error::Unsigned)
    ));
    // Verification disabled by flag.
    let opts = VbmetaOptions {
        flags: FLAG_VERIFICATION_DISABLED,
        ..Default::default()
    };
    let disabled = build_vbmeta(&opts, &descs, Some(&key))?;
    assert!(matches!(
        verify_vbmeta(&disabled, &trusted, None),
        Err(Error::VerificationDisabled { flags: 2 })
    ));
    Ok(())
}

#[test]
fn other_algorithms_sign_and_verify() -> Result<()> {
    for (key, alg) in [
        (key2048(), Algorithm::Sha256Rsa2048),
        (key2048(), Algorithm::Sha512Rsa2048),
        (key4096(), Algorithm::Sha512Rsa4096),
    ] {
        let opts = VbmetaOptions {
            algorithm: Some(alg),
            ..Default::default()
        };
        let blob = build_vbmeta(
            &opts,
            &[Descriptor::Hashtree(system_descriptor())],
            Some(&key),
        )?;
        let img = verify_vbmeta(&blob, &key.public_key()?.to_avb_bytes(), None)?;
        assert_eq!(img.header.algorithm, alg);
        assert_eq!(img.header.hash_size as usize, alg.hash_size());
    }
    // Key/algorithm size mismatch.
    let opts = VbmetaOptions {
        algorithm: Some(Algorithm::Sha256Rsa4096),
        ..Default::default()
    };
    assert!(matches!(
        build_vbmeta(&opts, &[], Some(&key2048())),
        Err(Error::PublicKeyInvalid(_))
    ));
    Ok(())
}

#[test]
fn required_minor_version_bumps() -> Result<()> {
    let mut d = system_descriptor();
    d.flags = HASHTREE_FLAG_CHECK_AT_MOST_ONCE;
    let blob = build_vbmeta(&VbmetaOptions::default(), &[Descriptor::Hashtree(d)], None)?;
    assert_eq!(
        VbmetaImage::parse(&blob)?
            .header
            .required_libavb_version_minor,
        1
    );
    let opts = VbmetaOptions {
        rollback_index_location: 1,
        ..Default::default()
    };
    let blob = build_vbmeta(&opts, &[], None)?;
    assert_eq!(
        VbmetaImage::parse(&blob)?
            .header
            .required_libavb_version_minor,
        2
    );
    Ok(())
}

fn test_image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

#[test]
fn hashtree_footer_layout_kat() -> Result<()> {
    // avbtool: 102400-byte image, --partition_size 4194304 --salt 00112233, SHA256_RSA4096:
    // original 102400, vbmeta offset 106496, vbmeta size 2112, tree 4096, footer at 4194240.
    let key = key4096();
    let mut img = test_image(102400);
    let mut opts = HashtreeFooterOptions::new("system", &[0x00, 0x11, 0x22, 0x33], Some(&key));
    opts.partition_size = 4194304;
    let info = add_hashtree_footer_to_vec(&mut img, &opts)?;
    assert_eq!(img.len(), 4194304);
    assert_eq!(info.footer.original_image_size, 102400);
    assert_eq!(info.footer.vbmeta_offset, 106496);
    assert_eq!(info.footer.vbmeta_size, 2112);
    assert_eq!(info.descriptor.tree_size, 4096);
    assert_eq!(&img[4194240..4194244], b"AVBf");
    assert!(img[4194304 - 4096..4194240].iter().all(|&b| b == 0));
    // The tree is veritysetup's (checked against veritysetup in tests/oracles.rs).
    let tree = verity::HashTree::build(
        &img[..102400],
        &verity::Params::new(&[0x00, 0x11, 0x22, 0x33])?,
    )?;
    assert_eq!(&img[102400..106496], tree.tree());
    assert_eq!(info.descriptor.root_digest, tree.root_digest().to_vec());
    // Reading back.
    let (footer, vbmeta) = vbmeta_from_image(&img)?;
    assert_eq!(footer, info.footer);
    assert_eq!(vbmeta.blob(), info.vbmeta.as_slice());
    assert_eq!(vbmeta.hashtree("system"), Some(&info.descriptor));
    // Idempotent: running again replaces the footer with identical bytes.
    let again = img.clone();
    let mut img2 = again.clone();
    add_hashtree_footer_to_vec(&mut img2, &opts)?;
    assert_eq!(img2, img);
    Ok(())
}

#[test]
fn hashtree_footer_file_equals_vec_and_unaligned_input() -> Result<()> {
    let key = key2048();
    let data = test_image(300 * 4096 + 123);
    let mut opts = HashtreeFooterOptions::new("vendor", &[7; 32], Some(&key));
    let mut v = data.clone();
    let info_v = add_hashtree_footer_to_vec(&mut v, &opts)?;
    let path = std::env::temp_dir().join(format!("avb-unit-{}.img", std::process::id()));
    std::fs::write(&path, &data)?;
    let info_f = add_hashtree_footer(&path, &opts)?;
    let f = std::fs::read(&path)?;
    assert_eq!(info_f, info_v);
    assert_eq!(f, v);
    assert_eq!(info_v.footer.original_image_size, data.len() as u64);
    assert_eq!(info_v.descriptor.image_size, 301 * 4096);
    // Twice on the file: same bytes.
    add_hashtree_footer(&path, &opts)?;
    assert_eq!(std::fs::read(&path)?, v);
    // The descriptor verifies the partition; a flipped data byte is found.
    let file = std::fs::File::open(&path)?;
    info_f.descriptor.verify_partition(&file)?;
    let (footer, blob) = read_vbmeta_from_file(&file)?;
    assert_eq!(footer, info_f.footer);
    assert_eq!(blob, info_f.vbmeta);
    drop(file);
    let mut corrupt = v.clone();
    corrupt[4096 * 42 + 1] ^= 1;
    std::fs::write(&path, &corrupt)?;
    let file = std::fs::File::open(&path)?;
    assert!(matches!(
        info_f.descriptor.verify_partition(&file),
        Err(Error::Verity(verity::Error::DataBlockMismatch {
            block: 42
        }))
    ));
    std::fs::remove_file(&path)?;
    // Partition too small.
    opts.partition_size = 1 << 20;
    let mut big = test_image(1 << 20);
    assert!(matches!(
        add_hashtree_footer_to_vec(&mut big, &opts),
        Err(Error::SizeOutOfRange(_))
    ));
    Ok(())
}

#[test]
fn dm_target_from_descriptor() -> Result<()> {
    let mut img = test_image(64 * 4096);
    let info = add_hashtree_footer_to_vec(
        &mut img,
        &HashtreeFooterOptions::new("system", &[0xab; 4], None),
    )?;
    let t = info.descriptor.dm_target("/dev/dm-0")?;
    assert_eq!(
        t.params(),
        format!(
            "1 /dev/dm-0 /dev/dm-0 4096 4096 64 64 sha256 {} abababab",
            info.root_hex()
        )
    );
    let mut d = info.descriptor.clone();
    d.hash_algorithm = "sha1".into();
    assert!(matches!(d.dm_target("x"), Err(Error::DescriptorInvalid(_))));
    let mut d = info.descriptor.clone();
    d.tree_size += 4096;
    assert!(matches!(d.check(None), Err(Error::DescriptorInvalid(_))));
    Ok(())
}

#[test]
fn merge_like_avbtool() {
    let mut sys = system_descriptor();
    let mut ven = system_descriptor();
    ven.partition_name = "vendor".into();
    let prop = Descriptor::Property(PropertyDescriptor {
        key: "k".into(),
        value: b"v".to_vec(),
    });
    sys.flags = 0;
    let merged = merge_included_descriptors(&[
        vec![Descriptor::Hashtree(ven.clone()), prop.clone()],
        vec![Descriptor::Hashtree(sys.clone())],
    ]);
    assert_eq!(
        merged,
        vec![prop, Descriptor::Hashtree(sys), Descriptor::Hashtree(ven)]
    );
}

#[test]
fn footer_round_trip_and_bounds() -> Result<()> {
    let f = Footer {
        version_major: 1,
        version_minor: 0,
        original_image_size: 10,
        vbmeta_offset: 4096,
        vbmeta_size: 2112,
    };
    let enc = f.encode();
    assert_eq!(Footer::parse(&enc)?, f);
    f.check_bounds(8192 + 4096)?;
    assert!(matches!(
        f.check_bounds(4096 + 2112),
        Err(Error::SizeOutOfRange(_))
    ));
    let mut bad = enc;
    bad[0] = b'X';
    assert!(matches!(
        Footer::parse(&bad),
        Err(Error::BadMagic { what: "footer" })
    ));
    Ok(())
}

#[test]
fn footer_versions_and_bounds_at_their_limits() -> Result<()> {
    let f = Footer {
        version_major: 1,
        version_minor: 0,
        original_image_size: 4096,
        vbmeta_offset: 4096,
        vbmeta_size: 2112,
    };
    let mut newer = f.encode();
    newer[8..12].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        Footer::parse(&newer),
        Err(Error::UnsupportedVersion {
            what: "footer",
            major: 1,
            minor: 1
        })
    ));
    // The vbmeta may end right where the footer starts, not a byte later.
    let exact = 4096 + 2112 + 64;
    f.check_bounds(exact)?;
    assert!(f.check_bounds(exact - 1).is_err());
    // The original image may end right where the vbmeta starts.
    let overlapping = Footer {
        original_image_size: 4097,
        ..f
    };
    assert!(matches!(
        overlapping.check_bounds(1 << 20),
        Err(Error::SizeOutOfRange(
            "footer original image overlaps the vbmeta"
        ))
    ));
    // A vbmeta of 64 KiB is fine, one byte more is not.
    let largest = Footer {
        vbmeta_size: 64 * 1024,
        ..f
    };
    largest.check_bounds(1 << 20)?;
    let larger = Footer {
        vbmeta_size: 64 * 1024 + 1,
        ..f
    };
    assert!(matches!(
        larger.check_bounds(1 << 20),
        Err(Error::SizeOutOfRange("footer vbmeta larger than 64 KiB"))
    ));
    Ok(())
}

#[test]
fn images_fill_their_partition_up_to_avbtools_maximum() -> Result<()> {
    let partition = 4 << 20;
    let max = max_image_size_for_hashtree(partition)?;
    // avbtool's allowance: the tree for the whole partition, 64 KiB of vbmeta, a 4 KiB block.
    let tree = verity::Layout::new(partition, &verity::Params::new(&[])?)?.tree_size;
    assert_eq!(max, partition - tree - 64 * 1024 - 4096);
    let mut opts = HashtreeFooterOptions::new("system", &[1; 4], None);
    opts.partition_size = partition;
    let mut fits = test_image(max as usize);
    add_hashtree_footer_to_vec(&mut fits, &opts)?;
    assert_eq!(fits.len() as u64, partition);
    let mut too_big = test_image(max as usize + 4096);
    assert!(matches!(
        add_hashtree_footer_to_vec(&mut too_big, &opts),
        Err(Error::SizeOutOfRange(
            "image does not fit the partition size with its AVB metadata"
        ))
    ));
    // Without a partition size there is no limit.
    opts.partition_size = 0;
    let mut any = test_image(max as usize + 4096);
    add_hashtree_footer_to_vec(&mut any, &opts)?;
    Ok(())
}

#[test]
fn hashtree_descriptor_layout_checks() -> Result<()> {
    let d = system_descriptor();
    d.check(None)?;
    // The tree may start after the data, not before, and must be block-aligned.
    HashtreeDescriptor {
        tree_offset: d.image_size + 4096,
        ..d.clone()
    }
    .check(None)?;
    for bad in [
        HashtreeDescriptor {
            tree_offset: d.image_size - 4096,
            ..d.clone()
        },
        HashtreeDescriptor {
            tree_offset: d.image_size + 1,
            ..d.clone()
        },
    ] {
        assert!(matches!(
            bad.check(None),
            Err(Error::DescriptorInvalid(
                "tree offset is not block-aligned after the data"
            ))
        ));
    }
    for image_size in [0, d.image_size + 1] {
        let bad = HashtreeDescriptor {
            image_size,
            ..d.clone()
        };
        assert!(matches!(
            bad.check(None),
            Err(Error::DescriptorInvalid(
                "image size is not a whole number of data blocks"
            ))
        ));
    }
    // The tree must end inside the partition: exactly at its end is fine.
    let end = d.tree_offset + d.tree_size;
    d.check(Some(end))?;
    assert!(matches!(
        d.check(Some(end - 1)),
        Err(Error::SizeOutOfRange(
            "hash tree extends past the partition"
        ))
    ));
    Ok(())
}

#[test]
fn named_descriptors_of_every_kind_merge_by_name() {
    let hash = |name: &str, digest: u8| {
        Descriptor::Hash(HashDescriptor {
            image_size: 4096,
            hash_algorithm: "sha256".into(),
            partition_name: name.into(),
            salt: vec![],
            digest: vec![digest; 32],
            flags: 0,
        })
    };
    let chain = Descriptor::ChainPartition(ChainPartitionDescriptor {
        rollback_index_location: 1,
        partition_name: "vbmeta_system".into(),
        public_key: vec![1, 2],
        flags: 0,
    });
    assert_eq!(hash("boot", 0).partition_name(), Some("boot"));
    assert_eq!(chain.partition_name(), Some("vbmeta_system"));
    let merged = merge_included_descriptors(&[
        vec![hash("boot", 1), chain.clone()],
        vec![hash("boot", 2), hash("init_boot", 3)],
    ]);
    // avbtool's order: AvbChainPartitionDescriptor_* before AvbHashDescriptor_*, the last
    // "boot" winning.
    assert_eq!(merged, vec![chain, hash("boot", 2), hash("init_boot", 3)]);
}

#[test]
fn sha256_for_every_key_size() {
    assert_eq!(
        Algorithm::sha256_for_bits(2048).ok(),
        Some(Algorithm::Sha256Rsa2048)
    );
    assert_eq!(
        Algorithm::sha256_for_bits(4096).ok(),
        Some(Algorithm::Sha256Rsa4096)
    );
    assert_eq!(
        Algorithm::sha256_for_bits(8192).ok(),
        Some(Algorithm::Sha256Rsa8192)
    );
    assert!(Algorithm::sha256_for_bits(3072).is_err());
}

#[test]
fn read_file_reads_it_whole() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f");
    std::fs::write(&path, b"contents")?;
    assert_eq!(read_file(&path)?, b"contents");
    Ok(())
}

#[test]
fn hash_and_chain_flags_bump_the_minor_version() -> Result<()> {
    let minor = |d: Descriptor| -> Result<u32> {
        let blob = build_vbmeta(&VbmetaOptions::default(), &[d], None)?;
        Ok(VbmetaImage::parse(&blob)?
            .header
            .required_libavb_version_minor)
    };
    let hash = |flags| {
        Descriptor::Hash(HashDescriptor {
            image_size: 4096,
            hash_algorithm: "sha256".into(),
            partition_name: "boot".into(),
            salt: vec![],
            digest: vec![0; 32],
            flags,
        })
    };
    let chain = |flags| {
        Descriptor::ChainPartition(ChainPartitionDescriptor {
            rollback_index_location: 1,
            partition_name: "vbmeta_system".into(),
            public_key: vec![1, 2],
            flags,
        })
    };
    assert_eq!(minor(hash(0))?, 0);
    assert_eq!(minor(hash(1))?, 1);
    assert_eq!(minor(chain(0))?, 0);
    assert_eq!(minor(chain(1))?, 3);
    Ok(())
}

#[test]
fn header_versions_and_release_strings_at_their_limits() -> Result<()> {
    let blob = build_vbmeta(&VbmetaOptions::default(), &[], None)?;
    // required_libavb_version_minor is the second big-endian word.
    let with_minor = |m: u32| {
        let mut b = blob.clone();
        b[8..12].copy_from_slice(&m.to_be_bytes());
        b
    };
    VbmetaImage::parse(&with_minor(3))?;
    assert!(matches!(
        VbmetaImage::parse(&with_minor(4)),
        Err(Error::UnsupportedVersion {
            what: "vbmeta",
            minor: 4,
            ..
        })
    ));
    let longest = VbmetaOptions {
        release_string: "r".repeat(47),
        ..Default::default()
    };
    let blob = build_vbmeta(&longest, &[], None)?;
    assert_eq!(
        VbmetaImage::parse(&blob)?.header.release_string,
        "r".repeat(47)
    );
    let too_long = VbmetaOptions {
        release_string: "r".repeat(48),
        ..Default::default()
    };
    assert!(matches!(
        build_vbmeta(&too_long, &[], None),
        Err(Error::InvalidArgument(
            "release string longer than 47 bytes"
        ))
    ));
    Ok(())
}

#[test]
fn public_key_metadata_follows_the_key() -> Result<()> {
    let key = key2048();
    let opts = VbmetaOptions {
        public_key_metadata: vec![0xab; 10],
        ..Default::default()
    };
    let blob = build_vbmeta(
        &opts,
        &[Descriptor::Hashtree(system_descriptor())],
        Some(&key),
    )?;
    let image = VbmetaImage::parse(&blob)?;
    let h = &image.header;
    assert_eq!(h.public_key_offset, h.descriptors_size);
    assert_eq!(
        h.public_key_metadata_offset,
        h.public_key_offset + h.public_key_size
    );
    assert_eq!(h.public_key_metadata_size, 10);
    image.verify_signature()?;
    Ok(())
}

#[test]
fn descriptors_by_name_and_properties_by_key() -> Result<()> {
    let mut vendor = system_descriptor();
    vendor.partition_name = "vendor".into();
    let prop = |k: &str, v: &[u8]| {
        Descriptor::Property(PropertyDescriptor {
            key: k.into(),
            value: v.to_vec(),
        })
    };
    let blob = build_vbmeta(
        &VbmetaOptions::default(),
        &[
            prop("a", b"1"),
            Descriptor::Hashtree(system_descriptor()),
            prop("b", b"2"),
            Descriptor::Hashtree(vendor.clone()),
        ],
        None,
    )?;
    let image = VbmetaImage::parse(&blob)?;
    assert_eq!(image.hashtree("vendor"), Some(&vendor));
    assert_eq!(image.hashtree("odm"), None);
    let names: Vec<&str> = image
        .hashtrees()
        .map(|h| h.partition_name.as_str())
        .collect();
    assert_eq!(names, ["system", "vendor"]);
    assert_eq!(image.property("b"), Some(&b"2"[..]));
    assert_eq!(image.property("a"), Some(&b"1"[..]));
    assert_eq!(image.property("c"), None);
    Ok(())
}

#[test]
fn a_signing_key_shows_only_its_size() {
    assert_eq!(format!("{:?}", key2048()), "SigningKey { bits: 2048, .. }");
}
