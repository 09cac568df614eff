#!/usr/bin/env bash
# Every cargo-fuzz target of the repository (each `*/fuzz/` directory), for FUZZ_SECONDS each,
# over its corpus, then one line per target: its directory, its name, the executions libFuzzer
# ran. A crash stops the run with the target's output (the input is in the fuzz directory's
# artifacts/).
#
#   make fuzz        the campaign: 60 s per target, AddressSanitizer, one target at a time.
#   make fuzz-ci     what `make test` runs: a short fixed budget per target, no sanitizer
#                    (our parsers are safe Rust: a sanitizer finds nothing that overflow
#                    checks and bounds checks do not, and costs a second build of everything),
#                    two targets at a time (the machine is otherwise idle then), built
#                    unoptimised (FUZZ_PROFILE=dev): it replays each corpus and explores for a
#                    few seconds, so the build is most of its cost, and the dev build takes half
#                    the time of cargo-fuzz's release build with one codegen unit per crate
#                    (83 s against 169 s; docs/reliability.md, CI time).
#
# Knobs: FUZZ_SECONDS (default 60), FUZZ_ONLY (target names, separated by spaces),
# FUZZ_SANITIZER (address | none; default address), FUZZ_JOBS (targets run at once; default 1),
# FUZZ_RUNS (stop each target after this many executions instead; FUZZ_SECONDS is then its
# time limit, and a target that ran out of time before FUZZ_RUNS is reported, and fails the
# run), FUZZ_PROFILE (release | dev; default release: optimised, for campaigns; dev is
# unoptimised, with line tables only, and runs 10 to 30 times fewer executions a second).
#
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=3600 FUZZ_SANITIZER=none make fuzz
#                    the issue's 10 M executions per target (docs/reliability.md, Fuzzing).
#
# Each target lives beside the crate it fuzzes, `<crate>/fuzz/fuzz_targets/<name>.rs`, and is
# a `[[bin]]` of the one fuzz package, `fuzz/Cargo.toml`: one `cargo fuzz build` compiles every
# dependency once, with the features of all targets unified (one build per crate directory
# compiled sha2, nix or libFuzzer itself up to seven times). Target names are unique.
# A target's corpus is `<crate>/fuzz/corpus/<target>` (not committed), seeded from
# `<crate>/fuzz/seeds/<target>` when there is one, otherwise from the crate's `testdata/bad`.
# Only stable Rust is installed: cargo-fuzz needs RUSTC_BOOTSTRAP=1 for its sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${FUZZ_SECONDS:-60}
only=${FUZZ_ONLY:-}
sanitizer=${FUZZ_SANITIZER:-address}
jobs=${FUZZ_JOBS:-1}
runs=${FUZZ_RUNS:-}
if [ -n "$runs" ] && ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz: FUZZ_RUNS must be a positive number, not ${runs}" >&2
    exit 1
fi
profile=${FUZZ_PROFILE:-release}
case "$profile" in
    release) profile_args=() profile_dir=release ;;
    # Line tables only (below): a crash's stack trace keeps its files and lines, without full
    # debug info to write and link.
    dev) profile_args=(--dev) profile_dir=debug ;;
    *)
        echo "fuzz: FUZZ_PROFILE must be release or dev, not ${profile}" >&2
        exit 1
        ;;
esac
target_dir="$root/target/fuzz"

# The targets on disk must be exactly the package's bins: a target file that is not listed would
# never be built or run, and a listed one that is gone would fail the build late.
mapfile -t files < <(find . -path ./target -prune -o -path '*/fuzz/fuzz_targets/*.rs' -print \
    | sed 's#^\./##' | sort)
mapfile -t listed < <(sed -n 's#^path = "\.\./\(.*\)"$#\1#p' fuzz/Cargo.toml | sort)
if [ "${files[*]}" != "${listed[*]}" ]; then
    echo "fuzz: fuzz/Cargo.toml does not list exactly the target files:" >&2
    diff <(printf '%s\n' "${listed[@]}") <(printf '%s\n' "${files[@]}") >&2 || true
    exit 1
fi
targets=()
for f in "${files[@]}"; do
    name=$(basename "$f" .rs)
    if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then continue; fi
    targets+=("${f%/fuzz_targets/*} $name")
done
# A misspelt name in FUZZ_ONLY would otherwise be skipped without a word.
for name in $only; do
    if [[ " ${targets[*]} " != *" $name "* ]]; then
        echo "fuzz: no target named ${name}" >&2
        exit 1
    fi
done

# Checked after the arguments, so that a bad FUZZ_ONLY fails before anything is installed.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

echo "fuzz: building ${#targets[@]} target(s) (fuzz/Cargo.toml, sanitizer ${sanitizer}, ${profile})" >&2
build_log=$(mktemp)
# scripts/fuzz-rustc: no comparison tracing in big-number arithmetic (RSA signature checks).
if ! RUSTC_BOOTSTRAP=1 RUSTC_WRAPPER="$root/scripts/fuzz-rustc" CARGO_PROFILE_DEV_DEBUG=line-tables-only \
        cargo fuzz build --fuzz-dir fuzz -s "$sanitizer" "${profile_args[@]}" \
        --target-dir "$target_dir" >"$build_log" 2>&1; then
    echo "fuzz: build FAILED" >&2
    tail -40 "$build_log" >&2
    exit 1
fi
rm -f "$build_log"
bin_dir="$target_dir/x86_64-unknown-linux-gnu/$profile_dir"

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# One target: its corpus, then libFuzzer for `secs` seconds; writes "<dir> <name> <execs>".
run_one() {
    local dir=$1 name=$2 out=$3
    local corpus="$dir/corpus/$name"
    mkdir -p "$corpus" "$dir/artifacts/$name"
    if [ -d "$dir/seeds/$name" ]; then
        cp -n "$dir/seeds/$name"/* "$corpus/" 2>/dev/null || true
    elif [ -d "$(dirname "$dir")/testdata/bad" ]; then
        cp -n "$(dirname "$dir")/testdata/bad"/* "$corpus/" 2>/dev/null || true
    fi
    local log="$out.log"
    local started=$SECONDS
    if ! "$bin_dir/$name" "$corpus" -max_total_time="$secs" ${runs:+-runs="$runs"} \
            -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name/" -rss_limit_mb=2048 \
            >"$log" 2>&1; then
        echo "fuzz: $dir $name FAILED" >&2
        tail -40 "$log" >&2
        return 1
    fi
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    echo "$dir $name ${execs:-?} $((SECONDS - started))" >"$out"
    if [ -n "$runs" ] && ! [ "${execs:-0}" -ge "$runs" ] 2>/dev/null; then
        echo "fuzz: $dir $name ran ${execs:-?} of ${runs} executions in ${secs} s" >&2
        return 1
    fi
}

failed=0
running=0
i=0
for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    set -- $t
    i=$((i + 1))
    echo "fuzz: $1 $2 (${secs} s)" >&2
    run_one "$1" "$2" "$results/$(printf '%03d' $i)" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

printf '%-34s %-22s %12s %9s\n' "directory" "target" "executions" "seconds"
total=0
for f in "$results"/[0-9][0-9][0-9]; do
    [ -f "$f" ] || continue
    read -r dir name execs took <"$f"
    printf '%-34s %-22s %12s %9s\n' "$dir" "$name" "$execs" "$took"
    [[ "$execs" =~ ^[0-9]+$ ]] && total=$((total + execs))
done
if [ -n "$runs" ]; then
    echo "fuzz: ${#targets[@]} targets, ${runs} executions each (at most ${secs} s), ${total} executions in all" >&2
else
    echo "fuzz: ${#targets[@]} targets, ${secs} s each, ${total} executions in all" >&2
fi
exit "$failed"
