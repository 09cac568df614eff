#!/usr/bin/env bash
# Boot benchmark: the Microdroid guest (demo payload) against a bare busybox initramfs that
# mounts /proc, prints its uptime and powers off, on the same kernel with the same QEMU flags
# (both launched by vmctl). Prints, per run: host wall time of the whole vmctl cycle, the
# guest uptime when the payload starts / when busybox's init runs, and at power-off.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
VMCTL=target/release/vmctl
OUT=build/bench/boot
mkdir -p "$OUT"

# The busybox initramfs (busybox-static is installed by make setup).
rm -rf "$OUT/bb" && mkdir -p "$OUT/bb/bin" "$OUT/bb/proc"
cp /bin/busybox "$OUT/bb/bin/busybox"
cat > "$OUT/bb/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "BUSYBOX_INIT uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"
/bin/busybox poweroff -f
INIT
chmod 755 "$OUT/bb/init"
(cd "$OUT/bb" && find . | sort | cpio -o -H newc --quiet) > "$OUT/busybox.cpio"

wall() { grep -o '; [0-9.]* s;' "$1" | tr -dc '0-9.'; }
stamp() { grep -m1 "$2" "$1" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'; }

printf '%-10s %4s %10s %16s %14s\n' variant run "wall (s)" "uptime@start (s)" "uptime@off (s)"
for i in $(seq 1 "$RUNS"); do
    "$VMCTL" run --quiet --timeout 60 --os build/image/vm_os.json --console-log "$OUT/md.log" 2> "$OUT/md.err" || true
    printf '%-10s %4s %10s %16s %14s\n' microdroid "$i" "$(wall "$OUT/md.err")" \
        "$(stamp "$OUT/md.log" 'starting payload')" "$(stamp "$OUT/md.log" 'init: power off')"
    "$VMCTL" run --quiet --timeout 60 --os build/image/vm_os.json --initrd "$OUT/busybox.cpio" \
        --console-log "$OUT/bb.log" 2> "$OUT/bb.err" || true
    bb_up="$(grep -o 'BUSYBOX_INIT uptime=[0-9.]*' "$OUT/bb.log" | cut -d= -f2)"
    printf '%-10s %4s %10s %16s %14s\n' busybox "$i" "$(wall "$OUT/bb.err")" "$bb_up" "-"
done
echo "(microdroid: uptime@start = 'starting payload' console stamp; busybox: its /init's /proc/uptime)"

# AOSP MicrodroidBenchmarks' stages for the microdroid runs (vmctl run --json, boot_stages).
echo
printf '%-4s %18s %18s %22s %11s\n' run vm_starting_time kernel_boot_time userspace_boot_time boot_time
for i in $(seq 1 "$RUNS"); do
    "$VMCTL" run --json --timeout 60 --os build/image/vm_os.json --console-log "$OUT/st.log" \
        > "$OUT/st.json" 2> /dev/null || true
    python3 - "$OUT/st.json" "$i" <<'PY'
import json, sys
exit_line = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
s = exit_line.get("boot_stages") or {}
f = lambda k: "%.3f" % s[k] if k in s else "-"
print("%-4s %18s %18s %22s %11s" % (sys.argv[2], f("vm_starting_time"), f("kernel_boot_time"), f("userspace_boot_time"), f("boot_time")))
PY
done
