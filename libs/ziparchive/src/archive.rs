//! Zip central-directory parser for untrusted archives.
//!
//! [`parse`] is the whole check; [`find_end_record`] and [`read_central_directory`] are its first
//! two steps, for readers that need the archive's sections rather than its entries (the APK
//! signature covers the entries, the central directory and the end record separately).
//!
//! Everything is read with positioned reads from a [`Source`], every size is checked with checked
//! arithmetic against the archive length before anything is allocated, and every entry's local
//! header is cross-checked against its central-directory record. The result is a flat list of
//! [`Entry`] values with the absolute offset of each entry's data, so that the filesystem never
//! has to look at a local header again.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::ZipError;

/// Largest number of entries accepted (memory bound for the inode table: about 100 bytes each).
pub const MAX_ENTRIES: u64 = 1 << 20;
/// Largest central directory accepted, in bytes.
pub const MAX_CENTRAL_DIRECTORY: u64 = 256 << 20;
/// Most zero bytes accepted after the end-of-central-directory record (block-device padding).
pub const MAX_TRAILING_PADDING: u64 = 1 << 20;
/// Deflate cannot expand more than 1032:1 (258-byte matches coded in 2 bits); any entry claiming
/// more (beyond a small constant for tiny entries) lies about its size.
pub const MAX_DEFLATE_RATIO: u64 = 1032;
/// Slack added to the ratio check for tiny entries.
pub const RATIO_SLACK: u64 = 1024;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: u64 = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: u64 = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: u64 = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const MAX_COMMENT: u64 = 0xffff;

/// Flag bit 0: the entry is encrypted.
const FLAG_ENCRYPTED: u16 = 1 << 0;
/// Flag bit 3: crc and sizes are in a data descriptor after the data.
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// Flag bit 6: strong encryption.
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;

/// A byte source that supports positioned reads (a file, a block device, or memory).
pub trait Source {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset` or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset = offset.saturating_add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(avail) = self.get(start..) else {
            return Ok(0);
        };
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }
}

impl Source for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

/// Compression method of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Method 0: bytes stored as they are.
    Stored,
    /// Method 8: raw deflate stream.
    Deflated,
}

/// One archive member, as validated at mount time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The raw name bytes from the central directory.
    pub name: Vec<u8>,
    /// Compression method.
    pub method: Method,
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Size of the stored or compressed bytes.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Offset of the local header.
    pub local_header_offset: u64,
    /// Absolute offset of the first data byte (after the local header, name and extra field).
    pub data_offset: u64,
    /// Unix mode from the external attributes, when the entry was made on Unix and has one.
    pub unix_mode: Option<u32>,
}

impl Entry {
    /// Whether the name marks a directory (`name/`).
    pub fn is_dir(&self) -> bool {
        self.name.last() == Some(&b'/')
    }

    /// The name for messages.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A validated archive: its entries in central-directory order.
#[derive(Debug, Default)]
pub struct Archive {
    /// Entries, in central-directory order.
    pub entries: Vec<Entry>,
    /// Offset of the central directory (end of the entries' data region).
    pub central_directory_offset: u64,
}

/// Little-endian field reader over a byte slice; every read is bounds-checked.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> ZipError {
    move |source| ZipError::Io { what, source }
}

/// The end-of-central-directory record, with the zip64 values resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndRecord {
    /// Number of entries in the central directory.
    pub entries: u64,
    /// Size of the central directory in bytes.
    pub cd_size: u64,
    /// Offset of the central directory.
    pub cd_offset: u64,
    /// Where the central directory must end (the zip64 end record, or the EOCD record).
    pub cd_end_limit: u64,
    /// Offset of the end-of-central-directory record.
    pub eocd_offset: u64,
    /// The end-of-central-directory record's bytes, comment included.
    pub eocd: Vec<u8>,
    /// Whether the archive has zip64 end records.
    pub zip64: bool,
}

impl EndRecord {
    /// End of the archive proper (the end of the EOCD comment); only zero padding may follow.
    pub fn archive_end(&self) -> u64 {
        self.eocd_offset.saturating_add(self.eocd.len() as u64)
    }
}

/// Parses and validates the archive in `src`, whose length is `len` bytes.
///
/// Refuses (with a specific [`ZipError`]) multi-disk archives, encrypted entries, methods other
/// than stored and deflate, entries whose local header disagrees with the central directory,
/// entries outside the data region, overlapping entries, stored entries whose two sizes differ
/// and deflated entries claiming an impossible compression ratio.
pub fn parse<S: Source + ?Sized>(src: &S, len: u64) -> Result<Archive, ZipError> {
    let end = find_end_record(src, len)?;
    let entries = read_central_directory(src, &end)?;
    let mut entries = entries;
    for e in &mut entries {
        check_local_header(src, e)?;
    }
    check_layout(&entries, end.cd_offset)?;
    Ok(Archive {
        entries,
        central_directory_offset: end.cd_offset,
    })
}

/// Finds the end-of-central-directory record of the archive in `src` (`len` bytes): the last
/// one whose comment reaches the last non-zero byte, so that at most [`MAX_TRAILING_PADDING`]
/// zero bytes follow it (a block device rounds the archive up to its block size), and resolves
/// its zip64 records. Refuses multi-disk archives and inconsistent zip64 records.
pub fn find_end_record<S: Source + ?Sized>(src: &S, len: u64) -> Result<EndRecord, ZipError> {
    if len < EOCD_LEN {
        return Err(ZipError::NoEndOfCentralDirectory);
    }
    // The tail that can hold the EOCD record, its comment and any zero padding.
    let window = len.min(EOCD_LEN + MAX_COMMENT + MAX_TRAILING_PADDING);
    let start = len - window;
    let mut tail =
        vec![0u8; usize::try_from(window).map_err(|_| ZipError::NoEndOfCentralDirectory)?];
    src.read_exact_at(&mut tail, start)
        .map_err(io_err("reading the end of the archive"))?;
    let Some(last_nonzero) = tail.iter().rposition(|&b| b != 0) else {
        return Err(ZipError::NoEndOfCentralDirectory);
    };
    if tail.len() - 1 - last_nonzero > MAX_TRAILING_PADDING as usize {
        return Err(ZipError::NoEndOfCentralDirectory);
    }
    // Scan candidates backwards; the record (with its comment) must cover the last non-zero
    // byte, so that only zero padding may follow it.
    let mut p = last_nonzero.saturating_sub(3);
    loop {
        if let Some(sig) = tail.get(p..p + 4) {
            if u32::from_le_bytes([sig[0], sig[1], sig[2], sig[3]]) == EOCD_SIG {
                if let Some(rec) = tail.get(p..p + EOCD_LEN as usize) {
                    let comment_len = u16::from_le_bytes([rec[20], rec[21]]) as usize;
                    let rec_end = p + EOCD_LEN as usize + comment_len;
                    if rec_end > last_nonzero && rec_end <= tail.len() {
                        return parse_end_record(src, &tail[p..rec_end], start + p as u64);
                    }
                }
            }
        }
        if p == 0 || last_nonzero - p > (EOCD_LEN + MAX_COMMENT) as usize {
            return Err(ZipError::NoEndOfCentralDirectory);
        }
        p -= 1;
    }
}

fn parse_end_record<S: Source + ?Sized>(
    src: &S,
    eocd: &[u8],
    eocd_offset: u64,
) -> Result<EndRecord, ZipError> {
    let mut f = Fields::new(eocd);
    let bad = || ZipError::NoEndOfCentralDirectory;
    let _sig = f.u32().ok_or_else(bad)?;
    let disk = f.u16().ok_or_else(bad)?;
    let cd_disk = f.u16().ok_or_else(bad)?;
    let entries_here = f.u16().ok_or_else(bad)?;
    let entries = f.u16().ok_or_else(bad)?;
    let cd_size = f.u32().ok_or_else(bad)?;
    let cd_offset = f.u32().ok_or_else(bad)?;

    let needs_zip64 = disk == 0xffff
        || cd_disk == 0xffff
        || entries_here == 0xffff
        || entries == 0xffff
        || cd_size == 0xffff_ffff
        || cd_offset == 0xffff_ffff;

    // A zip64 locator directly precedes the EOCD record when the archive is zip64.
    let mut locator = [0u8; ZIP64_LOCATOR_LEN as usize];
    let has_locator = match eocd_offset.checked_sub(ZIP64_LOCATOR_LEN) {
        Some(loc_off) => {
            src.read_exact_at(&mut locator, loc_off)
                .map_err(io_err("reading the zip64 locator"))?;
            u32::from_le_bytes([locator[0], locator[1], locator[2], locator[3]])
                == ZIP64_LOCATOR_SIG
        }
        None => false,
    };
    if !has_locator {
        if needs_zip64 {
            return Err(ZipError::BadZip64(
                "EOCD fields are saturated but there is no zip64 locator",
            ));
        }
        if disk != 0 || cd_disk != 0 || entries_here != entries {
            return Err(ZipError::MultiDisk);
        }
        return Ok(EndRecord {
            entries: u64::from(entries),
            cd_size: u64::from(cd_size),
            cd_offset: u64::from(cd_offset),
            cd_end_limit: eocd_offset,
            eocd_offset,
            eocd: eocd.to_vec(),
            zip64: false,
        });
    }

    let loc_off = eocd_offset - ZIP64_LOCATOR_LEN;
    let mut lf = Fields::new(&locator);
    let bad64 = || ZipError::BadZip64("truncated locator");
    let _ = lf.u32().ok_or_else(bad64)?;
    let z64_disk = lf.u32().ok_or_else(bad64)?;
    let z64_offset = lf.u64().ok_or_else(bad64)?;
    let total_disks = lf.u32().ok_or_else(bad64)?;
    if z64_disk != 0 || total_disks > 1 {
        return Err(ZipError::MultiDisk);
    }
    match z64_offset.checked_add(ZIP64_EOCD_LEN) {
        Some(e) if e <= loc_off => {}
        _ => {
            return Err(ZipError::BadZip64(
                "zip64 end record is not before its locator",
            ))
        }
    }
    let mut z = [0u8; ZIP64_EOCD_LEN as usize];
    src.read_exact_at(&mut z, z64_offset)
        .map_err(io_err("reading the zip64 end record"))?;
    let mut zf = Fields::new(&z);
    let badrec = || ZipError::BadZip64("truncated zip64 end record");
    if zf.u32().ok_or_else(badrec)? != ZIP64_EOCD_SIG {
        return Err(ZipError::BadZip64("zip64 end record signature"));
    }
    let _record_size = zf.u64().ok_or_else(badrec)?;
    let _made_by = zf.u16().ok_or_else(badrec)?;
    let _needed = zf.u16().ok_or_else(badrec)?;
    let disk64 = zf.u32().ok_or_else(badrec)?;
    let cd_disk64 = zf.u32().ok_or_else(badrec)?;
    let entries_here64 = zf.u64().ok_or_else(badrec)?;
    let entries64 = zf.u64().ok_or_else(badrec)?;
    let cd_size64 = zf.u64().ok_or_else(badrec)?;
    let cd_offset64 = zf.u64().ok_or_else(badrec)?;
    if disk64 != 0 || cd_disk64 != 0 || entries_here64 != entries64 {
        return Err(ZipError::MultiDisk);
    }
    Ok(EndRecord {
        entries: entries64,
        cd_size: cd_size64,
        cd_offset: cd_offset64,
        cd_end_limit: z64_offset,
        eocd_offset,
        eocd: eocd.to_vec(),
        zip64: true,
    })
}

/// Reads and parses the central directory that `end` describes: its records, in order, with
/// their local headers not yet read (`data_offset` is 0 until [`parse`] checks them).
pub fn read_central_directory<S: Source + ?Sized>(
    src: &S,
    end: &EndRecord,
) -> Result<Vec<Entry>, ZipError> {
    let cd_end = end.cd_offset.checked_add(end.cd_size);
    match cd_end {
        Some(e) if e <= end.cd_end_limit => {}
        _ => {
            return Err(ZipError::CentralDirectoryOutOfBounds {
                offset: end.cd_offset,
                size: end.cd_size,
                limit: end.cd_end_limit,
            })
        }
    }
    if end.entries > MAX_ENTRIES {
        return Err(ZipError::TooManyEntries {
            declared: end.entries,
            max: MAX_ENTRIES,
        });
    }
    // Every central record takes at least 46 bytes.
    if end
        .entries
        .checked_mul(CENTRAL_LEN as u64)
        .is_none_or(|n| n > end.cd_size)
    {
        return Err(ZipError::EntryCountExceedsDirectory {
            declared: end.entries,
            directory_size: end.cd_size,
        });
    }
    if end.cd_size > MAX_CENTRAL_DIRECTORY {
        return Err(ZipError::CentralDirectoryTooLarge { size: end.cd_size });
    }
    let cd_len = usize::try_from(end.cd_size)
        .map_err(|_| ZipError::CentralDirectoryTooLarge { size: end.cd_size })?;
    let mut cd = vec![0u8; cd_len];
    src.read_exact_at(&mut cd, end.cd_offset)
        .map_err(io_err("reading the central directory"))?;
    parse_central_directory(&cd, end.entries)
}

/// Parses `entries` central directory records that must fill `cd` exactly.
pub fn parse_central_directory(cd: &[u8], entries: u64) -> Result<Vec<Entry>, ZipError> {
    if entries > MAX_ENTRIES {
        return Err(ZipError::TooManyEntries {
            declared: entries,
            max: MAX_ENTRIES,
        });
    }
    let count = usize::try_from(entries).map_err(|_| ZipError::TooManyEntries {
        declared: entries,
        max: MAX_ENTRIES,
    })?;
    // Bounded by MAX_ENTRIES above; a record is at least 46 bytes, so a count the bytes cannot
    // hold fails at the first missing record without allocating for it.
    let mut parsed = Vec::with_capacity(count.min(cd.len() / CENTRAL_LEN));
    let mut f = Fields::new(cd);
    for index in 0..count {
        parsed.push(parse_central_record(&mut f, index)?);
    }
    if f.pos != cd.len() {
        return Err(ZipError::EntryCountMismatch {
            declared: entries,
            trailing: cd.len() - f.pos,
        });
    }
    Ok(parsed)
}

fn parse_central_record(f: &mut Fields<'_>, index: usize) -> Result<Entry, ZipError> {
    let bad = |reason: &'static str| ZipError::BadCentralRecord { index, reason };
    let trunc = || bad("truncated record");
    if f.u32().ok_or_else(trunc)? != CENTRAL_SIG {
        return Err(bad("bad signature"));
    }
    let made_by = f.u16().ok_or_else(trunc)?;
    let _needed = f.u16().ok_or_else(trunc)?;
    let flags = f.u16().ok_or_else(trunc)?;
    let method = f.u16().ok_or_else(trunc)?;
    let _time = f.u16().ok_or_else(trunc)?;
    let _date = f.u16().ok_or_else(trunc)?;
    let crc32 = f.u32().ok_or_else(trunc)?;
    let csize32 = f.u32().ok_or_else(trunc)?;
    let usize32 = f.u32().ok_or_else(trunc)?;
    let name_len = f.u16().ok_or_else(trunc)?;
    let extra_len = f.u16().ok_or_else(trunc)?;
    let comment_len = f.u16().ok_or_else(trunc)?;
    let disk = f.u16().ok_or_else(trunc)?;
    let _internal = f.u16().ok_or_else(trunc)?;
    let external = f.u32().ok_or_else(trunc)?;
    let lho32 = f.u32().ok_or_else(trunc)?;
    let name = f.take(usize::from(name_len)).ok_or_else(trunc)?.to_vec();
    let extra = f.take(usize::from(extra_len)).ok_or_else(trunc)?;
    let _comment = f.take(usize::from(comment_len)).ok_or_else(trunc)?;

    let display = || String::from_utf8_lossy(&name).into_owned();
    if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
        return Err(ZipError::Encrypted { name: display() });
    }
    let method = match method {
        0 => Method::Stored,
        8 => Method::Deflated,
        m => {
            return Err(ZipError::UnsupportedMethod {
                name: display(),
                method: m,
            })
        }
    };

    // Zip64 extra: fields present only for the saturated 32-bit values, in this order.
    let mut size = u64::from(usize32);
    let mut csize = u64::from(csize32);
    let mut lho = u64::from(lho32);
    let mut disk32 = u32::from(disk);
    if usize32 == 0xffff_ffff || csize32 == 0xffff_ffff || lho32 == 0xffff_ffff || disk == 0xffff {
        let z = find_extra(extra, ZIP64_EXTRA_ID).ok_or(ZipError::BadZip64(
            "saturated entry field without a zip64 extra",
        ))?;
        let mut zf = Fields::new(z);
        let short = || ZipError::BadZip64("zip64 extra field too short");
        if usize32 == 0xffff_ffff {
            size = zf.u64().ok_or_else(short)?;
        }
        if csize32 == 0xffff_ffff {
            csize = zf.u64().ok_or_else(short)?;
        }
        if lho32 == 0xffff_ffff {
            lho = zf.u64().ok_or_else(short)?;
        }
        if disk == 0xffff {
            disk32 = zf.u32().ok_or_else(short)?;
        }
    }
    if disk32 != 0 {
        return Err(ZipError::MultiDisk);
    }
    let host = made_by >> 8;
    let mode = external >> 16;
    let unix_mode = (host == 3 && mode != 0).then_some(mode);
    Ok(Entry {
        name,
        method,
        crc32,
        compressed_size: csize,
        size,
        local_header_offset: lho,
        data_offset: 0,
        unix_mode,
    })
}

/// Finds the payload of extra-field block `id`; malformed extra fields yield `None`.
fn find_extra(extra: &[u8], id: u16) -> Option<&[u8]> {
    let mut f = Fields::new(extra);
    while f.pos + 4 <= extra.len() {
        let tag = f.u16()?;
        let len = f.u16()?;
        let data = f.take(usize::from(len))?;
        if tag == id {
            return Some(data);
        }
    }
    None
}

fn check_local_header<S: Source + ?Sized>(src: &S, e: &mut Entry) -> Result<(), ZipError> {
    // One read for the fixed header, the name and a typical extra field.
    const EXTRA_GUESS: usize = 64;
    let mismatch = |field: &'static str, e: &Entry| ZipError::LocalHeaderMismatch {
        name: e.display_name(),
        field,
    };
    let want = LOCAL_LEN + e.name.len() + EXTRA_GUESS;
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match src.read_at(
            &mut buf[got..],
            e.local_header_offset.saturating_add(got as u64),
        ) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ZipError::Io {
                    what: "reading a local header",
                    source,
                })
            }
        }
    }
    buf.truncate(got);
    if buf.len() < LOCAL_LEN + e.name.len() {
        return Err(ZipError::BadLocalHeader {
            name: e.display_name(),
            reason: "truncated",
        });
    }
    let mut f = Fields::new(&buf);
    let trunc = || ZipError::BadLocalHeader {
        name: e.display_name(),
        reason: "truncated",
    };
    if f.u32().ok_or_else(trunc)? != LOCAL_SIG {
        return Err(ZipError::BadLocalHeader {
            name: e.display_name(),
            reason: "bad signature",
        });
    }
    let _needed = f.u16().ok_or_else(trunc)?;
    let flags = f.u16().ok_or_else(trunc)?;
    let method = f.u16().ok_or_else(trunc)?;
    let _time = f.u16().ok_or_else(trunc)?;
    let _date = f.u16().ok_or_else(trunc)?;
    let crc = f.u32().ok_or_else(trunc)?;
    let csize32 = f.u32().ok_or_else(trunc)?;
    let usize32 = f.u32().ok_or_else(trunc)?;
    let name_len = f.u16().ok_or_else(trunc)?;
    let extra_len = f.u16().ok_or_else(trunc)?;
    let expected_method = match e.method {
        Method::Stored => 0,
        Method::Deflated => 8,
    };
    if method != expected_method {
        return Err(mismatch("compression method", e));
    }
    if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
        return Err(mismatch("encryption flag", e));
    }
    if usize::from(name_len) != e.name.len() || f.take(e.name.len()) != Some(e.name.as_slice()) {
        return Err(mismatch("name", e));
    }
    let extra_len = usize::from(extra_len);
    let extra: Vec<u8> = match f.take(extra_len) {
        Some(x) => x.to_vec(),
        None => {
            let mut x = vec![0u8; extra_len];
            let off = e
                .local_header_offset
                .checked_add((LOCAL_LEN + e.name.len()) as u64)
                .ok_or_else(trunc)?;
            src.read_exact_at(&mut x, off).map_err(|_| trunc())?;
            x
        }
    };
    if flags & FLAG_DATA_DESCRIPTOR == 0 {
        if crc != e.crc32 {
            return Err(mismatch("crc32", e));
        }
        let mut lsize = u64::from(usize32);
        let mut lcsize = u64::from(csize32);
        if usize32 == 0xffff_ffff || csize32 == 0xffff_ffff {
            let z = find_extra(&extra, ZIP64_EXTRA_ID).ok_or_else(|| mismatch("zip64 sizes", e))?;
            let mut zf = Fields::new(z);
            if usize32 == 0xffff_ffff {
                lsize = zf.u64().ok_or_else(|| mismatch("zip64 sizes", e))?;
            }
            if csize32 == 0xffff_ffff {
                lcsize = zf.u64().ok_or_else(|| mismatch("zip64 sizes", e))?;
            }
        }
        if lsize != e.size {
            return Err(mismatch("uncompressed size", e));
        }
        if lcsize != e.compressed_size {
            return Err(mismatch("compressed size", e));
        }
    }
    let header_len = (LOCAL_LEN + e.name.len() + extra_len) as u64;
    e.data_offset =
        e.local_header_offset
            .checked_add(header_len)
            .ok_or(ZipError::EntryOutOfBounds {
                name: e.display_name(),
            })?;
    Ok(())
}

fn check_layout(entries: &[Entry], cd_offset: u64) -> Result<(), ZipError> {
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let end = e
            .data_offset
            .checked_add(e.compressed_size)
            .filter(|&end| end <= cd_offset)
            .ok_or_else(|| ZipError::EntryOutOfBounds {
                name: e.display_name(),
            })?;
        match e.method {
            Method::Stored if e.size != e.compressed_size => {
                return Err(ZipError::StoredSizeMismatch {
                    name: e.display_name(),
                    size: e.size,
                    compressed: e.compressed_size,
                })
            }
            Method::Deflated
                if e.compressed_size
                    .checked_mul(MAX_DEFLATE_RATIO)
                    .and_then(|x| x.checked_add(RATIO_SLACK))
                    .is_none_or(|limit| e.size > limit) =>
            {
                return Err(ZipError::AbsurdCompressionRatio {
                    name: e.display_name(),
                    size: e.size,
                    compressed: e.compressed_size,
                })
            }
            _ => {}
        }
        spans.push((e.local_header_offset, end, i));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let (_, a_end, a) = w[0];
        let (b_start, _, b) = w[1];
        if b_start < a_end {
            return Err(ZipError::OverlappingEntries {
                first: entries[a].display_name(),
                second: entries[b].display_name(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testzip::ZipBuilder;

    #[test]
    fn empty_archive() {
        let z = ZipBuilder::new().finish();
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        assert!(a.entries.is_empty());
    }

    #[test]
    fn stored_and_deflated_entries() {
        let mut b = ZipBuilder::new();
        b.stored("a.txt", b"hello");
        b.deflated("dir/b.txt", &[7u8; 10000]);
        let z = b.finish();
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        assert_eq!(a.entries.len(), 2);
        let e = &a.entries[0];
        assert_eq!(e.method, Method::Stored);
        assert_eq!(&z[e.data_offset as usize..][..5], b"hello");
        assert_eq!(a.entries[1].method, Method::Deflated);
        assert_eq!(a.entries[1].size, 10000);
    }

    #[test]
    fn zip64_written_by_zip_crate_parses() {
        let z = crate::testzip::zip_crate_archive(&[("x/big.bin", vec![1u8; 3000], false)], true);
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        assert_eq!(a.entries[0].size, 3000);
    }

    #[test]
    fn zero_padding_after_the_archive_is_accepted() {
        let mut b = ZipBuilder::new();
        b.stored("a", b"x");
        let mut z = b.finish();
        z.resize(z.len().next_multiple_of(4096) + 8192, 0);
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        assert_eq!(a.entries.len(), 1);
    }

    /// Fault matrix row 5: an entry whose central-directory flags say encrypted (traditional,
    /// bit 0, or strong, bit 6) is refused by name.
    #[test]
    fn encrypted_entries_are_refused() {
        for bit in [1u8 << 0, 1 << 6] {
            let mut b = ZipBuilder::new();
            b.stored("plain", b"x");
            b.stored("secret.bin", b"y");
            let mut z = b.finish();
            let cd = z
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == b"PK\x01\x02")
                .map(|(i, _)| i)
                .nth(1)
                .unwrap();
            z[cd + 8] |= bit;
            match parse(z.as_slice(), z.len() as u64) {
                Err(ZipError::Encrypted { name }) => assert_eq!(name, "secret.bin"),
                other => panic!("flag {bit:#x}: {other:?}"),
            }
        }
    }

    /// Fault matrix row 2: bytes before the first entry. With the offsets moved past them (as
    /// `zip -A` leaves a self-extracting archive) the archive is read at its real offsets; with
    /// the offsets left as they were, the central directory is not where the end record says
    /// and the archive is refused.
    #[test]
    fn data_before_the_archive() {
        let prefix = vec![0x7fu8; 300];
        let build = |shift: u64| {
            let mut b = ZipBuilder::new();
            b.stored("a.txt", b"hello");
            b.deflated("b.txt", &[3u8; 5000]);
            let plain = b.finish();
            let eocd = plain.len() - 22;
            let cd_offset = u64::from(u32::from_le_bytes(
                plain[eocd + 16..eocd + 20].try_into().unwrap(),
            ));
            let second = plain
                .windows(4)
                .enumerate()
                .filter(|(_, w)| *w == b"PK\x03\x04")
                .map(|(i, _)| i as u64)
                .nth(1)
                .unwrap();
            b.entries[0].lho_override = Some(shift);
            b.entries[1].lho_override = Some(second + shift);
            b.cd_offset_override = Some(cd_offset + shift);
            [&prefix[..], &b.finish()].concat()
        };
        let moved = build(prefix.len() as u64);
        let a = parse(moved.as_slice(), moved.len() as u64).unwrap();
        assert_eq!(a.entries.len(), 2);
        assert_eq!(&moved[a.entries[0].data_offset as usize..][..5], b"hello");
        assert_eq!(
            a.central_directory_offset,
            moved.len() as u64 - 22 - 2 * 46 - 10
        );

        // The end record's directory offset now points into the prefix's shadow.
        let unmoved = build(0);
        let err = parse(unmoved.as_slice(), unmoved.len() as u64).unwrap_err();
        assert!(
            matches!(
                err,
                ZipError::BadCentralRecord {
                    index: 0,
                    reason: "bad signature"
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_is_not_a_zip() {
        let z = vec![0x55u8; 1000];
        assert!(matches!(
            parse(z.as_slice(), 1000),
            Err(ZipError::NoEndOfCentralDirectory)
        ));
        assert!(matches!(
            parse(&[][..], 0),
            Err(ZipError::NoEndOfCentralDirectory)
        ));
    }

    #[test]
    fn unsupported_method_is_refused() {
        let mut b = ZipBuilder::new();
        b.stored("a", b"x");
        b.patch_method(0, 12);
        let z = b.finish();
        assert!(matches!(
            parse(z.as_slice(), z.len() as u64),
            Err(ZipError::UnsupportedMethod { method: 12, .. })
        ));
    }
}
