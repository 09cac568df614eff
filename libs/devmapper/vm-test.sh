#!/usr/bin/env bash
# Runs the root-only device-mapper tests (tests/dm_root.rs) inside a throw-away QEMU guest with
# the Debian cloud kernel from build/kernel (scripts/setup.sh fetches it), because the
# development machine has no device-mapper. The guest loads loop + dm-verity, runs the static
# test binary (dm-linear over a loop device; dm-verity reads clean data, then EIO and status
# "C" on a corrupted block) and powers off. Exit status: the test binary's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KR="$ROOT/build/kernel/root"
KV="$(ls "$KR/lib/modules")"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT

bin="$(cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo test -q -p devmapper --test dm_root \
    --target x86_64-unknown-linux-gnu --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys,json
for l in sys.stdin:
    try: m=json.loads(l)
    except ValueError: continue
    if m.get("reason")=="compiler-artifact" and m.get("executable"): print(m["executable"])' | tail -1)"

mkdir -p "$W"/root/{bin,dev,proc,sys,tmp,lib/modules}
i=0
for m in loop dm-verity; do modprobe -d "$KR" -S "$KV" --show-depends "$m" | awk '{print $2}'; done |
    awk '!seen[$0]++' | while read -r p; do
        i=$((i + 1)); b="$(basename "$p")"; cp "$p" "$W/root/lib/modules/$i-$b"
        echo "insmod /lib/modules/$i-$b" >> "$W/root/mods.sh"
    done
cp "$(command -v busybox)" "$W/root/bin/busybox"
cp "$bin" "$W/root/dmtest"
cat > "$W/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
sh /mods.sh
TMPDIR=/tmp /dmtest --nocapture --test-threads=1
echo "dm_root exit status: $?"
poweroff -f
INIT
chmod +x "$W/root/init"
(cd "$W/root" && find . | cpio -o -H newc 2>/dev/null) > "$W/ir.cpio"
out="$(timeout 300 qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -nic none \
    -kernel "$ROOT/build/kernel/vmlinuz" -initrd "$W/ir.cpio" -append "console=ttyS0 quiet panic=-1" 2>&1)"
printf '%s\n' "$out" | grep -E 'test |device-mapper|result|exit status'
printf '%s\n' "$out" | grep -q 'dm_root exit status: 0'
