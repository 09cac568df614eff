//! Kernel uevents (netlink messages and sysfs `uevent` files) to the block-device links init
//! makes: see `init::devices::fuzz_uevent`. Must never panic or accept a name with a path in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = init::devices::fuzz_uevent(data);
});
