//! Crash safety of the microdroid entry writes.
//!
//! Every write goes through [`RecDisk`], which logs it as whole-sector writes and the
//! `flush_to_media` barriers between them. A crash state is the image before the operation
//! with part of that log applied:
//!
//! - in order: every prefix of the log, sector by sector (exhaustive);
//! - reordered: every barrier-delimited epoch complete before epoch `e`, and any subset of
//!   epoch `e`'s sector writes (exhaustive for small epochs, sampled for large ones), as a
//!   disk with a volatile cache may persist them.
//!
//! Each crash state must read back as the old record or the new one, never an error; the
//! read that recovers it must itself be crash-safe (every prefix of its writes reads the same
//! again); afterwards the image is clean (no journal, no writes on the next read) and a
//! further write, directly on the crash state or after the read, reads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use instance::*;

const KEY: [u8; 32] = [0x11; 32];
const SIZE: usize = MIN_INSTANCE_SIZE as usize;

fn log_of(base: &[u8], new: &MicrodroidData) -> Vec<Op> {
    let mut image = open(base.to_vec());
    image.write_microdroid_data(&KEY, new).unwrap();
    image.into_inner().log
}

/// Index in `log` of its `n`-th barrier (from 0): the writes before it are a prefix of the
/// update that a crash may leave.
fn barrier(log: &[Op], n: usize) -> usize {
    log.iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Flush))
        .nth(n)
        .expect("the log has that many barriers")
        .0
}

fn read(state: &[u8]) -> (Result<Option<MicrodroidData>, Error>, RecDisk) {
    let mut image = open(state.to_vec());
    let r = image.read_microdroid_data(&KEY);
    (r, image.into_inner())
}

fn journal_is_clear(b: &[u8]) -> bool {
    b[JOURNAL_OFFSET as usize..][..512].iter().all(|&x| x == 0)
}

struct Case<'a> {
    base: &'a [u8],
    old: Option<&'a MicrodroidData>,
    new: &'a MicrodroidData,
    /// Check every prefix of the recovering read's own writes.
    nested: bool,
    /// Bytes outside the entry that no crash state may change: (offset, bytes).
    keep: Option<(usize, Vec<u8>)>,
    /// Written after each crash state to check the image is still usable.
    third: MicrodroidData,
}

impl Case<'_> {
    /// Checks one crash state; returns what it reads as.
    fn check(&self, state: &[u8], ctx: &str) -> Option<MicrodroidData> {
        let (r, disk) = read(state);
        let got = r.unwrap_or_else(|e| panic!("{ctx}: read failed: {e}"));
        assert!(
            got.as_ref() == self.old || got.as_ref() == Some(self.new),
            "{ctx}: read {got:?}"
        );
        let recovered = disk.data;
        if got.is_some() {
            assert!(journal_is_clear(&recovered), "{ctx}: journal left behind");
        }
        if let Some((at, bytes)) = &self.keep {
            assert!(
                &recovered[*at..*at + bytes.len()] == bytes.as_slice(),
                "{ctx}: another entry changed"
            );
        }
        let (again, disk2) = read(&recovered);
        assert_eq!(again.unwrap(), got, "{ctx}: second read differs");
        assert!(disk2.log.is_empty(), "{ctx}: second read wrote");
        if self.nested {
            let mut s = state.to_vec();
            for (i, op) in disk.log.iter().enumerate() {
                apply(&mut s, std::slice::from_ref(op));
                if let Op::Sector(..) = op {
                    let (r, _) = read(&s);
                    assert_eq!(r.unwrap(), got, "{ctx}: after {} writes of recovery", i + 1);
                }
            }
            reordered_states(state, &disk.log, 6, 8, 5, |s, sub| {
                let (r, _) = read(s);
                assert_eq!(r.unwrap(), got, "{ctx}: recovery {sub}");
            });
        }
        // Usable: a further write, on the crash state itself and after recovery.
        let third = &self.third;
        for start in [state, &recovered] {
            let mut image = open(start.to_vec());
            image.write_microdroid_data(&KEY, third).unwrap();
            let (r, _) = read(&image.into_inner().data);
            assert_eq!(
                r.unwrap(),
                Some(third.clone()),
                "{ctx}: write after the crash"
            );
        }
        got
    }

    /// Every in-order prefix of the write log.
    fn in_order(&self) -> usize {
        let log = log_of(self.base, self.new);
        let mut state = self.base.to_vec();
        let mut seen_new = false;
        let mut states = 0;
        let first = self.check(&state, "prefix 0");
        assert_eq!(first.as_ref(), self.old, "before the write");
        for (i, op) in log.iter().enumerate() {
            apply(&mut state, std::slice::from_ref(op));
            if let Op::Sector(lba, _) = op {
                let got = self.check(&state, &format!("prefix {} (sector {lba})", i + 1));
                let is_new = got.as_ref() == Some(self.new);
                assert!(is_new || !seen_new, "prefix {}: new, then old again", i + 1);
                seen_new |= is_new;
                states += 1;
            }
        }
        assert!(seen_new, "the complete write does not read as new");
        let (r, _) = read(&state);
        assert_eq!(r.unwrap().as_ref(), Some(self.new));
        states
    }

    /// Subsets of each epoch's writes on top of the previous epochs.
    fn reordered(&self, samples: usize, seed: u64) -> usize {
        let log = log_of(self.base, self.new);
        reordered_states(self.base, &log, 10, samples, seed, |s, ctx| {
            self.check(s, &ctx);
        })
    }
}

/// Calls `f` on every crash state of `log` over `base` where the epochs before `e` are
/// durable and any subset of epoch `e`'s sector writes landed: all subsets of epochs of at
/// most `exhaustive` writes; for larger ones each single write, all but each single write,
/// and `samples` random subsets.
fn reordered_states(
    base: &[u8],
    log: &[Op],
    exhaustive: usize,
    samples: usize,
    seed: u64,
    mut f: impl FnMut(&[u8], String),
) -> usize {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut durable = base.to_vec();
    let mut states = 0;
    for (e, epoch) in log.split(|op| matches!(op, Op::Flush)).enumerate() {
        let n = epoch.len();
        let subsets: Vec<Vec<bool>> = if n <= exhaustive {
            (0..1u32 << n)
                .map(|m| (0..n).map(|i| m >> i & 1 == 1).collect())
                .collect()
        } else {
            let mut v: Vec<Vec<bool>> = Vec::new();
            for i in 0..n {
                v.push((0..n).map(|j| j == i).collect());
                v.push((0..n).map(|j| j != i).collect());
            }
            for _ in 0..samples {
                let p = next() % 8;
                v.push((0..n).map(|_| next() % 8 < p).collect());
            }
            v
        };
        for (k, keep) in subsets.iter().enumerate() {
            let mut s = durable.clone();
            for (op, &on) in epoch.iter().zip(keep) {
                if on {
                    apply(&mut s, std::slice::from_ref(op));
                }
            }
            f(&s, format!("epoch {e}, subset {k}"));
            states += 1;
        }
        apply(&mut durable, epoch);
    }
    states
}

fn with_entry(base: Vec<u8>, r: &MicrodroidData) -> Vec<u8> {
    let mut image = open(base);
    image.write_microdroid_data(&KEY, r).unwrap();
    image.into_inner().data
}

fn encoded_len(r: &MicrodroidData) -> usize {
    r.to_cbor().unwrap().len()
}

fn run(base: &[u8], old: Option<&MicrodroidData>, new: &MicrodroidData, nested: bool) {
    let case = Case {
        base,
        old,
        new,
        nested,
        keep: None,
        third: record(0xee, 64, 2),
    };
    let a = case.in_order();
    let b = case.reordered(if nested { 60 } else { 12 }, 0x9e37_79b9_7f4a_7c15);
    assert!(a > 0 && b > 0);
}

#[test]
fn first_write() {
    run(&fresh(SIZE), None, &record(1, 64, 1), true);
}

#[test]
fn first_write_large() {
    let big = record(1, 64, 80);
    assert!(encoded_len(&big) > 40_000);
    run(&fresh(SIZE), None, &big, false);
}

#[test]
fn first_write_after_a_pvmfw_entry() {
    let mut image = open(fresh(SIZE));
    let entry = PvmfwEntry {
        code_hash: [1; 64],
        auth_hash: [2; 64],
        salt: [3; 64],
        mode: 1,
    };
    image.write_pvmfw_entry(&[9; 32], &entry).unwrap();
    let base = image.into_inner().data;
    run(&base, None, &record(1, 64, 1), true);
}

#[test]
fn update_same_size() {
    let (old, new) = (record(1, 64, 1), record(2, 64, 1));
    assert_eq!(encoded_len(&old), encoded_len(&new));
    run(&with_entry(fresh(SIZE), &old), Some(&old), &new, true);
}

#[test]
fn update_identical_record() {
    let old = record(1, 64, 1);
    run(&with_entry(fresh(SIZE), &old), Some(&old), &old, true);
}

#[test]
fn update_bigger() {
    let (old, new) = (record(1, 64, 1), record(2, 64, 4));
    run(&with_entry(fresh(SIZE), &old), Some(&old), &new, true);
}

#[test]
fn update_smaller() {
    let (old, new) = (record(1, 64, 4), record(2, 64, 1));
    run(&with_entry(fresh(SIZE), &old), Some(&old), &new, true);
}

#[test]
fn update_by_a_few_bytes_across_a_sector_boundary() {
    let old = record(1, 64, 0);
    let pad = 512 - (encoded_len(&old) + 28) % 512;
    let new = record(1, 64 + pad + 3, 0);
    assert_ne!(
        (encoded_len(&old) + 28).div_ceil(512),
        (encoded_len(&new) + 28).div_ceil(512)
    );
    let base = with_entry(fresh(SIZE), &old);
    run(&base, Some(&old), &new, true);
    run(&with_entry(fresh(SIZE), &new), Some(&new), &old, true);
}

#[test]
fn update_small_to_large_and_back() {
    let (small, big) = (record(1, 64, 1), record(2, 64, 40));
    assert!(encoded_len(&big) > 20_000);
    run(&with_entry(fresh(SIZE), &small), Some(&small), &big, false);
    run(&with_entry(fresh(SIZE), &big), Some(&big), &small, false);
}

#[test]
fn update_after_a_pvmfw_entry() {
    let mut image = open(fresh(SIZE));
    let entry = PvmfwEntry {
        code_hash: [4; 64],
        auth_hash: [5; 64],
        salt: [6; 64],
        mode: 2,
    };
    image.write_pvmfw_entry(&[9; 32], &entry).unwrap();
    let (old, new) = (record(1, 64, 3), record(2, 64, 1));
    let base = with_entry(image.into_inner().data, &old);
    let case = Case {
        base: &base,
        old: Some(&old),
        new: &new,
        nested: true,
        keep: Some((512, base[512..1536].to_vec())),
        third: record(0xee, 64, 2),
    };
    case.in_order();
    case.reordered(30, 7);
}

#[test]
fn update_same_size_with_an_entry_after_it() {
    let (old, new) = (record(1, 64, 2), record(2, 64, 2));
    let mut base = with_entry(fresh(SIZE), &old);
    let size = u64::from_le_bytes(base[528..536].try_into().unwrap()) as usize;
    let next = 1024 + size.next_multiple_of(512);
    base[next..next + 512].copy_from_slice(&header(&[0x42; 16], 700));
    base[next + 512..next + 1212].fill(0x99);
    let case = Case {
        base: &base,
        old: Some(&old),
        new: &new,
        nested: true,
        keep: Some((next, base[next..next + 1536].to_vec())),
        third: record(3, 64, 2),
    };
    case.in_order();
    case.reordered(30, 11);
}

/// A second update interrupted right after an earlier one was interrupted and recovered.
#[test]
fn repeated_interrupted_updates() {
    let records = [
        record(1, 64, 1),
        record(2, 64, 3),
        record(3, 0, 0),
        record(4, 64, 2),
    ];
    let mut state = with_entry(fresh(SIZE), &records[0]);
    for (i, pair) in records.windows(2).enumerate() {
        let log = log_of(&state, &pair[1]);
        // Crash halfway through, recover by reading.
        let half = log.len() / 2;
        apply(&mut state, &log[..half]);
        let (r, disk) = read(&state);
        let got = r.unwrap().unwrap();
        assert!(got == pair[0] || got == pair[1], "update {i}");
        state = disk.data;
        // Then the update completes.
        state = with_entry(state, &pair[1]);
        assert_eq!(read(&state).0.unwrap(), Some(pair[1].clone()));
    }
}

/// A crash after the journal is complete, then the entry torn: only the key that sealed both
/// recovers it; under another key the read fails and writes nothing.
#[test]
fn a_pending_journal_is_only_used_under_its_key() {
    let (old, new) = (record(1, 64, 1), record(2, 64, 3));
    let base = with_entry(fresh(SIZE), &old);
    let log = log_of(&base, &new);
    let mut state = base.clone();
    apply(&mut state, &log[..barrier(&log, 1)]);
    assert!(!journal_is_clear(&state));
    state[1024 + 100] ^= 0xff; // the entry torn
    let mut image = InstanceImage::open(RecDisk::new(state.clone())).unwrap();
    assert!(matches!(
        image.read_microdroid_data(&[0x22; 32]),
        Err(Error::Decrypt)
    ));
    assert!(image.into_inner().data == state, "a failed read wrote");
    let (r, disk) = read(&state);
    assert_eq!(r.unwrap(), Some(old));
    assert!(journal_is_clear(&disk.data));
    assert!(disk.data[..JOURNAL_OFFSET as usize] == base[..JOURNAL_OFFSET as usize]);
}

/// A complete journal left by an update under another key is retired by a successful read.
#[test]
fn a_foreign_journal_is_retired() {
    let other = [0x22; 32];
    let mut image = open(fresh(SIZE));
    image
        .write_microdroid_data(&other, &record(1, 64, 1))
        .unwrap();
    let mut image = InstanceImage::open(RecDisk::new(image.into_inner().data)).unwrap();
    image
        .write_microdroid_data(&other, &record(2, 64, 1))
        .unwrap();
    let log = image.into_inner().log;
    // Step 1 of that update (up to its second barrier) on an image whose entry is under KEY.
    let second = barrier(&log, 1);
    let mut state = with_entry(fresh(SIZE), &record(3, 64, 1));
    apply(&mut state, &log[..second]);
    assert!(!journal_is_clear(&state));
    let (r, disk) = read(&state);
    assert_eq!(r.unwrap(), Some(record(3, 64, 1)));
    assert!(journal_is_clear(&disk.data));
}

/// The state a crash leaves after step 1 of an update (the journal complete and durable), on
/// an image of `size` bytes, with the entry's payload then torn: reads recover the old record
/// from the journal. Returns the state and the old record.
fn pending_journal(size: usize) -> (Vec<u8>, MicrodroidData) {
    let (old, new) = (record(1, 64, 1), record(2, 64, 3));
    let base = with_entry(fresh(size), &old);
    let log = log_of(&base, &new);
    let mut state = base;
    apply(&mut state, &log[..barrier(&log, 1)]);
    state[1024 + 100] ^= 0xff;
    (state, old)
}

const J: usize = JOURNAL_OFFSET as usize;

fn journal_field(state: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(state[J + at..J + at + 8].try_into().unwrap())
}

fn set_journal_field(state: &mut [u8], at: usize, v: u64) {
    state[J + at..J + at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Journal header fields: payload size at 16, slot at 24, clear_end at 32.
const SIZE_FIELD: usize = 16;
const SLOT_FIELD: usize = 24;
const CLEAR_END_FIELD: usize = 32;

fn read_error(state: &[u8]) -> Error {
    let (r, disk) = read(state);
    assert!(disk.data == state, "a failed read wrote");
    r.unwrap_err()
}

/// Each field of a pending journal is checked before it is trusted, at its exact limits.
#[test]
fn a_pending_journals_fields_are_checked_at_their_limits() {
    let (state, old) = pending_journal(SIZE);
    assert_ne!(journal_field(&state, CLEAR_END_FIELD), 0);
    // The clear end may reach the journal itself, not beyond.
    let mut s = state.clone();
    set_journal_field(&mut s, CLEAR_END_FIELD, JOURNAL_OFFSET);
    let (r, disk) = read(&s);
    assert_eq!(r.unwrap(), Some(old.clone()));
    assert!(journal_is_clear(&disk.data));
    set_journal_field(&mut s, CLEAR_END_FIELD, JOURNAL_OFFSET + 512);
    assert!(matches!(read_error(&s), Error::JournalCorrupt("bad slot")));
    // A slot inside the entry area but not on a block boundary.
    let mut s = state.clone();
    set_journal_field(&mut s, SLOT_FIELD, 512 + 8);
    assert!(matches!(read_error(&s), Error::JournalCorrupt("bad slot")));
    // A saved entry larger than any entry may be.
    let mut s = state.clone();
    set_journal_field(&mut s, SIZE_FIELD, 512 + MAX_ENTRY_PAYLOAD + 512);
    assert!(matches!(
        read_error(&s),
        Error::JournalCorrupt("bad payload size")
    ));
    // A journal that ends exactly at the end of the disk is whole; one byte less is not.
    let end = J + 512 + journal_field(&state, SIZE_FIELD) as usize;
    let (r, _) = read(&state[..end]);
    assert_eq!(r.unwrap(), Some(old));
    assert!(matches!(
        read_error(&state[..end - 1]),
        Error::JournalCorrupt("runs past the end of the disk")
    ));
}

/// A torn header (neither the entry's UUID nor nil) at the journal's slot: the walk stops
/// there and the journal restores the entry.
#[test]
fn a_pending_journal_restores_an_entry_whose_header_is_torn() {
    let (mut state, old) = pending_journal(SIZE);
    state[1024 + 100] ^= 0xff; // the payload is whole again
    state[512] ^= 0x01; // the header's UUID is not
    let (r, disk) = read(&state);
    assert_eq!(r.unwrap(), Some(old));
    assert_eq!(&disk.data[512..528], &MICRODROID_UUID);
    assert!(journal_is_clear(&disk.data));
}

/// A valid journal for another slot than the entry's: a torn entry is not "restored" from it.
#[test]
fn a_journal_for_another_slot_does_not_restore_the_entry() {
    let (mut state, _) = pending_journal(SIZE);
    set_journal_field(&mut state, SLOT_FIELD, 4096);
    set_journal_field(&mut state, CLEAR_END_FIELD, 0);
    assert!(matches!(read_error(&state), Error::Decrypt));
}

/// An image too small to hold a journal has none: reading it does not read past its end.
#[test]
fn an_image_without_room_for_a_journal_reads_without_one() {
    for size in [J, J + 511] {
        let r = record(4, 64, 1);
        let state = with_entry(fresh(SIZE), &r);
        let (got, _) = read(&state[..size]);
        assert_eq!(got.unwrap(), Some(r), "size {size}");
    }
}

/// The journal's copy of the entry header must be the entry's, and its slot must leave the
/// saved entry below the journal with the clear end past it.
#[test]
fn a_pending_journals_saved_entry_must_fit_its_slot() {
    let (state, _) = pending_journal(SIZE);
    // The saved header's UUID damaged (its size still matches).
    let mut s = state.clone();
    s[J + 512] ^= 0x01;
    assert!(matches!(
        read_error(&s),
        Error::JournalCorrupt("saved header does not match")
    ));
    // A clear end inside the saved entry.
    let saved = journal_field(&state, SIZE_FIELD) - 512;
    let slot = journal_field(&state, SLOT_FIELD);
    let end = slot + 512 + saved.next_multiple_of(512);
    let mut s = state.clone();
    set_journal_field(&mut s, CLEAR_END_FIELD, end);
    assert!(matches!(read_error(&s), Error::JournalCorrupt("bad slot")));
    // A slot whose entry ends exactly at the journal is valid (here it is not the entry's
    // slot, so the torn entry stays an error); one block later is not.
    let last = JOURNAL_OFFSET - 512 - saved.next_multiple_of(512);
    let mut s = state.clone();
    set_journal_field(&mut s, SLOT_FIELD, last);
    set_journal_field(&mut s, CLEAR_END_FIELD, 0);
    assert!(matches!(read_error(&s), Error::Decrypt));
    set_journal_field(&mut s, SLOT_FIELD, last + 512);
    assert!(matches!(read_error(&s), Error::JournalCorrupt("bad slot")));
}

/// A growing update of an entry near the journal, interrupted after the new entry is in place
/// and before the journal is retired: the read keeps the new entry and zeroes exactly the
/// area the journal names, which here ends 512 bytes short of the journal itself.
#[test]
fn a_growing_update_near_the_journal_is_completed_after_a_crash() {
    let (small, big) = (record(1, 64, 1), record(2, 2000, 1));
    let blocks = |r: &MicrodroidData| (encoded_len(r) as u64 + 28).next_multiple_of(512);
    let slot = JOURNAL_OFFSET - 1536 - blocks(&big);
    let mut base = fresh(SIZE);
    base[512..1024].copy_from_slice(&header(&[0xab; 16], slot - 1024));
    let base = with_entry(base, &small);
    let log = log_of(&base, &big);
    let mut state = base;
    apply(&mut state, &log[..barrier(&log, 2)]);
    assert!(!journal_is_clear(&state));
    assert_eq!(journal_field(&state, SLOT_FIELD), slot);
    let (r, disk) = read(&state);
    assert_eq!(r.unwrap(), Some(big));
    assert!(journal_is_clear(&disk.data));
}
