//! The bad-input corpus (`testdata/bad/`, see its README): one test per file asserting the
//! specific error, a check that every file is what its generator makes, and the fuzz entry
//! point run over all of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use apex::write::build_apex_zip;
use apex::{
    ApexFile, ApexManifest, Error, Expectations, MANIFEST_ENTRY, PAYLOAD_ENTRY, PUBKEY_ENTRY,
};
use prost::Message;
use ziparchive::ZipError;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/bad")
}

fn key(bits: u32) -> avb::SigningKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../avb/testkeys/testkey_rsa{bits}.pem"));
    avb::SigningKey::from_pem_file(path).unwrap()
}

fn manifest(name: &str, version: i64) -> ApexManifest {
    ApexManifest {
        name: name.into(),
        version,
        ..ApexManifest::default()
    }
}

/// A stand-in payload: 8 KiB with the erofs magic at 1024, with a hashtree footer signed by
/// `signer` (deterministic: fixed data, fixed salt, PKCS#1 v1.5).
fn signed_payload(signer: &avb::SigningKey) -> Vec<u8> {
    let mut image = vec![0x11u8; 8192];
    image[1024..1028].copy_from_slice(&[0xe2, 0xe1, 0xf5, 0xe0]);
    avb::add_hashtree_footer_to_vec(
        &mut image,
        &avb::HashtreeFooterOptions::new("com.example.bad", b"salt", Some(signer)),
    )
    .unwrap();
    image
}

/// The writer's zip, or for a manifest the writer refuses, the same layout written directly.
fn zip_of(manifest: &ApexManifest, pubkey: &[u8], payload: &[u8]) -> Vec<u8> {
    build_apex_zip(manifest, pubkey, payload).unwrap_or_else(|_| {
        let mut payload_entry = ziparchive::write::ZipEntry::new(PAYLOAD_ENTRY, payload.to_vec());
        payload_entry.align = Some(apex::write::PAYLOAD_ALIGNMENT);
        ziparchive::write::build_zip(&[
            ziparchive::write::ZipEntry::new(MANIFEST_ENTRY, manifest.encode_to_vec()),
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pubkey.to_vec()),
            payload_entry,
        ])
        .unwrap()
    })
}

/// The offset of the central directory record of `name`.
fn cd_record(zip: &[u8], name: &str) -> usize {
    (0..zip.len() - 46)
        .find(|&i| {
            zip[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && zip[i + 46..].starts_with(name.as_bytes())
        })
        .unwrap()
}

fn local_record(zip: &[u8], name: &str) -> usize {
    (0..zip.len() - 30)
        .find(|&i| {
            zip[i..i + 4] == [0x50, 0x4b, 0x03, 0x04] && zip[i + 30..].starts_with(name.as_bytes())
        })
        .unwrap()
}

fn eocd(zip: &[u8]) -> usize {
    zip.len() - 22
}

fn put16(zip: &mut [u8], at: usize, v: u16) {
    zip[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(zip: &mut [u8], at: usize, v: u32) {
    zip[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Every corpus file and how it is made.
fn generate() -> Vec<(&'static str, Vec<u8>)> {
    let k2048 = key(2048);
    let pub2048 = k2048.public_key().unwrap().to_avb_bytes();
    let good_manifest = manifest("com.example.bad", 1);
    let base = zip_of(&good_manifest, &pub2048, b"payload");
    let mut files = vec![
        ("empty.apex", Vec::new()),
        ("not_a_zip.apex", b"this is not a zip file\n".to_vec()),
    ];
    {
        let entries = [
            ziparchive::write::ZipEntry::new(MANIFEST_ENTRY, good_manifest.encode_to_vec()),
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pub2048.clone()),
        ];
        files.push((
            "missing_payload.apex",
            ziparchive::write::build_zip(&entries).unwrap(),
        ));
        let entries = [
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pub2048.clone()),
            ziparchive::write::ZipEntry::new(PAYLOAD_ENTRY, b"payload".to_vec()),
        ];
        files.push((
            "missing_manifest.apex",
            ziparchive::write::build_zip(&entries).unwrap(),
        ));
        let entries = [
            ziparchive::write::ZipEntry::new(MANIFEST_ENTRY, good_manifest.encode_to_vec()),
            ziparchive::write::ZipEntry::new(PAYLOAD_ENTRY, b"payload".to_vec()),
        ];
        files.push((
            "missing_pubkey.apex",
            ziparchive::write::build_zip(&entries).unwrap(),
        ));
        let entries = [
            ziparchive::write::ZipEntry::new(MANIFEST_ENTRY, good_manifest.encode_to_vec()),
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pub2048.clone()),
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pub2048.clone()),
            ziparchive::write::ZipEntry::new(PAYLOAD_ENTRY, b"payload".to_vec()),
        ];
        files.push((
            "duplicate_pubkey.apex",
            ziparchive::write::build_zip(&entries).unwrap(),
        ));
    }
    let mut z = base.clone();
    let (cd, local) = (
        cd_record(&z, MANIFEST_ENTRY),
        local_record(&z, MANIFEST_ENTRY),
    );
    put16(&mut z, cd + 10, 8);
    put16(&mut z, local + 8, 8);
    files.push(("deflated_manifest.apex", z));
    let mut z = base.clone();
    let e = eocd(&z);
    put32(&mut z, e + 16, 0x7000_0000);
    files.push(("cd_offset_past_end.apex", z));
    let mut z = base.clone();
    let e = eocd(&z);
    put32(&mut z, e + 16, 0xffff_ffff);
    files.push(("zip64_cd_offset.apex", z));
    let mut z = base.clone();
    let e = eocd(&z);
    put16(&mut z, e + 4, 1);
    files.push(("multi_disk.apex", z));
    let mut z = base.clone();
    let cd = cd_record(&z, PAYLOAD_ENTRY);
    put32(&mut z, cd + 20, 0x0010_0000);
    put32(&mut z, cd + 24, 0x0010_0000);
    files.push(("payload_runs_into_cd.apex", z));
    let mut z = base.clone();
    let cd = cd_record(&z, PUBKEY_ENTRY);
    put32(&mut z, cd + 42, 0x00ff_0000);
    files.push(("local_header_past_end.apex", z));
    let mut z = base.clone();
    let e = eocd(&z);
    put16(&mut z, e + 10, 4);
    put16(&mut z, e + 8, 4);
    files.push(("entry_count_too_big.apex", z));
    files.push((
        "name_with_slash.apex",
        zip_of(&manifest("../etc", 1), &pub2048, b"payload"),
    ));
    files.push((
        "negative_version.apex",
        zip_of(&manifest("com.example.bad", -1), &pub2048, b"payload"),
    ));
    {
        let entries = [
            ziparchive::write::ZipEntry::new(MANIFEST_ENTRY, vec![0xff; 8]),
            ziparchive::write::ZipEntry::new(PUBKEY_ENTRY, pub2048.clone()),
            ziparchive::write::ZipEntry::new(PAYLOAD_ENTRY, b"payload".to_vec()),
        ];
        files.push((
            "garbage_manifest.apex",
            ziparchive::write::build_zip(&entries).unwrap(),
        ));
    }
    files.push((
        "payload_without_footer.apex",
        zip_of(&good_manifest, &pub2048, &vec![0u8; 8192]),
    ));
    let k4096 = key(4096);
    files.push((
        "signed_by_another_key.apex",
        zip_of(&good_manifest, &pub2048, &signed_payload(&k4096)),
    ));
    let mut payload = signed_payload(&k2048);
    let footer = avb::Footer::from_image_end(&payload).unwrap();
    // A byte of the hashtree descriptor's root digest, in the auxiliary block.
    let vbmeta_end = (footer.vbmeta_offset + footer.vbmeta_size) as usize;
    payload[vbmeta_end - 300] ^= 0x01;
    files.push((
        "tampered_vbmeta.apex",
        zip_of(&good_manifest, &pub2048, &payload),
    ));
    // A payload whose vbmeta is validly signed by the bundled key but has only a property
    // descriptor: nothing to build dm-verity from.
    let mut payload = vec![0x11u8; 8192];
    let vbmeta = avb::build_vbmeta(
        &avb::VbmetaOptions::default(),
        &[avb::Descriptor::Property(avb::PropertyDescriptor {
            key: "com.android.apex.test".into(),
            value: b"no hashtree".to_vec(),
        })],
        Some(&k2048),
    )
    .unwrap();
    let footer = avb::Footer {
        version_major: 1,
        version_minor: 0,
        original_image_size: 8192,
        vbmeta_offset: 8192,
        vbmeta_size: vbmeta.len() as u64,
    };
    payload.extend_from_slice(&vbmeta);
    payload.resize(
        payload.len().div_ceil(4096) * 4096 + 4096 - avb::FOOTER_SIZE,
        0,
    );
    payload.extend_from_slice(&footer.encode());
    files.push((
        "no_hashtree.apex",
        zip_of(&good_manifest, &pub2048, &payload),
    ));
    files
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap()
}

fn parse_err(name: &str) -> Error {
    ApexFile::parse(read(name).as_slice()).unwrap_err()
}

fn verify_err(name: &str) -> Error {
    let data = read(name);
    let apex = ApexFile::parse(data.as_slice()).unwrap();
    apex.verify(data.as_slice(), &Expectations::default())
        .unwrap_err()
}

#[test]
#[ignore]
fn regenerate() {
    for (name, bytes) in generate() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

#[test]
fn corpus_files_are_what_the_generator_makes() {
    let mut expected: Vec<String> = generate()
        .into_iter()
        .map(|(name, bytes)| {
            assert_eq!(read(name), bytes, "{name} differs from its generator");
            name.to_owned()
        })
        .collect();
    expected.push("README.md".into());
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    present.sort();
    assert_eq!(present, expected, "every corpus file has a test");
}

#[test]
fn fuzz_entry_point_survives_the_corpus() {
    for (name, bytes) in generate() {
        eprintln!("{name}");
        apex::fuzzing::apex(&bytes);
    }
}

#[test]
fn empty() {
    assert!(matches!(
        parse_err("empty.apex"),
        Error::Zip(ZipError::NoEndOfCentralDirectory)
    ));
}

#[test]
fn not_a_zip() {
    assert!(matches!(
        parse_err("not_a_zip.apex"),
        Error::Zip(ZipError::NoEndOfCentralDirectory)
    ));
}

#[test]
fn missing_payload() {
    assert!(matches!(
        parse_err("missing_payload.apex"),
        Error::MissingEntry(PAYLOAD_ENTRY)
    ));
}

/// Fault matrix row 16: an APEX without its manifest or without its public key.
#[test]
fn missing_manifest() {
    assert!(matches!(
        parse_err("missing_manifest.apex"),
        Error::MissingEntry(MANIFEST_ENTRY)
    ));
}

#[test]
fn missing_pubkey() {
    assert!(matches!(
        parse_err("missing_pubkey.apex"),
        Error::MissingEntry(PUBKEY_ENTRY)
    ));
}

/// Fault matrix row 18: a validly signed vbmeta with no hashtree descriptor.
#[test]
fn no_hashtree() {
    let err = verify_err("no_hashtree.apex");
    assert!(matches!(err, Error::NoHashtree), "{err:?}");
}

#[test]
fn duplicate_pubkey() {
    assert!(
        matches!(parse_err("duplicate_pubkey.apex"), Error::DuplicateEntry(n) if n == PUBKEY_ENTRY)
    );
}

#[test]
fn deflated_manifest() {
    assert!(matches!(
        parse_err("deflated_manifest.apex"),
        Error::EntryNotStored(MANIFEST_ENTRY)
    ));
}

#[test]
fn cd_offset_past_end() {
    let err = parse_err("cd_offset_past_end.apex");
    assert!(
        matches!(
            &err,
            Error::Zip(ZipError::CentralDirectoryOutOfBounds { .. })
        ),
        "{err}"
    );
}

#[test]
fn zip64_cd_offset() {
    assert!(matches!(
        parse_err("zip64_cd_offset.apex"),
        Error::Zip(ZipError::BadZip64(_))
    ));
}

#[test]
fn multi_disk() {
    assert!(matches!(
        parse_err("multi_disk.apex"),
        Error::Zip(ZipError::MultiDisk)
    ));
}

#[test]
fn payload_runs_into_cd() {
    let err = parse_err("payload_runs_into_cd.apex");
    assert!(
        matches!(
            &err,
            Error::Zip(ZipError::LocalHeaderMismatch { name, field: "uncompressed size" })
                if name == PAYLOAD_ENTRY
        ),
        "{err}"
    );
}

#[test]
fn local_header_past_end() {
    let err = parse_err("local_header_past_end.apex");
    assert!(
        matches!(
            &err,
            Error::Zip(ZipError::BadLocalHeader {
                reason: "truncated",
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn entry_count_too_big() {
    let err = parse_err("entry_count_too_big.apex");
    assert!(
        matches!(
            &err,
            Error::Zip(ZipError::EntryCountExceedsDirectory { declared: 4, .. })
        ),
        "{err}"
    );
}

#[test]
fn name_with_slash() {
    assert!(matches!(parse_err("name_with_slash.apex"), Error::InvalidName(n) if n == "../etc"));
}

#[test]
fn negative_version() {
    assert!(matches!(
        parse_err("negative_version.apex"),
        Error::InvalidVersion(-1)
    ));
}

#[test]
fn garbage_manifest() {
    assert!(matches!(
        parse_err("garbage_manifest.apex"),
        Error::Manifest(_)
    ));
}

#[test]
fn payload_without_footer() {
    assert!(matches!(
        verify_err("payload_without_footer.apex"),
        Error::PayloadAvb(avb::Error::BadMagic { .. })
    ));
}

#[test]
fn signed_by_another_key() {
    assert!(matches!(
        verify_err("signed_by_another_key.apex"),
        Error::SignatureRejected(avb::Error::PublicKeyMismatch)
    ));
}

#[test]
fn tampered_vbmeta() {
    let err = verify_err("tampered_vbmeta.apex");
    assert!(
        matches!(err, Error::SignatureRejected(avb::Error::HashMismatch)),
        "{err:?}"
    );
}
