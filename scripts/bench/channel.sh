#!/usr/bin/env bash
# Host <-> payload channel benchmark: RPC binder over vsock (the payload's IHello, served with
# vm_payload::run_vsock_rpc_server) against a plain vsock stream echo in the same VM, in one
# run (tests/examples/channel_bench.rs): round trips/s, p50/p99 latency, 64 KiB body throughput.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p boot_tests --example channel_bench
