#!/usr/bin/env bash
# `make mutants`: cargo-mutants over every crate that parses untrusted bytes, one crate at a
# time, then a table of caught / missed / timeout / unviable mutants and the score per crate
# (detected over viable: a mutant is detected when a test fails or it times out, one that
# makes the code loop forever; viable = caught + missed + timeout). The missed mutants of each crate are listed
# in target/mutants-out/<crate>/mutants.out/missed.txt (not under target/mutants/, the `mutants`
# build profile's output, where a crate's binary of the same name would collide);
# docs/reliability.md ("Test strength") says
# for each one left missed why it is equivalent.
#
# Knobs: MUTANTS_CRATES (a space-separated subset), MUTANTS_TIMEOUT (seconds per test run;
# by default cargo-mutants derives it from the unmutated run), MUTANTS_JOBS (builds at once, default 2), MUTANTS_ITERATE=1 (test again only
# what the last run of a crate did not catch, after adding tests). Installs cargo-mutants if it is
# missing. Long: about 2 s per mutant with the `mutants` profile (no debug info), some 4,600
# mutants over all the crates.
set -euo pipefail
cd "$(dirname "$0")/.."
default_crates="idsig bootconfig gpt_disk vm_status payload_config init_config payload_metadata
  liblp avb instance composite axml dice ziparchive apksig apex tombstone android_log adb vmconfig
  virtualizationservice rpcbinder zipfuse"
crates=${MUTANTS_CRATES:-$default_crates}
# Without MUTANTS_TIMEOUT, cargo-mutants sets the timeout from the unmutated test run.
timeout_args=()
if [ -n "${MUTANTS_TIMEOUT:-}" ]; then timeout_args=(--timeout "$MUTANTS_TIMEOUT"); fi
jobs=${MUTANTS_JOBS:-2}
iterate=()
if [ "${MUTANTS_ITERATE:-0}" = 1 ]; then iterate=(--iterate); fi
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked

rows=()
for crate in $crates; do
    out="target/mutants-out/$crate"
    mkdir -p "$out"
    echo "mutants: $crate" >&2
    dir="$out/mutants.out"
    count() {
        if [ -f "$dir/$1.txt" ]; then grep -c . "$dir/$1.txt" || true; else echo 0; fi
    }
    # An iteration tests again only what the last run left (missed, timeouts); the unviable
    # mutants of earlier runs are counted in unviable.count across runs.
    earlier_unviable=0
    if [ ${#iterate[@]} -gt 0 ] && [ -f "$out/unviable.count" ]; then
        earlier_unviable=$(cat "$out/unviable.count")
    fi
    # Exit status 2 means "some mutants were missed": the table reports them.
    status=0
    cargo mutants --package "$crate" --jobs "$jobs" "${timeout_args[@]}" --no-shuffle \
        --profile mutants --output "$out" "${iterate[@]}" >"$out/log.txt" 2>&1 || status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 2 ] && [ "$status" -ne 3 ]; then
        echo "mutants: $crate failed (exit $status)" >&2
        tail -20 "$out/log.txt" >&2
        exit 1
    fi
    caught=$(count caught)
    missed=$(count missed)
    timeouts=$(count timeout)
    unviable=$(($(count unviable) + earlier_unviable))
    if [ ${#iterate[@]} -gt 0 ]; then
        # Everything not missed, timed out or unviable now was caught by this or an earlier
        # run (by the mutant list of the code as it is now).
        total=$(cargo mutants --list --package "$crate" | grep -c . || true)
        caught=$((total - missed - timeouts - unviable))
    fi
    echo "$unviable" >"$out/unviable.count"
    viable=$((caught + missed + timeouts))
    score="-"
    if [ "$viable" -gt 0 ]; then
        score=$(awk -v c="$((caught + timeouts))" -v v="$viable" 'BEGIN { printf "%.1f%%", 100 * c / v }')
    fi
    rows+=("$crate $caught $missed $timeouts $unviable $score")
done

printf '%-22s %7s %7s %8s %9s %7s\n' crate caught missed timeout unviable score
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-22s %7s %7s %8s %9s %7s\n' $r
done
