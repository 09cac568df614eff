#!/usr/bin/env bash
# RPC binder benchmark (host-only): round trips per second and latency percentiles of
# IVirtualMachineService calls between our client and our server over a Unix socket pair.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p vm_service --example rpc_bench
