# Microdroid in Rust: set up, build, boot, test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := run

BUILD        := build
GUEST_TARGET := x86_64-unknown-linux-gnu
GUEST_BIN    := target/$(GUEST_TARGET)/release
HOST_BIN     := target/release
GUEST_CRATES := -p init -p microdroid_manager -p zipfuse -p apexd_lite -p hello_payload -p adbd -p logd \
                -p hostile_guest
# The payload runtime links glibc dynamically (dlopen, shared libraries): its own target dir,
# so that the static and dynamic builds do not rebuild each other.
GUEST_DYN_CRATES := -p microdroid_launcher -p libvm_payload -p binder_ndk
GUEST_DYN_DIR := target/guest-dyn
APP          := $(BUILD)/hello-app
# Guest binaries are static; --target keeps RUSTFLAGS away from build scripts and proc-macros.
GUEST_RUSTFLAGS := -C target-feature=+crt-static
VMCTL        := $(HOST_BIN)/vmctl
IMAGE_TOOL   := $(HOST_BIN)/microdroid_image

PREFIX       ?= /usr/local
IMAGE_FILES  := vm_os.json vmlinuz initramfs.img vbmeta.img super.img

.PHONY: setup build guest host image app run test lint fuzz fuzz-ci mutants bench clean install install-files c-payload

## setup: install what is missing (Debian packages, the cloud kernel, vhost-device-vsock)
setup:
	@bash scripts/setup.sh

## build: guest binaries (static, release) and host tools
build: guest host

guest:
	RUSTFLAGS="$(GUEST_RUSTFLAGS)" cargo build --release --target $(GUEST_TARGET) $(GUEST_CRATES)
	cargo build --release --target $(GUEST_TARGET) --target-dir $(GUEST_DYN_DIR) $(GUEST_DYN_CRATES)
	# liblog.so (<android/log.h>) is C: its API is printf-style variadic functions.
	cc -shared -fPIC -O2 -Wall -Werror -std=c11 -Iinclude -o $(GUEST_DYN_DIR)/$(GUEST_TARGET)/release/liblog.so libs/liblog/liblog.c

host:
	cargo build --release -p host_tools -p image -p virtmgr -p hello_host

## image: the guest OS (initramfs, system partition, manifest) in build/image
image: build
	$(IMAGE_TOOL) build --kernel-dir $(BUILD)/kernel --bin-dir $(GUEST_BIN) --out $(BUILD)/image

## app: the demo app (examples/hello-app) as a signed APK with its idsig, in build/hello-app: its
## payload is libhello.so (AVmPayload_main, C) with libgreeting.so, a second library of the APK
app: build
	rm -rf $(APP)/tree && mkdir -p $(APP)/tree/assets $(APP)/tree/lib/x86_64
	cp examples/hello-app/vm_config.json $(APP)/tree/assets/vm_config.json
	cc -shared -fPIC -Wall -Werror -std=c11 -o $(APP)/tree/lib/x86_64/libgreeting.so \
	    examples/hello-app/libhello/greeting.c
	cc -shared -fPIC -Wall -Werror -std=c11 -Iinclude -Iexamples/hello-app/libhello \
	    -o $(APP)/tree/lib/x86_64/libhello.so examples/hello-app/libhello/hello.c \
	    -L$(APP)/tree/lib/x86_64 -lgreeting -L$(GUEST_DYN_DIR)/$(GUEST_TARGET)/release -lvm_payload -lbinder_ndk
	# The version code follows the payload's build time: a rebuilt payload is an update of the
	# same app (same signer), which the instance accepts and keeps its secrets for.
	$(VMCTL) package-apk --dir $(APP)/tree --out $(APP)/hello-app.apk \
	    --package com.example.microdroid.hello --version-code $$(stat -c %Y $(APP)/tree/lib/x86_64/libhello.so)
	$(VMCTL) create-idsig $(APP)/hello-app.apk $(APP)/hello-app.apk.idsig

## run: set up, build, and run the demo as an AVF app does: the host program
## (examples/hello-app/host, a vmclient client) has virtmgr boot the app's VM, waits until the
## payload serves IHello on vsock, calls greet() and prints the reply computed in the VM.
## The instance and its encrypted storage are kept per OS image and kernel command line (both
## are part of the VM's identity): run twice and the payload counts "boot 1", then "boot 2"
## with the same secret.
run: setup image app
	os=$$( (cat $(BUILD)/image/vmlinuz $(BUILD)/image/initramfs.img $(BUILD)/image/vbmeta.img; \
	    $(HOST_BIN)/vmctl info | grep '^kernel cmdline:') | sha256sum | cut -c1-12); \
	$(HOST_BIN)/hello_host --os $(BUILD)/image/vm_os.json --apk $(APP)/hello-app.apk \
	    --idsig $(APP)/hello-app.apk.idsig --instance $(APP)/instance-$$os.img \
	    --storage $(APP)/storage-$$os.img --storage-size 8388608

## c-payload: the C example (examples/c-payload): cc against include/vm_payload.h, linked with
## libvm_payload.so, packaged as an APK and run through virtmgr
C_PAYLOAD := $(BUILD)/c-payload
GUEST_DYN_BIN := $(GUEST_DYN_DIR)/$(GUEST_TARGET)/release
c-payload: setup image
	rm -rf $(C_PAYLOAD)/tree && mkdir -p $(C_PAYLOAD)/tree/assets $(C_PAYLOAD)/tree/lib/x86_64
	cc -shared -fPIC -Wall -Werror -std=c11 -Iinclude -o $(C_PAYLOAD)/tree/lib/x86_64/libc_payload.so \
	    examples/c-payload/payload.c -L$(GUEST_DYN_BIN) -lvm_payload
	cp examples/c-payload/vm_config.json $(C_PAYLOAD)/tree/assets/vm_config.json
	$(VMCTL) package-apk --dir $(C_PAYLOAD)/tree --out $(C_PAYLOAD)/c-payload.apk --package com.example.c_payload
	$(VMCTL) run-app $(C_PAYLOAD)/c-payload.apk $(C_PAYLOAD)/c-payload.apk.idsig $(C_PAYLOAD)/instance.img \
	    --config-path assets/vm_config.json --storage $(C_PAYLOAD)/storage.img --os $(BUILD)/image/vm_os.json

## test: set up, then the lints, every fuzz target for a short budget, and every test: unit,
## host integration, boot tests (scripts/test.sh: two halves side by side)
test: setup image lint fuzz-ci
	bash scripts/test.sh

## lint: formatting and clippy, warnings as errors (part of `make test`); the `lint` profile is
## the dev profile without its optimised dependencies (Cargo.toml)
lint:
	cargo fmt --all --check
	cargo clippy --profile lint --workspace --all-targets -- -D warnings

## fuzz: every fuzz target for FUZZ_SECONDS (default 60) each with AddressSanitizer, over its
## corpus seeded from its seeds/ or its crate's testdata/bad; prints the executions per target
## (installs cargo-fuzz if missing)
fuzz:
	bash scripts/fuzz.sh

## fuzz-ci: every fuzz target for 3 s, unoptimised, no sanitizer, two at a time (part of
## `make test`)
fuzz-ci:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-3} FUZZ_SANITIZER=none FUZZ_JOBS=2 FUZZ_PROFILE=$${FUZZ_PROFILE:-dev} bash scripts/fuzz.sh

## mutants: cargo-mutants over every crate that parses untrusted bytes; prints caught, missed,
## timeout and unviable mutants and the score per crate (MUTANTS_CRATES for a subset)
mutants:
	bash scripts/mutants.sh

## bench: every benchmark script in scripts/bench
bench: setup image
	@for b in scripts/bench/*.sh; do echo "== $$b"; bash "$$b" || exit 1; done

## install: vmctl into $(PREFIX)/bin and the OS image into $(PREFIX)/share/microdroid/image,
## where vmctl looks for it when no build/image is in the current directory
install: image install-files

install-files:
	install -D -m 0755 $(VMCTL) $(DESTDIR)$(PREFIX)/bin/vmctl
	install -D -m 0755 $(HOST_BIN)/virtmgr $(DESTDIR)$(PREFIX)/bin/virtmgr
	install -d $(DESTDIR)$(PREFIX)/share/microdroid/image
	cd $(BUILD)/image && install -m 0644 $(IMAGE_FILES) $(DESTDIR)$(PREFIX)/share/microdroid/image/

clean:
	cargo clean
	rm -rf $(BUILD)/image $(BUILD)/console.log $(APP)
