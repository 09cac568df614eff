//! The bad-input corpus in `testdata/bad/`: one test per file asserting the specific error.
//! Regenerate the files with `cargo test -p avb --test bad_corpus -- --ignored regenerate`
//! (deterministic: fixed test key, fixed data, PKCS#1 v1.5 signatures are deterministic).

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};

use avb::{Descriptor, Error, HashtreeFooterOptions, SigningKey, VbmetaOptions};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn key() -> SigningKey {
    SigningKey::from_pem(include_str!("../testkeys/testkey_rsa2048.pem")).unwrap()
}

fn trusted() -> Vec<u8> {
    key().public_key().unwrap().to_avb_bytes()
}

/// A valid signed vbmeta: hashtree descriptor for "system" + one property.
fn good_vbmeta() -> Vec<u8> {
    let mut img: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 253) as u8).collect();
    let info = avb::add_hashtree_footer_to_vec(
        &mut img,
        &HashtreeFooterOptions::new("system", b"salt", None),
    )
    .unwrap();
    let prop = Descriptor::Property(avb::PropertyDescriptor {
        key: "k".into(),
        value: b"v".to_vec(),
    });
    avb::build_vbmeta(
        &VbmetaOptions::default(),
        &[Descriptor::Hashtree(info.descriptor), prop],
        Some(&key()),
    )
    .unwrap()
}

/// A valid partition image with a hashtree footer (16 blocks of data).
fn good_partition() -> Vec<u8> {
    let mut img: Vec<u8> = (0..16 * 4096u32).map(|i| (i % 241) as u8).collect();
    avb::add_hashtree_footer_to_vec(
        &mut img,
        &HashtreeFooterOptions::new("vendor", b"salt", Some(&key())),
    )
    .unwrap();
    img
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// Every corpus file and how it is made from a valid image.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let v = good_vbmeta();
    let auth = 256 + 320; // SHA256_RSA2048: 32 + 256 → 320
    let aux_at = auth;
    let mut out = vec![];
    let mut m = |name: &'static str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = v.clone();
        f(&mut b);
        out.push((name, b));
    };
    m("vbmeta_empty.bin", &|b| b.clear());
    m("vbmeta_truncated_header.bin", &|b| b.truncate(100));
    m("vbmeta_truncated_aux.bin", &|b| b.truncate(b.len() - 64));
    m("vbmeta_wrong_magic.bin", &|b| {
        b[..4].copy_from_slice(b"AVB1")
    });
    m("vbmeta_major_2.bin", &|b| put_u32(b, 4, 2));
    m("vbmeta_minor_99.bin", &|b| put_u32(b, 8, 99));
    m("vbmeta_auth_not_64_aligned.bin", &|b| put_u64(b, 12, 321));
    m("vbmeta_aux_past_end.bin", &|b| put_u64(b, 20, 1 << 40));
    m("vbmeta_block_size_overflow.bin", &|b| {
        put_u64(b, 12, u64::MAX - 63)
    });
    m("vbmeta_unknown_algorithm.bin", &|b| put_u32(b, 28, 99));
    m("vbmeta_hash_outside_auth.bin", &|b| put_u64(b, 32, 400));
    m("vbmeta_signature_offset_overflow.bin", &|b| {
        put_u64(b, 48, u64::MAX)
    });
    m("vbmeta_pubkey_wrong_size.bin", &|b| put_u64(b, 72, 8));
    m("vbmeta_descriptors_past_aux.bin", &|b| {
        put_u64(b, 104, 1 << 32)
    });
    m("vbmeta_descriptor_nbf_unaligned.bin", &|b| {
        put_u64(b, aux_at + 8, 207)
    });
    m("vbmeta_descriptor_nbf_huge.bin", &|b| {
        put_u64(b, aux_at + 8, 1 << 60)
    });
    // Hashtree body: name length at 16 + 4+8+8+8+4+4+4+8+8+32 = 104.
    m("vbmeta_descriptor_name_len_huge.bin", &|b| {
        put_u32(b, aux_at + 104, u32::MAX)
    });
    m("vbmeta_descriptor_tampered.bin", &|b| {
        let at = aux_at + 180 + 6; // first salt byte after the name "system"
        b[at] ^= 0xff;
    });
    m("vbmeta_signature_corrupt.bin", &|b| b[256 + 32 + 10] ^= 1);
    m("vbmeta_property_not_nul_terminated.bin", &|b| {
        // The property follows the 224-byte... hashtree descriptor: 180 + 6 + 4 + 32 = 222 → 224.
        let p = aux_at + 224;
        b[p + 32 + 1] = b'X'; // NUL after key "k"
    });
    let pimg = good_partition();
    let n = pimg.len();
    let mut f = |name: &'static str, g: &dyn Fn(&mut Vec<u8>)| {
        let mut b = pimg.clone();
        g(&mut b);
        out.push((name, b));
    };
    f("footer_too_short.bin", &|b| {
        b.drain(..n - 30).for_each(drop)
    });
    f("footer_wrong_magic.bin", &|b| b[n - 64] = b'X');
    f("footer_major_2.bin", &|b| put_u32(b, n - 60, 2));
    f("footer_vbmeta_past_end.bin", &|b| {
        put_u64(b, n - 44, (n as u64) - 100)
    });
    f("footer_vbmeta_offset_overflow.bin", &|b| {
        put_u64(b, n - 44, u64::MAX - 10)
    });
    f("footer_vbmeta_too_big.bin", &|b| {
        put_u64(b, n - 44, 0);
        put_u64(b, n - 36, 70 * 1024);
    });
    f("footer_original_size_overlaps_vbmeta.bin", &|b| {
        put_u64(b, n - 52, (n as u64) - 64)
    });
    f("footer_vbmeta_size_mismatch.bin", &|b| {
        let s = u64::from_be_bytes(b[n - 36..n - 28].try_into().unwrap());
        put_u64(b, n - 36, s - 64);
    });
    out
}

corpus_check::corpus_tests!(dir(), corpus());

#[test]
fn fuzz_entry_points_survive_corpus() {
    for entry in std::fs::read_dir(dir()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        avb::fuzzing::vbmeta(&bytes);
        avb::fuzzing::footer(&bytes);
    }
    avb::fuzzing::vbmeta(&good_vbmeta());
    avb::fuzzing::footer(&good_partition());
}

fn vbmeta_err(name: &str) -> Error {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    avb::verify_vbmeta(&bytes, &trusted(), None).expect_err(name)
}

fn footer_err(name: &str) -> Error {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    avb::vbmeta_from_image(&bytes).expect_err(name)
}

macro_rules! bad {
    ($test:ident, $check:ident, $file:literal, $pat:pat) => {
        #[test]
        fn $test() {
            let e = $check($file);
            assert!(matches!(e, $pat), "{}: got {e:?}", $file);
        }
    };
}

bad!(
    vbmeta_empty,
    vbmeta_err,
    "vbmeta_empty.bin",
    Error::Truncated {
        what: "vbmeta header",
        ..
    }
);
bad!(
    vbmeta_truncated_header,
    vbmeta_err,
    "vbmeta_truncated_header.bin",
    Error::Truncated {
        what: "vbmeta header",
        ..
    }
);
bad!(
    vbmeta_truncated_aux,
    vbmeta_err,
    "vbmeta_truncated_aux.bin",
    Error::Truncated {
        what: "vbmeta image",
        ..
    }
);
bad!(
    vbmeta_wrong_magic,
    vbmeta_err,
    "vbmeta_wrong_magic.bin",
    Error::BadMagic {
        what: "vbmeta header"
    }
);
bad!(
    vbmeta_major_2,
    vbmeta_err,
    "vbmeta_major_2.bin",
    Error::UnsupportedVersion { major: 2, .. }
);
bad!(
    vbmeta_minor_99,
    vbmeta_err,
    "vbmeta_minor_99.bin",
    Error::UnsupportedVersion { minor: 99, .. }
);
bad!(
    vbmeta_auth_not_64_aligned,
    vbmeta_err,
    "vbmeta_auth_not_64_aligned.bin",
    Error::InvalidHeader(_)
);
bad!(
    vbmeta_aux_past_end,
    vbmeta_err,
    "vbmeta_aux_past_end.bin",
    Error::Truncated {
        what: "vbmeta image",
        ..
    }
);
bad!(
    vbmeta_block_size_overflow,
    vbmeta_err,
    "vbmeta_block_size_overflow.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    vbmeta_unknown_algorithm,
    vbmeta_err,
    "vbmeta_unknown_algorithm.bin",
    Error::UnsupportedAlgorithm(99)
);
bad!(
    vbmeta_hash_outside_auth,
    vbmeta_err,
    "vbmeta_hash_outside_auth.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    vbmeta_signature_offset_overflow,
    vbmeta_err,
    "vbmeta_signature_offset_overflow.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    vbmeta_pubkey_wrong_size,
    vbmeta_err,
    "vbmeta_pubkey_wrong_size.bin",
    Error::InvalidHeader(_)
);
bad!(
    vbmeta_descriptors_past_aux,
    vbmeta_err,
    "vbmeta_descriptors_past_aux.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    vbmeta_descriptor_nbf_unaligned,
    vbmeta_err,
    "vbmeta_descriptor_nbf_unaligned.bin",
    Error::DescriptorInvalid(_)
);
bad!(
    vbmeta_descriptor_nbf_huge,
    vbmeta_err,
    "vbmeta_descriptor_nbf_huge.bin",
    Error::Truncated {
        what: "descriptor",
        ..
    }
);
bad!(
    vbmeta_descriptor_name_len_huge,
    vbmeta_err,
    "vbmeta_descriptor_name_len_huge.bin",
    Error::Truncated {
        what: "hashtree descriptor",
        ..
    }
);
bad!(
    vbmeta_descriptor_tampered,
    vbmeta_err,
    "vbmeta_descriptor_tampered.bin",
    Error::HashMismatch
);
bad!(
    vbmeta_signature_corrupt,
    vbmeta_err,
    "vbmeta_signature_corrupt.bin",
    Error::SignatureInvalid
);
bad!(
    vbmeta_property_not_nul_terminated,
    vbmeta_err,
    "vbmeta_property_not_nul_terminated.bin",
    Error::DescriptorInvalid(_)
);
bad!(
    footer_too_short,
    footer_err,
    "footer_too_short.bin",
    Error::Truncated { what: "footer", .. }
);
bad!(
    footer_wrong_magic,
    footer_err,
    "footer_wrong_magic.bin",
    Error::BadMagic { what: "footer" }
);
bad!(
    footer_major_2,
    footer_err,
    "footer_major_2.bin",
    Error::UnsupportedVersion {
        what: "footer",
        major: 2,
        ..
    }
);
bad!(
    footer_vbmeta_past_end,
    footer_err,
    "footer_vbmeta_past_end.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    footer_vbmeta_offset_overflow,
    footer_err,
    "footer_vbmeta_offset_overflow.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    footer_vbmeta_too_big,
    footer_err,
    "footer_vbmeta_too_big.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    footer_original_size_overlaps_vbmeta,
    footer_err,
    "footer_original_size_overlaps_vbmeta.bin",
    Error::SizeOutOfRange(_)
);
bad!(
    footer_vbmeta_size_mismatch,
    footer_err,
    "footer_vbmeta_size_mismatch.bin",
    Error::Truncated {
        what: "vbmeta image",
        ..
    }
);
