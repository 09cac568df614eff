#!/usr/bin/env python3
"""zipfuse vs fuse-zip / archivemount / ratarmount benchmark (called by zipfuse.sh).

Corpus and procedure (docs/zipfuse.md, Benchmark): fixed seeds, fresh mount
per workload, caches dropped before mounting and before each workload, daemon in the
foreground, mount time = spawn until /proc/self/mountinfo lists the mount point and listing it
works, peak RSS = VmHWM of the daemon just before unmounting. The main pass pins the harness
(hence daemons and workloads) to CPU 0.
"""
import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

MiB = 1 << 20
STORED_SIZE = 512 * MiB
DEFLATED_SIZE = 256 * MiB
GEN_VERSION = "3"  # bump when the generator below changes

# ---------------------------------------------------------------- corpus


def vocabulary(rng):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(4096)]
    words += [str(rng.randrange(100000)) for _ in range(512)]
    for tok in ["INFO", "WARN", "ERROR", "DEBUG", "ActivityManager:", "pid=", "uid=", "q"]:
        words += [tok] * 64
    return words


def text_chunk(rng, words, size):
    out = []
    n = 0
    while n < size:
        w = rng.choice(words)
        out.append(w)
        n += len(w) + 1
    s = (" ".join(out) + " ").replace("q ", "q\n").encode()
    return s[:size]


def zinfo(name, compress):
    zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    zi.create_system = 3
    zi.external_attr = (0o100644) << 16
    zi.compress_type = compress
    return zi


def build_corpus(work):
    os.makedirs(work, exist_ok=True)
    stamp = os.path.join(work, "corpus.v" + GEN_VERSION)
    if os.path.exists(stamp):
        return
    t0 = time.time()
    print("building corpus in", work, file=sys.stderr)
    rng = random.Random(1)
    with zipfile.ZipFile(os.path.join(work, "big_stored.zip.tmp"), "w") as z:
        with z.open(zinfo("data/random.bin", zipfile.ZIP_STORED), "w", force_zip64=True) as f:
            for _ in range(STORED_SIZE // MiB):
                f.write(rng.randbytes(MiB))
    os.rename(os.path.join(work, "big_stored.zip.tmp"), os.path.join(work, "big_stored.zip"))
    rng = random.Random(2)
    words = vocabulary(rng)
    with zipfile.ZipFile(os.path.join(work, "big_deflated.zip.tmp"), "w", compresslevel=6) as z:
        with z.open(zinfo("data/text.log", zipfile.ZIP_DEFLATED), "w", force_zip64=True) as f:
            for _ in range(DEFLATED_SIZE // MiB):
                f.write(text_chunk(rng, words, MiB))
    os.rename(os.path.join(work, "big_deflated.zip.tmp"), os.path.join(work, "big_deflated.zip"))
    rng = random.Random(3)
    types = "drawable layout values xml raw mipmap anim color menu font".split()
    quals = ["", "-hdpi", "-xhdpi", "-xxhdpi", "-v21", "-v26", "-night", "-land", "-sw600dp",
             "-en", "-de", "-fr", "-ja", "-zh-rCN"]
    dirs = [f"res/{t}{q}" for t in types for q in quals]
    dirs += [f"assets/pack{p}/level{l}/chunk{c}" for p in range(4) for l in range(5) for c in range(6)]
    dirs += [f"lib/{a}" for a in ("arm64-v8a", "armeabi-v7a", "x86_64")]
    dirs += [f"META-INF/services/sub{i}" for i in range(4)]
    with zipfile.ZipFile(os.path.join(work, "apk_like.zip.tmp"), "w", compresslevel=6) as z:
        z.writestr(zinfo("AndroidManifest.xml", zipfile.ZIP_DEFLATED), text_chunk(rng, words, 6000))
        for i in range(19999):
            d = dirs[i % len(dirs)]
            size = rng.randint(1024, 8192)
            if rng.random() < 0.3:
                z.writestr(zinfo(f"{d}/f{i:05d}.png", zipfile.ZIP_STORED), rng.randbytes(size))
            else:
                z.writestr(zinfo(f"{d}/f{i:05d}.xml", zipfile.ZIP_DEFLATED), text_chunk(rng, words, size))
    os.rename(os.path.join(work, "apk_like.zip.tmp"), os.path.join(work, "apk_like.zip"))
    # Extracted tree for the raw (c) column.
    ext = os.path.join(work, "apk_extracted")
    shutil.rmtree(ext, ignore_errors=True)
    with zipfile.ZipFile(os.path.join(work, "apk_like.zip")) as z:
        z.extractall(ext)
    open(stamp, "w").write("ok\n")
    print(f"corpus built in {time.time() - t0:.0f} s", file=sys.stderr)


def offsets(size, seed):
    rng = random.Random(seed)
    return [rng.randrange(0, (size - 4096) // 4096 + 1) * 4096 for _ in range(10000)]


def entry_info(path, name):
    with zipfile.ZipFile(path) as z:
        zi = z.getinfo(name)
        with open(path, "rb") as f:
            f.seek(zi.header_offset)
            h = f.read(30)
            n = int.from_bytes(h[26:28], "little")
            m = int.from_bytes(h[28:30], "little")
        return zi.header_offset + 30 + n + m, zi.compress_size, zi.file_size


def truth(work, name, offs, path):
    """sha256 of the concatenated 4 KiB reads (via zipfile, no FUSE), cached."""
    cache = os.path.join(work, f"truth.{name.replace('/', '_')}.v{GEN_VERSION}")
    if os.path.exists(cache):
        return open(cache).read().strip()
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        data = z.read(name)
    for o in offs:
        h.update(data[o:o + 4096])
    del data
    open(cache, "w").write(h.hexdigest() + "\n")
    return h.hexdigest()


# ---------------------------------------------------------------- helpers


def drop_caches():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def mounted(mnt):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split(" ")[4] == mnt:
                return True
    return False


def vmhwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


class Mount:
    def __init__(self, daemon, zip_path, mnt):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        drop_caches()
        cmd = {
            "zipfuse": [os.environ.get("ZIPFUSE_BIN", "zipfuse"), zip_path, mnt],
            "fuse-zip": ["fuse-zip", "-f", "-r", zip_path, mnt],
            "archivemount": ["archivemount", "-f", "-o", "readonly", zip_path, mnt],
            "ratarmount": ["ratarmount", "-f", "--index-file", ":memory:", zip_path, mnt],
            # The FUSE ceiling (zipfuse/examples/fuse_probe.rs): serves the stored entry only.
            "probe": [os.environ.get("PROBE_BIN", "fuse_probe"), zip_path, "data/random.bin", mnt],
        }[daemon]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + 120
        while True:
            if mounted(mnt):
                try:
                    os.listdir(mnt)
                    break
                except OSError:
                    pass
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{daemon} failed to mount {zip_path}")
            time.sleep(0.002)
        self.mount_time = time.perf_counter() - t0
        drop_caches()

    def rss(self):
        return vmhwm(self.proc.pid)

    def close(self):
        rss = self.rss()
        subprocess.run(["fusermount", "-u", self.mnt], stderr=subprocess.DEVNULL, check=False)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if mounted(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], check=False)
        return rss


def seq_read(path, cap, skip=0, count=None):
    """Open, then sequential 1 MiB reads; returns MiB/s including the open (stops at `cap` s)."""
    buf = bytearray(MiB)
    t0 = time.perf_counter()  # like dd, the open (where fuse-zip inflates) is included
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, skip, 0)
        total = 0
        while count is None or total < count:
            want = MiB if count is None else min(MiB, count - total)
            n = os.readv(fd, [memoryview(buf)[:want]])
            if n <= 0:
                break
            total += n
            if time.perf_counter() - t0 > cap:
                break
        dt = time.perf_counter() - t0
    finally:
        os.close(fd)
    return total / MiB / dt


def rand_read(path, offs, cap, base=0):
    """10,000 preads of 4 KiB; returns (ops/s, p99 µs, open ms, sha256, done)."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    t_open = time.perf_counter() - t0
    h = hashlib.sha256()
    lat = []
    start = time.perf_counter()
    try:
        for o in offs:
            a = time.perf_counter()
            d = os.pread(fd, 4096, base + o)
            b = time.perf_counter()
            lat.append(b - a)
            h.update(d)
            if b - start > cap:
                break
    finally:
        os.close(fd)
    el = time.perf_counter() - start
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6
    return len(lat) / el, p99, t_open * 1e3, h.hexdigest(), len(lat)


def first_byte(path):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    os.pread(fd, 4096, 0)
    dt = time.perf_counter() - t0
    os.close(fd)
    return dt * 1e3


def timed(cmd, cap):
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=cap)
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.perf_counter() - t0


def read_all(root, cap):
    """Sorted walk, every regular file read to EOF with unbuffered 1 MiB reads; seconds."""
    buf = bytearray(MiB)
    t0 = time.perf_counter()
    n = 0
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            while os.readv(fd, [buf]) > 0:
                pass
            os.close(fd)
            n += 1
            if time.perf_counter() - t0 > cap:
                return float("inf"), n
    return time.perf_counter() - t0, n


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- runs


def run_daemon(daemon, work, reps, cap, offs_s, offs_d, truths, results, log):
    zs = os.path.join(work, "big_stored.zip")
    zd = os.path.join(work, "big_deflated.zip")
    za = os.path.join(work, "apk_like.zip")
    mnt = os.path.join(work, "mnt-" + daemon)
    r = results.setdefault(daemon, {})
    rss = {}
    slow = daemon == "archivemount"
    n = 1 if slow else reps

    def rec(key, val):
        r.setdefault(key, []).append(val)

    for _ in range(n):
        m = Mount(daemon, zs, mnt)
        rec("mount_a", m.mount_time * 1e3)
        rec("seq_s_cold", seq_read(os.path.join(mnt, "data/random.bin"), cap))
        rec("seq_s_warm", seq_read(os.path.join(mnt, "data/random.bin"), cap))
        rss["a"] = max(rss.get("a", 0), m.close())
        m = Mount(daemon, zd, mnt)
        rec("mount_b", m.mount_time * 1e3)
        rec("seq_d_cold", seq_read(os.path.join(mnt, "data/text.log"), cap))
        rec("seq_d_warm", seq_read(os.path.join(mnt, "data/text.log"), cap))
        rss["b"] = max(rss.get("b", 0), m.close())
        m = Mount(daemon, zd, mnt)
        rec("ttfb_d", first_byte(os.path.join(mnt, "data/text.log")))
        m.close()
        log(f"  {daemon}: sequential done")
    # Random reads: one run of 10,000 each, cold (after drop) and zip-warm.
    for warm in (False, True):
        m = Mount(daemon, zs, mnt)
        if warm:
            timed(f"cat {zs} > /dev/null", 600)
        ops, p99, op, h, done = rand_read(os.path.join(mnt, "data/random.bin"), offs_s, cap)
        tag = "warm" if warm else "cold"
        r[f"rand_s_{tag}"] = [(ops, p99, op, h == truths["s"] or done < 10000, done)]
        rss["ds"] = max(rss.get("ds", 0), m.close())
        m = Mount(daemon, zd, mnt)
        if warm:
            timed(f"cat {zd} > /dev/null", 600)
        ops, p99, op, h, done = rand_read(os.path.join(mnt, "data/text.log"), offs_d, cap)
        r[f"rand_d_{tag}"] = [(ops, p99, op, h == truths["d"] or done < 10000, done)]
        rss["dd"] = max(rss.get("dd", 0), m.close())
    log(f"  {daemon}: random done")
    for _ in range(n):
        m = Mount(daemon, za, mnt)
        rec("mount_c", m.mount_time * 1e3)
        rec("find", timed(f"find {mnt} | wc -l", cap))
        rss["c"] = max(rss.get("c", 0), m.close())
        m = Mount(daemon, za, mnt)
        rec("ls1", timed(f"ls -lR {mnt}", cap))
        rec("ls2", timed(f"ls -lR {mnt}", cap))
        rss["c"] = max(rss.get("c", 0), m.close())
        m = Mount(daemon, za, mnt)
        t, _ = read_all(mnt, cap * 2)
        rec("readall", t)
        rss["c"] = max(rss.get("c", 0), m.close())
    log(f"  {daemon}: apk done")
    r["rss"] = rss


def run_raw(work, reps, offs_s, offs_d, results):
    zs = os.path.join(work, "big_stored.zip")
    zd = os.path.join(work, "big_deflated.zip")
    ext = os.path.join(work, "apk_extracted")
    ds, _, ss = entry_info(zs, "data/random.bin")
    dd, cd, _ = entry_info(zd, "data/text.log")
    r = results.setdefault("raw", {})
    for _ in range(reps):
        drop_caches()
        r.setdefault("seq_s_cold", []).append(seq_read(zs, 600, ds, ss))
        r.setdefault("seq_s_warm", []).append(seq_read(zs, 600, ds, ss))
        drop_caches()
        t0 = time.perf_counter()
        with zipfile.ZipFile(zd) as z, z.open("data/text.log") as f:
            while f.read(MiB):
                pass
        r.setdefault("seq_d_cold", []).append(DEFLATED_SIZE / MiB / (time.perf_counter() - t0))
    drop_caches()
    ops, p99, op, _, done = rand_read(zs, offs_s, 600, base=ds)
    r["rand_s_cold"] = [(ops, p99, op, True, done)]
    timed(f"cat {zs} > /dev/null", 600)
    ops, p99, op, _, done = rand_read(zs, offs_s, 600, base=ds)
    r["rand_s_warm"] = [(ops, p99, op, True, done)]
    for _ in range(reps):
        drop_caches()
        r.setdefault("find", []).append(timed(f"find {ext} | wc -l", 600))
        drop_caches()
        r.setdefault("ls1", []).append(timed(f"ls -lR {ext}", 600))
        r.setdefault("ls2", []).append(timed(f"ls -lR {ext}", 600))
        drop_caches()
        r.setdefault("readall", []).append(read_all(ext, 600)[0])


ROW_FILE = {"zipfuse": "data/random.bin", "probe": "entry"}


def run_rows(work, rounds, offs_s, truth_s, log):
    """Issue 15's stored rows, side by side: every round measures raw, zipfuse and the probe in
    turn (stored sequential cold, random 4 KiB cold, random 4 KiB zip warm), so slow phases of a
    noisy host fall on all three alike. Returns {who: {row: [values]}}."""
    zs = os.path.join(work, "big_stored.zip")
    ds, _, ss = entry_info(zs, "data/random.bin")
    mnt = os.path.join(work, "mnt-rows")
    res = {}
    wrong = []

    def rec(who, row, val):
        res.setdefault(who, {}).setdefault(row, []).append(val)

    for rnd in range(rounds):
        for who in ("raw", "zipfuse", "probe"):
            for row in ("seq_cold", "rand_cold", "rand_warm"):
                if who == "raw":
                    drop_caches()
                    path, base = zs, ds
                else:
                    m = Mount(who, zs, mnt)
                    path, base = os.path.join(mnt, ROW_FILE[who]), 0
                try:
                    if row == "seq_cold":
                        rec(who, row, seq_read(path, 600, base, ss if who == "raw" else None))
                    else:
                        if row == "rand_warm":
                            timed(f"cat {zs} > /dev/null", 600)
                        ops, p99, _, h, _ = rand_read(path, offs_s, 600, base)
                        if h != truth_s:
                            wrong.append(f"{who} {row}")
                        rec(who, row, ops)
                        rec(who, row + "_p99", p99)
                finally:
                    if who != "raw":
                        m.close()
        log(f"  rows: round {rnd + 1}/{rounds} done")
    if wrong:
        raise RuntimeError("wrong data in " + ", ".join(wrong))
    return res


def rows_table(res, rounds):
    def m(who, row):
        return med(res.get(who, {}).get(row, []))

    spec = [("(a) stored seq cold", "seq_cold", "MiB/s", 0.9, "raw"),
            ("(d) stored random 4 KiB cold", "rand_cold", "ops/s", 0.9, "raw"),
            ("(d) stored random 4 KiB zip warm", "rand_warm", "ops/s", 0.8, "probe")]
    out = [f"### Stored rows side by side (issue 15; {rounds} alternating rounds, medians)", "",
           "| row | raw | zipfuse | probe (minimal fuser) | zipfuse / raw | zipfuse / probe | probe / raw | goal | met |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, row, unit, goal, ref in spec:
        r, z, p = m("raw", row), m("zipfuse", row), m("probe", row)
        zr, zp, pr = z / r, z / p, p / r
        ok = (zr if ref == "raw" else zp) >= goal
        cells = [fmt(r, " " + unit), fmt(z, " " + unit), fmt(p, " " + unit)]
        if row != "seq_cold":
            cells = [c + f", p99 {fmt(m(w, row + '_p99'))} µs" for c, w in zip(cells, ("raw", "zipfuse", "probe"))]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {zr:.2f}× | {zp:.2f}× | {pr:.2f}× | "
                   f"≥ {goal}× {ref} | {'yes' if ok else '**no**'} |")
    out.append("")
    out.append("Every value per round: " + "; ".join(
        f"{who} {row} " + " ".join(fmt(v) for v in res.get(who, {}).get(row, []))
        for who in ("raw", "zipfuse", "probe") for row in ("seq_cold", "rand_cold", "rand_warm")))
    return "\n".join(out)


def fmt(x, unit=""):
    if x != x:
        return "—"
    if x == float("inf"):
        return "cap"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.1f}{unit}"
    return f"{x:.3g}{unit}"


def table(results, daemons):
    cols = ["raw"] + daemons
    rows = []

    def m(d, k):
        v = results.get(d, {}).get(k)
        return med(v) if v else float("nan")

    def rnd(d, k):
        v = results.get(d, {}).get(k)
        if not v:
            return "—"
        ops, p99, op, ok, done = v[0]
        s = f"{fmt(ops)} ops/s, p99 {fmt(p99)} µs"
        if op > 1:
            s += f", open {fmt(op)} ms"
        if done < 10000:
            s += f" ({done} done)"
        if not ok:
            s += " **WRONG DATA**"
        return s

    spec = [
        ("mount, single-entry zip (a), ms", lambda d: fmt(m(d, "mount_a"))),
        ("mount, 20k-entry APK (c), ms", lambda d: fmt(m(d, "mount_c"))),
        ("(a) stored seq cold, MiB/s", lambda d: fmt(m(d, "seq_s_cold"))),
        ("(a) stored seq warm, MiB/s", lambda d: fmt(m(d, "seq_s_warm"))),
        ("(b) deflated seq cold, MiB/s", lambda d: fmt(m(d, "seq_d_cold"))),
        ("(b) deflated seq warm, MiB/s", lambda d: fmt(m(d, "seq_d_warm"))),
        ("(b) first 4 KiB of deflated entry, ms", lambda d: fmt(m(d, "ttfb_d"))),
        ("(d) stored random 4 KiB, cold", lambda d: rnd(d, "rand_s_cold")),
        ("(d) stored random 4 KiB, zip warm", lambda d: rnd(d, "rand_s_warm")),
        ("(d) deflated random 4 KiB, cold", lambda d: rnd(d, "rand_d_cold")),
        ("(d) deflated random 4 KiB, zip warm", lambda d: rnd(d, "rand_d_warm")),
        ("(c) find | wc -l, s", lambda d: fmt(m(d, "find"))),
        ("(c) ls -lR cold / second, s", lambda d: fmt(m(d, "ls1")) + " / " + fmt(m(d, "ls2"))),
        ("(c) read all 20k files, s", lambda d: fmt(m(d, "readall"))),
        ("VmHWM (a)/(b) seq, (d) s/d, (c), MiB", lambda d: " / ".join(
            fmt(results.get(d, {}).get("rss", {}).get(k, float("nan"))) for k in ("a", "b", "ds", "dd", "c"))),
    ]
    out = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, f in spec:
        out.append(f"| {name} | " + " | ".join(f(c) for c in cols) + " |")
    return "\n".join(out)


def targets(results, daemons):
    peers = [d for d in daemons if d != "zipfuse"]
    z = results.get("zipfuse", {})
    raw = results.get("raw", {})

    def m(d, k):
        v = results.get(d, {}).get(k)
        return med(v) if v else float("nan")

    def best_peer(k, higher=True):
        vals = [m(p, k) for p in peers]
        vals = [v for v in vals if v == v and v != float("inf")]
        if not vals:
            return float("nan")
        return max(vals) if higher else min(vals)

    lines = ["| target (issue 3) | zipfuse | reference | ratio | met |", "|---|---|---|---|---|"]

    def add(name, val, ref, ratio, ok):
        lines.append(f"| {name} | {val} | {ref} | {ratio} | {'yes' if ok else '**no**'} |")

    for tag in ("cold", "warm"):
        zv, rv = m("zipfuse", f"seq_s_{tag}"), m("raw", f"seq_s_{tag}")
        add(f"stored seq {tag} ≥ 0.9× raw", fmt(zv, " MiB/s"), fmt(rv, " MiB/s raw"), f"{zv / rv:.2f}×", zv >= 0.9 * rv)
    for tag in ("cold", "warm"):
        zv, bp = m("zipfuse", f"seq_d_{tag}"), best_peer(f"seq_d_{tag}")
        add(f"deflated seq {tag} ≥ best peer", fmt(zv, " MiB/s"), fmt(bp, " MiB/s"), f"{zv / bp:.2f}×", zv >= bp)
    tt = m("zipfuse", "ttfb_d")
    add("first byte of deflated entry ≤ 10 ms", fmt(tt, " ms"), "10 ms", f"{10 / tt:.0f}× under" if tt else "", tt <= 10)
    for tag in ("cold", "warm"):
        zr = z.get(f"rand_s_{tag}", [(float("nan"),) * 5])[0][0]
        rr = raw.get(f"rand_s_{tag}", [(float("nan"),) * 5])[0][0]
        add(f"stored random 4 KiB {tag} ≥ 0.8× raw pread", fmt(zr, " ops/s"), fmt(rr, " ops/s raw"), f"{zr / rr:.2f}×", zr >= 0.8 * rr)
    for tag in ("cold", "warm"):
        zr = z.get(f"rand_d_{tag}", [(float("nan"),) * 5])[0][0]
        add(f"deflated random 4 KiB {tag} ≥ 5,000 ops/s", fmt(zr, " ops/s"), "5,000 ops/s", f"{zr / 5000:.2f}×", zr >= 5000)
    peak = max(z.get("rss", {}).values() or [float("nan")])
    add("peak RSS ≤ 64 MiB", fmt(peak, " MiB"), "64 MiB", f"{peak / 64:.2f}×", peak <= 64)
    for k, name in (("ls1", "ls -lR cold"), ("ls2", "ls -lR second"), ("readall", "read all 20k")):
        zv, bp = m("zipfuse", k), best_peer(k, higher=False)
        add(f"{name} ≥ 2× faster than best peer", fmt(zv, " s"), fmt(bp, " s best peer"), f"{bp / zv:.2f}× faster", bp >= 2 * zv)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--unpinned", action="store_true")
    args = ap.parse_args()
    reps = int(os.environ.get("BENCH_REPS", "3"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    cap = float(os.environ.get("BENCH_CAP", "30"))
    passes = os.environ.get("BENCH_PASSES", "peers,rows").split(",")
    wanted = os.environ.get("BENCH_PEERS", "zipfuse,fuse-zip,ratarmount,archivemount").split(",")
    daemons = []
    for d in wanted:
        exe = os.environ.get("ZIPFUSE_BIN") if d == "zipfuse" else d
        if exe and shutil.which(exe):
            daemons.append(d)
        else:
            print(f"note: {d} not installed, skipped", file=sys.stderr)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    build_corpus(args.work)
    if not args.unpinned:
        os.sched_setaffinity(0, {0})
    offs_s = offsets(STORED_SIZE, 4)
    offs_d = offsets(DEFLATED_SIZE, 5)
    log("ground truth")
    truths = {
        "s": truth(args.work, "data/random.bin", offs_s, os.path.join(args.work, "big_stored.zip")),
        "d": truth(args.work, "data/text.log", offs_d, os.path.join(args.work, "big_deflated.zip")),
    }
    pin = "unpinned" if args.unpinned else "pinned to CPU 0"
    out = []
    if "peers" in passes:
        results = {}
        log("raw")
        run_raw(args.work, reps, offs_s, offs_d, results)
        for d in daemons:
            log(d)
            try:
                run_daemon(d, args.work, reps, cap, offs_s, offs_d, truths, results, log)
            except Exception as e:  # a peer failing must not lose the others' results
                log(f"  {d} failed: {e}")
        out += [f"## zipfuse benchmark ({pin}; medians of {reps} runs; caps {cap:.0f} s)", "",
                table(results, daemons), "", "### Targets", "", targets(results, daemons), ""]
    if "rows" in passes:
        if not shutil.which(os.environ.get("PROBE_BIN", "fuse_probe")):
            raise SystemExit("the rows pass needs the probe: set PROBE_BIN (zipfuse.sh builds it)")
        log(f"rows: raw, zipfuse, probe ({pin})")
        out += [rows_table(run_rows(args.work, rounds, offs_s, truths["s"], log), rounds), ""]
    text = "\n".join(out)
    print(text)
    with open(os.path.join(args.work, "results.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
