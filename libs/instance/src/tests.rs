//! Unit tests of the private helpers; the API is tested in `tests/`.

use crate::image::{entry_end, header_block};
use crate::*;

#[test]
fn min_instance_size() {
    assert_eq!(MIN_INSTANCE_SIZE, 1_118_208);
    assert_eq!(MIN_INSTANCE_SIZE % FILE_ALIGNMENT, 0);
    const { assert!(MIN_INSTANCE_SIZE >= JOURNAL_OFFSET + 2 * BLOCK_SIZE + MAX_ENTRY_PAYLOAD) };
    const { assert!(DEFAULT_INSTANCE_SIZE >= MIN_INSTANCE_SIZE) };
}

#[test]
fn entry_end_is_checked() {
    assert_eq!(entry_end(512, 0).unwrap(), 1024);
    assert_eq!(entry_end(512, 1).unwrap(), 1536);
    assert_eq!(entry_end(512, 512).unwrap(), 1536);
    assert!(matches!(entry_end(512, u64::MAX), Err(Error::Overflow)));
    assert!(matches!(
        entry_end(512, u64::MAX - 1023),
        Err(Error::Overflow)
    ));
    assert!(matches!(entry_end(u64::MAX - 511, 0), Err(Error::Overflow)));
}

#[test]
fn header_block_layout() {
    let b = header_block(&MICRODROID_UUID, 0x0102_0304_0506_0708);
    assert_eq!(&b[..16], &MICRODROID_UUID);
    assert_eq!(&b[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert!(b[24..].iter().all(|&x| x == 0));
}
