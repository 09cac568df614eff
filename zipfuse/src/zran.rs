//! Random access into deflated entries without inflating them whole (zran.c-style).
//!
//! * **Checkpoint index, built lazily.** Whenever an inflater passes the end of the entry's
//!   index, it records a checkpoint at the next deflate block boundary at least `spacing` bytes
//!   of output after the previous one: the input position (byte and bit) and the 32 KiB window.
//!   A later read at offset X restarts from the last checkpoint at or before X (zlib
//!   `inflatePrime` + `inflateSetDictionary`), so it inflates at most `spacing` bytes too many.
//! * **Bounded memory.** The spacing of an entry starts at `max(min_spacing, size × 32 KiB /
//!   (budget / 2))`, so one entry's full index fits half the budget; all entries together stay
//!   under `index_budget` bytes of windows: past it, the entry that grows drops every other
//!   checkpoint (doubling its spacing), or the least recently used other entry loses its index.
//!   Live inflaters come from a pool of at most `max_cursors`; inflated 64 KiB blocks go to an LRU
//!   cache of at most `cache_bytes`. Nothing scales with the entry size.
//! * **Cursors.** Inflaters are kept (in the pool) where they stopped, so sequential reads simply
//!   continue; a read behind a cursor restarts from a checkpoint.
//! * **Integrity.** An inflater that started at offset 0 computes the CRC-32; when it reaches the
//!   end, the CRC, the size and the end of the deflate stream are checked, and a failure makes
//!   every later read of the entry fail.
//! * **Page-cache feeding.** Every completed 64 KiB block that the current request did not ask
//!   for is offered to a [`BlockSink`] (the filesystem pushes it into the kernel page cache with
//!   `FUSE_NOTIFY_STORE`), so bytes inflated on the way to a far offset are not inflated again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::archive::{Entry, Method, Source};
use crate::error::ZipError;
use crate::rawinflate::{RawInflate, Status, WINDOW};

/// Unit of the block cache and of page-cache feeding.
pub const BLOCK: usize = 64 * 1024;
/// Compressed bytes read from the archive at a time.
const INPUT_CHUNK: usize = 64 * 1024;

/// Tuning knobs; see the module documentation.
#[derive(Clone, Debug)]
pub struct DeflateOptions {
    /// Smallest distance between checkpoints, in output bytes.
    pub min_spacing: u64,
    /// Total bytes of checkpoint windows over all entries.
    pub index_budget: u64,
    /// Most live inflaters.
    pub max_cursors: usize,
    /// Bytes of inflated blocks kept in the daemon.
    pub cache_bytes: u64,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            min_spacing: 128 * 1024,
            index_budget: 24 << 20,
            max_cursors: 8,
            cache_bytes: 8 << 20,
        }
    }
}

/// Receives inflated blocks that no request asked for yet.
pub trait BlockSink: Send + Sync {
    /// `data` is the entry's bytes at `offset` (a multiple of [`BLOCK`]).
    fn offer(&self, entry: usize, offset: u64, data: Arc<[u8]>);
}

struct Checkpoint {
    /// Output offset.
    out: u64,
    /// Offset (from the data start) of the first input byte not fully consumed.
    input: u64,
    /// Unused bits of the byte before `input` (0..=7).
    bits: u8,
    /// That byte.
    prev_byte: u8,
    /// Up to 32 KiB of output before `out`.
    window: Box<[u8]>,
}

#[derive(Default)]
struct EntryIndex {
    /// Distance between checkpoints (0 until first used).
    spacing: u64,
    /// Checkpoints after the implicit one at offset 0, sorted by `out`.
    points: Vec<Checkpoint>,
    /// Set once the entry failed verification.
    failed: Option<&'static str>,
    /// CRC mismatch details, if that is why it failed.
    crc: Option<(u32, u32)>,
}

impl EntryIndex {
    fn window_bytes(&self) -> u64 {
        self.points.iter().map(|p| p.window.len() as u64).sum()
    }

    /// Drops every other checkpoint and doubles the spacing; returns the bytes freed.
    fn thin(&mut self) -> u64 {
        let before = self.window_bytes();
        let mut keep = false;
        self.points.retain(|_| {
            keep = !keep;
            !keep
        });
        self.spacing = self.spacing.saturating_mul(2);
        before - self.window_bytes()
    }
}

struct Cursor {
    entry: usize,
    inf: RawInflate,
    /// Next input offset (relative to the entry's data) to read from the archive.
    in_next: u64,
    /// Buffered, not yet consumed input.
    inbuf: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    /// Last input byte consumed (for checkpoints at non-byte-aligned positions).
    last_byte: u8,
    /// Output offset of the next byte.
    out: u64,
    /// The block being filled, aligned to `BLOCK`; valid from `blk_from` to `out`.
    blk: Box<[u8]>,
    blk_from: usize,
    /// CRC of everything so far, if the cursor started at offset 0.
    crc: Option<crc32fast::Hasher>,
    /// The stream ended and was verified.
    finished: bool,
    last_use: u64,
}

impl Cursor {
    fn new(entry: usize) -> Option<Cursor> {
        Some(Cursor {
            entry,
            inf: RawInflate::new()?,
            in_next: 0,
            inbuf: vec![0u8; INPUT_CHUNK].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            last_byte: 0,
            out: 0,
            blk: vec![0u8; BLOCK].into_boxed_slice(),
            blk_from: 0,
            crc: Some(crc32fast::Hasher::new()),
            finished: false,
            last_use: 0,
        })
    }

    /// Repositions at the start of the entry, or at checkpoint `p`.
    fn restart(&mut self, entry: usize, p: Option<&Checkpoint>) -> bool {
        self.entry = entry;
        self.in_start = 0;
        self.in_end = 0;
        self.finished = false;
        if !self.inf.reset() {
            return false;
        }
        match p {
            None => {
                self.in_next = 0;
                self.out = 0;
                self.last_byte = 0;
                self.crc = Some(crc32fast::Hasher::new());
            }
            Some(p) => {
                if p.bits > 0 && !self.inf.prime(p.bits, p.prev_byte >> (8 - p.bits)) {
                    return false;
                }
                if !p.window.is_empty() && !self.inf.set_dictionary(&p.window) {
                    return false;
                }
                self.in_next = p.input;
                self.out = p.out;
                self.last_byte = p.prev_byte;
                self.crc = None;
            }
        }
        self.blk_from = (self.out % BLOCK as u64) as usize;
        true
    }
}

/// Simple LRU of inflated blocks keyed by (entry, block number).
/// (entry, block number).
type BlockKey = (usize, u64);

struct BlockCache {
    map: HashMap<BlockKey, (Arc<[u8]>, u64)>,
    order: BTreeMap<u64, (usize, u64)>,
    bytes: u64,
    cap: u64,
    tick: u64,
}

impl BlockCache {
    fn get(&mut self, key: (usize, u64)) -> Option<Arc<[u8]>> {
        self.tick += 1;
        let tick = self.tick;
        let (data, t) = self.map.get_mut(&key)?;
        self.order.remove(t);
        *t = tick;
        self.order.insert(tick, key);
        Some(data.clone())
    }

    fn insert(&mut self, key: (usize, u64), data: Arc<[u8]>) {
        if self.cap < data.len() as u64 {
            return;
        }
        self.tick += 1;
        if let Some((old, t)) = self.map.remove(&key) {
            self.order.remove(&t);
            self.bytes -= old.len() as u64;
        }
        self.bytes += data.len() as u64;
        self.map.insert(key, (data, self.tick));
        self.order.insert(self.tick, key);
        while self.bytes > self.cap {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((d, _)) = self.map.remove(&k) {
                self.bytes -= d.len() as u64;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves reads of deflated entries for one archive.
pub struct DeflateReader {
    opts: DeflateOptions,
    index: Vec<Mutex<EntryIndex>>,
    /// Entries holding windows, with their last use (for eviction).
    holders: Mutex<HashMap<usize, u64>>,
    used: AtomicU64,
    cursors: Mutex<Vec<Cursor>>,
    cache: Mutex<BlockCache>,
    clock: AtomicU64,
    sink: Option<Arc<dyn BlockSink>>,
}

/// What the caller asked for in the current request (blocks inside it are not offered to the
/// sink).
struct Request {
    start: u64,
    end: u64,
}

impl DeflateReader {
    /// A reader for an archive of `entries` entries.
    pub fn new(entries: usize, opts: DeflateOptions, sink: Option<Arc<dyn BlockSink>>) -> Self {
        let cap = opts.cache_bytes;
        DeflateReader {
            opts,
            index: (0..entries)
                .map(|_| Mutex::new(EntryIndex::default()))
                .collect(),
            holders: Mutex::new(HashMap::new()),
            used: AtomicU64::new(0),
            cursors: Mutex::new(Vec::new()),
            cache: Mutex::new(BlockCache {
                map: HashMap::new(),
                order: BTreeMap::new(),
                bytes: 0,
                cap,
                tick: 0,
            }),
            clock: AtomicU64::new(1),
            sink,
        }
    }

    /// Bytes of checkpoint windows currently held (for tests and statistics).
    pub fn index_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Number of checkpoints of entry `idx`.
    pub fn checkpoints(&self, idx: usize) -> usize {
        self.index.get(idx).map_or(0, |m| lock(m).points.len())
    }

    /// Reads entry `idx` (`e`, deflated) at `off` into `buf`; returns the bytes read (short only
    /// at the end of the entry).
    pub fn read<S: Source + ?Sized>(
        &self,
        src: &S,
        idx: usize,
        e: &Entry,
        off: u64,
        buf: &mut [u8],
    ) -> Result<usize, ZipError> {
        if e.method != Method::Deflated {
            return Err(ZipError::CorruptDeflate {
                name: e.display_name(),
                reason: "not deflated",
            });
        }
        if off >= e.size || buf.is_empty() {
            return Ok(0);
        }
        let n = usize::try_from((e.size - off).min(buf.len() as u64)).unwrap_or(buf.len());
        let buf = &mut buf[..n];
        let end = off + n as u64;
        let Some(slot) = self.index.get(idx) else {
            return Err(ZipError::CorruptDeflate {
                name: e.display_name(),
                reason: "no such entry",
            });
        };

        if self.read_cached(idx, off, buf) {
            return Ok(n);
        }

        let mut ix = lock(slot);
        if let Some(reason) = ix.failed {
            return Err(self.failure(e, reason, ix.crc));
        }
        if ix.spacing == 0 {
            let per_entry = (self.opts.index_budget / 2).max(WINDOW as u64);
            let points = (per_entry / WINDOW as u64).max(1);
            ix.spacing = e
                .size
                .div_ceil(points)
                .next_power_of_two()
                .max(self.opts.min_spacing);
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        if !ix.points.is_empty() {
            lock(&self.holders).insert(idx, tick);
        }

        let mut cur = self.take_cursor(idx, off, &ix)?;
        cur.last_use = tick;
        let req = Request { start: off, end };
        let result = self.advance(src, idx, e, &mut ix, &mut cur, &req, buf);
        if let Err(err) = &result {
            if let ZipError::CrcMismatch {
                expected, actual, ..
            } = err
            {
                ix.crc = Some((*expected, *actual));
                ix.failed = Some("crc");
            } else if let ZipError::CorruptDeflate { reason, .. } = err {
                ix.failed = Some(reason);
            }
        }
        drop(ix);
        if result.is_ok() {
            self.put_cursor(cur);
        }
        result.map(|()| n)
    }

    fn failure(&self, e: &Entry, reason: &'static str, crc: Option<(u32, u32)>) -> ZipError {
        match crc {
            Some((expected, actual)) => ZipError::CrcMismatch {
                name: e.display_name(),
                expected,
                actual,
            },
            None => ZipError::CorruptDeflate {
                name: e.display_name(),
                reason,
            },
        }
    }

    /// Serves the request from cached blocks only, if they cover it.
    fn read_cached(&self, idx: usize, off: u64, buf: &mut [u8]) -> bool {
        let end = off + buf.len() as u64;
        let first = off / BLOCK as u64;
        let last = (end - 1) / BLOCK as u64;
        let mut cache = lock(&self.cache);
        let mut blocks = Vec::with_capacity((last - first + 1) as usize);
        for b in first..=last {
            match cache.get((idx, b)) {
                Some(d) => blocks.push(d),
                None => return false,
            }
        }
        drop(cache);
        for (i, d) in blocks.iter().enumerate() {
            let bstart = (first + i as u64) * BLOCK as u64;
            let from = off.max(bstart);
            let to = end.min(bstart + d.len() as u64);
            if to <= from {
                return false;
            }
            let src = &d[(from - bstart) as usize..(to - bstart) as usize];
            buf[(from - off) as usize..(to - off) as usize].copy_from_slice(src);
        }
        true
    }

    /// A cursor for entry `idx` positioned at or before `off` (as close as the index allows).
    fn take_cursor(&self, idx: usize, off: u64, ix: &EntryIndex) -> Result<Cursor, ZipError> {
        let best_point = ix.points.partition_point(|p| p.out <= off);
        let point = best_point.checked_sub(1).map(|i| &ix.points[i]);
        let point_out = point.map_or(0, |p| p.out);
        let mut pool = lock(&self.cursors);
        // A parked cursor of this entry that is at least as close as the best checkpoint.
        let reuse = pool
            .iter()
            .enumerate()
            .filter(|(_, c)| c.entry == idx && !c.finished && c.out <= off && c.out >= point_out)
            .max_by_key(|(_, c)| c.out)
            .map(|(i, _)| i);
        if let Some(i) = reuse {
            return Ok(pool.swap_remove(i));
        }
        // Otherwise recycle the least recently used cursor (or make one) and restart it.
        let recycled = if pool.len() >= self.opts.max_cursors.max(1) {
            pool.iter()
                .enumerate()
                .min_by_key(|(_, c)| c.last_use)
                .map(|(i, _)| i)
                .map(|i| pool.swap_remove(i))
        } else {
            None
        };
        drop(pool);
        let mut cur = match recycled {
            Some(c) => c,
            None => Cursor::new(idx).ok_or(ZipError::CorruptDeflate {
                name: String::new(),
                reason: "out of memory for an inflater",
            })?,
        };
        if !cur.restart(idx, point) {
            return Err(ZipError::CorruptDeflate {
                name: String::new(),
                reason: "inflater restart failed",
            });
        }
        Ok(cur)
    }

    fn put_cursor(&self, cur: Cursor) {
        let mut pool = lock(&self.cursors);
        if pool.len() >= self.opts.max_cursors.max(1) {
            if let Some((i, _)) = pool.iter().enumerate().min_by_key(|(_, c)| c.last_use) {
                pool.swap_remove(i);
            }
        }
        pool.push(cur);
    }

    /// Inflates with `cur` until the request `[req.start, req.end)` has been copied into `buf`.
    #[allow(clippy::too_many_arguments)]
    fn advance<S: Source + ?Sized>(
        &self,
        src: &S,
        idx: usize,
        e: &Entry,
        ix: &mut EntryIndex,
        cur: &mut Cursor,
        req: &Request,
        buf: &mut [u8],
    ) -> Result<(), ZipError> {
        let corrupt = |reason| ZipError::CorruptDeflate {
            name: e.display_name(),
            reason,
        };
        let mut stalls = 0;
        while cur.out < req.end {
            // Refill input.
            if cur.in_start == cur.in_end {
                let left = e.compressed_size.saturating_sub(cur.in_next);
                if left == 0 {
                    return Err(corrupt("compressed data ends before the stream does"));
                }
                let want = INPUT_CHUNK.min(usize::try_from(left).unwrap_or(INPUT_CHUNK));
                let at = e
                    .data_offset
                    .checked_add(cur.in_next)
                    .ok_or_else(|| corrupt("offset overflow"))?;
                src.read_exact_at(&mut cur.inbuf[..want], at)
                    .map_err(|source| ZipError::Io {
                        what: "reading compressed data",
                        source,
                    })?;
                cur.in_start = 0;
                cur.in_end = want;
                cur.in_next += want as u64;
            }
            // Index the stream while past the last checkpoint.
            let last_out = ix.points.last().map_or(0, |p| p.out);
            let indexing = cur.out >= last_out;
            let blk_off = (cur.out % BLOCK as u64) as usize;
            let step = cur.inf.step(
                &cur.inbuf[cur.in_start..cur.in_end],
                &mut cur.blk[blk_off..],
                indexing,
            );
            if step.consumed > 0 {
                cur.last_byte = cur.inbuf[cur.in_start + step.consumed - 1];
            }
            cur.in_start += step.consumed;
            let produced = &cur.blk[blk_off..blk_off + step.produced];
            let out_start = cur.out;
            cur.out += step.produced as u64;
            if cur.out > e.size {
                return Err(corrupt("inflates to more than the declared size"));
            }
            if let Some(h) = cur.crc.as_mut() {
                h.update(produced);
            }
            // Copy the part of the request this step produced.
            let from = req.start.max(out_start);
            let to = req.end.min(cur.out);
            if from < to {
                let s = &produced[(from - out_start) as usize..(to - out_start) as usize];
                buf[(from - req.start) as usize..(to - req.start) as usize].copy_from_slice(s);
            }
            match step.status {
                Status::DataError => return Err(corrupt("invalid deflate data")),
                Status::StreamEnd if cur.out != e.size => {
                    return Err(corrupt("stream ends before the declared size"))
                }
                _ => {}
            }
            if step.consumed == 0 && step.produced == 0 && step.status != Status::StreamEnd {
                stalls += 1;
                if stalls > 2 {
                    return Err(corrupt("inflate made no progress"));
                }
            } else {
                stalls = 0;
            }
            // Completed block (or the entry's tail).
            if step.produced > 0 && (cur.out.is_multiple_of(BLOCK as u64) || cur.out == e.size) {
                self.emit_block(idx, cur, req);
            }
            if indexing && cur.out >= last_out.saturating_add(ix.spacing) && cur.out < e.size {
                if let Some(bits) = cur.inf.at_block_boundary() {
                    if bits <= 7 {
                        self.add_checkpoint(idx, ix, cur, bits);
                    }
                }
            }
            if cur.out == e.size {
                self.finish(e, cur, step.status)?;
                break;
            }
        }
        Ok(())
    }

    fn emit_block(&self, idx: usize, cur: &mut Cursor, req: &Request) {
        let in_block = (cur.out - 1) % BLOCK as u64 + 1;
        let start = cur.out - in_block;
        let full = cur.blk_from == 0;
        cur.blk_from = 0;
        if !full {
            return;
        }
        let data: Arc<[u8]> = Arc::from(&cur.blk[..in_block as usize]);
        lock(&self.cache).insert((idx, start / BLOCK as u64), data.clone());
        let inside_request = start >= req.start && cur.out <= req.end;
        if let (Some(sink), false) = (&self.sink, inside_request) {
            sink.offer(idx, start, data);
        }
    }

    /// Checks the end of the stream and, for a cursor that saw everything, the CRC.
    fn finish(&self, e: &Entry, cur: &mut Cursor, last: Status) -> Result<(), ZipError> {
        let corrupt = |reason| ZipError::CorruptDeflate {
            name: e.display_name(),
            reason,
        };
        if last != Status::StreamEnd {
            // All declared bytes are out; the stream must end without more output.
            let mut probe = [0u8; 1];
            for _ in 0..4 {
                if cur.in_start == cur.in_end {
                    break;
                }
                let s = cur
                    .inf
                    .step(&cur.inbuf[cur.in_start..cur.in_end], &mut probe, false);
                cur.in_start += s.consumed;
                if s.produced > 0 {
                    return Err(corrupt("inflates to more than the declared size"));
                }
                match s.status {
                    Status::StreamEnd => {
                        cur.finished = true;
                        break;
                    }
                    Status::DataError => return Err(corrupt("invalid deflate data")),
                    _ => {}
                }
            }
            // If the input buffer ran dry first, the end is checked no further: the bytes are
            // all there and (below) the CRC covers them.
        } else {
            cur.finished = true;
        }
        cur.finished = true;
        if let Some(h) = cur.crc.take() {
            let actual = h.finalize();
            if actual != e.crc32 {
                return Err(ZipError::CrcMismatch {
                    name: e.display_name(),
                    expected: e.crc32,
                    actual,
                });
            }
        }
        Ok(())
    }

    fn add_checkpoint(&self, idx: usize, ix: &mut EntryIndex, cur: &Cursor, bits: u8) {
        let mut window = Box::new([0u8; WINDOW]);
        let len = cur.inf.dictionary(&mut window);
        let consumed_to = cur.in_next - (cur.in_end - cur.in_start) as u64;
        let point = Checkpoint {
            out: cur.out,
            input: consumed_to,
            bits,
            prev_byte: cur.last_byte,
            window: window[..len].into(),
        };
        let bytes = point.window.len() as u64;
        ix.points.push(point);
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        lock(&self.holders).insert(idx, cur.last_use);
        if now > self.opts.index_budget {
            self.reclaim(idx, ix);
        }
    }

    /// Brings the window total back under the budget.
    fn reclaim(&self, idx: usize, ix: &mut EntryIndex) {
        // First make room by evicting other entries' indexes, least recently used first.
        loop {
            if self.used.load(Ordering::Relaxed) <= self.opts.index_budget {
                return;
            }
            let victim = {
                let holders = lock(&self.holders);
                holders
                    .iter()
                    .filter(|(&k, _)| k != idx)
                    .min_by_key(|(_, &t)| t)
                    .map(|(&k, _)| k)
            };
            let Some(v) = victim else { break };
            lock(&self.holders).remove(&v);
            if let Some(m) = self.index.get(v) {
                if let Ok(mut other) = m.try_lock() {
                    let freed = other.window_bytes();
                    other.points.clear();
                    self.used.fetch_sub(freed, Ordering::Relaxed);
                }
            }
        }
        // Then thin this entry.
        while self.used.load(Ordering::Relaxed) > self.opts.index_budget && ix.points.len() > 1 {
            let freed = ix.thin();
            self.used.fetch_sub(freed, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::parse;
    use ziparchive::testzip::ZipBuilder;

    /// Log-like text (compresses about 2:1 like the benchmark corpus).
    pub fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let words: Vec<Vec<u8>> = (0..512)
            .map(|_| {
                let n = 2 + (rnd() % 9) as usize;
                (0..n).map(|_| b'a' + (rnd() % 26) as u8).collect()
            })
            .collect();
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            let w = &words[(rnd() % words.len() as u64) as usize];
            out.extend_from_slice(w);
            out.push(if rnd() % 12 == 0 { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }

    fn archive(data: &[u8]) -> (Vec<u8>, Entry) {
        let mut b = ZipBuilder::new();
        b.deflated("t.log", data);
        let z = b.finish();
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        let e = a.entries[0].clone();
        (z, e)
    }

    fn small_opts() -> DeflateOptions {
        DeflateOptions {
            min_spacing: 64 * 1024,
            index_budget: 4 << 20,
            max_cursors: 3,
            cache_bytes: 256 * 1024,
        }
    }

    #[test]
    fn sequential_read_matches_and_verifies_crc() {
        let data = text(3 << 20, 1);
        let (z, e) = archive(&data);
        let r = DeflateReader::new(1, small_opts(), None);
        let mut out = vec![0u8; data.len()];
        let mut off = 0;
        while off < data.len() {
            let n = r
                .read(
                    z.as_slice(),
                    0,
                    &e,
                    off as u64,
                    &mut out[off..(off + 128 * 1024).min(data.len())],
                )
                .unwrap();
            assert!(n > 0);
            off += n;
        }
        assert_eq!(out, data);
        assert!(r.checkpoints(0) > 5, "index built: {}", r.checkpoints(0));
        assert_eq!(
            r.read(z.as_slice(), 0, &e, e.size, &mut [0u8; 10]).unwrap(),
            0
        );
    }

    #[test]
    fn random_reads_restart_from_checkpoints() {
        let data = text(4 << 20, 2);
        let (z, e) = archive(&data);
        let r = DeflateReader::new(1, small_opts(), None);
        // Build the index by reading the last byte.
        let mut one = [0u8; 1];
        r.read(z.as_slice(), 0, &e, e.size - 1, &mut one).unwrap();
        assert_eq!(one[0], data[data.len() - 1]);
        let points = r.checkpoints(0);
        assert!(points >= 8, "{points}");
        let mut s = 12345u64;
        for _ in 0..300 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = (s >> 20) % (data.len() as u64 - 1);
            let len = 1 + (s as usize >> 3) % 9000;
            let mut buf = vec![0u8; len];
            let n = r.read(z.as_slice(), 0, &e, off, &mut buf).unwrap();
            let want = &data[off as usize..(off as usize + len).min(data.len())];
            assert_eq!(&buf[..n], want, "at {off}+{len}");
        }
    }

    #[test]
    fn index_memory_is_bounded() {
        let data = text(6 << 20, 3);
        let (z, e) = archive(&data);
        let opts = DeflateOptions {
            min_spacing: 32 * 1024,
            index_budget: 256 * 1024,
            max_cursors: 2,
            cache_bytes: 128 * 1024,
        };
        let r = DeflateReader::new(1, opts, None);
        let mut buf = vec![0u8; 4096];
        r.read(z.as_slice(), 0, &e, e.size - 4096, &mut buf)
            .unwrap();
        assert!(r.index_bytes() <= 256 * 1024, "{}", r.index_bytes());
        assert!(r.checkpoints(0) >= 2);
        assert_eq!(&buf[..], &data[data.len() - 4096..]);
        // Still correct everywhere after thinning.
        for off in [0u64, 1 << 20, 3 << 20, 5 << 20] {
            r.read(z.as_slice(), 0, &e, off, &mut buf).unwrap();
            assert_eq!(&buf[..], &data[off as usize..off as usize + 4096]);
        }
    }

    #[test]
    fn bad_crc_is_reported_at_the_end() {
        let data = text(300_000, 4);
        let mut b = ZipBuilder::new();
        b.deflated("t.log", &data).crc ^= 1;
        let z = b.finish();
        let e = parse(z.as_slice(), z.len() as u64).unwrap().entries[0].clone();
        let r = DeflateReader::new(1, small_opts(), None);
        let mut buf = vec![0u8; data.len()];
        let err = r.read(z.as_slice(), 0, &e, 0, &mut buf).unwrap_err();
        assert!(matches!(err, ZipError::CrcMismatch { .. }), "{err}");
        // And it stays failed.
        let err = r.read(z.as_slice(), 0, &e, 0, &mut buf[..10]).unwrap_err();
        assert!(matches!(err, ZipError::CrcMismatch { .. }), "{err}");
    }

    #[test]
    fn corrupt_stream_is_an_error_not_a_panic() {
        let data = text(200_000, 5);
        let mut b = ZipBuilder::new();
        let ent = b.deflated("t.log", &data);
        for x in ent.payload.iter_mut().skip(100).step_by(7) {
            *x ^= 0x5a;
        }
        let z = b.finish();
        let e = parse(z.as_slice(), z.len() as u64).unwrap().entries[0].clone();
        let r = DeflateReader::new(1, small_opts(), None);
        let mut buf = vec![0u8; data.len()];
        assert!(r.read(z.as_slice(), 0, &e, 0, &mut buf).is_err());
    }

    #[test]
    fn many_entries_share_the_budget() {
        let mut b = ZipBuilder::new();
        let datas: Vec<Vec<u8>> = (0..6).map(|i| text(1 << 20, 10 + i)).collect();
        for (i, d) in datas.iter().enumerate() {
            b.deflated(&format!("f{i}"), d);
        }
        let z = b.finish();
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        let opts = DeflateOptions {
            min_spacing: 32 * 1024,
            index_budget: 300 * 1024,
            max_cursors: 2,
            cache_bytes: 64 * 1024,
        };
        let r = DeflateReader::new(6, opts, None);
        let mut buf = vec![0u8; 1000];
        for round in 0..2 {
            for (i, e) in a.entries.iter().enumerate() {
                let off = e.size - 1000 - round * 5000;
                r.read(z.as_slice(), i, e, off, &mut buf).unwrap();
                assert_eq!(&buf[..], &datas[i][off as usize..off as usize + 1000]);
                assert!(r.index_bytes() <= 300 * 1024);
            }
        }
    }

    /// A source that counts the compressed bytes read from it.
    struct Counting<'a> {
        data: &'a [u8],
        bytes: AtomicU64,
        calls: AtomicU64,
    }

    impl<'a> Counting<'a> {
        fn new(data: &'a [u8]) -> Self {
            Counting {
                data,
                bytes: AtomicU64::new(0),
                calls: AtomicU64::new(0),
            }
        }

        fn take(&self) -> u64 {
            self.bytes.swap(0, Ordering::Relaxed)
        }
    }

    impl Source for Counting<'_> {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let n = self.data.read_at(buf, offset)?;
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(n)
        }
    }

    /// Collects what the reader offers to the page cache.
    #[derive(Default)]
    struct Offers(Mutex<Vec<(usize, u64, Vec<u8>)>>);

    impl BlockSink for Offers {
        fn offer(&self, entry: usize, offset: u64, data: Arc<[u8]>) {
            lock(&self.0).push((entry, offset, data.to_vec()));
        }
    }

    fn block(v: u8, len: usize) -> Arc<[u8]> {
        Arc::from(vec![v; len])
    }

    #[test]
    fn block_cache_is_an_lru_bounded_in_bytes() {
        let mut c = BlockCache {
            map: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            cap: 30,
            tick: 0,
        };
        for b in 0..3 {
            c.insert((0, b), block(b as u8, 10));
        }
        assert_eq!(c.bytes, 30, "exactly full: nothing evicted");
        // Touching block 0 makes block 1 the least recently used.
        assert_eq!(c.get((0, 0)).as_deref(), Some(&[0u8; 10][..]));
        c.insert((0, 3), block(3, 10));
        assert_eq!(c.bytes, 30);
        assert!(
            c.get((0, 1)).is_none(),
            "the least recently used block goes"
        );
        for b in [0, 2, 3] {
            assert_eq!(c.get((0, b)).as_deref(), Some(&[b as u8; 10][..]));
        }
        // Replacing a block counts its bytes once.
        c.insert((0, 3), block(9, 5));
        assert_eq!(c.bytes, 25);
        assert_eq!(c.get((0, 3)).as_deref(), Some(&[9u8; 5][..]));
        // A block larger than the whole cache is not kept, and evicts nothing.
        c.insert((1, 0), block(7, 31));
        assert!(c.get((1, 0)).is_none());
        assert_eq!(c.bytes, 25);
        // One exactly as large as the cache is kept, alone.
        c.insert((1, 1), block(8, 30));
        assert_eq!(c.bytes, 30);
        assert_eq!(c.get((1, 1)).map(|d| d.len()), Some(30));
        assert!(c.get((0, 0)).is_none() && c.get((0, 2)).is_none());
    }

    #[test]
    fn thinning_keeps_every_other_checkpoint_and_doubles_the_spacing() {
        let mut ix = EntryIndex {
            spacing: 100,
            ..EntryIndex::default()
        };
        for i in 1..=5u64 {
            ix.points.push(Checkpoint {
                out: i * 100,
                input: i,
                bits: 0,
                prev_byte: 0,
                window: vec![0u8; 10 * i as usize].into_boxed_slice(),
            });
        }
        let freed = ix.thin();
        let kept: Vec<u64> = ix.points.iter().map(|p| p.out).collect();
        assert_eq!(kept, [200, 400]);
        assert_eq!(freed, 10 + 30 + 50);
        assert_eq!(ix.window_bytes(), 20 + 40);
        assert_eq!(ix.spacing, 200);
    }

    /// An index of `n` checkpoints with whole windows, `spacing` 100 apart, counted in the
    /// reader's total as the checkpoints a read adds are.
    fn counted_index(r: &DeflateReader, n: u64) -> EntryIndex {
        let ix = EntryIndex {
            spacing: 100,
            points: (1..=n)
                .map(|i| Checkpoint {
                    out: i * 100,
                    input: i,
                    bits: 0,
                    prev_byte: 0,
                    window: vec![0u8; WINDOW].into_boxed_slice(),
                })
                .collect(),
            ..EntryIndex::default()
        };
        r.used.fetch_add(ix.window_bytes(), Ordering::Relaxed);
        ix
    }

    #[test]
    fn an_entry_thins_only_until_it_is_within_the_budget() {
        // Six windows against a budget of three, and no other entry to evict: one thinning
        // leaves three, exactly the budget, and that is enough.
        let r = DeflateReader::new(
            1,
            DeflateOptions {
                index_budget: 3 * WINDOW as u64,
                ..small_opts()
            },
            None,
        );
        let mut ix = counted_index(&r, 6);
        r.reclaim(0, &mut ix);
        let kept: Vec<u64> = ix.points.iter().map(|p| p.out).collect();
        assert_eq!(kept, [200, 400, 600]);
        assert_eq!(r.index_bytes(), 3 * WINDOW as u64);
    }

    #[test]
    fn an_entry_keeps_its_last_checkpoint_even_over_the_budget() {
        // Over the budget with one checkpoint (the rest is held by entries being read): the
        // entry keeps it; without it, every read would inflate from the start.
        let r = DeflateReader::new(
            1,
            DeflateOptions {
                index_budget: WINDOW as u64,
                ..small_opts()
            },
            None,
        );
        r.used.fetch_add(WINDOW as u64, Ordering::Relaxed);
        let mut ix = counted_index(&r, 1);
        r.reclaim(0, &mut ix);
        assert_eq!(ix.points.len(), 1);
        assert_eq!(r.index_bytes(), 2 * WINDOW as u64);
    }

    #[test]
    fn the_index_is_spaced_and_counted() {
        let data = text(3 << 20, 6);
        let (z, e) = archive(&data);
        let r = DeflateReader::new(1, small_opts(), None);
        let mut one = [0u8; 1];
        r.read(z.as_slice(), 0, &e, e.size - 1, &mut one).unwrap();
        let ix = lock(&r.index[0]);
        // A 3 MiB entry fits the 2 MiB half-budget at the smallest spacing.
        assert_eq!(ix.spacing, small_opts().min_spacing);
        assert!(ix.points.len() >= 20, "{}", ix.points.len());
        let mut last = 0;
        for p in &ix.points {
            assert!(p.out >= last + ix.spacing, "{} after {last}", p.out);
            assert_eq!(p.window.len(), WINDOW);
            last = p.out;
        }
        assert_eq!(r.index_bytes(), ix.window_bytes());
        assert_eq!(r.index_bytes(), (ix.points.len() * WINDOW) as u64);
    }

    #[test]
    fn a_large_entry_gets_a_wider_spacing() {
        // 8 MiB with a 1 MiB budget: half of it (16 windows) must cover the whole entry, so
        // the spacing is 8 MiB / 16 = 512 KiB.
        let data = text(8 << 20, 7);
        let (z, e) = archive(&data);
        let opts = DeflateOptions {
            index_budget: 1 << 20,
            ..small_opts()
        };
        let r = DeflateReader::new(1, opts, None);
        r.read(z.as_slice(), 0, &e, 0, &mut [0u8; 1]).unwrap();
        assert_eq!(lock(&r.index[0]).spacing, 512 * 1024);
    }

    #[test]
    fn a_cached_range_is_served_without_reading_the_archive() {
        let data = text(1 << 20, 8);
        let (z, e) = archive(&data);
        let src = Counting::new(&z);
        let r = DeflateReader::new(1, small_opts(), None);
        // Reading into block 3 completes blocks 0, 1 and 2 on the way: they are cached.
        let mut buf = vec![0u8; 100];
        let at = 3 * BLOCK as u64 + 7;
        r.read(&src, 0, &e, at, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[at as usize..at as usize + 100]);
        assert!(src.take() > 0);
        // Any range inside blocks 0..=2, across block edges too, comes from the cache alone.
        for (off, len) in [
            (0, 10),
            (BLOCK - 5, 10),
            (BLOCK / 2, 2 * BLOCK),
            (1, 3 * BLOCK - 1),
        ] {
            let mut buf = vec![0u8; len];
            let n = r.read(&src, 0, &e, off as u64, &mut buf).unwrap();
            assert_eq!(n, len);
            assert_eq!(&buf[..], &data[off..off + len], "at {off}+{len}");
            assert_eq!(src.take(), 0, "{off}+{len} read the archive");
        }
        // A range reaching past the cached blocks is inflated.
        let mut buf = vec![0u8; 2 * BLOCK];
        r.read(&src, 0, &e, 2 * BLOCK as u64, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[2 * BLOCK..4 * BLOCK]);
    }

    #[test]
    fn compressed_data_is_read_in_64_kib_chunks_and_once() {
        let data = text(1 << 20, 12);
        let (z, e) = archive(&data);
        let src = Counting::new(&z);
        let r = DeflateReader::new(1, small_opts(), None);
        let mut out = vec![0u8; data.len()];
        for (i, chunk) in out.chunks_mut(128 * 1024).enumerate() {
            r.read(&src, 0, &e, (i * 128 * 1024) as u64, chunk).unwrap();
        }
        assert_eq!(out, data);
        assert_eq!(src.bytes.load(Ordering::Relaxed), e.compressed_size);
        let calls = src.calls.load(Ordering::Relaxed);
        assert_eq!(calls, e.compressed_size.div_ceil(64 * 1024), "{calls}");
    }

    /// Three 1 MiB deflated entries and a reader whose 256 KiB index budget gives each a
    /// 256 KiB spacing, so three checkpoints (96 KiB of windows) per entry: two entries fit,
    /// the third one's last checkpoint goes over. Entries 0 and 1 are indexed (read to their
    /// last byte) before it is returned.
    struct ThreeEntries {
        zip: Vec<u8>,
        entries: Vec<Entry>,
        datas: Vec<Vec<u8>>,
        reader: DeflateReader,
    }

    impl ThreeEntries {
        fn new(seed: u64) -> Self {
            let mut b = ZipBuilder::new();
            let datas: Vec<Vec<u8>> = (0..3).map(|i| text(1 << 20, seed + i)).collect();
            for (i, d) in datas.iter().enumerate() {
                b.deflated(&format!("f{i}"), d);
            }
            let zip = b.finish();
            let entries = parse(zip.as_slice(), zip.len() as u64).unwrap().entries;
            let opts = DeflateOptions {
                min_spacing: 32 * 1024,
                index_budget: 256 * 1024,
                max_cursors: 1,
                cache_bytes: 64 * 1024,
            };
            let t = ThreeEntries {
                zip,
                entries,
                datas,
                reader: DeflateReader::new(3, opts, None),
            };
            t.read(0, (1 << 20) - 1, 1);
            t.read(1, (1 << 20) - 1, 1);
            assert_eq!((t.reader.checkpoints(0), t.reader.checkpoints(1)), (3, 3));
            assert_eq!(t.reader.index_bytes(), 6 * WINDOW as u64);
            t
        }

        /// Reads `len` bytes of entry `i` at `off` and checks them.
        fn read(&self, i: usize, off: usize, len: usize) {
            let mut buf = vec![0u8; len];
            self.reader
                .read(
                    self.zip.as_slice(),
                    i,
                    &self.entries[i],
                    off as u64,
                    &mut buf,
                )
                .unwrap();
            assert_eq!(buf, &self.datas[i][off..off + len]);
        }
    }

    #[test]
    fn a_read_makes_its_entry_the_last_index_to_be_evicted() {
        let t = ThreeEntries::new(20);
        // Entry 0 is read again (from its start, not from the cache): now entry 1 is the one
        // read least recently, and entry 2's last checkpoint evicts it.
        t.read(0, 100, 100);
        t.read(2, (1 << 20) - 1, 1);
        let r = &t.reader;
        assert_eq!(
            (r.checkpoints(0), r.checkpoints(1), r.checkpoints(2)),
            (3, 0, 3)
        );
        assert!(r.index_bytes() <= 256 * 1024);
    }

    #[test]
    fn an_entry_thins_its_own_index_when_no_other_can_be_evicted() {
        // Entries 0 and 1 are busy (their index locks held, as by readers in other threads)
        // when entry 2's last checkpoint goes over the budget: nothing can be evicted, so
        // entry 2 thins its own index, and only as far as the budget needs.
        let t = ThreeEntries::new(30);
        let r = &t.reader;
        let busy = (lock(&r.index[0]), lock(&r.index[1]));
        t.read(2, (1 << 20) - 1, 1);
        assert_eq!((busy.0.points.len(), busy.1.points.len()), (3, 3));
        drop(busy);
        // Three checkpoints made 9 windows, one over the budget of 8; thinning keeps every
        // other one (the middle one) and doubles the spacing.
        assert_eq!(r.checkpoints(2), 1);
        assert_eq!(r.index_bytes(), 7 * WINDOW as u64);
        for off in [0, 300_000, 600_000, 1_000_000] {
            t.read(2, off, 4096);
        }
    }

    #[test]
    fn a_block_restarted_inside_is_neither_cached_nor_served_half_made() {
        // Incompressible bytes: zlib ends a (stored) deflate block every 16 K symbols, so there
        // are checkpoints inside block 0 (text makes deflate blocks of ~110 KiB of output).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let (z, e) = archive(&data);
        // One cursor and a cache of one block: after the indexing pass only the last block is
        // cached, and every read below restarts from a checkpoint.
        let opts = DeflateOptions {
            min_spacing: 16 * 1024,
            index_budget: 4 << 20,
            max_cursors: 1,
            cache_bytes: BLOCK as u64,
        };
        let r = DeflateReader::new(1, opts, None);
        let mut last = [0u8; 1];
        r.read(z.as_slice(), 0, &e, e.size - 1, &mut last).unwrap();
        let outs: Vec<u64> = lock(&r.index[0]).points.iter().map(|p| p.out).collect();
        let inside = outs
            .iter()
            .copied()
            .find(|&out| out % BLOCK as u64 != 0 && out < BLOCK as u64)
            .unwrap_or_else(|| panic!("no checkpoint inside block 0: {outs:?}"));
        // From that checkpoint to past the end of block 0: the cursor fills block 0 only from
        // the checkpoint on, so the block must not be cached as whole.
        let at = inside + 10;
        let mut buf = vec![0u8; BLOCK + 10 - at as usize];
        r.read(z.as_slice(), 0, &e, at, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[at as usize..BLOCK + 10]);
        // The start of block 0 comes from the data, not from a half-filled cached block.
        let mut head = vec![0u8; 100];
        r.read(z.as_slice(), 0, &e, 0, &mut head).unwrap();
        assert_eq!(&head[..], &data[..100]);
    }

    #[test]
    fn sequential_readers_continue_their_parked_inflaters() {
        // Two entries read in turns, a block at a time, with no block cache: each read must go
        // on from where that entry's inflater stopped, so every compressed byte is read once.
        // (An inflater stops at the end of the block it was asked for, never beyond.)
        let mut b = ZipBuilder::new();
        let datas = [text(1 << 20, 9), text(1 << 20, 10)];
        for (i, d) in datas.iter().enumerate() {
            b.deflated(&format!("f{i}"), d);
        }
        let z = b.finish();
        let a = parse(z.as_slice(), z.len() as u64).unwrap();
        let src = Counting::new(&z);
        let opts = DeflateOptions {
            max_cursors: 2,
            cache_bytes: 0,
            ..small_opts()
        };
        let r = DeflateReader::new(2, opts, None);
        let mut buf = vec![0u8; BLOCK];
        for off in (0..1u64 << 20).step_by(BLOCK) {
            for (i, e) in a.entries.iter().enumerate() {
                r.read(&src, i, e, off, &mut buf).unwrap();
                assert_eq!(&buf[..], &datas[i][off as usize..off as usize + BLOCK]);
            }
        }
        let compressed: u64 = a.entries.iter().map(|e| e.compressed_size).sum();
        let read = src.take();
        assert!(
            read <= compressed,
            "{read} bytes read for {compressed} compressed"
        );
        assert!(read >= compressed - 2 * INPUT_CHUNK as u64);
        assert!(lock(&r.cursors).len() <= 2);
    }

    #[test]
    fn blocks_inflated_on_the_way_are_offered_and_requested_ones_are_not() {
        let data = text(1 << 20, 11);
        let (z, e) = archive(&data);
        let offers = Arc::new(Offers::default());
        let r = DeflateReader::new(1, small_opts(), Some(offers.clone()));
        // The request ends block 4: blocks 0-3 were inflated only to get there, and block 4
        // holds more than the request (the kernel caches whole pages).
        let at = 5 * BLOCK as u64 - 16;
        r.read(z.as_slice(), 0, &e, at, &mut [0u8; 16]).unwrap();
        let got: Vec<(usize, u64)> = lock(&offers.0).iter().map(|o| (o.0, o.1)).collect();
        let want: Vec<(usize, u64)> = (0..5).map(|b| (0, b * BLOCK as u64)).collect();
        assert_eq!(got, want);
        for (_, off, bytes) in lock(&offers.0).iter() {
            assert_eq!(&bytes[..], &data[*off as usize..*off as usize + BLOCK]);
        }
        lock(&offers.0).clear();
        // A request made of whole blocks to the end: they are its reply, not offers.
        let from = 5 * BLOCK;
        let mut rest = vec![0u8; data.len() - from];
        r.read(z.as_slice(), 0, &e, from as u64, &mut rest).unwrap();
        assert_eq!(rest, &data[from..]);
        assert!(lock(&offers.0).is_empty());
    }

    #[test]
    fn a_small_entry_ends_its_stream_at_its_size() {
        for len in [1usize, 1000, BLOCK - 1, BLOCK + 1] {
            let data = text(len, 12);
            let (z, e) = archive(&data);
            let r = DeflateReader::new(1, small_opts(), None);
            let mut buf = vec![0u8; len + 10];
            let n = r.read(z.as_slice(), 0, &e, 0, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[..], "{len}");
        }
    }

    /// A whole read of `data`, stored as the raw deflate stream `payload`, with the reader
    /// that made it (for its index).
    fn read_whole(data: &[u8], payload: Vec<u8>) -> (Result<Vec<u8>, ZipError>, DeflateReader) {
        let mut b = ZipBuilder::new();
        let ent = b.deflated("t.log", data);
        ent.payload = payload;
        ent.csize = ent.payload.len() as u64;
        let z = b.finish();
        let e = parse(z.as_slice(), z.len() as u64).unwrap().entries[0].clone();
        let r = DeflateReader::new(1, small_opts(), None);
        let mut out = vec![0u8; data.len()];
        let read = r.read(z.as_slice(), 0, &e, 0, &mut out).map(|n| {
            out.truncate(n);
            out
        });
        (read, r)
    }

    /// The reason a whole read of `data`, stored as the raw deflate stream `payload`, is refused.
    fn refusal(data: &[u8], payload: Vec<u8>) -> &'static str {
        match read_whole(data, payload).0 {
            Err(ZipError::CorruptDeflate { reason, .. }) => reason,
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
    }

    /// `data` as non-final stored deflate blocks of at most 65,535 bytes each.
    fn stored_blocks(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(0xffff) {
            let len = chunk.len() as u16;
            out.push(0x00);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A final stored block with no data: the end of a stream.
    const EMPTY_FINAL_BLOCK: [u8; 5] = [0x01, 0x00, 0x00, 0xff, 0xff];

    #[test]
    fn no_checkpoint_is_made_at_the_end_of_an_entry() {
        // Four stored blocks of 65,535 bytes, then an empty final block: the fourth ends, at a
        // block boundary, exactly at the declared size. Checkpoints come at block boundaries
        // at least 64 KiB apart, so the only one is at 131,070 (65,535 is too early, 196,605
        // too close to it); one at 262,140 would index a position nothing is left to read from.
        let data = text(4 * 0xffff, 17);
        let mut payload = stored_blocks(&data);
        payload.extend_from_slice(&EMPTY_FINAL_BLOCK);
        let (read, r) = read_whole(&data, payload);
        assert_eq!(read.unwrap(), data);
        assert_eq!(r.checkpoints(0), 1);
        assert_eq!(lock(&r.index[0]).points[0].out, 2 * 0xffff);
    }

    #[test]
    fn the_end_probe_stops_where_its_input_runs_out() {
        // The declared 1000 bytes, then 20,000 empty non-final stored blocks (100,000 bytes
        // that inflate to nothing) before the final one: more than the 64 KiB of compressed
        // data read at a time. The probe after the last declared byte takes the rest of the
        // buffer, finds neither output nor the end in it, and stops there (the bytes are all
        // out and their CRC is checked); it never reads a byte twice.
        let data = text(1000, 18);
        let mut payload = stored_blocks(&data);
        for _ in 0..20_000 {
            payload.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        }
        payload.extend_from_slice(&EMPTY_FINAL_BLOCK);
        assert_eq!(read_whole(&data, payload).0.unwrap(), data);
    }

    #[test]
    fn invalid_deflate_data_is_named() {
        // A stored-block header whose length and its complement disagree.
        let payload = vec![0x00, 0x05, 0x00, 0x05, 0x00, 0, 0, 0, 0, 0];
        assert_eq!(refusal(&text(1000, 13), payload), "invalid deflate data");
    }

    #[test]
    fn a_stream_shorter_than_its_declared_size_is_refused() {
        let data = text(5000, 14);
        let mut b = ZipBuilder::new();
        b.deflated("t.log", &data).size += 10;
        let z = b.finish();
        let e = parse(z.as_slice(), z.len() as u64).unwrap().entries[0].clone();
        let r = DeflateReader::new(1, small_opts(), None);
        let err = r
            .read(z.as_slice(), 0, &e, 0, &mut vec![0u8; 6000])
            .unwrap_err();
        assert!(
            matches!(
                err,
                ZipError::CorruptDeflate {
                    reason: "compressed data ends before the stream does",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn invalid_data_after_the_declared_size_is_refused() {
        // Two stored blocks hold exactly the declared 64 KiB, then comes a block header of the
        // reserved type 3: the entry's bytes are all there (and their CRC is right), but the
        // stream is not a valid deflate stream.
        let data = text(BLOCK, 15);
        let mut payload = vec![0x00, 0xff, 0xff, 0x00, 0x00];
        payload.extend_from_slice(&data[..0xffff]);
        payload.extend_from_slice(&[0x00, 0x01, 0x00, 0xfe, 0xff]);
        payload.extend_from_slice(&data[0xffff..]);
        payload.push(0x07);
        assert_eq!(refusal(&data, payload), "invalid deflate data");
    }

    #[test]
    fn valid_data_beyond_the_declared_size_is_refused() {
        // A stored block with the declared 1000 bytes (their CRC is right), then a final block
        // with 10 more: the stream is valid, but holds more than the entry says. The inflater
        // stops at the first block's end, so the probe after the last declared byte finds them.
        let data = text(1000, 16);
        let mut payload = vec![0x00, 0xe8, 0x03, 0x17, 0xfc];
        payload.extend_from_slice(&data);
        payload.extend_from_slice(&[0x01, 0x0a, 0x00, 0xf5, 0xff]);
        payload.extend_from_slice(b"0123456789");
        assert_eq!(
            refusal(&data, payload),
            "inflates to more than the declared size"
        );
    }
}
