#!/usr/bin/env bash
# dm-verity hash-tree build throughput: our `verity` crate against `veritysetup format
# --no-superblock` (cryptsetup-bin) on the same 256 MiB input and salt, in one run.
# Prints MiB/s for each and the ratio ours/veritysetup (goal >= 1.0). Both are timed as whole
# processes (wall clock, start-up and file reading included), best of $RUNS runs each, page
# cache warm. The roots must agree, so the run is also an oracle check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SIZE_MIB="${VERITY_BENCH_MIB:-256}"
RUNS="${VERITY_BENCH_RUNS:-3}"
SALT="aabbccdd00112233445566778899aabbccddeeff00112233445566778899aabb"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

command -v veritysetup >/dev/null || PATH="$PATH:/usr/sbin:/sbin"
command -v veritysetup >/dev/null || { echo "bench/verity: veritysetup missing (cryptsetup-bin)" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q -p verity --example verity_build)
OURS="$TARGET_DIR/release/examples/verity_build"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data="$work/data.img"
# Deterministic pseudo-random input (AES-CTR keystream), so the root is the same every run.
if command -v openssl >/dev/null; then
    openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 -in /dev/zero 2>/dev/null \
        | head -c "$((SIZE_MIB * 1024 * 1024))" > "$data" || true
else
    head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$data"
fi
cat "$data" > /dev/null

now() { date +%s.%N; }
calc() { awk "BEGIN { x = $1; printf \"%.6f\", x }"; }
lt() { awk "BEGIN { exit !($1 < $2) }"; }
best_vs=""; best_ours=""; root_vs=""; root_ours=""
for _ in $(seq "$RUNS"); do
    t0=$(now)
    out_vs="$(veritysetup format "$data" "$work/vs.hash" --no-superblock --salt="$SALT")"
    t1=$(now)
    out_ours="$("$OURS" "$data" "$SALT" "$work/ours.hash")"
    t2=$(now)
    root_vs="$(awk '/^Root hash:/{print $3}' <<<"$out_vs")"
    root_ours="$(awk '/^Root hash:/{print $3}' <<<"$out_ours")"
    dvs=$(calc "$t1 - $t0"); dours=$(calc "$t2 - $t1")
    if [ -z "$best_vs" ] || lt "$dvs" "$best_vs"; then best_vs=$dvs; fi
    if [ -z "$best_ours" ] || lt "$dours" "$best_ours"; then best_ours=$dours; fi
done

if [ "$root_vs" != "$root_ours" ] || ! cmp -s "$work/vs.hash" "$work/ours.hash"; then
    echo "bench/verity: MISMATCH veritysetup root $root_vs, ours $root_ours" >&2
    exit 1
fi
mibs_vs=$(calc "$SIZE_MIB / $best_vs")
mibs_ours=$(calc "$SIZE_MIB / $best_ours")
ratio=$(calc "$mibs_ours / $mibs_vs")
printf 'verity hash-tree build, %d MiB, sha256, 4096/4096, best of %d (root %s, trees identical)\n' \
    "$SIZE_MIB" "$RUNS" "$root_ours"
printf '  veritysetup format: %8.1f MiB/s (%.3f s)\n' "$mibs_vs" "$best_vs"
printf '  verity crate:       %8.1f MiB/s (%.3f s)\n' "$mibs_ours" "$best_ours"
printf '  ratio ours/veritysetup: %.2fx (goal >= 1.0x)\n' "$ratio"
