//! Reading and writing the entries of an instance image, with crash-safe updates.
//!
//! Every write is ordered so that a VM killed at any instant (any subset of the sector writes
//! issued since the last [`Disk::flush_to_media`] having reached the disk) leaves an image
//! whose next [`InstanceImage::read_microdroid_data`] returns the old record or the new one:
//!
//! - first write of an entry: payload (and a zero block after it, the new terminator), flush,
//!   then the header block, flush. Until the header lands the slot reads as nil: no entry.
//! - update: (1) journal = copy of the old header block and payload as the payload of a
//!   [`JOURNAL_UUID`] entry at [`JOURNAL_OFFSET`], flush, its header, flush; (2) new payload
//!   (and zeros up to `clear_end`), new header, flush; (3) journal header zeroed, flush.
//! - read: the entry decrypts → it is used (a journal that applies to it is retired: the
//!   area after the entry up to `clear_end` is zeroed, then the journal header). It does not
//!   decrypt and a journal that applies to its slot holds an entry that does → that old entry
//!   is restored (payload and zeros to `clear_end`, flush, header, flush, journal header
//!   zeroed, flush) and returned. Otherwise the error is returned and nothing is written.
//!
//! Journal header block (at [`JOURNAL_OFFSET`]): `JOURNAL_UUID ‖ u64 payload_size ‖
//! u64 slot ‖ u64 clear_end ‖ zeros`; payload = old header block (512) ‖ old payload.
//! `slot` is the offset of the entry's header; `clear_end` is 0 when the update keeps the
//! size, else `max(old_end, new_end) + 512`: the update may write up to there past the end of
//! the old entry, and recovery zeros from the end of the entry it keeps up to there so that
//! a nil terminator follows it again.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::{
    Error, MicrodroidData, PvmfwEntry, BLOCK_SIZE, JOURNAL_OFFSET, JOURNAL_UUID, MAGIC,
    MAX_ENTRY_PAYLOAD, MICRODROID_UUID, PVMFW_UUID, VERSION,
};

/// A disk an instance image lives on: a file or block device, or memory.
pub trait Disk: Read + Write + Seek {
    /// Makes every write issued so far durable before any later write (a write barrier).
    fn flush_to_media(&mut self) -> std::io::Result<()>;
}

impl Disk for std::fs::File {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// An in-memory disk (its size is the vector's length; nothing is written past it).
impl Disk for Cursor<Vec<u8>> {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<D: Disk + ?Sized> Disk for &mut D {
    fn flush_to_media(&mut self) -> std::io::Result<()> {
        (**self).flush_to_media()
    }
}

const BLOCK: usize = BLOCK_SIZE as usize;
const NIL: [u8; 16] = [0; 16];
const NONCE_SIZE: usize = 12;
const TAG_SIZE: usize = 16;
/// Sealed pvmfw payload: body (193) ‖ tag (16) ‖ nonce (12).
const PVMFW_PAYLOAD_SIZE: usize = PvmfwEntry::SIZE + TAG_SIZE + NONCE_SIZE;
/// Disk header: magic ‖ u16 version.
const DISK_HEADER_SIZE: u64 = 21;

type Block = [u8; BLOCK];

pub(crate) fn header_block(uuid: &[u8; 16], payload_size: u64) -> Block {
    let mut b = [0u8; BLOCK];
    b[..16].copy_from_slice(uuid);
    b[16..24].copy_from_slice(&payload_size.to_le_bytes());
    b
}

fn field(b: &Block, at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn uuid_of(b: &Block) -> &[u8] {
    &b[..16]
}

fn payload_size_of(b: &Block) -> u64 {
    field(b, 16)
}

/// Offset just past an entry (header, payload padded to 512) whose header is at `offset`.
pub(crate) fn entry_end(offset: u64, payload_size: u64) -> Result<u64, Error> {
    payload_size
        .checked_next_multiple_of(BLOCK_SIZE)
        .and_then(|p| p.checked_add(BLOCK_SIZE))
        .and_then(|p| p.checked_add(offset))
        .ok_or(Error::Overflow)
}

fn check_payload_size(size: u64) -> Result<usize, Error> {
    if size > MAX_ENTRY_PAYLOAD {
        return Err(Error::EntryTooLarge {
            size,
            max: MAX_ENTRY_PAYLOAD,
        });
    }
    // At most 64 KiB: fits any usize.
    usize::try_from(size).map_err(|_| Error::Overflow)
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn random_nonce() -> Result<[u8; NONCE_SIZE], Error> {
    let mut nonce = [0u8; NONCE_SIZE];
    getrandom::getrandom(&mut nonce).map_err(std::io::Error::other)?;
    Ok(nonce)
}

/// microdroid payload: nonce ‖ AES-256-GCM(plaintext, aad = header block) ‖ tag.
fn open_microdroid(
    key: &[u8; 32],
    header: &Block,
    payload: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if payload.len() < NONCE_SIZE + TAG_SIZE {
        return Err(Error::Decrypt);
    }
    let (nonce, sealed) = payload.split_at(NONCE_SIZE);
    cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::Decrypt)
}

fn seal_microdroid(key: &[u8; 32], header: &Block, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce = random_nonce()?;
    let sealed = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: header,
            },
        )
        .map_err(|_| Error::Decrypt)?;
    let mut payload = Vec::with_capacity(NONCE_SIZE + sealed.len());
    payload.extend_from_slice(&nonce);
    payload.extend_from_slice(&sealed);
    Ok(payload)
}

/// What the chain walk stopped at.
struct Slot {
    offset: u64,
    header: Block,
}

/// The microdroid entry found by the walk, as it is on disk.
struct RawEntry {
    offset: u64,
    header: Block,
    payload: Vec<u8>,
}

/// A well-formed journal whose saved entry decrypts under the key.
struct Journal {
    slot: u64,
    clear_end: u64,
    saved_header: Block,
    saved_payload: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
}

enum JournalState {
    /// No journal header.
    Absent,
    /// A journal header that is malformed (why).
    Corrupt(&'static str),
    /// Well-formed, but its saved entry does not decrypt under this key.
    Foreign,
    /// Usable for recovery.
    Valid(Box<Journal>),
}

impl JournalState {
    fn present(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

/// Where the microdroid entry is, after recovery.
enum Located {
    /// No entry; the first write goes to this nil slot.
    Free(u64),
    /// The entry, decrypted.
    Entry {
        raw: Box<RawEntry>,
        plaintext: Zeroizing<Vec<u8>>,
    },
}

/// An instance image on a [`Disk`].
pub struct InstanceImage<D: Disk> {
    disk: D,
    size: u64,
}

impl<D: Disk> InstanceImage<D> {
    /// Checks the magic and version ([`Error::BadMagic`], [`Error::InvalidVersion`],
    /// [`Error::UnsupportedVersion`]; [`Error::Truncated`] when the disk is shorter than
    /// the 21-byte header).
    pub fn open(mut disk: D) -> Result<Self, Error> {
        let size = disk.seek(SeekFrom::End(0))?;
        let mut image = Self { disk, size };
        let mut header = [0u8; DISK_HEADER_SIZE as usize];
        image.read_at(0, &mut header, "disk header")?;
        if &header[..19] != MAGIC {
            return Err(Error::BadMagic);
        }
        match u16::from_le_bytes([header[19], header[20]]) {
            0 => Err(Error::InvalidVersion),
            VERSION => Ok(image),
            v => Err(Error::UnsupportedVersion(v)),
        }
    }

    /// Gives the disk back.
    pub fn into_inner(self) -> D {
        self.disk
    }

    /// The disk's size in bytes.
    pub fn disk_size(&self) -> u64 {
        self.size
    }

    /// Reads microdroid_manager's record: `None` when there is no entry (first boot).
    /// [`Error::Decrypt`] when it was sealed under another key or modified (the image is then
    /// left untouched); an update interrupted by a crash is completed or rolled back first.
    pub fn read_microdroid_data(
        &mut self,
        key: &[u8; 32],
    ) -> Result<Option<MicrodroidData>, Error> {
        match self.locate_microdroid(key)? {
            Located::Free(_) => Ok(None),
            Located::Entry { plaintext, .. } => MicrodroidData::from_cbor(&plaintext).map(Some),
        }
    }

    /// Writes microdroid_manager's record, sealed under `key` with a fresh nonce: a new entry
    /// in the first free slot, or an update of the existing one, crash-safe either way (see
    /// the module doc). An existing entry that does not decrypt under `key` is not replaced
    /// ([`Error::Decrypt`]). The size may change only when the entry is the last one.
    pub fn write_microdroid_data(
        &mut self,
        key: &[u8; 32],
        data: &MicrodroidData,
    ) -> Result<(), Error> {
        let plaintext = Zeroizing::new(data.to_cbor()?);
        let new_size = (plaintext.len() + NONCE_SIZE + TAG_SIZE) as u64;
        check_payload_size(new_size)?;
        let located = self.locate_microdroid(key)?;
        // Whatever journal header is left after recovery is stale: retire it first.
        if self.journal_header_present()? {
            self.clear_journal()?;
        }
        match located {
            Located::Free(slot) => self.first_write(key, slot, new_size, &plaintext),
            Located::Entry { raw, .. } => self.update(key, *raw, new_size, &plaintext),
        }
    }

    /// Reads pvmfw's entry: `None` when there is none. Its payload must be 221 bytes
    /// ([`Error::BadPvmfwEntrySize`]).
    pub fn read_pvmfw_entry(&mut self, key: &[u8; 32]) -> Result<Option<PvmfwEntry>, Error> {
        let slot = self.walk(&PVMFW_UUID, None)?;
        if uuid_of(&slot.header) != PVMFW_UUID {
            return Ok(None);
        }
        let size = check_payload_size(payload_size_of(&slot.header))?;
        if size != PVMFW_PAYLOAD_SIZE {
            return Err(Error::BadPvmfwEntrySize(size));
        }
        let mut payload = [0u8; PVMFW_PAYLOAD_SIZE];
        self.read_at(
            slot.offset + BLOCK_SIZE,
            &mut payload,
            "pvmfw entry payload",
        )?;
        // BoringSSL EVP_aead_aes_256_gcm_randnonce: ciphertext ‖ tag ‖ nonce, no AAD.
        let (sealed, nonce) = payload.split_at(PvmfwEntry::SIZE + TAG_SIZE);
        let body = Zeroizing::new(
            cipher(key)
                .decrypt(Nonce::from_slice(nonce), sealed)
                .map_err(|_| Error::Decrypt)?,
        );
        PvmfwEntry::from_bytes(&body).map(Some)
    }

    /// Writes pvmfw's entry as pvmfw does on a new pVM: only as the first entry of an image
    /// without entries ([`Error::PvmfwEntryNotFirst`]); payload first, header last.
    pub fn write_pvmfw_entry(&mut self, key: &[u8; 32], entry: &PvmfwEntry) -> Result<(), Error> {
        let mut first = [0u8; BLOCK];
        self.read_at(BLOCK_SIZE, &mut first, "entry header")?;
        if uuid_of(&first) != NIL {
            return Err(Error::PvmfwEntryNotFirst);
        }
        let body = Zeroizing::new(entry.to_bytes());
        let nonce = random_nonce()?;
        let mut payload = cipher(key)
            .encrypt(Nonce::from_slice(&nonce), body.as_slice())
            .map_err(|_| Error::Decrypt)?;
        payload.extend_from_slice(&nonce);
        let size = payload.len() as u64;
        let end = entry_end(BLOCK_SIZE, size)?;
        self.check_room(end)?;
        self.write_payload(BLOCK_SIZE + BLOCK_SIZE, &payload, end + BLOCK_SIZE)?;
        self.flush()?;
        self.write_at(BLOCK_SIZE, &header_block(&PVMFW_UUID, size))?;
        self.flush()
    }

    // ---- microdroid entry: locating and recovery ----

    /// Finds the microdroid entry, completing or rolling back an interrupted update.
    fn locate_microdroid(&mut self, key: &[u8; 32]) -> Result<Located, Error> {
        let journal = self.read_journal(key)?;
        let hint = match &journal {
            JournalState::Valid(j) => Some(j.slot),
            _ => None,
        };
        let slot = self.walk(&MICRODROID_UUID, hint)?;
        let applies = matches!(&journal, JournalState::Valid(j) if j.slot == slot.offset);
        let main = if uuid_of(&slot.header) == NIL && !applies {
            return Ok(Located::Free(slot.offset));
        } else if uuid_of(&slot.header) == MICRODROID_UUID {
            self.open_entry(key, slot)
        } else {
            // Only reached when the walk stopped at the journal's slot.
            Err(Error::Decrypt)
        };
        match (main, journal) {
            (Ok((raw, plaintext)), journal) => {
                if let JournalState::Valid(j) = &journal {
                    if applies {
                        let end = entry_end(raw.offset, payload_size_of(&raw.header))?;
                        if j.clear_end > end {
                            self.write_zeros(end, j.clear_end)?;
                            self.flush()?;
                        }
                    }
                }
                if journal.present() {
                    self.clear_journal()?;
                }
                Ok(Located::Entry { raw, plaintext })
            }
            (Err(_), JournalState::Valid(j)) if applies => self.restore(j),
            (Err(_), JournalState::Corrupt(why)) => Err(Error::JournalCorrupt(why)),
            (Err(e), _) => Err(e),
        }
    }

    /// Reads and decrypts the microdroid entry whose header is `slot`.
    fn open_entry(
        &mut self,
        key: &[u8; 32],
        slot: Slot,
    ) -> Result<(Box<RawEntry>, Zeroizing<Vec<u8>>), Error> {
        let size = check_payload_size(payload_size_of(&slot.header))?;
        let mut payload = vec![0u8; size];
        self.read_at(
            slot.offset + BLOCK_SIZE,
            &mut payload,
            "microdroid entry payload",
        )?;
        let plaintext = open_microdroid(key, &slot.header, &payload)?;
        let raw = Box::new(RawEntry {
            offset: slot.offset,
            header: slot.header,
            payload,
        });
        Ok((raw, plaintext))
    }

    /// Puts the journal's saved entry back in place and retires the journal.
    fn restore(&mut self, j: Box<Journal>) -> Result<Located, Error> {
        let j = *j;
        let size = payload_size_of(&j.saved_header);
        let end = entry_end(j.slot, size)?;
        self.write_payload(j.slot + BLOCK_SIZE, &j.saved_payload, j.clear_end.max(end))?;
        self.flush()?;
        self.write_at(j.slot, &j.saved_header)?;
        self.flush()?;
        self.clear_journal()?;
        let raw = Box::new(RawEntry {
            offset: j.slot,
            header: j.saved_header,
            payload: j.saved_payload,
        });
        Ok(Located::Entry {
            raw,
            plaintext: j.plaintext,
        })
    }

    fn journal_header_present(&mut self) -> Result<bool, Error> {
        if self.size < JOURNAL_OFFSET + BLOCK_SIZE {
            return Ok(false);
        }
        let mut header = [0u8; BLOCK];
        self.read_at(JOURNAL_OFFSET, &mut header, "journal header")?;
        Ok(uuid_of(&header) == JOURNAL_UUID)
    }

    fn read_journal(&mut self, key: &[u8; 32]) -> Result<JournalState, Error> {
        if !self.journal_header_present()? {
            return Ok(JournalState::Absent);
        }
        let mut header = [0u8; BLOCK];
        self.read_at(JOURNAL_OFFSET, &mut header, "journal header")?;
        let size = payload_size_of(&header);
        let (slot, clear_end) = (field(&header, 24), field(&header, 32));
        if !(BLOCK_SIZE..=BLOCK_SIZE + MAX_ENTRY_PAYLOAD).contains(&size) {
            return Ok(JournalState::Corrupt("bad payload size"));
        }
        if !(BLOCK_SIZE..JOURNAL_OFFSET).contains(&slot)
            || slot % BLOCK_SIZE != 0
            || clear_end > JOURNAL_OFFSET
        {
            return Ok(JournalState::Corrupt("bad slot"));
        }
        if JOURNAL_OFFSET + BLOCK_SIZE + size > self.size {
            return Ok(JournalState::Corrupt("runs past the end of the disk"));
        }
        let mut saved_header = [0u8; BLOCK];
        self.read_at(JOURNAL_OFFSET + BLOCK_SIZE, &mut saved_header, "journal")?;
        let saved_size = payload_size_of(&saved_header);
        if uuid_of(&saved_header) != MICRODROID_UUID || saved_size != size - BLOCK_SIZE {
            return Ok(JournalState::Corrupt("saved header does not match"));
        }
        let end = entry_end(slot, saved_size)?;
        if end > JOURNAL_OFFSET || (clear_end != 0 && clear_end <= end) {
            return Ok(JournalState::Corrupt("bad slot"));
        }
        // Both bounded above: at most 64 KiB.
        let mut saved_payload = vec![0u8; check_payload_size(saved_size)?];
        self.read_at(
            JOURNAL_OFFSET + 2 * BLOCK_SIZE,
            &mut saved_payload,
            "journal",
        )?;
        match open_microdroid(key, &saved_header, &saved_payload) {
            Ok(plaintext) => Ok(JournalState::Valid(Box::new(Journal {
                slot,
                clear_end,
                saved_header,
                saved_payload,
                plaintext,
            }))),
            Err(_) => Ok(JournalState::Foreign),
        }
    }

    fn clear_journal(&mut self) -> Result<(), Error> {
        self.write_at(JOURNAL_OFFSET, &[0u8; BLOCK])?;
        self.flush()
    }

    // ---- microdroid entry: writing ----

    fn first_write(
        &mut self,
        key: &[u8; 32],
        slot: u64,
        size: u64,
        plaintext: &[u8],
    ) -> Result<(), Error> {
        let end = entry_end(slot, size)?;
        self.check_room(end)?;
        let header = header_block(&MICRODROID_UUID, size);
        let payload = seal_microdroid(key, &header, plaintext)?;
        self.write_payload(slot + BLOCK_SIZE, &payload, end + BLOCK_SIZE)?;
        self.flush()?;
        self.write_at(slot, &header)?;
        self.flush()
    }

    fn update(
        &mut self,
        key: &[u8; 32],
        old: RawEntry,
        size: u64,
        plaintext: &[u8],
    ) -> Result<(), Error> {
        let slot = old.offset;
        let old_size = payload_size_of(&old.header);
        let old_end = entry_end(slot, old_size)?;
        let new_end = entry_end(slot, size)?;
        let clear_end = if size == old_size {
            0
        } else {
            let mut next = [0u8; BLOCK];
            self.read_at(old_end, &mut next, "entry header")?;
            if uuid_of(&next) != NIL {
                return Err(Error::SizeChangeNotLast {
                    old: old_size,
                    new: size,
                });
            }
            let clear_end = old_end.max(new_end) + BLOCK_SIZE;
            self.check_room(clear_end - BLOCK_SIZE)?;
            clear_end
        };
        if old_end > JOURNAL_OFFSET {
            return Err(Error::NoFreeSlot);
        }
        // (1) The journal: the old entry as it is on disk.
        let journal_size = BLOCK_SIZE + old_size;
        let journal_end = entry_end(JOURNAL_OFFSET, journal_size)?;
        if journal_end > self.size {
            return Err(Error::TooSmall {
                size: self.size,
                min: journal_end,
            });
        }
        let mut saved = Vec::with_capacity(BLOCK + old.payload.len());
        saved.extend_from_slice(&old.header);
        saved.extend_from_slice(&old.payload);
        self.write_payload(JOURNAL_OFFSET + BLOCK_SIZE, &saved, journal_end)?;
        self.flush()?;
        let mut journal = header_block(&JOURNAL_UUID, journal_size);
        journal[24..32].copy_from_slice(&slot.to_le_bytes());
        journal[32..40].copy_from_slice(&clear_end.to_le_bytes());
        self.write_at(JOURNAL_OFFSET, &journal)?;
        self.flush()?;
        // (2) The new entry in place.
        let header = header_block(&MICRODROID_UUID, size);
        let payload = seal_microdroid(key, &header, plaintext)?;
        self.write_payload(slot + BLOCK_SIZE, &payload, clear_end.max(new_end))?;
        self.write_at(slot, &header)?;
        self.flush()?;
        // (3) Retire the journal.
        self.clear_journal()
    }

    /// An entry ending at `end` needs a nil terminator after it, below the journal and
    /// within the disk.
    fn check_room(&self, end: u64) -> Result<(), Error> {
        let needed = end.checked_add(BLOCK_SIZE).ok_or(Error::Overflow)?;
        if needed > JOURNAL_OFFSET {
            return Err(Error::NoFreeSlot);
        }
        if needed > self.size {
            return Err(Error::TooSmall {
                size: self.size,
                min: needed,
            });
        }
        Ok(())
    }

    // ---- the chain ----

    /// Walks the entries from offset 512 to the header with `uuid`, the nil terminator, or
    /// the offset `stop_at`, whichever comes first.
    fn walk(&mut self, uuid: &[u8; 16], stop_at: Option<u64>) -> Result<Slot, Error> {
        let mut offset = BLOCK_SIZE;
        loop {
            let mut header = [0u8; BLOCK];
            self.read_at(offset, &mut header, "entry header")?;
            if uuid_of(&header) == uuid || uuid_of(&header) == NIL || stop_at == Some(offset) {
                return Ok(Slot { offset, header });
            }
            // Strictly increasing and bounded by the disk size: the walk ends.
            offset = entry_end(offset, payload_size_of(&header))?;
        }
    }

    // ---- disk access, bounded by the disk size ----

    fn bounds(&self, offset: u64, len: usize, what: &'static str) -> Result<(), Error> {
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::Truncated {
                what,
                offset,
                len,
                disk_size: self.size,
            }),
        }
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
        self.bounds(offset, buf.len(), what)?;
        self.disk.seek(SeekFrom::Start(offset))?;
        self.disk.read_exact(buf)?;
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), Error> {
        self.bounds(offset, buf.len(), "write")?;
        self.disk.seek(SeekFrom::Start(offset))?;
        self.disk.write_all(buf)?;
        Ok(())
    }

    /// Writes `payload` at `offset` followed by zeros up to `zero_end` (at least up to the
    /// next 512 multiple).
    fn write_payload(&mut self, offset: u64, payload: &[u8], zero_end: u64) -> Result<(), Error> {
        let padded = entry_end(offset, payload.len() as u64)? - BLOCK_SIZE;
        let end = zero_end.max(padded);
        let len = usize::try_from(end - offset).map_err(|_| Error::Overflow)?;
        let mut buf = Zeroizing::new(vec![0u8; len]);
        buf[..payload.len()].copy_from_slice(payload);
        self.write_at(offset, &buf)
    }

    fn write_zeros(&mut self, offset: u64, end: u64) -> Result<(), Error> {
        let len = usize::try_from(end - offset).map_err(|_| Error::Overflow)?;
        self.write_at(offset, &vec![0u8; len])
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.disk.flush()?;
        self.disk.flush_to_media()?;
        Ok(())
    }
}
