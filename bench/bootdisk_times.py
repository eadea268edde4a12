#!/usr/bin/env python3
"""Measure bootdisk: artifact sizes, build times and boot-to-job times in
QEMU (TCG, one vCPU, serial console), and write them into docs/bootdisk.md
between the `bootdisk_times` markers (or print them with --print).

    .venv/bin/python bench/bootdisk_times.py            # update the doc
    .venv/bin/python bench/bootdisk_times.py --print    # only print

Needs `make freeze` (dist/deploytool) and the packages of the Makefile.
The media are built through the command, `python -m bootdisk ...`, as a
user builds them (so a build time includes starting Python), and read back
through `bootdisk info --json` and the initramfs's own manifest.
"Boot to job" is the wall-clock time from starting QEMU to the console line
"bootdisk: running job"; "guest uptime" is the kernel's own uptime at that
moment (what the init prints), so the difference is firmware + boot loader
+ kernel loading.  Each boot runs the job `rdeploy --version`, then powers
off; "total" is until QEMU has exited.
"""

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from diskimage.sizes import format_size  # noqa: E402
from qemuboot import base_args, timed_boot  # noqa: E402

DOC = os.path.join(ROOT, "docs", "bootdisk.md")
BEGIN, END = "<!-- bootdisk_times:begin -->", "<!-- bootdisk_times:end -->"
CMDLINE = "console=ttyS0,115200 panic=10"
JOB_LINE = "bootdisk: running job"
MANIFEST = "etc/bootdisk/manifest.json"
UPTIME = re.compile(r"bootdisk: running job \S+ \(up ([0-9.]+) s\)")


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(d, f))
               for d, _, names in os.walk(path) for f in names)


def bootdisk(*args):
    """Run the bootdisk command; its stdout."""
    proc = subprocess.run([sys.executable, "-m", "bootdisk", *args],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"bootdisk {args[0]} failed (exit "
                         f"{proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def initrd_manifest(path):
    """/etc/bootdisk/manifest.json of a gzip initramfs (cpio reads it),
    with the size of the cpio archive, which the manifest cannot hold."""
    with open(path, "rb") as f:
        data = gzip.decompress(f.read())
    proc = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout",
                           MANIFEST], input=data, capture_output=True,
                          check=True)
    return dict(json.loads(proc.stdout), uncompressed=len(data))


def build_all(tmp, job):
    rows, made = [], {}
    for name, command in (
            ("initrd (gzip)", "initrd"),
            ("initrd (zstd)", "initrd"),
            ("ISO", "iso"),
            ("USB image", "usb"),
            ("PXE directory", "pxe")):
        path = os.path.join(tmp, name.split()[0].lower() +
                            ("-zstd" if "zstd" in name else ""))
        args = [command, "-o", path, f"--job={job}", f"--cmdline={CMDLINE}",
                f"--compress={'zstd' if 'zstd' in name else 'gzip'}", "-q"]
        if command != "initrd":
            args.append("--timeout=1")
        started = time.monotonic()
        bootdisk(*args)
        seconds = time.monotonic() - started
        size = _dir_size(path) if os.path.isdir(path) else \
            os.path.getsize(path)
        rows.append((name, size, seconds))
        made[name] = (path, initrd_manifest(path)
                      if name == "initrd (gzip)" else None)
    return rows, made


def boots(made, tmp):
    kernel = made["initrd (gzip)"][1]["kernel"]["file"]
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
        vars_dir = tempfile.mkdtemp(dir=tmp) if firmware == "uefi" else None
        to_job, total, out = timed_boot(base_args(uefi_vars_dir=vars_dir) +
                                        extra, JOB_LINE)
        ok = to_job is not None and "bootdisk: job finished: exit 0" in out
        uptime = UPTIME.search(out)
        rows.append((name, {"bios": "SeaBIOS", "uefi": "OVMF"}.get(
            firmware, "none (QEMU loads the kernel)"), to_job or 0.0,
            float(uptime.group(1)) if uptime else None, total, ok))
        shown = f"{to_job:.1f} s" if to_job is not None else "never"
        print(f"{name} {firmware}: job at {shown}, total "
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
