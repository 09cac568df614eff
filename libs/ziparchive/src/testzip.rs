//! Test helpers: a hand-rolled zip writer with knobs to produce malformed archives, and a wrapper
//! around the `zip` crate's writer (an independent implementation) for well-formed ones.

use std::io::{Cursor, Write};

/// Deflates `data` (raw deflate, level 6).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// One member as it will be written.
#[derive(Clone, Debug)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub method: u16,
    pub crc: u32,
    pub size: u64,
    pub csize: u64,
    pub payload: Vec<u8>,
    pub mode: Option<u32>,
    /// Name written in the local header (defaults to `name`).
    pub local_name: Option<Vec<u8>>,
    /// CRC written in the local header (defaults to `crc`).
    pub local_crc: Option<u32>,
    /// Central-directory local-header offset override.
    pub lho_override: Option<u64>,
    /// Write the sizes and offset as zip64.
    pub zip64: bool,
    /// More bytes for the local header's extra field, after the zip64 one.
    pub local_extra: Vec<u8>,
}

/// A zip writer with knobs for malformed output.
#[derive(Default)]
pub struct ZipBuilder {
    pub entries: Vec<RawEntry>,
    /// Entry count written in the EOCD (defaults to the real count).
    pub count_override: Option<u64>,
    /// Central-directory offset written in the EOCD.
    pub cd_offset_override: Option<u64>,
    /// Central-directory size written in the EOCD.
    pub cd_size_override: Option<u64>,
    /// Write zip64 end records.
    pub zip64_end: bool,
}

impl ZipBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, method: u16, data: &[u8], payload: Vec<u8>) -> &mut RawEntry {
        self.entries.push(RawEntry {
            name: name.as_bytes().to_vec(),
            method,
            crc: crc32fast::hash(data),
            size: data.len() as u64,
            csize: payload.len() as u64,
            payload,
            mode: Some(0o100644),
            local_name: None,
            local_crc: None,
            lho_override: None,
            zip64: false,
            local_extra: Vec::new(),
        });
        let i = self.entries.len() - 1;
        &mut self.entries[i]
    }

    pub fn stored(&mut self, name: &str, data: &[u8]) -> &mut RawEntry {
        self.push(name, 0, data, data.to_vec())
    }

    pub fn deflated(&mut self, name: &str, data: &[u8]) -> &mut RawEntry {
        self.push(name, 8, data, deflate(data))
    }

    pub fn patch_method(&mut self, index: usize, method: u16) {
        self.entries[index].method = method;
    }

    /// Writes the archive.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for e in &self.entries {
            offsets.push(out.len() as u64);
            let lname = e.local_name.as_ref().unwrap_or(&e.name);
            let mut extra = Vec::new();
            if e.zip64 {
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&16u16.to_le_bytes());
                extra.extend_from_slice(&e.size.to_le_bytes());
                extra.extend_from_slice(&e.csize.to_le_bytes());
            }
            extra.extend_from_slice(&e.local_extra);
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&(if e.zip64 { 45u16 } else { 20 }).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // flags
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // time
            out.extend_from_slice(&0x5821u16.to_le_bytes()); // date 2024-01-01
            out.extend_from_slice(&e.local_crc.unwrap_or(e.crc).to_le_bytes());
            let (cs, us) = if e.zip64 {
                (u32::MAX, u32::MAX)
            } else {
                (e.csize as u32, e.size as u32)
            };
            out.extend_from_slice(&cs.to_le_bytes());
            out.extend_from_slice(&us.to_le_bytes());
            out.extend_from_slice(&(lname.len() as u16).to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(lname);
            out.extend_from_slice(&extra);
            out.extend_from_slice(&e.payload);
        }
        let cd_offset = out.len() as u64;
        for (e, &lho) in self.entries.iter().zip(&offsets) {
            let lho = e.lho_override.unwrap_or(lho);
            let mut extra = Vec::new();
            if e.zip64 {
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&24u16.to_le_bytes());
                extra.extend_from_slice(&e.size.to_le_bytes());
                extra.extend_from_slice(&e.csize.to_le_bytes());
                extra.extend_from_slice(&lho.to_le_bytes());
            }
            out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            let made_by: u16 = if e.mode.is_some() { 0x0314 } else { 0x0014 };
            out.extend_from_slice(&made_by.to_le_bytes());
            out.extend_from_slice(&(if e.zip64 { 45u16 } else { 20 }).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&0x5821u16.to_le_bytes());
            out.extend_from_slice(&e.crc.to_le_bytes());
            let (cs, us, lh) = if e.zip64 {
                (u32::MAX, u32::MAX, u32::MAX)
            } else {
                (e.csize as u32, e.size as u32, lho as u32)
            };
            out.extend_from_slice(&cs.to_le_bytes());
            out.extend_from_slice(&us.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // comment
            out.extend_from_slice(&0u16.to_le_bytes()); // disk
            out.extend_from_slice(&0u16.to_le_bytes()); // internal
            out.extend_from_slice(&(e.mode.unwrap_or(0) << 16).to_le_bytes());
            out.extend_from_slice(&lh.to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&extra);
        }
        let cd_size = self
            .cd_size_override
            .unwrap_or(out.len() as u64 - cd_offset);
        let cd_offset = self.cd_offset_override.unwrap_or(cd_offset);
        let count = self.count_override.unwrap_or(self.entries.len() as u64);
        if self.zip64_end {
            let z64 = out.len() as u64;
            out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&cd_size.to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&z64.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        let c16 = if self.zip64_end {
            0xffff
        } else {
            count.min(0xffff) as u16
        };
        out.extend_from_slice(&c16.to_le_bytes());
        out.extend_from_slice(&c16.to_le_bytes());
        let (s32, o32) = if self.zip64_end {
            (u32::MAX, u32::MAX)
        } else {
            (cd_size as u32, cd_offset as u32)
        };
        out.extend_from_slice(&s32.to_le_bytes());
        out.extend_from_slice(&o32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// Writes an archive with the `zip` crate: `(name, data, deflated)` triples, mode 0644.
pub fn zip_crate_archive(files: &[(&str, Vec<u8>, bool)], zip64: bool) -> Vec<u8> {
    let files: Vec<(&str, &[u8], bool, u32)> = files
        .iter()
        .map(|(name, data, deflated)| (*name, data.as_slice(), *deflated, 0o644))
        .collect();
    zip_crate_archive_with_modes(&files, zip64)
}

/// Writes an archive with the `zip` crate: `(name, data, deflated, unix mode)`; zip64 records
/// when asked or when an entry needs them.
pub fn zip_crate_archive_with_modes(files: &[(&str, &[u8], bool, u32)], zip64: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, deflated, mode) in files {
        let method = if *deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(*mode)
            .large_file(zip64 || data.len() > (1 << 30));
        if name.ends_with('/') {
            let _ = w.add_directory(*name, opts);
        } else {
            let _ = w.start_file(*name, opts);
            let _ = w.write_all(data);
        }
    }
    w.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// Deterministic log-like text.
fn corpus_text(len: usize) -> Vec<u8> {
    let mut s: u32 = 0x1234_5678;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        out.push(if s.is_multiple_of(29) {
            b'\n'
        } else {
            b'a' + (s % 11) as u8
        });
    }
    out
}

/// The bad-zip corpus in `testdata/bad/`: (file name, bytes, how it was made).
pub fn bad_corpus() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut v = Vec::new();

    let mut b = ZipBuilder::new();
    b.stored("a.txt", b"hello");
    b.deflated("b.txt", &corpus_text(5000));
    let good = b.finish();
    v.push((
        "truncated.zip",
        good[..good.len() / 2].to_vec(),
        "a valid two-entry archive cut in half: no end record",
    ));

    let mut b = ZipBuilder::new();
    b.deflated("log.txt", &corpus_text(20000)).crc ^= 0xdead_beef;
    v.push((
        "bad_crc.zip",
        b.finish(),
        "deflated entry whose CRC-32 (central and local) does not match its bytes",
    ));

    let mut b = ZipBuilder::new();
    b.stored("data.bin", &corpus_text(3000)).crc ^= 1;
    v.push((
        "bad_crc_stored.zip",
        b.finish(),
        "stored entry whose CRC-32 does not match its bytes",
    ));

    // Entry "outer" stores, inside its data, a complete local header and data of entry "inner";
    // the central directory lists both (the overlapping-file zip bomb construction).
    let mut inner = ZipBuilder::new();
    inner.stored("inner", b"inner data");
    let inner_zip = inner.finish();
    let inner_local_len = 30 + 5 + 10;
    let mut outer_payload = b"pad!".to_vec();
    outer_payload.extend_from_slice(&inner_zip[..inner_local_len]);
    let mut b = ZipBuilder::new();
    b.stored("outer", &outer_payload);
    let outer_data_start = 30 + 5;
    let mut e = b.entries[0].clone();
    e.name = b"inner".to_vec();
    e.crc = crc32fast::hash(b"inner data");
    e.size = 10;
    e.csize = 10;
    e.payload = Vec::new();
    e.lho_override = Some((outer_data_start + 4) as u64);
    b.entries.push(e);
    // The second entry writes no local bytes of its own (payload empty, local header skipped
    // below by writing it as part of outer's data), so build by hand:
    let mut z = ZipBuilder::new();
    z.entries.push(b.entries[0].clone());
    let mut bytes = z.finish();
    // Re-emit with both central records: rebuild the central directory.
    let cd_off = 30 + 5 + outer_payload.len();
    bytes.truncate(cd_off);
    let mut both = ZipBuilder::new();
    both.entries = b.entries.clone();
    let full = both.finish();
    // `full` has outer's local+data, then an extra local header for the empty "inner" entry,
    // then the central directory; drop that extra local header and fix the offsets.
    let extra_local = 30 + 5;
    let cd_start_full = cd_off + extra_local;
    let mut cd = full[cd_start_full..].to_vec();
    // Patch the EOCD central-directory offset (last 22 bytes: offset at +16).
    let eocd = cd.len() - 22;
    cd[eocd + 16..eocd + 20].copy_from_slice(&(cd_off as u32).to_le_bytes());
    bytes.extend_from_slice(&cd);
    v.push((
        "overlapping_entries.zip",
        bytes,
        "entry 'inner' has its local header and data inside the data of entry 'outer'",
    ));

    let mut b = ZipBuilder::new();
    b.stored("same.txt", b"one");
    b.stored("same.txt", b"two");
    v.push((
        "duplicate_names.zip",
        b.finish(),
        "two entries named same.txt",
    ));

    let mut b = ZipBuilder::new();
    b.stored("../../etc/passwd", b"root::0:0::/:/bin/sh\n");
    v.push(("traversal.zip", b.finish(), "entry named ../../etc/passwd"));

    let mut b = ZipBuilder::new();
    b.stored("/etc/passwd", b"root::0:0::/:/bin/sh\n");
    v.push(("absolute_path.zip", b.finish(), "entry named /etc/passwd"));

    let mut b = ZipBuilder::new();
    let e = b.deflated("bomb.bin", &[0u8; 4096]);
    e.size = 1 << 40;
    e.zip64 = true;
    v.push((
        "zip_bomb.zip",
        b.finish(),
        "deflated entry of 40 compressed bytes claiming 1 TiB (zip64 sizes)",
    ));

    let mut b = ZipBuilder::new();
    b.stored("a", b"a");
    b.zip64_end = true;
    b.count_override = Some(1 << 40);
    v.push((
        "huge_entry_count.zip",
        b.finish(),
        "zip64 end record declaring 2^40 entries",
    ));

    let mut b = ZipBuilder::new();
    b.stored("a", b"a");
    b.count_override = Some(0xfffe);
    v.push((
        "entry_count_exceeds_directory.zip",
        b.finish(),
        "end record declaring 65534 entries for a 47-byte central directory",
    ));

    let mut b = ZipBuilder::new();
    b.stored("a", b"a");
    b.cd_offset_override = Some(0x7fff_0000);
    v.push((
        "central_directory_past_eof.zip",
        b.finish(),
        "central directory offset 0x7fff0000, far past the end of the file",
    ));

    let mut b = ZipBuilder::new();
    b.stored("good.txt", b"x").local_name = Some(b"evil.txt".to_vec());
    v.push((
        "local_header_mismatch.zip",
        b.finish(),
        "local header names evil.txt, the central directory good.txt",
    ));

    let mut b = ZipBuilder::new();
    b.stored("a", b"file");
    b.stored("a/b", b"under a file");
    v.push((
        "file_dir_conflict.zip",
        b.finish(),
        "a is a file and also the parent of a/b",
    ));

    let mut b = ZipBuilder::new();
    b.stored("x.bz2", b"BZh9");
    b.patch_method(0, 12);
    v.push((
        "unsupported_method.zip",
        b.finish(),
        "entry with compression method 12 (bzip2)",
    ));

    let mut b = ZipBuilder::new();
    let e = b.deflated("c.txt", &corpus_text(30000));
    for x in e.payload.iter_mut().skip(200).step_by(5) {
        *x ^= 0x5a;
    }
    v.push((
        "corrupt_deflate.zip",
        b.finish(),
        "deflated entry with every 5th compressed byte after the 200th flipped",
    ));

    let mut b = ZipBuilder::new();
    b.stored("big", b"abc").csize = 1000;
    let e = &mut b.entries[0];
    e.size = 1000;
    v.push((
        "entry_out_of_bounds.zip",
        b.finish(),
        "stored entry claiming 1000 bytes where only 3 precede the central directory",
    ));

    v
}
