# Build, try and test the toolkit.  Every target installs what it needs first
# (`deps`), so a fresh clone on a fresh Debian 12 machine needs only `make test`.
#
#   make deps     system packages (apt) + .venv with the project, editable
#   make demo     run `rdeploy demo`
#   make freeze   dist/deploytool (one onefile binary) + dist/<command> links
#   make docs     man/*.1, completions/* and the exit-code tables of docs/*.md,
#                 made from the usage texts (deploytool/docgen.py); commit them
#   make test     deps, freeze, then the test suite: the boot tests and the
#                 rest as two lanes side by side (build/testlanes.py)
#   make bench    the benchmark against the peers (bench/run.py, ~15 min);
#                 arguments in BENCH_ARGS, e.g. BENCH_ARGS="--rounds=5"
#   make fuzz     each fuzz target (tests/fuzz/targets/) for SECONDS seconds
#                 (default 60) with atheris, or only TARGETS="image tables";
#                 corpus, crashes and tests/fuzz/campaigns.tsv are updated
#   make clean    remove every generated file: the venv, stamps, the frozen
#                 build and its work dir, setuptools leftovers, caches (man/
#                 and completions/ are committed and stay)

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
DIST   := dist

# Everything the project and its tests run: filesystems to build test images,
# the peers we compare with, what PyInstaller needs (gcc, binutils), and what
# bootdisk builds boot media from and boots them in (kernel, busybox, boot
# loaders, QEMU with SeaBIOS and OVMF); for network boot (pxeconf) the
# loaders it copies (ipxe, shim-signed, grub-efi-amd64-signed), dnsmasq
# (dnsmasq-base: the binary, no service started on install), and the real
# clients its tests use (tftp-hpa, atftp, curl, a headless chromium).
APT_PACKAGES := python3 python3-venv python3-pip python3-dev gcc binutils \
	e2fsprogs dosfstools mtools ntfs-3g fdisk gdisk util-linux exfatprogs \
	lz4 zstd partclone qemu-utils kmod make exfat-fuse \
	linux-image-amd64 busybox-static qemu-system-x86 ovmf isolinux syslinux \
	syslinux-common pxelinux grub-efi-amd64-bin grub-common cpio xorriso time \
	groff-base man-db xfsprogs btrfs-progs cryptsetup-bin lvm2 attr \
	ipxe shim-signed grub-efi-amd64-signed dnsmasq-base tftp-hpa atftp curl \
	chromium iproute2 \
	nbdkit libnbd-bin fuse3 \
	udpcast opentracker

APT_STAMP  := .stamp-apt
VENV_STAMP := $(VENV)/.stamp-install
APT_GET    := DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600

# Inputs of the frozen binary: the packages' sources and the recipe (not the
# build backend of pyproject.toml, build/backend.py).
FREEZE_INPUTS := $(filter-out tests/% bench/% build/backend.py,$(wildcard */*.py */*/*.py */*/*/*.py)) \
	deploytool/recipe/deploytool.spec build/freeze.sh setup.cfg

BENCH_STAMP := $(VENV)/.stamp-bench
BENCH_ARGS ?=
# tftpd-hpa, a peer of the TFTP benchmark: its package starts a service when
# installed, so its binary (and libwrap0's library) is unpacked here instead
# (bench/tftpbench.py looks for it, in $$BENCH_TOOLS); make clean removes it
# with the venv.
BENCH_TOOLS ?= $(VENV)/bench-tools
TFTPD_STAMP := $(BENCH_TOOLS)/.stamp-tftpd-hpa

.PHONY: all deps demo docs freeze test bench fuzz clean

all: freeze

deps: $(VENV_STAMP)

# apt only when a package is missing, so a second run (or a fresh clone on a
# machine that has them all) does not wait for `apt-get update`.
$(APT_STAMP): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		$(APT_GET) update && \
		$(APT_GET) install -y --no-install-recommends $(APT_PACKAGES); \
	fi
	@touch $@

$(VENV_STAMP): setup.cfg pyproject.toml | $(APT_STAMP)
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[zstd,fast,test,freeze,swarm]'
	@touch $@

demo: deps
	$(VENV)/bin/rdeploy demo

docs: $(VENV_STAMP)
	$(VPY) -m deploytool.docgen

freeze: $(DIST)/deploytool

$(DIST)/deploytool: $(VENV_STAMP) $(FREEZE_INPUTS)
	PYTHON=$(VPY) build/freeze.sh
	@touch $@

# pytest's exit 5 (no test collected) fails the target like any other failure.
test: deps freeze
	$(VPY) build/testlanes.py tests || { rc=$$?; \
		[ $$rc -ne 5 ] || echo "test: pytest collected no tests, which counts as a failure" >&2; \
		exit $$rc; }

# bmap-tools (bmaptool), a peer of the benchmark only (issue 19).
BENCH_APT := bmap-tools
$(BENCH_STAMP): $(VENV_STAMP)
	$(VPY) -m pip install -q -e '.[zstd,fast,test,freeze,swarm,bench]'
	@dpkg-query -W -f='$${db:Status-Abbrev}' $(BENCH_APT) 2>/dev/null | grep -q '^ii' || \
		$(APT_GET) install -y --no-install-recommends $(BENCH_APT) || \
		{ $(APT_GET) update && $(APT_GET) install -y --no-install-recommends $(BENCH_APT); }
	@touch $@

$(TFTPD_STAMP):
	@rm -rf $(BENCH_TOOLS)/debs && mkdir -p $(BENCH_TOOLS)/debs
	(cd $(BENCH_TOOLS)/debs && $(APT_GET) download tftpd-hpa libwrap0) || \
		{ $(APT_GET) update && (cd $(BENCH_TOOLS)/debs && $(APT_GET) download tftpd-hpa libwrap0); }
	for deb in $(BENCH_TOOLS)/debs/*.deb; do dpkg-deb -x $$deb $(BENCH_TOOLS); done
	rm -rf $(BENCH_TOOLS)/debs
	@touch $@

bench: $(BENCH_STAMP) $(TFTPD_STAMP)
	BENCH_TOOLS=$(BENCH_TOOLS) $(VPY) bench/run.py $(BENCH_ARGS)

# atheris (libFuzzer for Python) only here: the tests replay the corpus
# without it (tests/fuzz/test_replay.py).
SECONDS ?= 60
TARGETS ?=
fuzz: $(VENV_STAMP)
	$(VPY) -m pip install -q 'atheris>=2.3'
	$(VPY) -m tests.fuzz.run --seconds=$(SECONDS) --targets="$(TARGETS)"

# build/lib, build/bdist.* and *.egg-info: what `pip install .` left here
# before build/backend.py kept setuptools out of the tree.
clean:
	rm -rf $(VENV) $(DIST) build/_work build/lib build/bdist.* .stamp-* \
		.pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
