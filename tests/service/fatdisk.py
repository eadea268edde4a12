"""A disk file with a service-partition-shaped FAT32 for part C's tests,
made by sgdisk/sfdisk and mkfs.fat at an offset (until part A's install
makes the real one), and the field's tools to check it: mdir, mtype,
fsck.fat -n on a copy of the FAT area."""

import collections
import os
import subprocess

MiB = 1 << 20
TAIL = MiB
TOOLS = ("sfdisk", "mkfs.fat", "mcopy", "mdir", "mtype", "fsck.fat")

#: The fields of part A's partition.Service that part C reads.
Service = collections.namedtuple(
    "Service", "disk number start size table_kind part_id fs_size "
    "tail_offset")

ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, env=ENV,
                          **kw)


def make_disk(path, size_mib=300, part_mib=260, fmt=True):
    """A GPT disk file of `size_mib` MiB with partition 1 (1 MiB on,
    `part_mib` MiB) and its first size-1MiB formatted FAT32 RDSERVICE;
    the Service."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MiB)
    run("sfdisk", "--quiet", path,
        input=f"label: gpt\nstart=2048, size={part_mib * 2048}, "
              f"type=b10262f8-ab25-4a01-be00-a2803022d1bf\n".encode())
    start, size = MiB, part_mib * MiB
    service = Service(path, 1, start, size, "gpt",
                      "00000000-0000-0000-0000-000000000001", size - TAIL,
                      start + size - TAIL)
    if fmt:
        run("mkfs.fat", "-F", "32", "-n", "RDSERVICE", "--offset",
            str(start // 512), path, str((size - TAIL) // 1024))
    return service


def drive(service):
    return f"{service.disk}@@{service.start}"


def mtype(service, path):
    return run("mtype", "-i", drive(service), f"::{path}").stdout


def mdir_names(service, path):
    out = run("mdir", "-a", "-b", "-i", drive(service), f"::{path}").stdout
    return sorted(line.rstrip("/").rsplit("/", 1)[-1].lower()
                  for line in out.decode().splitlines() if line)


def fsck(service, scratch):
    """fsck.fat -n over a copy of the FAT area: (returncode, output)."""
    copy = os.path.join(scratch, "fatarea.img")
    with open(service.disk, "rb") as src, open(copy, "wb") as out:
        src.seek(service.start)
        left = service.fs_size
        while left:
            block = src.read(min(left, 4 * MiB))
            out.write(block)
            left -= len(block)
    proc = subprocess.run(["fsck.fat", "-n", copy], capture_output=True,
                          text=True)
    os.unlink(copy)
    return proc.returncode, proc.stdout + proc.stderr


def make_bundle(directory, version="1.0", size=200000, extra=None):
    """A bundle directory by hand (what `bootdisk bundle -o DIR` writes):
    a kernel-shaped vmlinuz ("HdrS" at 0x202), an initrd.img, bundle.json
    listing their sha256; `extra` {name: bytes} added and listed."""
    import hashlib
    import json
    os.makedirs(directory, exist_ok=True)
    kernel = bytearray(os.urandom(size))
    kernel[0x202:0x206] = b"HdrS"
    files = {"vmlinuz": bytes(kernel), "initrd.img": os.urandom(size * 2),
             **(extra or {})}
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    info = {"format": 1, "version": version, "id": f"test-{version}",
            "built": "2026-12-01T23:00:00Z", "kernel_release": "6.1.0-test",
            "cmdline": "console=ttyS0,115200 panic=10",
            "files": {n: hashlib.sha256(d).hexdigest()
                      for n, d in files.items()},
            "secure_boot": False}
    with open(os.path.join(directory, "bundle.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info
