//! The bad-input corpus in `testdata/bad/` (see its README): one test per file asserting the
//! specific error, `fuzz_entry` over every file and over the fuzz seeds. `*.img` are disks
//! (`InstanceImage::open`, then `read_microdroid_data`, or `read_pvmfw_entry` for
//! `pvmfw-*.img`, with the fuzz key), `*.cbor` are records (`MicrodroidData::from_cbor`).
//! Regenerate both directories with
//! `cargo test -p instance --test bad_corpus -- --ignored regenerate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use common::*;
use instance::*;

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/instance")
}

const OTHER_KEY: [u8; 32] = [0x33; 32];

fn with_header(size: usize, at: usize, uuid: &[u8; 16], payload_size: u64) -> Vec<u8> {
    let mut b = fresh(size);
    b[at..at + 512].copy_from_slice(&header(uuid, payload_size));
    b
}

fn microdroid_sealed(key: &[u8; 32], pt: &[u8]) -> Vec<u8> {
    let mut b = fresh(4096);
    put_microdroid(&mut b, 512, key, pt, [7; 12]);
    b
}

fn pvmfw_sealed(b: &mut [u8], key: &[u8; 32]) {
    let body = PvmfwEntry {
        code_hash: [0xc0; 64],
        auth_hash: [0xa0; 64],
        salt: [0x5a; 64],
        mode: 1,
    }
    .to_bytes();
    let nonce = [9u8; 12];
    let mut payload = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), &body[..])
        .unwrap();
    payload.extend_from_slice(&nonce);
    b[512..1024].copy_from_slice(&header(&PVMFW_UUID, payload.len() as u64));
    b[1024..1024 + payload.len()].copy_from_slice(&payload);
}

/// `VECTOR_HEX` with `from` (hex) replaced by `to` (hex) once.
fn vector_with(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(VECTOR_HEX.matches(from).count(), 1, "{from}");
    unhex(&VECTOR_HEX.replacen(from, to, 1))
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let vector = unhex(VECTOR_HEX);
    vec![
        ("truncated-header.img", b"Android-VM".to_vec()),
        ("wrong-magic.img", {
            let mut b = fresh(4096);
            b[18] = b'X';
            b
        }),
        ("version-0.img", {
            let mut b = fresh(4096);
            b[19] = 0;
            b
        }),
        ("version-2.img", {
            let mut b = fresh(4096);
            b[19] = 2;
            b
        }),
        ("entry-header-past-end.img", fresh(700)),
        (
            "entry-size-huge.img",
            with_header(4096, 512, &MICRODROID_UUID, u64::MAX),
        ),
        (
            "entry-past-end.img",
            with_header(4096, 512, &MICRODROID_UUID, 60_000),
        ),
        (
            "skipped-entry-past-end.img",
            with_header(4096, 512, &[0x42; 16], 1 << 40),
        ),
        ("chain-overflow.img", {
            // A (size 512) → B at 1536 whose size wraps the next offset back to A.
            let mut b = with_header(4096, 512, &[0x42; 16], 512);
            b[1536..2048].copy_from_slice(&header(&[0x43; 16], 0u64.wrapping_sub(1536)));
            b
        }),
        (
            "sealed-under-another-key.img",
            microdroid_sealed(&OTHER_KEY, &vector),
        ),
        ("tampered-entry.img", {
            let mut b = microdroid_sealed(&FUZZ_KEY, &vector);
            b[1024 + 40] ^= 1;
            b
        }),
        (
            "sealed-garbage-record.img",
            microdroid_sealed(&FUZZ_KEY, b"\xa1\x64salt\xff not cbor"),
        ),
        ("journal-corrupt.img", {
            let mut b = fresh(JOURNAL_OFFSET as usize + 512);
            put_microdroid(&mut b, 512, &OTHER_KEY, &vector, [7; 12]);
            let j = JOURNAL_OFFSET as usize;
            b[j..j + 512].copy_from_slice(&header(&JOURNAL_UUID, 3));
            b
        }),
        ("pvmfw-30-byte-payload.img", {
            let mut b = with_header(4096, 512, &PVMFW_UUID, 30);
            b[1024..1054].fill(0xab);
            b
        }),
        (
            "pvmfw-size-huge.img",
            with_header(4096, 512, &PVMFW_UUID, 1 << 40),
        ),
        ("pvmfw-under-another-key.img", {
            let mut b = fresh(4096);
            pvmfw_sealed(&mut b, &OTHER_KEY);
            b
        }),
        ("garbage.cbor", vec![0xff, 0xfe, 0x00]),
        ("truncated.cbor", vector[..vector.len() / 2].to_vec()),
        ("trailing-bytes.cbor", [&vector[..], &[0]].concat()),
        // salt: "ab" (a text string) instead of an array.
        (
            "wrong-type.cbor",
            vector_with("6473616c74820000", "6473616c74626162"),
        ),
        // salt: [0, 256]: not a u8.
        (
            "byte-out-of-range.cbor",
            vector_with("6473616c74820000", "6473616c748200190100"),
        ),
        // version_code: -1.
        (
            "negative-version-code.cbor",
            vector_with("76657273696f6e5f636f646507", "76657273696f6e5f636f646520"),
        ),
        // map(3) without apex_data.
        ("missing-field.cbor", {
            let cut = VECTOR_HEX.find("69617065785f64617461").unwrap();
            let mut b = unhex(&VECTOR_HEX[..cut]);
            b[0] = 0xa3;
            b
        }),
    ]
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let vector = unhex(VECTOR_HEX);
    vec![
        ("empty.img", fresh(4096)),
        ("microdroid.img", microdroid_sealed(&FUZZ_KEY, &vector)),
        ("pvmfw-and-microdroid.img", {
            let mut b = fresh(4096);
            pvmfw_sealed(&mut b, &FUZZ_KEY);
            put_microdroid(&mut b, 1536, &FUZZ_KEY, &vector, [8; 12]);
            b
        }),
        ("record.cbor", vector),
    ]
}

#[test]
#[ignore]
fn regenerate() {
    for (dir, files) in [(bad_dir(), corpus()), (seed_dir(), seeds())] {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn corpus_and_seeds_are_up_to_date_and_tested() {
    let here = include_str!("bad_corpus.rs");
    for (dir, files) in [(bad_dir(), corpus()), (seed_dir(), seeds())] {
        for (name, bytes) in &files {
            let on_disk = std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; run the regenerate test"));
            assert!(
                &on_disk == bytes,
                "{name} is stale; run the regenerate test"
            );
        }
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".img") || name.ends_with(".cbor") {
                assert!(
                    files.iter().any(|(f, _)| *f == name),
                    "{name}: not generated"
                );
                n += 1;
            }
        }
        assert_eq!(n, files.len());
    }
    for (name, _) in corpus() {
        // Once in corpus(), once in its bad!() test.
        let quoted = format!("\"{name}\"");
        assert!(here.matches(&quoted).count() >= 2, "no test for bad/{name}");
    }
}

#[test]
fn fuzz_entry_accepts_corpus_and_seeds() {
    for dir in [bad_dir(), seed_dir()] {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "img" || x == "cbor") {
                assert!(fuzz_entry(&std::fs::read(&path).unwrap()), "{path:?}");
            }
        }
    }
}

/// A cheap stand-in for a fuzzing run on stable Rust: deterministic random mutations of the
/// seeds and of the small corpus files (bit flips, boundary values in the header fields,
/// truncation, extension) must keep `fuzz_entry` true.
#[test]
fn fuzz_entry_survives_mutations() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let inputs: Vec<Vec<u8>> = seeds()
        .into_iter()
        .chain(corpus())
        .map(|(_, b)| b)
        .filter(|b| b.len() <= 4096)
        .collect();
    let fields = [0usize, 19, 512, 528, 1024, 1536, 1552, 2048];
    let values = [
        0u64,
        1,
        221,
        511,
        512,
        513,
        65_536,
        1 << 32,
        u64::MAX - 511,
        u64::MAX,
    ];
    for i in 0..20_000 {
        let mut b = inputs[i % inputs.len()].clone();
        for _ in 0..=next() % 4 {
            match next() % 5 {
                0 if !b.is_empty() => {
                    let at = (next() % b.len() as u64) as usize;
                    b[at] ^= 1 << (next() % 8);
                }
                1 => {
                    let at = fields[(next() % fields.len() as u64) as usize];
                    let v = values[(next() % values.len() as u64) as usize];
                    if at + 8 <= b.len() {
                        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
                2 => {
                    let at = [512usize, 1536][(next() % 2) as usize];
                    let uuid = [MICRODROID_UUID, PVMFW_UUID, [0; 16], [1; 16]];
                    if at + 16 <= b.len() {
                        b[at..at + 16].copy_from_slice(&uuid[(next() % 4) as usize]);
                    }
                }
                3 => b.truncate((next() % (b.len() as u64 + 1)) as usize),
                _ => b.resize(b.len() + (next() % 1024) as usize, 0),
            }
        }
        assert!(fuzz_entry(&b), "mutation {i}");
    }
}

#[test]
fn seeds_are_valid() {
    let read = |name: &str| std::fs::read(seed_dir().join(name)).unwrap();
    let mut image = InstanceImage::open(Cursor::new(read("microdroid.img"))).unwrap();
    assert_eq!(
        image.read_microdroid_data(&FUZZ_KEY).unwrap(),
        Some(vector_record())
    );
    let mut image = InstanceImage::open(Cursor::new(read("pvmfw-and-microdroid.img"))).unwrap();
    assert!(image.read_pvmfw_entry(&FUZZ_KEY).unwrap().is_some());
    assert_eq!(
        image.read_microdroid_data(&FUZZ_KEY).unwrap(),
        Some(vector_record())
    );
    assert_eq!(
        MicrodroidData::from_cbor(&read("record.cbor")).unwrap(),
        vector_record()
    );
}

/// The error for one corpus file; the image bytes must be unchanged by a failed read.
fn err(name: &str) -> Error {
    let bytes = std::fs::read(bad_dir().join(name)).unwrap();
    if name.ends_with(".cbor") {
        return MicrodroidData::from_cbor(&bytes).expect_err(name);
    }
    let mut image = match InstanceImage::open(Cursor::new(bytes.clone())) {
        Ok(image) => image,
        Err(e) => return e,
    };
    let e = if name.starts_with("pvmfw-") {
        image.read_pvmfw_entry(&FUZZ_KEY).expect_err(name)
    } else {
        image.read_microdroid_data(&FUZZ_KEY).expect_err(name)
    };
    assert!(
        image.into_inner().into_inner() == bytes,
        "{name}: a failed read changed the image"
    );
    e
}

macro_rules! bad {
    ($test:ident, $file:literal, $pat:pat) => {
        bad!($test, $file, $pat, "");
    };
    ($test:ident, $file:literal, $pat:pat, $msg:literal) => {
        #[test]
        fn $test() {
            let e = err($file);
            assert!(matches!(e, $pat), "{}: got {e:?}", $file);
            assert!(e.to_string().contains($msg), "{}: message {e}", $file);
        }
    };
}

bad!(
    truncated_header,
    "truncated-header.img",
    Error::Truncated {
        what: "disk header",
        offset: 0,
        len: 21,
        disk_size: 10
    }
);
bad!(wrong_magic, "wrong-magic.img", Error::BadMagic);
bad!(version_0, "version-0.img", Error::InvalidVersion);
bad!(version_2, "version-2.img", Error::UnsupportedVersion(2));
bad!(
    entry_header_past_end,
    "entry-header-past-end.img",
    Error::Truncated {
        what: "entry header",
        offset: 512,
        len: 512,
        disk_size: 700
    }
);
bad!(
    entry_size_huge,
    "entry-size-huge.img",
    Error::EntryTooLarge {
        size: u64::MAX,
        max: MAX_ENTRY_PAYLOAD
    }
);
bad!(
    entry_past_end,
    "entry-past-end.img",
    Error::Truncated {
        what: "microdroid entry payload",
        offset: 1024,
        len: 60_000,
        disk_size: 4096
    }
);
bad!(
    skipped_entry_past_end,
    "skipped-entry-past-end.img",
    Error::Truncated {
        what: "entry header",
        ..
    }
);
bad!(chain_overflow, "chain-overflow.img", Error::Overflow);
bad!(
    sealed_under_another_key,
    "sealed-under-another-key.img",
    Error::Decrypt
);
bad!(tampered_entry, "tampered-entry.img", Error::Decrypt);
bad!(
    sealed_garbage_record,
    "sealed-garbage-record.img",
    Error::Cbor(_)
);
bad!(
    journal_corrupt,
    "journal-corrupt.img",
    Error::JournalCorrupt("bad payload size")
);
bad!(
    pvmfw_30_byte_payload,
    "pvmfw-30-byte-payload.img",
    Error::BadPvmfwEntrySize(30)
);
bad!(
    pvmfw_size_huge,
    "pvmfw-size-huge.img",
    Error::EntryTooLarge {
        size: 1_099_511_627_776,
        ..
    }
);
bad!(
    pvmfw_under_another_key,
    "pvmfw-under-another-key.img",
    Error::Decrypt
);
bad!(garbage, "garbage.cbor", Error::Cbor(_));
bad!(truncated, "truncated.cbor", Error::Cbor(_), "ends early");
bad!(
    trailing_bytes,
    "trailing-bytes.cbor",
    Error::Cbor(_),
    "1 trailing bytes"
);
bad!(
    wrong_type,
    "wrong-type.cbor",
    Error::Cbor(_),
    "invalid type"
);
bad!(byte_out_of_range, "byte-out-of-range.cbor", Error::Cbor(_));
bad!(
    negative_version_code,
    "negative-version-code.cbor",
    Error::Cbor(_)
);
bad!(
    missing_field,
    "missing-field.cbor",
    Error::Cbor(_),
    "missing field `apex_data`"
);
