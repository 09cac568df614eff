#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target of the repository for FUZZ_SECONDS (default 60) each,
# over its corpus (corpus/<target>, seeded from the crate's testdata/bad when it has one), then
# one line per target: its crate, its name, the executions libFuzzer ran. A crash stops the run
# with the target's output (the input is in the fuzz crate's artifacts/).
# Only stable Rust is installed: cargo-fuzz needs RUSTC_BOOTSTRAP=1 for its sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
only=${FUZZ_ONLY:-}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
results=()
for dir in libs/*/fuzz zipfuse/fuzz; do
    [ -d "$dir/fuzz_targets" ] || continue
    for target in "$dir"/fuzz_targets/*.rs; do
        name=$(basename "$target" .rs)
        if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
        mkdir -p "$dir/corpus/$name"
        bad="$(dirname "$dir")/testdata/bad"
        if [ -d "$bad" ]; then cp -n "$bad"/* "$dir/corpus/$name/" 2>/dev/null || true; fi
        log=$(mktemp)
        echo "fuzz: $dir $name (${secs} s)" >&2
        if ! (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" "corpus/$name" -- \
                -max_total_time="$secs" -print_final_stats=1) >"$log" 2>&1; then
            echo "fuzz: $dir $name FAILED" >&2
            tail -40 "$log" >&2
            exit 1
        fi
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        results+=("$dir $name ${execs:-?}")
        rm -f "$log"
    done
done
printf '%-28s %-24s %s\n' "crate" "target" "executions"
for r in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-28s %-24s %s\n' $r
done
