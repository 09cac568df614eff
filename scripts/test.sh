#!/usr/bin/env bash
# Every test of the workspace (`make test` runs this after the lints and fuzz-ci), as two cargo
# test runs side by side.
#
# Why two: a boot test spends much of its time waiting on its VM (console, vsock, timeouts),
# so one test binary at a time kept this 2-core machine's CPUs about 60 % busy. The boot test
# binaries are split in two groups of about the same length, each run by its own `cargo test`
# (each runs two tests at a time, as before), so up to four VMs boot at once: the same 1,063
# tests took 631 s one binary at a time and 475 s split in two (docs/reliability.md, CI time).
#
# Group 1 is the list below; group 2 is every other test of the workspace, so a new test file
# lands in group 2 by itself and nothing can be left out. Each group's output is printed when
# it ends; the script fails if either group fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# The longest boot test binaries (tests/tests/<name>.rs), about half of the whole.
group1=(identity api hostile_guest chaos debugging security channel cleanup lifecycle)

for name in "${group1[@]}"; do
    [ -f "tests/tests/$name.rs" ] || { echo "test: group 1 names tests/tests/$name.rs, which does not exist" >&2; exit 1; }
done
# Group 2: every other test target of the workspace, by name (several crates have a
# `bad_corpus` or a `corpus`; a name of group 1 selects that target in every crate that has one).
mapfile -t all_tests < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
names = {t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "test" in t["kind"]}
print("\n".join(sorted(names)))')
group2=()
for name in "${all_tests[@]}"; do
    if [[ " ${group1[*]} " != *" $name "* ]]; then
        group2+=("$name")
    fi
done

# Build everything first, so that the two runs below do not compete for cargo's build lock.
# Every run below selects the same packages (--workspace) and so the same features: a run with
# `-p` or `--exclude` resolves other features for shared dependencies, and recompiled them
# (about 30 s at the start of each group).
cargo test --workspace --no-fail-fast --no-run

args1=()
for name in "${group1[@]}"; do args1+=(--test "$name"); done
args2=()
for name in "${group2[@]}"; do args2+=(--test "$name"); done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
start=$(date +%s)
(
    rc=0
    cargo test --workspace --no-fail-fast "${args1[@]}" >"$logs/1" 2>&1 || rc=$?
    echo "$rc $(($(date +%s) - start))" >"$logs/1.done"
) &
(
    rc=0
    # Named explicitly, --lib, --bins and --doc also take the few targets whose manifest says
    # `test = false` or `doctest = false` (vm_payload, binder_ndk, tombstone_crasher): their
    # harnesses have no test and build in about a second; vm_payload's one example is `ignore`.
    cargo test --workspace --no-fail-fast --lib --bins "${args2[@]}" >"$logs/2" 2>&1 || rc=$?
    cargo test --workspace --no-fail-fast --doc >>"$logs/2" 2>&1 || rc=$?
    echo "$rc $(($(date +%s) - start))" >"$logs/2.done"
) &

# Print each group's output as soon as it ends.
printed=()
failed=0
while [ ${#printed[@]} -lt 2 ]; do
    for g in 1 2; do
        if [ -f "$logs/$g.done" ] && [[ " ${printed[*]} " != *" $g "* ]]; then
            read -r rc secs <"$logs/$g.done"
            echo "=== test group $g: exit $rc after $secs s"
            cat "$logs/$g"
            printed+=("$g")
            [ "$rc" = 0 ] || failed=1
        fi
    done
    sleep 1
done
wait
total=$(($(date +%s) - start))
passed=$(cat "$logs/1" "$logs/2" | awk '/^test result:/ {p += $4; f += $6; i += $8} END {printf "%d passed, %d failed, %d ignored", p, f, i}')
echo "=== tests: $passed in $total s (both groups)"
exit "$failed"
