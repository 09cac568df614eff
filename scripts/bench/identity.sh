#!/usr/bin/env bash
# Identity benchmark: what measuring the boot, the DICE handover, the instance image and the
# encrypted storage add to a boot (first boot and later boots), and /mnt/encryptedstore's
# throughput against the same ext4 on the plain virtio disk, in one VM (tests/examples/identity_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p boot_tests --example identity_bench
