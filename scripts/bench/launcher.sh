#!/usr/bin/env bash
# Payload libraries (tests/examples/launcher_bench.rs): the launcher's overhead from payload
# start to AVmPayload_main against a static executable payload, and the bytes the payload
# runtime adds to the system partition.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p boot_tests --example launcher_bench
