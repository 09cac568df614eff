#!/usr/bin/env bash
# Guest memory: the RSS of init + microdroid_manager + zipfuse when the demo payload starts
# (microdroid_manager's log line), and the smallest --memory-mib at which the demo still runs
# (tests/examples/memory_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --quiet --release -p boot_tests --example memory_bench
