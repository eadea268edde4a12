#!/usr/bin/env python3
"""Measure bootdisk: artifact sizes, build times and boot-to-job times in
QEMU (TCG, one vCPU, serial console), and write them into docs/bootdisk.md
between the `bootdisk_times` markers (or print them with --print).

    .venv/bin/python bench/bootdisk_times.py            # update the doc
    .venv/bin/python bench/bootdisk_times.py --print    # only print

Needs `make freeze` (dist/deploytool) and the packages of the Makefile.
"Boot to job" is the wall-clock time from starting QEMU to the console line
"bootdisk: running job"; "guest uptime" is the kernel's own uptime at that
moment (what the init prints), so the difference is firmware + boot loader
+ kernel loading.  Each boot runs the job `rdeploy --version`, then powers
off; "total" is until QEMU has exited.
"""

import argparse
import os
import platform
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bootdisk import kernel as kernels, qemu  # noqa: E402
from bootdisk.initramfs import Spec, build_initrd  # noqa: E402
from bootdisk.iso import build_iso  # noqa: E402
from bootdisk.pxe import build_pxe  # noqa: E402
from bootdisk.usb import build_usb  # noqa: E402
from diskimage.sizes import format_size  # noqa: E402

DOC = os.path.join(ROOT, "docs", "bootdisk.md")
BEGIN, END = "<!-- bootdisk_times:begin -->", "<!-- bootdisk_times:end -->"
CMDLINE = "console=ttyS0,115200 panic=10"
JOB_LINE = "bootdisk: running job"
UPTIME = re.compile(r"bootdisk: running job \S+ \(up ([0-9.]+) s\)")


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _, names in os.walk(path) for f in names)


def build_all(tmp, job):
    spec = Spec(job=job, cmdline=CMDLINE)
    rows, made = [], {}
    for name, build, kw in (
            ("initrd (gzip)", build_initrd, {}),
            ("initrd (zstd)", build_initrd, {}),
            ("ISO", build_iso, {"timeout": 1}),
            ("USB image", build_usb, {"timeout": 1}),
            ("PXE directory", build_pxe, {"timeout": 1})):
        path = os.path.join(tmp, name.split()[0].lower() +
                            ("-zstd" if "zstd" in name else ""))
        this = Spec(**{**spec.__dict__,
                       "compress": "zstd" if "zstd" in name else "gzip"})
        started = time.monotonic()
        manifest = build(this, path, **kw)
        seconds = time.monotonic() - started
        size = _dir_size(path) if os.path.isdir(path) else \
            os.path.getsize(path)
        rows.append((name, size, seconds))
        made[name] = (path, manifest)
    return rows, made


def boots(made, tmp):
    kernel = kernels.default_kernel()
    iso, usb = made["ISO"][0], made["USB image"][0]
    pxe = made["PXE directory"][0]

    def disk(path):
        return ["-drive", f"file={path},format=raw,if=none,id=d0,readonly=on",
                "-device", "virtio-blk-pci,drive=d0,bootindex=0"]

    def net(bootfile):
        return ["-netdev", f"user,id=n0,tftp={pxe},bootfile={bootfile}",
                "-device", "virtio-net-pci,netdev=n0,bootindex=0"]

    plan = [
        ("initrd (gzip), -kernel/-initrd", None,
         ["-kernel", kernel, "-initrd", made["initrd (gzip)"][0],
          "-append", CMDLINE]),
        ("initrd (zstd), -kernel/-initrd", None,
         ["-kernel", kernel, "-initrd", made["initrd (zstd)"][0],
          "-append", CMDLINE]),
        ("ISO as CD", "bios", ["-cdrom", iso]),
        ("ISO as CD", "uefi", ["-cdrom", iso]),
        ("ISO as disk", "bios", disk(iso)),
        ("ISO as disk", "uefi", disk(iso)),
        ("USB image", "bios", disk(usb)),
        ("USB image", "uefi", disk(usb)),
        ("PXE (pxelinux)", "bios", net("pxelinux.0")),
        ("PXE (GRUB)", "uefi", net("bootx64.efi")),
    ]
    rows = []
    for name, firmware, extra in plan:
        vars_dir = tempfile.mkdtemp(dir=tmp)
        args = qemu.base_args(uefi_vars=qemu.ovmf_vars(vars_dir)
                              if firmware == "uefi" else None) + extra
        with qemu.Boot(args) as boot:
            to_job = boot.wait_for(JOB_LINE, 300)
            boot.wait(300)
            total = time.monotonic() - boot.started
            out = boot.output
        ok = "bootdisk: job finished: exit 0" in out
        uptime = UPTIME.search(out)
        rows.append((name, {"bios": "SeaBIOS", "uefi": "OVMF"}.get(
            firmware, "none (QEMU loads the kernel)"), to_job,
            float(uptime.group(1)) if uptime else None, total, ok))
        print(f"{name} {firmware}: job at {to_job:.1f} s, total "
              f"{total:.1f} s, {'ok' if ok else 'FAILED'}", file=sys.stderr)
    return rows


def render(build_rows, boot_rows, made):
    manifest = made["initrd (gzip)"][1]
    lines = [
        f"Measured by `bench/bootdisk_times.py` on "
        f"{time.strftime('%Y-%m-%d')}: {platform.machine()}, "
        f"{os.cpu_count()} cores, QEMU TCG with one vCPU and 1 GiB, kernel "
        f"{manifest['kernel']['release']}.",
        "",
        "| artifact | size | build time |", "| --- | ---: | ---: |"]
    for name, size, seconds in build_rows:
        lines.append(f"| {name} | {format_size(size)} | {seconds:.1f} s |")
    libs = manifest["toolkit"]["libraries"]
    lib_size = sum(os.path.getsize(os.path.realpath(p)) for p in libs)
    lines += [
        "",
        "| inside the initramfs | size |", "| --- | ---: |",
        f"| frozen toolkit (dist/deploytool) | "
        f"{format_size(manifest['toolkit']['size'])} |",
        f"| its library closure ({len(libs)} libraries from ldd) | "
        f"{format_size(lib_size)} |",
        f"| busybox-static ({manifest['busybox']['applets']} applets) | "
        f"{format_size(manifest['busybox']['size'])} |",
        f"| {len(manifest['modules'])} kernel modules | "
        f"{format_size(manifest['modules_bytes'])} |",
        f"| the whole cpio, uncompressed | "
        f"{format_size(manifest['uncompressed'])} |",
        "",
        "| boot | firmware | to the job (wall) | guest uptime at the job | "
        "total, until QEMU exits | job ran |",
        "| --- | --- | ---: | ---: | ---: | --- |"]
    for name, firmware, to_job, uptime, total, ok in boot_rows:
        up = f"{uptime:.1f} s" if uptime is not None else "-"
        lines.append(f"| {name} | {firmware} | {to_job:.1f} s | {up} | "
                     f"{total:.1f} s | {'yes' if ok else 'NO'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true",
                        help="print the tables instead of updating the doc")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bootdisk-bench-") as tmp:
        job = os.path.join(tmp, "job.sh")
        with open(job, "w") as f:
            f.write("rdeploy --version\n")
        build_rows, made = build_all(tmp, job)
        boot_rows = boots(made, tmp)
    text = render(build_rows, boot_rows, made)
    if options.print:
        sys.stdout.write(text)
        return 0
    with open(DOC) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        print(f"{DOC}: no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(DOC, "w") as f:
        f.write(f"{head}{BEGIN}\n{text}{END}{tail}")
    print(f"updated {DOC}", file=sys.stderr)
    return 0 if all(row[-1] for row in boot_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
