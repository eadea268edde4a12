"""What the bwpart command tests share: bwpart run as a program, disk
files made by sfdisk and mkfs with free space at the end, a bundle
directory (bundle.json and the files it names), and the table areas of a
disk read back for byte-for-byte comparison."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.smalldisk import read_at

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
SECTOR = 512
DISK_SIZE = 328 * MiB           # 64 MiB system partition, room for 256 MiB
SERVICE = "256M"   # the least (layout.MIN_SIZE)
MBR_BIN = "/usr/lib/syslinux/mbr/mbr.bin"
GPTMBR_BIN = "/usr/lib/syslinux/mbr/gptmbr.bin"


def env():
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("RDEPLOY_DEBUG", None)
    return e


def bwpart(*args, stdin=subprocess.DEVNULL, timeout=300):
    return subprocess.run([sys.executable, "-m", "bwpart", *map(str, args)],
                          env=env(), cwd=ROOT, stdin=stdin,
                          capture_output=True, text=True, timeout=timeout)


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert lines, "no error line"
    assert lines[-1].startswith("bwpart: error: "), result.stderr
    return lines[-1]


def check(result, code, *words):
    """Exit `code` and an error line holding every word (any case)."""
    assert result.returncode == code, (result.returncode, result.stderr)
    line = error_line(result)
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def sfdisk(path, script):
    subprocess.run(["sfdisk", "-q", str(path)], input=script.encode(),
                   check=True, capture_output=True)


def sfdisk_json(path):
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]


def build(path, table, boot_code=None):
    """A DISK_SIZE disk file: partition 1 (64 MiB ext4, active on MBR) and
    free space after it; `boot_code` (a file) in the first 440 bytes."""
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    if table == "gpt":
        sfdisk(path, "label: gpt\nstart=2048, size=131072, name=sys\n")
    else:
        sfdisk(path, "label: dos\nlabel-id: 0x1234abcd\n"
                     "start=2048, size=131072, type=83, bootable\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={MiB}",
                    str(path), "64M"], check=True, capture_output=True)
    if boot_code:
        with open(boot_code, "rb") as f:
            code = f.read(440)
        with open(path, "r+b") as f:
            f.write(code)
    return path


def bundle(path, version="1.0"):
    """A bundle directory as `bootdisk bundle` writes it: vmlinuz,
    initrd.img and bundle.json naming their sha256 (small stand-ins for
    the kernel and initrd: nothing boots them here; the kernel has its
    setup header's "HdrS" at 0x202, which bundle.load looks for)."""
    path.mkdir()
    files = {}
    for name, size in (("vmlinuz", 300 * 1024), ("initrd.img", 500 * 1024)):
        data = bytearray(hashlib.sha256(f"{name} {version}".encode())
                         .digest() * (size // 32))
        if name == "vmlinuz":
            data[0x202:0x206] = b"HdrS"
        data = bytes(data)
        (path / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    info = {"format": 1, "version": version, "id": f"test-{version}",
            "built": "2026-12-01T00:00:00Z",
            "kernel_release": "6.1.0-test", "cmdline": "console=ttyS0",
            "files": files, "secure_boot": False}
    (path / "bundle.json").write_text(json.dumps(info, indent=2))
    return path


def table_areas(path):
    """The bytes of every area a table lives in: LBA 0 to the end of the
    GPT primary array (sectors 0-33), and the last 33 sectors (the GPT
    backup; zero on an MBR disk made here)."""
    size = os.path.getsize(path)
    return read_at(path, 0, 34 * SECTOR), \
        read_at(path, size - 33 * SECTOR, 33 * SECTOR)
