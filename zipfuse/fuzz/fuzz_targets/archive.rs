//! Archive bytes -> central directory, local headers, inode table, and reads of every entry
//! (stored and deflated, through the checkpoint index). Must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zipfuse::check::fuzz_one(data);
});
