#!/usr/bin/env bash
# The VirtualizationService path (tests/examples/api_bench.rs): createVm -> payload ready
# through vmclient + virtmgr against vmctl's in-process run, and host <-> payload RPC through
# connectVsock against a plain vsock echo in the same VM. Needs target/release/virtmgr
# (make bench builds it through make image).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p boot_tests --example api_bench
