#!/usr/bin/env bash
# zipfuse benchmark against fuse-zip, archivemount and ratarmount (issue 3; method in
# docs/zipfuse.md). Needs root (FUSE mounts, drop_caches).
#
#   scripts/bench/zipfuse.sh                 # full run: pinned pass, all peers
#   BENCH_PEERS=zipfuse,fuse-zip scripts/bench/zipfuse.sh
#   BENCH_REPS=1 BENCH_CAP=20 scripts/bench/zipfuse.sh   # quicker
#
# The corpus (~700 MiB) is built once under build/bench/zipfuse/ (keyed by the generator's
# hash) and reused. Output: a markdown table on stdout, also saved in build/bench/zipfuse/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "$(id -u)" != 0 ]; then
    echo "zipfuse bench: needs root (FUSE mounts, drop_caches); skipped" >&2
    exit 0
fi
if [ -z "${ZIPFUSE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p zipfuse)
    ZIPFUSE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/zipfuse"
fi
export ZIPFUSE_BIN
exec python3 "$ROOT/scripts/bench/zipfuse_bench.py" --work "$ROOT/build/bench/zipfuse" "$@"
