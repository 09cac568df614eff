#!/usr/bin/env bash
# Load benchmark: VMS VMs (default 8) of MEM MiB (default 128) started together on this host,
# each running the demo payload through `vmctl run --json`. Every one must reach its payload
# and report it (exit 0, notifyPayloadFinished(0)); prints each VM's time to its payload and
# to its end, and the time from the common start to the last payload and to the last end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
VMS="${VMS:-8}"
MEM="${MEM:-128}"
VMCTL=target/release/vmctl
OUT=build/bench/load
rm -rf "$OUT" && mkdir -p "$OUT"

start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$VMS"); do
    "$VMCTL" run --json -m "$MEM" --timeout 600 >"$OUT/vm$i.json" 2>"$OUT/vm$i.err" &
    pids+=($!)
done
failed=0
for i in $(seq 1 "$VMS"); do
    if ! wait "${pids[$((i - 1))]}"; then
        echo "load: VM $i failed: $(tail -1 "$OUT/vm$i.err")" >&2
        failed=1
    fi
done
python3 - "$OUT" "$VMS" "$start" "$MEM" <<'PY'
import json, sys
out, n, start, mem = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
rows, bad = [], 0
for i in range(1, n + 1):
    events = [json.loads(l) for l in open(f"{out}/vm{i}.json") if l.startswith("{")]
    by = {e.get("event"): e for e in events}
    started = by.get("notifyPayloadStarted")
    finished = by.get("notifyPayloadFinished")
    if not started or not finished or finished.get("exit_code") != 0:
        bad += 1
        rows.append((i, None, None))
        continue
    rows.append((i, started["time"] - start, finished["time"] - start))
print(f"{n} VMs of {mem} MiB started together on {open('/proc/cpuinfo').read().count('processor')} host CPUs")
print(f"{'vm':>4} {'payload started (s)':>20} {'payload finished (s)':>21}")
for i, s, f in rows:
    show = lambda t: "-" if t is None else f"{t:.2f}"
    print(f"{i:>4} {show(s):>20} {show(f):>21}")
ok = [r for r in rows if r[1] is not None]
if ok:
    print(f"last payload started at {max(r[1] for r in ok):.2f} s, last finished at {max(r[2] for r in ok):.2f} s "
          f"(one VM alone: see boot.sh)")
if bad:
    print(f"{bad} VMs did not report their payload")
    sys.exit(1)
PY
exit "$failed"
