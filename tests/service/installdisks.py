"""Disks for the tests of part A (room, partition, plan, install): disk
files partitioned by sfdisk, filesystems made by their own mkfs and laid
into a partition, and what the field's tools say of the result."""

import hashlib
import json
import os
import subprocess

MiB = 1 << 20


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True,
                          capture_output=True, text=True, **kw)


def make_disk(path, size_mib, label, script=""):
    """A *size_mib* MiB disk file with an sfdisk *label* ("gpt", "dos")
    table and the partitions of *script* (sfdisk lines)."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MiB)
    subprocess.run(["sfdisk", "-q", str(path)],
                   input=f"label: {label}\n{script}", text=True, check=True,
                   capture_output=True)
    return path


def sfdisk_json(path):
    return json.loads(run("sfdisk", "--json", path).stdout)["partitiontable"]


def part_of(path, number):
    """(start, size) in bytes of partition *number* as sfdisk reads it."""
    table = sfdisk_json(path)
    node = next(p for p in table["partitions"]
                if p["node"].endswith(str(number)))
    return node["start"] * 512, node["size"] * 512


def lay(disk, offset, image):
    """Copy the filesystem image *image* into *disk* at *offset*."""
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(offset)
        while block := src.read(4 * MiB):
            dst.write(block)


def ext4_into(tmp_path, disk, number, files):
    """An ext4 made by mkfs.ext4 -d from *files* ({name: bytes}) in
    partition *number* of *disk*."""
    start, size = part_of(disk, number)
    root = tmp_path / f"root-{os.path.basename(disk)}-{number}"
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    image = tmp_path / f"p{number}.ext4"
    with open(image, "wb") as f:
        f.truncate(size)
    run("mkfs.ext4", "-q", "-F", "-d", root, image)
    lay(disk, start, image)
    os.unlink(image)


def fat_into(tmp_path, disk, number, files, bits=32):
    start, size = part_of(disk, number)
    image = tmp_path / f"p{number}.fat"
    run("mkfs.fat", "-C", "-F", bits, image, size // 1024)
    for name, data in files.items():
        src = tmp_path / name
        src.write_bytes(data)
        run("mcopy", "-i", image, src, f"::/{name}",
            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    lay(disk, start, image)
    os.unlink(image)


def ext4_files(tmp_path, disk, start, size, names):
    """sha256 of *names* read back from the ext4 at [start, start+size)
    with debugfs (no mount)."""
    image = tmp_path / "readback.ext4"
    with open(disk, "rb") as src, open(image, "wb") as dst:
        src.seek(start)
        left = size
        while left:
            block = src.read(min(left, 4 * MiB))
            dst.write(block)
            left -= len(block)
    out = {}
    for name in names:
        dump = tmp_path / f"dump-{name}"
        run("debugfs", "-R", f"dump /{name} {dump}", image)
        out[name] = hashlib.sha256(dump.read_bytes()).hexdigest()
    fsck = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True,
                          text=True)
    os.unlink(image)
    return out, fsck.returncode


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


def make_bundle(directory, version="1.0", secure_boot=False):
    """A bundle as `bootdisk bundle` writes it, with a stand-in kernel (a
    setup header's "HdrS" at 0x202) and initrd: what bundle.load checks."""
    directory.mkdir()
    kernel = bytearray(os.urandom(64 * 1024))
    kernel[0x202:0x206] = b"HdrS"
    files = {"vmlinuz": bytes(kernel), "initrd.img": os.urandom(128 * 1024)}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    info = {"format": 1, "version": version, "id": f"test-{version}",
            "built": "2026-12-01T00:00:00+00:00",
            "kernel_release": "6.1.0-test-amd64",
            "cmdline": "console=ttyS0", "secure_boot": secure_boot,
            "files": {n: hashlib.sha256(d).hexdigest()
                      for n, d in files.items()}}
    (directory / "bundle.json").write_text(json.dumps(info))
    return directory
