//! Unit tests and known-answer vectors (produced by veritysetup 2.6.1; docs/formats/verity.md).

use super::*;

/// Block i = SHA-256(decimal string of i), repeated 128 times (4096 bytes).
fn pattern_block(i: usize) -> Vec<u8> {
    let d = Sha256::digest(i.to_string().as_bytes());
    d.iter().copied().cycle().take(4096).collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).flat_map(pattern_block).collect()
}

const SALT32: &str = "0011223344556677889900112233445566778899001122334455667788990011";

#[test]
fn kat_64_blocks_one_hash_block() -> Result<()> {
    let data = pattern(64);
    let params = Params::new(&from_hex(SALT32)?)?;
    let t = HashTree::build(&data, &params)?;
    assert_eq!(
        t.root_hex(),
        "a74b40c24e8bfbea2da1205e8fc2fa651acb66e42d0a63a2ffd625c0a7d69cee"
    );
    assert_eq!(t.tree().len(), 4096);
    assert_eq!(t.layout().num_hash_blocks(&params), 1);
    Ok(())
}

#[test]
fn kat_301_blocks_two_levels() -> Result<()> {
    let mut data = pattern(300);
    let mut last = vec![0x01u8; 1000];
    last.resize(4096, 0);
    data.extend_from_slice(&last);
    let params = Params::new(&from_hex("aabbccdd")?)?;
    let t = HashTree::build(&data, &params)?;
    assert_eq!(
        t.root_hex(),
        "0d397d3dcdf419d85c686c1bb579011f89aeff678c2776f219d59f83bc2cee36"
    );
    assert_eq!(t.tree().len(), 16384);
    assert_eq!(t.layout().levels.len(), 2);
    // Top level first: 1 block at 0, then level 0 (3 blocks) at 4096.
    assert_eq!(
        t.layout().levels[1],
        Level {
            offset: 0,
            size: 4096,
            num_digests: 3
        }
    );
    assert_eq!(
        t.layout().levels[0],
        Level {
            offset: 4096,
            size: 12288,
            num_digests: 301
        }
    );
    // A short last block is zero-padded: the unpadded data gives the same tree.
    let short = &data[..300 * 4096 + 1000];
    let t2 = HashTree::build(short, &params)?;
    assert_eq!(t2.root_digest(), t.root_digest());
    assert_eq!(t2.tree(), t.tree());
    assert_eq!(t2.layout().num_data_blocks, 301);
    Ok(())
}

#[test]
fn single_block_has_no_tree() -> Result<()> {
    let data = pattern(1);
    let params = Params::new(&from_hex("aabbccdd")?)?;
    let t = HashTree::build(&data, &params)?;
    assert!(t.tree().is_empty());
    let mut h = Sha256::new();
    h.update(from_hex("aabbccdd")?);
    h.update(&data);
    let expect: RootDigest = h.finalize().into();
    assert_eq!(t.root_digest(), &expect);
    verify(&data, &[], &expect, &params)?;
    Ok(())
}

#[test]
fn layout_levels() -> Result<()> {
    let p = Params::new(&[])?;
    let l = Layout::new(4096 * 128, &p)?;
    assert_eq!(l.levels.len(), 1);
    assert_eq!(l.tree_size, 4096);
    let l = Layout::new(4096 * 129, &p)?;
    assert_eq!(l.levels.len(), 2);
    assert_eq!(l.tree_size, 3 * 4096);
    let l = Layout::new(4096 * 128 * 128 + 1, &p)?;
    assert_eq!(l.levels.len(), 3);
    assert_eq!(l.num_data_blocks, 128 * 128 + 1);
    // Top-down offsets are contiguous.
    let mut off = 0;
    for lev in l.levels.iter().rev() {
        assert_eq!(lev.offset, off);
        off += lev.size;
    }
    assert_eq!(off, l.tree_size);
    assert!(matches!(Layout::new(0, &p), Err(Error::EmptyData)));
    // Huge sizes do not overflow.
    let l = Layout::new(u64::MAX, &p)?;
    assert!(l.tree_size > 0);
    Ok(())
}

#[test]
fn params_validation() {
    assert!(matches!(
        Params::with_block_sizes(4095, 4096, &[]),
        Err(Error::InvalidBlockSize(4095))
    ));
    assert!(matches!(
        Params::with_block_sizes(4096, 256, &[]),
        Err(Error::InvalidBlockSize(256))
    ));
    assert!(matches!(
        Params::new(&[0; 257]),
        Err(Error::SaltTooLong(257))
    ));
    assert!(Params::new(&[0; 256]).is_ok());
    assert_eq!(Params::apk_v4().salt(), &[] as &[u8]);
}

#[test]
fn reader_matches_slice() -> Result<()> {
    // Spans several read chunks, with a partial last block.
    let mut data = pattern(2 * 2048 + 3);
    data.truncate(data.len() - 100);
    for salt in [&b""[..], b"\x01\x02\x03\x04", &[9u8; 256]] {
        let params = Params::new(salt)?;
        let a = HashTree::build(&data, &params)?;
        let b = HashTree::build_from_reader(&mut &data[..], data.len() as u64, &params)?;
        assert_eq!(a, b);
        verify(&data, a.tree(), a.root_digest(), &params)?;
        verify_reader(
            &mut &data[..],
            data.len() as u64,
            a.tree(),
            a.root_digest(),
            &params,
        )?;
    }
    Ok(())
}

#[test]
fn reader_truncated() -> Result<()> {
    let data = pattern(3);
    let params = Params::new(&[])?;
    let r = HashTree::build_from_reader(&mut &data[..], 5 * 4096, &params);
    assert!(matches!(
        r,
        Err(Error::Truncated {
            expected: 20480,
            actual: 12288
        })
    ));
    let r = HashTree::build_from_reader(&mut &data[..100], 4096, &params);
    assert!(matches!(
        r,
        Err(Error::Truncated {
            expected: 4096,
            actual: 100
        })
    ));
    Ok(())
}

#[test]
fn parallel_equals_sequential() -> Result<()> {
    let data = pattern(1000);
    let params = Params::new(b"salt")?;
    let base = params.salted_hasher();
    let mut a = vec![0u8; 1000 * 32];
    let mut b = vec![0u8; 1000 * 32];
    hash_blocks(&base, &data, 4096, &mut a);
    hash_blocks_parallel(&base, &data, 4096, &mut b);
    assert_eq!(a, b);
    Ok(())
}

#[test]
fn different_block_sizes() -> Result<()> {
    // 512-byte data blocks, 4096-byte hash blocks (veritysetup allows this).
    let data = pattern(8);
    let params = Params::with_block_sizes(512, 4096, b"ab")?;
    let t = HashTree::build(&data, &params)?;
    assert_eq!(t.layout().num_data_blocks, 64);
    assert_eq!(t.tree().len(), 4096);
    verify(&data, t.tree(), t.root_digest(), &params)?;
    Ok(())
}

#[test]
fn verify_detects_each_kind_of_corruption() -> Result<()> {
    let data = pattern(300);
    let params = Params::new(b"\xaa\xbb")?;
    let t = HashTree::build(&data, &params)?;
    let root = *t.root_digest();

    let mut bad = data.clone();
    bad[4096 * 17 + 5] ^= 1;
    assert!(matches!(
        verify(&bad, t.tree(), &root, &params),
        Err(Error::DataBlockMismatch { block: 17 })
    ));
    assert!(matches!(
        verify_reader(&mut &bad[..], bad.len() as u64, t.tree(), &root, &params),
        Err(Error::DataBlockMismatch { block: 17 })
    ));

    // Level 0 block 2 (at 4096 + 2*4096) corrupted.
    let mut tree = t.tree().to_vec();
    tree[4096 + 2 * 4096 + 7] ^= 1;
    assert!(matches!(
        verify(&data, &tree, &root, &params),
        Err(Error::TreeBlockMismatch { level: 0, block: 2 })
    ));

    // Top block corrupted.
    let mut tree = t.tree().to_vec();
    tree[0] ^= 1;
    assert!(matches!(
        verify(&data, &tree, &root, &params),
        Err(Error::RootDigestMismatch { .. })
    ));

    // Non-zero padding at the end of level 0 (300 digests = 9600 bytes of 12288).
    let mut tree = t.tree().to_vec();
    tree[4096 + 12287] = 1;
    assert!(matches!(
        verify(&data, &tree, &root, &params),
        Err(Error::TreePaddingNotZero { level: 0 })
    ));

    // Wrong root, wrong size.
    assert!(matches!(
        verify(&data, t.tree(), &[0; 32], &params),
        Err(Error::RootDigestMismatch { .. })
    ));
    assert!(matches!(
        verify(&data, &t.tree()[..4096], &root, &params),
        Err(Error::TreeSizeMismatch {
            expected: 16384,
            actual: 4096
        })
    ));
    // Single block, wrong data.
    let one = pattern(1);
    let t1 = HashTree::build(&one, &params)?;
    assert!(matches!(
        verify(&pattern_block(2), &[], t1.root_digest(), &params),
        Err(Error::RootDigestMismatch { .. })
    ));
    Ok(())
}

#[test]
fn dm_table_line() -> Result<()> {
    let data = pattern(64);
    let params = Params::new(&from_hex(SALT32)?)?;
    let t = HashTree::build(&data, &params)?;
    let target = t.dm_target("/dev/vda1", "/dev/vda1", 64);
    assert_eq!(
        target.params(),
        format!("1 /dev/vda1 /dev/vda1 4096 4096 64 64 sha256 a74b40c24e8bfbea2da1205e8fc2fa651acb66e42d0a63a2ffd625c0a7d69cee {SALT32}")
    );
    assert_eq!(target.length_sectors(), 512);
    assert!(target.to_string().starts_with("0 512 verity 1 /dev/vda1 "));
    let mut nosalt = HashTree::build(&data, &Params::apk_v4())?.dm_target("7:0", "7:1", 0);
    assert!(nosalt.params().ends_with(" -"));
    nosalt.optional_args = vec!["ignore_zero_blocks".into()];
    assert!(nosalt.params().ends_with(" - 1 ignore_zero_blocks"));
    Ok(())
}

#[test]
fn hex_round_trip() -> Result<()> {
    assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    assert_eq!(from_hex("00ABff")?, vec![0x00, 0xab, 0xff]);
    assert_eq!(from_hex("-")?, Vec::<u8>::new());
    assert!(matches!(from_hex("abc"), Err(Error::InvalidHex(_))));
    assert!(matches!(from_hex("zz"), Err(Error::InvalidHex(_))));
    Ok(())
}

#[test]
fn file_at_offset_matches_slice() -> Result<()> {
    use std::io::Write;
    let mut data = pattern(1500);
    data.truncate(data.len() - 5);
    let params = Params::new(b"\x42")?;
    let want = HashTree::build(&data, &params)?;
    let path = std::env::temp_dir().join(format!("verity-unit-{}.img", std::process::id()));
    {
        let mut f = File::create(&path)?;
        f.write_all(&[0xee; 12345])?;
        f.write_all(&data)?;
        f.write_all(want.tree())?;
    }
    let f = File::open(&path)?;
    let got = HashTree::build_from_file_at(&f, 12345, data.len() as u64, &params)?;
    assert_eq!(got, want);
    verify_file_at(
        &f,
        12345,
        data.len() as u64,
        want.tree(),
        want.root_digest(),
        &params,
    )?;
    // Data ending past the end of the file.
    let r = HashTree::build_from_file_at(
        &f,
        12345 + 4096,
        data.len() as u64 + want.tree().len() as u64,
        &params,
    );
    assert!(matches!(r, Err(Error::Truncated { .. })), "{r:?}");
    // One corrupted byte in block 1400.
    drop(f);
    let mut bytes = std::fs::read(&path)?;
    bytes[12345 + 1400 * 4096 + 9] ^= 0x80;
    std::fs::write(&path, &bytes)?;
    let f = File::open(&path)?;
    let r = verify_file_at(
        &f,
        12345,
        data.len() as u64,
        want.tree(),
        want.root_digest(),
        &params,
    );
    assert!(
        matches!(r, Err(Error::DataBlockMismatch { block: 1400 })),
        "{r:?}"
    );
    // Single block at an offset.
    let one = HashTree::build(&data[..4000], &params)?;
    let got = HashTree::build_from_file_at(&f, 12345, 4000, &params)?;
    assert_eq!(got.root_digest(), one.root_digest());
    std::fs::remove_file(&path)?;
    Ok(())
}
