#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian bookworm machine: installs what is missing and prepares
# build/kernel (the Debian cloud kernel and its modules, never installed into the host's /boot).
# `make run` and `make test` call it; it prints what it does and skips what is already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build}"
KERNEL_DIR="$BUILD/kernel"
VHOST_DEVICE_VSOCK_VERSION="0.3.0"

say() { printf 'setup: %s\n' "$*"; }
list() { grep -v '^\s*#' "$1" | sed 's/#.*//' | awk 'NF {print $1}'; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages.
missing=()
for pkg in $(list "$ROOT/scripts/setup/apt-packages.txt"); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages: all present"
fi

# 2. PyPI packages (test oracles).
for spec in $(list "$ROOT/scripts/setup/pip-packages.txt"); do
    name="${spec%%==*}"
    if ! python3 -m pip show -q "$name" >/dev/null 2>&1; then
        say "installing PyPI package $spec"
        python3 -m pip install -q "$spec"
    fi
done

# 3. The Debian cloud kernel: the exact package linux-image-cloud-amd64 depends on today.
if [ ! -f "$KERNEL_DIR/vmlinuz" ] || [ ! -f "$KERNEL_DIR/release" ]; then
    kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
    if [ -z "$kpkg" ]; then
        as_root apt-get update -qq
        kpkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
    fi
    [ -n "$kpkg" ] || { echo "setup: cannot resolve the package behind linux-image-cloud-amd64" >&2; exit 1; }
    say "fetching kernel package $kpkg"
    tmp="$(mktemp -d)"
    chmod 755 "$tmp"   # apt-get download runs as _apt, which must be able to write here
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download -qq "$kpkg" >/dev/null)
    rm -rf "$KERNEL_DIR"
    mkdir -p "$KERNEL_DIR/root"
    dpkg-deb -x "$tmp"/"$kpkg"_*.deb "$KERNEL_DIR/root"
    kver="$(ls "$KERNEL_DIR/root/lib/modules")"
    say "running depmod for $kver"
    depmod -b "$KERNEL_DIR/root" "$kver"
    cp "$KERNEL_DIR/root/boot/vmlinuz-$kver" "$KERNEL_DIR/vmlinuz"
    echo "$kver" > "$KERNEL_DIR/release"
    basename "$tmp"/"$kpkg"_*.deb > "$KERNEL_DIR/package"
    say "kernel $kver ready in $KERNEL_DIR"
else
    say "kernel $(cat "$KERNEL_DIR/release"): present"
fi

# 4. vhost-device-vsock, pinned (QEMU's vhost-user-vsock backend; no /dev/vhost-vsock here).
if ! command -v vhost-device-vsock >/dev/null 2>&1 \
    || ! cargo install --list | grep -q "^vhost-device-vsock v$VHOST_DEVICE_VSOCK_VERSION:"; then
    say "cargo install vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION (about a minute, once)"
    cargo install --quiet --locked --version "$VHOST_DEVICE_VSOCK_VERSION" vhost-device-vsock
else
    say "vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION: present"
fi

say "done"
