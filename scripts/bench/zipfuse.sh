#!/usr/bin/env bash
# zipfuse benchmark against fuse-zip, archivemount and ratarmount (issue 3; method in
# docs/zipfuse.md). Needs root (FUSE mounts, drop_caches).
#
#   scripts/bench/zipfuse.sh                 # full run: pinned pass, all peers
#   BENCH_PEERS=zipfuse,fuse-zip scripts/bench/zipfuse.sh
#   BENCH_REPS=1 BENCH_CAP=20 scripts/bench/zipfuse.sh   # quicker
#   BENCH_PASSES=rows BENCH_ROUNDS=5 scripts/bench/zipfuse.sh   # only the stored rows: raw,
#       zipfuse and the minimal fuser probe (zipfuse/examples/fuse_probe.rs), alternating
#   BENCH_PROFILE=1 scripts/bench/zipfuse.sh   # also where each request's time goes (perf)
#
# The corpus (~700 MiB) is built once under build/bench/zipfuse/ (keyed by the generator's
# hash) and reused. Output: a markdown table on stdout, also saved in build/bench/zipfuse/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "$(id -u)" != 0 ]; then
    echo "zipfuse bench: needs root (FUSE mounts, drop_caches); skipped" >&2
    exit 0
fi
if [ -z "${ZIPFUSE_BIN:-}" ] || [ -z "${PROBE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p zipfuse --bin zipfuse --example fuse_probe)
fi
ZIPFUSE_BIN="${ZIPFUSE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/zipfuse}"
PROBE_BIN="${PROBE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/fuse_probe}"
export ZIPFUSE_BIN PROBE_BIN
python3 "$ROOT/scripts/bench/zipfuse_bench.py" --work "$ROOT/build/bench/zipfuse" "$@"
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    python3 "$ROOT/scripts/bench/zipfuse_profile.py" --work "$ROOT/build/bench/zipfuse"
fi
