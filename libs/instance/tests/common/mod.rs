//! Shared test helpers: an in-memory disk that records its writes sector by sector, image
//! builders and deterministic sealing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Seek, SeekFrom, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use instance::*;

pub const SECTOR: usize = 512;

/// One step of the write sequence as the disk sees it.
#[derive(Clone, Debug)]
pub enum Op {
    /// The whole 512-byte sector `lba` with its new content.
    Sector(u64, Box<[u8; SECTOR]>),
    /// `flush_to_media`: everything before it is durable before anything after it.
    Flush,
}

/// An in-memory disk recording every write as whole-sector writes.
#[derive(Clone)]
pub struct RecDisk {
    pub data: Vec<u8>,
    pos: u64,
    pub log: Vec<Op>,
}

impl RecDisk {
    pub fn new(data: Vec<u8>) -> Self {
        Self {
            data,
            pos: 0,
            log: Vec::new(),
        }
    }
}

impl Read for RecDisk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = (self.pos as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for RecDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let start = self.pos as usize;
        let end = start + buf.len();
        assert!(end <= self.data.len(), "write past the end of the disk");
        self.data[start..end].copy_from_slice(buf);
        if !buf.is_empty() {
            for lba in start / SECTOR..=(end - 1) / SECTOR {
                let mut sector = Box::new([0u8; SECTOR]);
                sector.copy_from_slice(&self.data[lba * SECTOR..(lba + 1) * SECTOR]);
                self.log.push(Op::Sector(lba as u64, sector));
            }
        }
        self.pos = end as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for RecDisk {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => (self.data.len() as i64 + d) as u64,
            SeekFrom::Current(d) => (self.pos as i64 + d) as u64,
        };
        Ok(self.pos)
    }
}

impl Disk for RecDisk {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        self.log.push(Op::Flush);
        Ok(())
    }
}

/// Applies the sector writes of `ops` to `data`.
pub fn apply(data: &mut [u8], ops: &[Op]) {
    for op in ops {
        if let Op::Sector(lba, sector) = op {
            let at = *lba as usize * SECTOR;
            data[at..at + SECTOR].copy_from_slice(&sector[..]);
        }
    }
}

/// A fresh image of `size` bytes as `create_instance_file` makes it.
pub fn fresh(size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    b[..19].copy_from_slice(MAGIC);
    b[19..21].copy_from_slice(&VERSION.to_le_bytes());
    b
}

pub fn open(data: Vec<u8>) -> InstanceImage<RecDisk> {
    InstanceImage::open(RecDisk::new(data)).unwrap()
}

pub fn header(uuid: &[u8; 16], size: u64) -> [u8; SECTOR] {
    let mut b = [0u8; SECTOR];
    b[..16].copy_from_slice(uuid);
    b[16..24].copy_from_slice(&size.to_le_bytes());
    b
}

/// microdroid payload with a fixed nonce: nonce ‖ ciphertext ‖ tag, AAD = header block.
pub fn seal_microdroid(key: &[u8; 32], header: &[u8], pt: &[u8], nonce: [u8; 12]) -> Vec<u8> {
    let ct = Aes256Gcm::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: pt,
                aad: header,
            },
        )
        .unwrap();
    [&nonce[..], &ct].concat()
}

/// Puts a microdroid entry with plaintext `pt` sealed under `key` at `slot`.
pub fn put_microdroid(image: &mut [u8], slot: usize, key: &[u8; 32], pt: &[u8], nonce: [u8; 12]) {
    let h = header(&MICRODROID_UUID, (pt.len() + 28) as u64);
    let payload = seal_microdroid(key, &h, pt, nonce);
    image[slot..slot + SECTOR].copy_from_slice(&h);
    image[slot + SECTOR..slot + SECTOR + payload.len()].copy_from_slice(&payload);
}

/// The record of the serde_cbor vector in docs/formats/instance-image.md.
pub fn vector_record() -> MicrodroidData {
    MicrodroidData {
        salt: vec![0, 0],
        apk_data: ApkData {
            root_hash: vec![1, 200],
            cert_hash: vec![3],
            package_name: "com.x".into(),
            version_code: 7,
        },
        extra_apks_data: vec![],
        apex_data: vec![ApexData {
            name: "com.android.art".into(),
            manifest_name: None,
            manifest_version: Some(1),
            public_key: vec![9],
            root_digest: vec![10],
            last_update_seconds: 1000,
            is_factory: true,
        }],
    }
}

/// serde_cbor 0.11's bytes for [`vector_record`] (docs/formats/instance-image.md).
pub const VECTOR_HEX: &str = "a46473616c748200006861706b5f64617461a469726f6f745f68617368820118c869636572745f6861736881036c7061636b6167655f6e616d6565636f6d2e786c76657273696f6e5f636f6465076f65787472615f61706b735f646174618069617065785f6461746181a7646e616d656f636f6d2e616e64726f69642e6172746d6d616e69666573745f6e616d65f6706d616e69666573745f76657273696f6e016a7075626c69635f6b657981096b726f6f745f646967657374810a736c6173745f7570646174655f7365636f6e64731903e86a69735f666163746f7279f5";

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A realistic record whose encoded size grows with `salt_len` and `apexes`.
pub fn record(tag: u8, salt_len: usize, apexes: usize) -> MicrodroidData {
    MicrodroidData {
        salt: vec![tag; salt_len],
        apk_data: ApkData {
            root_hash: vec![tag; 32],
            cert_hash: vec![tag.wrapping_add(1); 64],
            package_name: format!("com.example.app{tag}"),
            version_code: u64::from(tag) << 32 | 3,
        },
        extra_apks_data: vec![],
        apex_data: (0..apexes)
            .map(|i| ApexData {
                name: format!("com.android.apex{i}"),
                manifest_name: Some(format!("com.android.apex{i}")),
                manifest_version: Some(i as i64 - 1),
                public_key: vec![tag; 520],
                root_digest: vec![i as u8; 32],
                last_update_seconds: 1_700_000_000 + i as u64,
                is_factory: i % 2 == 0,
            })
            .collect(),
    }
}

/// The fixed key of `instance::fuzz_entry` (corpus entries are sealed under it).
pub const FUZZ_KEY: [u8; 32] = [0x5a; 32];
