//! The public API: AOSP byte formats, key derivation, creation, entries, updates, tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use common::*;
use instance::*;

// ---- byte formats ----

#[test]
fn cbor_vector_encodes_byte_for_byte() {
    assert_eq!(vector_record().to_cbor().unwrap(), unhex(VECTOR_HEX));
}

#[test]
fn cbor_vector_decodes() {
    assert_eq!(
        MicrodroidData::from_cbor(&unhex(VECTOR_HEX)).unwrap(),
        vector_record()
    );
}

#[test]
fn cbor_round_trips_extremes() {
    let mut r = record(200, 64, 3);
    r.apex_data[0].manifest_version = Some(i64::MIN);
    r.apex_data[1].manifest_version = Some(i64::MAX);
    r.apk_data.version_code = u64::MAX;
    r.extra_apks_data = vec![r.apk_data.clone(), ApkData::default()];
    assert_eq!(MicrodroidData::from_cbor(&r.to_cbor().unwrap()).unwrap(), r);
}

#[test]
fn cbor_rejects_trailing_bytes_and_oversize() {
    let mut v = unhex(VECTOR_HEX);
    v.push(0);
    assert!(matches!(MicrodroidData::from_cbor(&v), Err(Error::Cbor(m)) if m.contains("trailing")));
    let big = vec![0u8; MAX_ENTRY_PAYLOAD as usize + 1];
    assert!(matches!(
        MicrodroidData::from_cbor(&big),
        Err(Error::EntryTooLarge { size, max: MAX_ENTRY_PAYLOAD }) if size == MAX_ENTRY_PAYLOAD + 1
    ));
    // Deep nesting inside an unknown field stops at the depth limit, not the stack.
    let mut deep = vec![0xa5, 0x63, b'x', b'y', b'z'];
    deep.resize(deep.len() + 10_000, 0x81);
    deep.push(0);
    deep.extend_from_slice(&unhex(VECTOR_HEX)[1..]);
    assert!(matches!(
        MicrodroidData::from_cbor(&deep),
        Err(Error::Cbor(_))
    ));
}

#[test]
fn cbor_declared_lengths_do_not_allocate() {
    // array(2^64-1) of ApkData, text(2^64-1): fail on end of input without allocating it.
    let mut v = unhex("a46473616c748200006861706b5f64617461a4");
    v.extend_from_slice(&unhex("69726f6f745f686173681bffffffffffffffff"));
    assert!(matches!(MicrodroidData::from_cbor(&v), Err(Error::Cbor(_))));
    let v = unhex("a4647361");
    assert!(matches!(MicrodroidData::from_cbor(&v), Err(Error::Cbor(_))));
    let v = unhex("a47bffffffffffffffff");
    assert!(matches!(MicrodroidData::from_cbor(&v), Err(Error::Cbor(_))));
}

fn parse_uuid(s: &str) -> [u8; 16] {
    unhex(&s.replace('-', "")).try_into().unwrap()
}

#[test]
fn uuids_in_rfc4122_byte_order() {
    assert_eq!(
        MICRODROID_UUID,
        parse_uuid("cf9afe9a-0662-11ec-a329-c32663a09d75")
    );
    assert_eq!(
        PVMFW_UUID,
        parse_uuid("90d2174a-038a-4bc6-adf3-824848fc5825")
    );
    assert_eq!(
        JOURNAL_UUID,
        parse_uuid("6a1f3c2e-9b47-4d0e-8c55-1e7d2b9a4f60")
    );
    assert_eq!(&MICRODROID_UUID[..4], &[0xcf, 0x9a, 0xfe, 0x9a]);
    assert_eq!(&PVMFW_UUID[..4], &[0x90, 0xd2, 0x17, 0x4a]);
}

#[test]
fn pvmfw_body_layout() {
    let e = PvmfwEntry {
        code_hash: [1; 64],
        auth_hash: [2; 64],
        salt: [3; 64],
        mode: 2,
    };
    let b = e.to_bytes();
    assert_eq!(b.len(), 193);
    assert_eq!((b[0], b[64], b[128], b[192]), (1, 2, 3, 2));
    assert_eq!(PvmfwEntry::from_bytes(&b).unwrap(), e);
    assert!(matches!(
        PvmfwEntry::from_bytes(&b[..192]),
        Err(Error::BadPvmfwEntrySize(192))
    ));
}

// ---- keys: vectors from Python's `cryptography` ----
//
// python3 -c "
// from cryptography.hazmat.primitives.kdf.hkdf import HKDF
// from cryptography.hazmat.primitives import hashes
// for ikm in (bytes(range(32)), b'\x00'*32):
//   print(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
//              info=b'microdroid_manager_key').derive(ikm).hex())
//   print(HKDF(algorithm=hashes.SHA512(), length=32, salt=None,
//              info=b'vm-instance').derive(ikm).hex())"

const CDI: [u8; 32] = {
    let mut c = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        c[i] = i as u8;
        i += 1;
    }
    c
};
const MICRODROID_KEY_0_31: &str =
    "2951c751333a389eaf5bafbeaecd038d4f9e0a882b592cc76f73825c3ef251b9";
const PVMFW_KEY_0_31: &str = "997390b93acf885d29f7a8bb69bb971886dd786a1fdcf458aa8a0fca3cdf36f1";
const MICRODROID_KEY_ZERO: &str =
    "af486052b4372ce1546dbbbbdbe3f796b25a78487461cc0aa45126c68bb5b518";
const PVMFW_KEY_ZERO: &str = "305f6285d4b63fbcfbcf2925a8d00a37895e7222267aa3c75df675a95a38a2a8";

#[test]
fn key_derivation_vectors() {
    assert_eq!(microdroid_key(&CDI).to_vec(), unhex(MICRODROID_KEY_0_31));
    assert_eq!(pvmfw_key(&CDI).to_vec(), unhex(PVMFW_KEY_0_31));
    assert_eq!(
        microdroid_key(&[0; 32]).to_vec(),
        unhex(MICRODROID_KEY_ZERO)
    );
    assert_eq!(pvmfw_key(&[0; 32]).to_vec(), unhex(PVMFW_KEY_ZERO));
}

// Sealed with Python's AESGCM (key MICRODROID_KEY_0_31, nonce 00..0b, AAD = the header block
// uuid ‖ u64le(251) ‖ zeros, plaintext = VECTOR_HEX):
//   (nonce + AESGCM(key).encrypt(nonce, pt, hdr)).hex()
const PY_MICRODROID_PAYLOAD: &str = "000102030405060708090a0ba655cc235d22cfa25eaf433fb879d151097ee4bd232eb18ebfbfc999dd551031a3e4f0ea8c41fecb43e18db67f8f8eaeae76cad2d4a70a1f8c36efb9269b84612ba714dac8b4a8eccae1423740be5a3510380c1393dbc843e19bfe919623e7f2d525cffeed31f1f085e1dcc60bd7317dae1f4d5dfa4a7afad3861eb72ef2c1dd29ec7e5a21700d177b7523d9d5bad775c8308a39d504bf044fca71949663dab579f4d4b34b5c88d8d5e6c459b65b67c725268f1d1000fa0bc858f8d9fe7e78eccc7a3d0744ce1d53e35ab206e6d77348d10c1ae0fb38ed0dff816c81e04b8d2415f187a2835231d1f963f66809379f";
// key PVMFW_KEY_0_31, nonce 64..6f, body = [1]*64 ‖ [2]*64 ‖ [3]*64 ‖ 2, no AAD:
//   (AESGCM(key).encrypt(nonce, body, None) + nonce).hex()
const PY_PVMFW_PAYLOAD: &str = "1ccb84b3c0ab48c5e23a172091edd639d4f72801cd59cecd8bb7dc01f0f7399273371dfec334f52a64168c21674143b353d3f4d8724f0ed139cbd6ed42e18eede9b7738db8ad9c98592efdaec40e0731e935e73a77a092055249f75e361c470564199030f1fcca99b6864c0fac3abbfd2d7a667fc4cef8a846327c432b87d87502e8619ef517ce4ed2fc32a6f5b577839cc962b11495b32378393c567d36531fb307a0c72ad76c671896b4494228b6cafd208c117525e8ded8b906873966fdc01106c8af2ef72926964c2c3344dac91a3e6465666768696a6b6c6d6e6f";

#[test]
fn reads_entries_sealed_by_python() {
    let mut img = fresh(4096);
    let pv = unhex(PY_PVMFW_PAYLOAD);
    assert_eq!(pv.len(), 221);
    img[512..1024].copy_from_slice(&header(&PVMFW_UUID, 221));
    img[1024..1024 + 221].copy_from_slice(&pv);
    let md = unhex(PY_MICRODROID_PAYLOAD);
    img[1536..2048].copy_from_slice(&header(&MICRODROID_UUID, md.len() as u64));
    img[2048..2048 + md.len()].copy_from_slice(&md);
    let mut image = InstanceImage::open(Cursor::new(img)).unwrap();
    let key = microdroid_key(&CDI);
    assert_eq!(
        image.read_microdroid_data(&key).unwrap(),
        Some(vector_record())
    );
    let e = image.read_pvmfw_entry(&pvmfw_key(&CDI)).unwrap().unwrap();
    assert_eq!(
        e,
        PvmfwEntry {
            code_hash: [1; 64],
            auth_hash: [2; 64],
            salt: [3; 64],
            mode: 2
        }
    );
}

// ---- host files ----

#[test]
fn create_instance_file_like_aosp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instance.img");
    create_instance_file(&path, DEFAULT_INSTANCE_SIZE).unwrap();
    let b = std::fs::read(&path).unwrap();
    assert_eq!(b.len() as u64, DEFAULT_INSTANCE_SIZE);
    assert_eq!(&b[..21], b"Android-VM-instance\x01\x00");
    assert!(b[21..].iter().all(|&x| x == 0));
    assert!(matches!(
        create_instance_file(&path, DEFAULT_INSTANCE_SIZE),
        Err(Error::Exists(p)) if p == path
    ));
    // Rounded up to 4 KiB.
    let path2 = dir.path().join("odd.img");
    create_instance_file(&path2, MIN_INSTANCE_SIZE + 1).unwrap();
    assert_eq!(
        std::fs::metadata(&path2).unwrap().len(),
        MIN_INSTANCE_SIZE + 4096
    );
    // Too small for the journal: refused, nothing created.
    let path3 = dir.path().join("small.img");
    assert!(matches!(
        create_instance_file(&path3, MIN_INSTANCE_SIZE - 1),
        Err(Error::TooSmall { size, min: MIN_INSTANCE_SIZE }) if size == MIN_INSTANCE_SIZE - 1
    ));
    assert!(!path3.exists());
    assert!(matches!(
        create_instance_file(&path3, u64::MAX),
        Err(Error::Overflow)
    ));
    assert!(!path3.exists());
}

#[test]
fn create_storage_file_like_aosp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storage.img");
    create_storage_file(&path, 5 * 1024 * 1024 + 1).unwrap();
    let b = std::fs::read(&path).unwrap();
    assert_eq!(b.len(), 5 * 1024 * 1024 + 4096);
    assert_eq!(&b[..19], b"UNFORMATTED-STORAGE");
    assert!(b[19..].iter().all(|&x| x == 0));
    assert!(matches!(
        create_storage_file(&path, 5 * 1024 * 1024),
        Err(Error::Exists(_))
    ));
    assert!(matches!(
        create_storage_file(&dir.path().join("s2.img"), 4096),
        Err(Error::TooSmall {
            size: 4096,
            min: MIN_STORAGE_SIZE
        })
    ));
}

#[test]
fn file_disk_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instance.img");
    create_instance_file(&path, DEFAULT_INSTANCE_SIZE).unwrap();
    let open = || {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        InstanceImage::open(f).unwrap()
    };
    let key = microdroid_key(&[9; 32]);
    let mut image = open();
    assert_eq!(image.disk_size(), DEFAULT_INSTANCE_SIZE);
    assert_eq!(image.read_microdroid_data(&key).unwrap(), None);
    image
        .write_microdroid_data(&key, &record(1, 64, 2))
        .unwrap();
    drop(image);
    let mut image = open();
    assert_eq!(
        image.read_microdroid_data(&key).unwrap(),
        Some(record(1, 64, 2))
    );
    image
        .write_microdroid_data(&key, &record(2, 64, 5))
        .unwrap();
    drop(image);
    assert_eq!(
        open().read_microdroid_data(&key).unwrap(),
        Some(record(2, 64, 5))
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        DEFAULT_INSTANCE_SIZE
    );
}

// ---- entries ----

fn image() -> InstanceImage<Cursor<Vec<u8>>> {
    InstanceImage::open(Cursor::new(fresh(MIN_INSTANCE_SIZE as usize))).unwrap()
}

fn bytes(image: InstanceImage<Cursor<Vec<u8>>>) -> Vec<u8> {
    image.into_inner().into_inner()
}

#[test]
fn microdroid_entry_layout_and_aead() {
    let key = microdroid_key(&CDI);
    let mut image = image();
    assert_eq!(image.read_microdroid_data(&key).unwrap(), None);
    image.write_microdroid_data(&key, &vector_record()).unwrap();
    let b = bytes(image);
    let n = unhex(VECTOR_HEX).len();
    let size = 12 + n + 16;
    assert_eq!(&b[512..528], &MICRODROID_UUID);
    assert_eq!(&b[528..536], &(size as u64).to_le_bytes());
    assert!(b[536..1024].iter().all(|&x| x == 0));
    // nonce ‖ ct ‖ tag with AAD = the header block, decrypted with the AEAD directly.
    let pt = Aes256Gcm::new((&key).into())
        .decrypt(
            Nonce::from_slice(&b[1024..1036]),
            aes_gcm::aead::Payload {
                msg: &b[1036..1024 + size],
                aad: &b[512..1024],
            },
        )
        .unwrap();
    assert_eq!(pt, unhex(VECTOR_HEX));
    // Padding and terminator are zero; nothing else was written.
    assert!(b[1024 + size..].iter().all(|&x| x == 0));
}

#[test]
fn nonce_is_fresh_on_every_write() {
    let key = [1; 32];
    let mut image = image();
    image.write_microdroid_data(&key, &vector_record()).unwrap();
    let before = bytes(image);
    let mut image = InstanceImage::open(Cursor::new(before.clone())).unwrap();
    image.write_microdroid_data(&key, &vector_record()).unwrap();
    let after = bytes(image);
    assert_ne!(&before[1024..1036], &after[1024..1036]);
    assert_eq!(&before[512..1024], &after[512..1024]);
}

#[test]
fn pvmfw_entry_round_trip_and_layout() {
    let key = pvmfw_key(&CDI);
    let entry = PvmfwEntry {
        code_hash: [0xc0; 64],
        auth_hash: [0xa0; 64],
        salt: [0x55; 64],
        mode: 1,
    };
    let mut image = InstanceImage::open(Cursor::new(fresh(4096))).unwrap();
    assert_eq!(image.read_pvmfw_entry(&key).unwrap(), None);
    image.write_pvmfw_entry(&key, &entry).unwrap();
    assert_eq!(image.read_pvmfw_entry(&key).unwrap(), Some(entry.clone()));
    assert!(matches!(
        image.read_pvmfw_entry(&[0; 32]),
        Err(Error::Decrypt)
    ));
    assert!(matches!(
        image.write_pvmfw_entry(&key, &entry),
        Err(Error::PvmfwEntryNotFirst)
    ));
    // microdroid_manager appends after it.
    let mkey = microdroid_key(&CDI);
    image
        .write_microdroid_data(&mkey, &vector_record())
        .unwrap();
    assert_eq!(image.read_pvmfw_entry(&key).unwrap(), Some(entry.clone()));
    let b = bytes(image);
    assert_eq!(&b[512..528], &PVMFW_UUID);
    assert_eq!(&b[528..536], &221u64.to_le_bytes());
    assert!(b[536..1024].iter().all(|&x| x == 0));
    assert!(b[1024 + 221..1536].iter().all(|&x| x == 0));
    // ciphertext(193) ‖ tag(16) ‖ nonce(12), no AAD (EVP_aead_aes_256_gcm_randnonce).
    let payload = &b[1024..1024 + 221];
    let body = Aes256Gcm::new((&key).into())
        .decrypt(Nonce::from_slice(&payload[209..]), &payload[..209])
        .unwrap();
    assert_eq!(body, entry.to_bytes());
    assert_eq!(&b[1536..1552], &MICRODROID_UUID);
    let mut image = InstanceImage::open(Cursor::new(b)).unwrap();
    assert_eq!(
        image.read_microdroid_data(&mkey).unwrap(),
        Some(vector_record())
    );
}

#[test]
fn pvmfw_entry_only_first() {
    let mut image = image();
    image
        .write_microdroid_data(&[1; 32], &vector_record())
        .unwrap();
    let entry = PvmfwEntry {
        code_hash: [0; 64],
        auth_hash: [0; 64],
        salt: [0; 64],
        mode: 0,
    };
    assert!(matches!(
        image.write_pvmfw_entry(&[2; 32], &entry),
        Err(Error::PvmfwEntryNotFirst)
    ));
}

#[test]
fn another_key_cannot_read_or_overwrite() {
    let mut image = image();
    image
        .write_microdroid_data(&[1; 32], &record(1, 64, 1))
        .unwrap();
    let before = bytes(image);
    let mut image = InstanceImage::open(Cursor::new(before.clone())).unwrap();
    assert!(matches!(
        image.read_microdroid_data(&[2; 32]),
        Err(Error::Decrypt)
    ));
    assert!(matches!(
        image.write_microdroid_data(&[2; 32], &record(2, 64, 1)),
        Err(Error::Decrypt)
    ));
    assert!(
        bytes(image) == before,
        "a failed read or write changed the image"
    );
}

#[test]
fn a_flipped_byte_anywhere_in_the_sealed_entry_is_detected_and_nothing_is_written() {
    let key = [3; 32];
    let mut image = image();
    image
        .write_microdroid_data(&key, &record(1, 64, 1))
        .unwrap();
    let good = bytes(image);
    let size = u64::from_le_bytes(good[528..536].try_into().unwrap()) as usize;
    for at in 512..1024 + size {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            let mut image = InstanceImage::open(Cursor::new(bad.clone())).unwrap();
            let r = image.read_microdroid_data(&key);
            match at - 512 {
                // The UUID: the entry is not there any more (AOSP: first boot; pvmfw and the
                // strict-boot checks catch that case on a pVM).
                0..=15 => assert!(
                    matches!(r, Ok(None) | Err(Error::Truncated { .. })),
                    "{at}: {r:?}"
                ),
                // The size: too large, past the end, or a different AAD.
                16..=23 => assert!(
                    matches!(
                        r,
                        Err(Error::Decrypt | Error::EntryTooLarge { .. } | Error::Truncated { .. })
                    ),
                    "{at}: {r:?}"
                ),
                _ => assert!(matches!(r, Err(Error::Decrypt)), "{at}: {r:?}"),
            }
            assert!(
                bytes(image) == bad,
                "byte {at}: the read wrote to the image"
            );
        }
    }
}

#[test]
fn updates_of_every_kind_read_back() {
    let key = [4; 32];
    let mut image = image();
    let sizes = [
        (64, 0),
        (64, 0),
        (64, 3),
        (2, 1),
        (64, 40),
        (0, 0),
        (64, 40),
    ];
    for (i, (salt, apexes)) in sizes.into_iter().enumerate() {
        let r = record(i as u8, salt, apexes);
        image.write_microdroid_data(&key, &r).unwrap();
        assert_eq!(image.read_microdroid_data(&key).unwrap(), Some(r.clone()));
        let b = bytes(image);
        // Journal retired; a nil terminator right after the entry; zeros up to the journal.
        assert!(b[JOURNAL_OFFSET as usize..][..512].iter().all(|&x| x == 0));
        let size = u64::from_le_bytes(b[528..536].try_into().unwrap()) as usize;
        let end = 1024 + size.next_multiple_of(512);
        assert!(
            b[1024 + size..JOURNAL_OFFSET as usize]
                .iter()
                .all(|&x| x == 0),
            "{i}"
        );
        assert!(end < JOURNAL_OFFSET as usize);
        image = InstanceImage::open(Cursor::new(b)).unwrap();
    }
}

#[test]
fn record_too_large_is_refused() {
    let mut image = image();
    let r = record(1, MAX_ENTRY_PAYLOAD as usize, 0);
    assert!(matches!(
        image.write_microdroid_data(&[1; 32], &r),
        Err(Error::EntryTooLarge {
            max: MAX_ENTRY_PAYLOAD,
            ..
        })
    ));
    // The largest record that fits is accepted and can be replaced by itself.
    let mut r = record(1, 0, 0);
    let base = r.to_cbor().unwrap().len();
    let room = MAX_ENTRY_PAYLOAD as usize - 28 - base;
    r.salt = vec![1; room - 2]; // the array header grows from 1 to 3 bytes
    assert_eq!(r.to_cbor().unwrap().len() + 28, MAX_ENTRY_PAYLOAD as usize);
    image.write_microdroid_data(&[1; 32], &r).unwrap();
    image.write_microdroid_data(&[1; 32], &r).unwrap();
    assert_eq!(image.read_microdroid_data(&[1; 32]).unwrap(), Some(r));
}

#[test]
fn size_change_needs_the_entry_to_be_last() {
    let key = [5; 32];
    let mut image = image();
    image
        .write_microdroid_data(&key, &record(1, 64, 0))
        .unwrap();
    let mut b = bytes(image);
    let size = u64::from_le_bytes(b[528..536].try_into().unwrap());
    let next = 1024 + size.next_multiple_of(512) as usize;
    let other = [0x77u8; 16];
    b[next..next + 512].copy_from_slice(&header(&other, 3));
    b[next + 512..next + 515].copy_from_slice(b"abc");
    let mut image = InstanceImage::open(Cursor::new(b.clone())).unwrap();
    assert!(matches!(
        image.write_microdroid_data(&key, &record(1, 64, 1)),
        Err(Error::SizeChangeNotLast { old, .. }) if old == size
    ));
    assert!(bytes(image) == b);
    // Same size: fine, and the following entry is untouched.
    let mut image = InstanceImage::open(Cursor::new(b.clone())).unwrap();
    image
        .write_microdroid_data(&key, &record(2, 64, 0))
        .unwrap();
    assert_eq!(
        image.read_microdroid_data(&key).unwrap(),
        Some(record(2, 64, 0))
    );
    let after = bytes(image);
    assert_eq!(&after[next..next + 1024], &b[next..next + 1024]);
}

#[test]
fn update_needs_room_for_the_journal() {
    let key = [6; 32];
    let mut image = InstanceImage::open(Cursor::new(fresh(64 * 1024))).unwrap();
    image
        .write_microdroid_data(&key, &record(1, 64, 0))
        .unwrap();
    assert!(matches!(
        image.write_microdroid_data(&key, &record(2, 64, 0)),
        Err(Error::TooSmall { size: 65536, .. })
    ));
    assert_eq!(
        image.read_microdroid_data(&key).unwrap(),
        Some(record(1, 64, 0))
    );
}

#[test]
fn first_write_needs_room_for_a_terminator() {
    let mut image = InstanceImage::open(Cursor::new(fresh(1024))).unwrap();
    assert_eq!(image.read_microdroid_data(&[1; 32]).unwrap(), None);
    assert!(matches!(
        image.write_microdroid_data(&[1; 32], &vector_record()),
        Err(Error::TooSmall { size: 1024, .. })
    ));
}

#[test]
fn open_rejects() {
    let check = |b: Vec<u8>| InstanceImage::open(Cursor::new(b)).err();
    assert!(matches!(
        check(b"Android-VM-instance\x01".to_vec()),
        Some(Error::Truncated { .. })
    ));
    assert!(matches!(check(vec![0; 4096]), Some(Error::BadMagic)));
    let mut b = fresh(4096);
    b[19] = 0;
    assert!(matches!(check(b.clone()), Some(Error::InvalidVersion)));
    b[19] = 0;
    b[20] = 1;
    assert!(matches!(check(b), Some(Error::UnsupportedVersion(256))));
    assert!(InstanceImage::open(Cursor::new(fresh(21))).is_ok());
}

#[test]
fn works_through_a_mutable_reference() {
    let mut disk = Cursor::new(fresh(8192));
    let mut image = InstanceImage::open(&mut disk).unwrap();
    image
        .write_microdroid_data(&[7; 32], &vector_record())
        .unwrap();
    let _ = image.into_inner();
    let mut image = InstanceImage::open(disk).unwrap();
    assert_eq!(
        image.read_microdroid_data(&[7; 32]).unwrap(),
        Some(vector_record())
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let e = Error::Exists("/x/instance.img".into()).to_string();
    assert!(e.contains("/x/instance.img") && e.contains("remove"), "{e}");
    let e = Error::Decrypt.to_string();
    assert!(e.contains("another key"), "{e}");
    let e = Error::TooSmall { size: 1, min: 2 }.to_string();
    assert!(e.contains("at least 2"), "{e}");
}

#[test]
fn malformed_journals_never_hide_a_good_entry() {
    let key = [8; 32];
    let mut image = image();
    image
        .write_microdroid_data(&key, &record(1, 64, 1))
        .unwrap();
    let good = bytes(image);
    let j = JOURNAL_OFFSET as usize;
    let values = [
        0u64,
        1,
        511,
        512,
        1024,
        1 << 20,
        1 << 40,
        u64::MAX - 511,
        u64::MAX,
    ];
    for size in values {
        for slot in values {
            for clear_end in [0, 4096, JOURNAL_OFFSET, u64::MAX] {
                let mut b = good.clone();
                b[j..j + 512].copy_from_slice(&header(&JOURNAL_UUID, size));
                b[j + 24..j + 32].copy_from_slice(&slot.to_le_bytes());
                b[j + 32..j + 40].copy_from_slice(&clear_end.to_le_bytes());
                b[j + 512..j + 1024]
                    .copy_from_slice(&header(&MICRODROID_UUID, size.wrapping_sub(512)));
                let ctx = format!("size {size} slot {slot} clear_end {clear_end}");
                let mut image = InstanceImage::open(Cursor::new(b.clone())).unwrap();
                assert_eq!(
                    image.read_microdroid_data(&key).unwrap(),
                    Some(record(1, 64, 1)),
                    "{ctx}"
                );
                let after = bytes(image);
                assert!(after[j..j + 512].iter().all(|&x| x == 0), "{ctx}");
                assert!(after[..j] == good[..j], "{ctx}");
                // With the entry torn: an error, and nothing written.
                b[1100] ^= 1;
                let mut image = InstanceImage::open(Cursor::new(b.clone())).unwrap();
                let r = image.read_microdroid_data(&key);
                assert!(
                    matches!(r, Err(Error::JournalCorrupt(_) | Error::Decrypt)),
                    "{ctx}: {r:?}"
                );
                assert!(bytes(image) == b, "{ctx}");
            }
        }
    }
}

/// The smallest size is accepted as is; a failure other than "exists" is reported as itself.
#[test]
fn create_files_at_the_minimum_size_and_in_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("min.img");
    create_instance_file(&path, MIN_INSTANCE_SIZE).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), MIN_INSTANCE_SIZE);
    let storage = dir.path().join("min-storage.img");
    create_storage_file(&storage, MIN_STORAGE_SIZE).unwrap();
    assert_eq!(std::fs::metadata(&storage).unwrap().len(), MIN_STORAGE_SIZE);
    let missing = dir.path().join("no-such-dir").join("instance.img");
    match create_instance_file(&missing, MIN_INSTANCE_SIZE) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// An entry sealing an empty plaintext is exactly nonce and tag (28 bytes): it decrypts, and
/// then fails as a record, not as a decryption.
#[test]
fn a_sealed_empty_record_decrypts_and_is_refused_as_cbor() {
    let key = [0x11u8; 32];
    let mut b = fresh(MIN_INSTANCE_SIZE as usize);
    put_microdroid(&mut b, 512, &key, &[], [3; 12]);
    let mut image = InstanceImage::open(Cursor::new(b)).unwrap();
    assert!(matches!(
        image.read_microdroid_data(&key),
        Err(Error::Cbor(_))
    ));
}

/// An image over `&mut` a disk flushes that disk: the barriers reach it.
#[test]
fn an_image_over_a_borrowed_disk_flushes_it() {
    let mut disk = RecDisk::new(fresh(MIN_INSTANCE_SIZE as usize));
    let mut image = InstanceImage::open(&mut disk).unwrap();
    image
        .write_microdroid_data(&[0x11; 32], &vector_record())
        .unwrap();
    let _ = image.into_inner();
    assert_eq!(
        disk.log.iter().filter(|op| matches!(op, Op::Flush)).count(),
        2,
        "payload, flush, header, flush"
    );
}

/// pvmfw's entry is followed by a zeroed block, the chain's terminator, whatever was there.
#[test]
fn a_pvmfw_entry_zeroes_the_block_after_it() {
    let mut b = fresh(MIN_INSTANCE_SIZE as usize);
    b[1536..2048].fill(0xff);
    let mut image = InstanceImage::open(Cursor::new(b)).unwrap();
    image
        .write_pvmfw_entry(
            &[0x11; 32],
            &PvmfwEntry {
                code_hash: [1; 64],
                auth_hash: [2; 64],
                salt: [3; 64],
                mode: 1,
            },
        )
        .unwrap();
    assert_eq!(image.read_microdroid_data(&[0x11; 32]).unwrap(), None);
    let b = bytes(image);
    assert!(b[1536..2048].iter().all(|&x| x == 0));
}

/// A first write leaves a zeroed block after its entry (the chain's new end), whatever was
/// there, and nothing after that is touched.
#[test]
fn a_first_write_zeroes_the_block_after_its_entry() {
    let mut b = fresh(MIN_INSTANCE_SIZE as usize);
    b[1024..JOURNAL_OFFSET as usize].fill(0xff);
    let record = vector_record();
    let payload = record.to_cbor().unwrap().len() as u64 + 28;
    let end = (1024 + payload.next_multiple_of(512)) as usize;
    let mut image = InstanceImage::open(Cursor::new(b)).unwrap();
    image.write_microdroid_data(&[0x11; 32], &record).unwrap();
    assert_eq!(
        image.read_microdroid_data(&[0x11; 32]).unwrap(),
        Some(record)
    );
    let b = bytes(image);
    assert!(b[end..end + 512].iter().all(|&x| x == 0));
    assert!(b[end + 512..end + 1024].iter().all(|&x| x == 0xff));
}

/// Sealed payload of `r` rounded up to whole blocks.
fn blocks(r: &MicrodroidData) -> u64 {
    (r.to_cbor().unwrap().len() as u64 + 28).next_multiple_of(512)
}

/// An image whose chain starts with a foreign entry at 512 so that the next slot is `slot`.
fn with_slot_at(size: usize, slot: u64) -> Vec<u8> {
    let mut b = fresh(size);
    b[512..1024].copy_from_slice(&header(&[0xab; 16], slot - 1024));
    b
}

const KEY: [u8; 32] = [0x11; 32];

/// Entries may come right up to the journal: a first write whose terminator ends at it, an
/// update whose cleared area ends at it, an entry that ends at it updated in place; one block
/// more is refused.
#[test]
fn entries_reach_the_journal_and_no_further() {
    let size = MIN_INSTANCE_SIZE as usize;
    let (small, big) = (record(1, 64, 1), record(2, 2000, 1));
    assert!(blocks(&big) > blocks(&small));
    // First write: header, payload, terminator end at the journal.
    let slot = JOURNAL_OFFSET - 1024 - blocks(&small);
    let mut image = InstanceImage::open(Cursor::new(with_slot_at(size, slot))).unwrap();
    image.write_microdroid_data(&KEY, &small).unwrap();
    assert_eq!(
        image.read_microdroid_data(&KEY).unwrap(),
        Some(small.clone())
    );
    let mut image = InstanceImage::open(Cursor::new(with_slot_at(size, slot + 512))).unwrap();
    assert!(matches!(
        image.write_microdroid_data(&KEY, &small),
        Err(Error::NoFreeSlot)
    ));
    // Growing update: the new entry and its terminator end at the journal.
    let slot = JOURNAL_OFFSET - 1024 - blocks(&big);
    let mut image = InstanceImage::open(Cursor::new(with_slot_at(size, slot))).unwrap();
    image.write_microdroid_data(&KEY, &small).unwrap();
    image.write_microdroid_data(&KEY, &big).unwrap();
    assert_eq!(image.read_microdroid_data(&KEY).unwrap(), Some(big.clone()));
    let mut image = InstanceImage::open(Cursor::new(with_slot_at(size, slot + 512))).unwrap();
    image.write_microdroid_data(&KEY, &small).unwrap();
    assert!(matches!(
        image.write_microdroid_data(&KEY, &big),
        Err(Error::NoFreeSlot)
    ));
    // An entry ending exactly at the journal (no terminator of its own) updated in place.
    let slot = JOURNAL_OFFSET - 512 - blocks(&small);
    let mut b = with_slot_at(size, slot);
    put_microdroid(
        &mut b,
        slot as usize,
        &KEY,
        &small.to_cbor().unwrap(),
        [9; 12],
    );
    let mut image = InstanceImage::open(Cursor::new(b)).unwrap();
    assert_eq!(
        image.read_microdroid_data(&KEY).unwrap(),
        Some(small.clone())
    );
    let same_size = record(2, 64, 1);
    assert_eq!(blocks(&same_size), blocks(&small));
    image.write_microdroid_data(&KEY, &same_size).unwrap();
    assert_eq!(image.read_microdroid_data(&KEY).unwrap(), Some(same_size));
}

/// A disk exactly as large as a write needs is large enough: a first write's terminator, an
/// update's journal; one byte less is too small.
#[test]
fn a_disk_exactly_as_large_as_needed_is_enough() {
    let r = record(1, 64, 1);
    let needed = (1024 + blocks(&r) + 512) as usize;
    let mut image = InstanceImage::open(Cursor::new(fresh(needed))).unwrap();
    image.write_microdroid_data(&KEY, &r).unwrap();
    let mut image = InstanceImage::open(Cursor::new(fresh(needed - 1))).unwrap();
    assert!(matches!(
        image.write_microdroid_data(&KEY, &r),
        Err(Error::TooSmall { min, .. }) if min == needed as u64
    ));
    let journal_end = JOURNAL_OFFSET + 1024 + blocks(&r);
    for (size, fits) in [(journal_end, true), (journal_end - 1, false)] {
        let mut image = InstanceImage::open(Cursor::new(fresh(size as usize))).unwrap();
        image.write_microdroid_data(&KEY, &r).unwrap();
        let update = image.write_microdroid_data(&KEY, &record(2, 64, 1));
        if fits {
            update.unwrap();
        } else {
            assert!(matches!(update, Err(Error::TooSmall { min, .. }) if min == journal_end));
        }
    }
}

/// A record of exactly the largest size decodes; one byte more is refused before decoding.
#[test]
fn a_record_of_exactly_the_largest_size_decodes() {
    let max = MAX_ENTRY_PAYLOAD as usize;
    let mut r = record(1, 0, 0);
    let base = r.to_cbor().unwrap().len();
    r.salt = vec![0; max - base - 4];
    while r.to_cbor().unwrap().len() < max {
        r.salt.push(0);
    }
    let bytes = r.to_cbor().unwrap();
    assert_eq!(bytes.len(), max);
    assert_eq!(MicrodroidData::from_cbor(&bytes).unwrap(), r);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        MicrodroidData::from_cbor(&longer),
        Err(Error::EntryTooLarge { size, .. }) if size == MAX_ENTRY_PAYLOAD + 1
    ));
}
