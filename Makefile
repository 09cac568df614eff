# Microdroid in Rust: set up, build, boot, test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := run

BUILD        := build
GUEST_TARGET := x86_64-unknown-linux-gnu
GUEST_BIN    := target/$(GUEST_TARGET)/release
HOST_BIN     := target/release
GUEST_CRATES := -p init -p microdroid_manager -p zipfuse -p hello_payload
# Guest binaries are static; --target keeps RUSTFLAGS away from build scripts and proc-macros.
GUEST_RUSTFLAGS := -C target-feature=+crt-static
VMCTL        := $(HOST_BIN)/vmctl
IMAGE_TOOL   := $(HOST_BIN)/microdroid_image

.PHONY: setup build guest host image run test unit-test boot-test bench clean

## setup: install what is missing (Debian packages, the cloud kernel, vhost-device-vsock)
setup:
	@bash scripts/setup.sh

## build: guest binaries (static, release) and host tools
build: guest host

guest:
	RUSTFLAGS="$(GUEST_RUSTFLAGS)" cargo build --release --target $(GUEST_TARGET) $(GUEST_CRATES)

host:
	cargo build --release -p host_tools -p image

## image: the guest OS (initramfs, system partition, manifest) in build/image
image: build
	$(IMAGE_TOOL) build --kernel-dir $(BUILD)/kernel --bin-dir $(GUEST_BIN) --out $(BUILD)/image

## run: set up, build, boot the demo payload and print its result
run: setup image
	$(VMCTL) run --os $(BUILD)/image/vm_os.json --console-log $(BUILD)/console.log

## test: set up, then every test: unit, host integration, boot tests
test: setup image
	cargo test --workspace --no-fail-fast

## bench: every benchmark script in scripts/bench
bench: setup image
	@for b in scripts/bench/*.sh; do echo "== $$b"; bash "$$b" || exit 1; done

clean:
	cargo clean
	rm -rf $(BUILD)/image $(BUILD)/console.log
