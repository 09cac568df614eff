#!/usr/bin/env python3
"""Where a zipfuse read's time goes (issue 15, item 5), from kernel tracepoints (perf record).

Run by `BENCH_PROFILE=1 scripts/bench/zipfuse.sh` (root; perf from Debian's linux-perf). Uses the
benchmark corpus and procedure of zipfuse_bench.py, pinned to CPU 0, and traces:

* Random 4 KiB reads, cold (3,000 of the offsets list): per request, the reader's pread split
  into FUSE delivery, zipfuse's handler, its pread of the archive (and the device time inside
  it, block issue to completion), the reply and the wake-up of the reader. Raw preads of the
  same bytes and the minimal fuser probe are traced the same way.
* The stored entry read sequentially, cold: CPU 0's time by activity (the daemon's pread copy,
  its reply copy, the reader's side, idle), with the FUSE request count and size.

Tracing adds a few microseconds per event, so the totals are above the untraced benchmark's;
the split is what this is for.
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zipfuse_bench as zb  # noqa: E402

EVENTS = ",".join([
    "block:block_rq_issue", "block:block_rq_complete", "sched:sched_switch",
    "syscalls:sys_enter_pread64", "syscalls:sys_exit_pread64",
    "syscalls:sys_enter_read", "syscalls:sys_exit_read",
    "syscalls:sys_enter_writev", "syscalls:sys_exit_writev",
    "syscalls:sys_enter_readv", "syscalls:sys_exit_readv",
    "syscalls:sys_enter_fadvise64",
])
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):(.*)")
READER = "python"


def traced(workload, tmp):
    """Runs `workload` under a system-wide perf record; returns the parsed events."""
    data = os.path.join(tmp, "perf.data")
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-e", EVENTS, "-o", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf is recording
    try:
        workload()
    finally:
        perf.send_signal(2)
        perf.wait()
    text = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True).stdout
    events = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            events.append((float(m.group(4)) * 1e6, m.group(1), int(m.group(3)), m.group(5), m.group(6)))
    return events


def per_request(events):
    """Splits every reader pread into phases; returns {phase: [µs]}."""
    ops, cur = [], None
    for t, comm, _cpu, name, _rest in events:
        daemon = comm.startswith("fuser")
        if comm.startswith(READER) and name == "syscalls:sys_enter_pread64":
            cur = {"enter": t}
        elif cur is None:
            continue
        elif daemon and name == "syscalls:sys_exit_read" and "got" not in cur:
            cur["got"] = t
        elif daemon and name == "syscalls:sys_enter_pread64":
            cur["pread"] = t
        elif name == "block:block_rq_issue" and "issue" not in cur:
            cur["issue"] = t
        elif name == "block:block_rq_complete" and "issue" in cur:
            cur["complete"] = t
        elif daemon and name == "syscalls:sys_exit_pread64":
            cur["pread_done"] = t
        elif daemon and name == "syscalls:sys_enter_writev":
            cur["reply"] = t
        elif comm.startswith(READER) and name == "syscalls:sys_exit_pread64":
            cur["exit"] = t
            ops.append(cur)
            cur = None
    phases = collections.OrderedDict([
        ("reader's pread, total", ("enter", "exit")),
        ("reader's syscall to the block request", ("enter", "issue")),
        ("device (block request to completion)", ("issue", "complete")),
        ("block completion to the reader's return", ("complete", "exit")),
        ("FUSE: delivery (reader's syscall to the daemon's read returning)", ("enter", "got")),
        ("FUSE: daemon, request to its pread", ("got", "pread")),
        ("FUSE: daemon, pread of the archive (includes the device)", ("pread", "pread_done")),
        ("FUSE: daemon, pread to reply", ("pread_done", "reply")),
        ("FUSE: reply to the reader's return (copy, wake-up)", ("reply", "exit")),
    ])
    out = collections.OrderedDict()
    for name, (a, b) in phases.items():
        xs = [o[b] - o[a] for o in ops if a in o and b in o and o[b] >= o[a]]
        if xs:
            out[name] = xs
    return out, len(ops)


def cpu_split(events, cpu=0):
    """CPU `cpu`'s time between consecutive events, by (task, what it was last seen doing)."""
    reads = [e[0] for e in events if e[1].startswith(READER) and "readv" in e[3]]
    lo, hi = (min(reads), max(reads)) if reads else (0, 0)
    evs = [e for e in events if e[2] == cpu and lo <= e[0] <= hi]
    acc = collections.Counter()
    for (t, comm, _c, name, rest), nxt in zip(evs, evs[1:]):
        task = "daemon" if comm.startswith("fuser") else "reader" if comm.startswith(READER) else comm
        if name == "sched:sched_switch":
            m = re.search(r"next_comm=(\S+)", rest)
            nxt_comm = m.group(1) if m else "?"
            task = "daemon" if nxt_comm.startswith("fuser") else "reader" if nxt_comm.startswith(READER) \
                else "idle" if nxt_comm.startswith("swapper") else nxt_comm
            what = "running"
        else:
            what = name.replace("syscalls:sys_enter_", "in ").replace("syscalls:sys_exit_", "after ")
        acc[(task, what)] += nxt[0] - t
    reads = [e for e in events if e[1].startswith("fuser") and e[3] == "syscalls:sys_enter_pread64"]
    return acc, len(reads)


def fmt_us(xs):
    return f"{statistics.median(xs):.1f} µs (mean {statistics.mean(xs):.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--reads", type=int, default=3000)
    args = ap.parse_args()
    args.work = os.path.abspath(args.work)
    os.sched_setaffinity(0, {0})
    zb.build_corpus(args.work)
    zs = os.path.join(args.work, "big_stored.zip")
    ds, _, ss = zb.entry_info(zs, "data/random.bin")
    offs = zb.offsets(zb.STORED_SIZE, 4)[: args.reads]
    mnt = os.path.join(args.work, "mnt-profile")
    out = [f"### Where a read's time goes (perf tracepoints, pinned to CPU 0, {args.reads} cold random reads)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        rows = collections.OrderedDict()
        counts = {}
        for who in ("raw", "zipfuse", "probe"):
            if who == "raw":
                zb.drop_caches()
                ev = traced(lambda: zb.rand_read(zs, offs, 600, ds), tmp)
            else:
                m = zb.Mount(who, zs, mnt)
                f = os.path.join(mnt, zb.ROW_FILE[who])
                try:
                    ev = traced(lambda: zb.rand_read(f, offs, 600), tmp)
                finally:
                    m.close()
            rows[who], counts[who] = per_request(ev)
        names = []
        for r in rows.values():
            names += [n for n in r if n not in names]
        out += ["| phase (median per request) | raw | zipfuse | probe |", "|---|---|---|---|"]
        for n in names:
            out.append(f"| {n} | " + " | ".join(fmt_us(rows[w][n]) if n in rows[w] else "—"
                                                 for w in rows) + " |")
        out += ["", "Requests traced: " + ", ".join(f"{w} {c}" for w, c in counts.items()), ""]

        out += ["### Sequential read of the stored entry, cold: CPU 0's time", ""]
        # Two alternating runs each; the faster one is shown (the host's page-cache compaction
        # now and then stalls one run's allocations, whichever daemon it is).
        best = {}
        for who in ("zipfuse", "probe", "zipfuse", "probe"):
            m = zb.Mount(who, zs, mnt)
            f = os.path.join(mnt, zb.ROW_FILE[who])
            rate = []
            try:
                ev = traced(lambda: rate.append(zb.seq_read(f, 600)), tmp)
            finally:
                m.close()
            if who not in best or rate[0] > best[who][0]:
                best[who] = (rate[0], cpu_split(ev))
        for who, (rate, (acc, n)) in best.items():
            busy = sum(acc.values())
            out += [f"{who}: {rate:.0f} MiB/s traced; {n} FUSE reads of "
                    f"{zb.STORED_SIZE / max(n, 1) / 1024:.0f} KiB on average", "",
                    "| task, activity | ms | share |", "|---|---|---|"]
            for (task, what), v in acc.most_common(10):
                out.append(f"| {task}, {what} | {v / 1e3:.1f} | {100 * v / busy:.0f}% |")
            out.append("")
    text = "\n".join(out)
    print(text)
    with open(os.path.join(args.work, "profile.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
