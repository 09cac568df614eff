//! A minimal safe wrapper around zlib-rs's zlib-compatible raw inflate (`libz-rs-sys`), exposing
//! exactly what a zran-style index needs: `Z_BLOCK` stepping, `inflatePrime`,
//! `inflateSetDictionary` and `inflateGetDictionary`.
//!
//! zlib-rs is pure Rust (no C library, so static builds work); its zlib API is `unsafe` because
//! it takes raw pointers. All `unsafe` of the crate lives in this file.

use std::ffi::c_int;

use libz_rs_sys as z;

/// Size of the deflate window.
pub const WINDOW: usize = 32 * 1024;

/// Result of one [`RawInflate::step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Output bytes produced.
    pub produced: usize,
    /// What the stream said.
    pub status: Status,
}

/// Stream status after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// More input or output space is needed.
    Ok,
    /// The final block has been decoded.
    StreamEnd,
    /// The stream is corrupt.
    DataError,
    /// No progress was possible (no input, or no output space).
    BufError,
}

/// A raw-deflate (no zlib header) inflater.
pub struct RawInflate {
    // Boxed: zlib-rs keeps a back pointer from its state to the stream, so it must not move.
    strm: Box<z::z_stream>,
}

// SAFETY: the stream owns its state exclusively; the raw pointers in `z_stream` only point into
// buffers passed to `step` for the duration of that call (and are cleared afterwards), so moving
// the inflater to another thread is sound.
unsafe impl Send for RawInflate {}

impl RawInflate {
    /// A new inflater for a raw deflate stream; `None` if allocation failed.
    pub fn new() -> Option<RawInflate> {
        let mut strm = Box::new(z::z_stream::default());
        // SAFETY: `strm` is a valid, default-initialised z_stream (zalloc/zfree set by Default);
        // the version string and struct size come from the same library.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        (rc == z::Z_OK).then_some(RawInflate { strm })
    }

    /// Resets to the start of a new raw stream.
    pub fn reset(&mut self) -> bool {
        // SAFETY: the stream was initialised by `inflateInit2_` in `new`.
        unsafe { z::inflateReset(&mut *self.strm) == z::Z_OK }
    }

    /// Primes the bit buffer with the `bits` (0..=7) low bits of `value` (a zran restart point
    /// that is not byte-aligned).
    pub fn prime(&mut self, bits: u8, value: u8) -> bool {
        if bits == 0 {
            return true;
        }
        // SAFETY: the stream is initialised; `bits` is at most 7.
        unsafe {
            z::inflatePrime(
                &mut *self.strm,
                c_int::from(bits.min(7)),
                c_int::from(value),
            ) == z::Z_OK
        }
    }

    /// Sets the window (the last up-to-32 KiB of output before the restart point).
    pub fn set_dictionary(&mut self, dict: &[u8]) -> bool {
        let len = dict.len().min(WINDOW);
        let dict = &dict[dict.len() - len..];
        // SAFETY: the stream is initialised; `dict` is valid for `len` (≤ 32 KiB) bytes.
        unsafe { z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), len as u32) == z::Z_OK }
    }

    /// Copies the current window (up to 32 KiB of most recent output) into `out`; returns its
    /// length.
    pub fn dictionary(&self, out: &mut [u8; WINDOW]) -> usize {
        let mut len: u32 = 0;
        // SAFETY: the stream is initialised; `out` is writable for 32 KiB, which is the most the
        // window can hold; `len` is a valid out-pointer.
        let rc = unsafe { z::inflateGetDictionary(&*self.strm, out.as_mut_ptr(), &mut len) };
        if rc == z::Z_OK {
            (len as usize).min(WINDOW)
        } else {
            0
        }
    }

    /// Inflates from `input` into `output`, stopping at the end of a deflate block when
    /// `stop_at_block` is set (zlib's `Z_BLOCK`).
    pub fn step(&mut self, input: &[u8], output: &mut [u8], stop_at_block: bool) -> Step {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = output.len().min(u32::MAX as usize);
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = in_len as u32;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = out_len as u32;
        let flush = if stop_at_block {
            z::Z_BLOCK
        } else {
            z::Z_NO_FLUSH
        };
        // SAFETY: the stream is initialised; next_in/avail_in and next_out/avail_out describe the
        // live `input` and `output` slices for the duration of this call only.
        let rc = unsafe { z::inflate(&mut *self.strm, flush) };
        let consumed = in_len - self.strm.avail_in as usize;
        let produced = out_len - self.strm.avail_out as usize;
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        let status = match rc {
            z::Z_OK => Status::Ok,
            z::Z_STREAM_END => Status::StreamEnd,
            z::Z_BUF_ERROR => Status::BufError,
            _ => Status::DataError,
        };
        Step {
            consumed,
            produced,
            status,
        }
    }

    /// After a `Z_BLOCK` step: the number of unused bits in the last consumed byte if the stream
    /// stopped exactly at the end of a non-final block, else `None` (zran.c's
    /// `data_type & 128 && !(data_type & 64)`).
    pub fn at_block_boundary(&self) -> Option<u8> {
        let dt = self.strm.data_type;
        (dt & 128 != 0 && dt & 64 == 0).then_some((dt & 7) as u8)
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised in `new` and is ended exactly once.
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflates_a_stream() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let c = ziparchive::testzip::deflate(&data);
        let mut inf = RawInflate::new().unwrap();
        let mut out = vec![0u8; data.len() + 10];
        let s = inf.step(&c, &mut out, false);
        assert_eq!(s.status, Status::StreamEnd);
        assert_eq!(s.produced, data.len());
        assert_eq!(&out[..s.produced], &data[..]);
    }

    #[test]
    fn garbage_is_a_data_error() {
        let mut inf = RawInflate::new().unwrap();
        let mut out = vec![0u8; 100];
        let s = inf.step(&[0xff; 64], &mut out, false);
        assert_eq!(s.status, Status::DataError);
    }
}
