//! FUSE operation sequences against a hostile archive (see `zipfuse::check::fuzz_ops`): the
//! archive is mounted in memory as the kernel would see it, walked, then driven by the input's
//! operations. Must never panic, hang or break an invariant the kernel relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zipfuse::check::fuzz_ops(data);
});
