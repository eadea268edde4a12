"""Real disk image files built with the field's own tools, and their checks.

The demo (``rdeploy demo``), the tests and the benchmarks need disks that look
like the ones found in the wild: a partition table made by ``sfdisk`` and
filesystems made by ``mkfs.ext4 -d``, ``mkfs.fat`` + ``mcopy`` and ``mkntfs`` +
``ntfs-3g``, filled with a deterministic tree of files.  Each builder returns
a manifest::

    {"table": "gpt", "size": bytes, "partitions": {
        1: {"fs": "ext4", "label": "demo-ext4", "start": bytes, "size": bytes,
            "files": {"dir/name.txt": "<sha256 hex>", ...}}, ...}}

and :func:`check_disk` compares a disk against it after a round trip: each
filesystem must pass its own fsck and hold exactly the manifest's files.

Nothing is mounted but NTFS: ext and FAT are written straight into the disk
file at the partition offset; NTFS is made in a scratch file, filled through
a FUSE mount of it and laid in skipping zeros, so disk files stay sparse.
Checks use read-only loop devices (``losetup -o --sizelimit``, as root),
never partition nodes.  Needs e2fsprogs, dosfstools, mtools, ntfs-3g, fdisk.
Failures raise :class:`ToolError` with the tool's stderr (a missing tool
its MissingToolError, naming the Debian package); nothing prints.
"""

import hashlib
import os
import random
import re
import shutil
import tempfile

from diskimage.errors import InputError, ToolError, UsageError
from diskimage.fs import registry
from diskimage.fs.fat.mtools import MTOOLS_ENV
# loop_device and ToolError are part of this module's interface too (the
# tests and the benchmarks use them from here).
from diskimage.host.fuse import exfat_mount, ntfs_mount  # noqa: F401
from diskimage.host.loop import loop_device
from diskimage.host.tools import run

MiB = 1 << 20
# What mkfs.fat needs for the FAT type asked for (clusters of one sector).
_MIN_SIZE = {"fat32": 34 * MiB, "fat16": 9 * MiB}
_DEBUGFS_BANNER = re.compile(r"^debugfs \d")

# Pieces of names a tree is made of: plain, long, and non-ASCII ones (only
# characters that ext4, VFAT and NTFS all keep, no case-only differences).
_WORDS = ("alpha", "bravo", "config", "data", "delta", "notes", "report",
          "setup", "system", "backup", "driver", "photo", "readme", "log")
_EXTS = (".txt", ".bin", ".dat", ".cfg", ".log", ".img", "")
_UNICODE = ("Ünïcode ファイル", "résumé", "данные", "Ελληνικά", "中文文件",
            "naïve café", "Größe", "smörgåsbord", "日本語 ディレクトリ")


def _record(fs):
    """The registry's record of `fs`, one of those imgx reads (the builder
    and the checks here make and read those)."""
    record = registry.lookup(fs)
    if record is None or record.browse is None:
        raise InputError(f"unknown filesystem type {fs!r}")
    return record


def _family(fs):
    return _record(fs).family


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_tree(root):
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                result[rel] = sha256_file(full)
    return result


def _name(rng, index, names, is_dir):
    # Directories and files number apart ("d007" / "0007"), so no two names
    # in a directory can meet, not even case-insensitively.
    tag = f"d{index:03d}" if is_dir else f"{index:04d}"
    kind = rng.random() if names else 1.0
    if names and index == 0 and not is_dir:
        return "Ünïcode ファイル.txt"
    if kind < 0.08:
        base = f"{rng.choice(_UNICODE)} {tag}"
    elif kind < 0.15:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(15, 25))]
        base = f"{tag} {'-'.join(words)}"[:200].rstrip(" -")
    else:
        base = f"{rng.choice(_WORDS)}{tag}"
    return base if is_dir else base + rng.choice(_EXTS)


def _content(rng, size):
    if size == 0 or rng.random() < 0.5:
        return rng.randbytes(size)
    # Text such as logs: lines drawn from a small pool of random lines.
    pool = [" ".join(rng.choices(_WORDS, k=rng.randint(3, 12))) + "\n"
            for _ in range(32)]
    text = "".join(rng.choices(pool, k=size // 40 + 1))
    while len(text) < size:
        text += text
    return text[:size].encode()


def make_tree(dirpath, count, seed, max_size=64 * 1024, names=True):
    """Write `count` files of deterministic content under `dirpath` (empty or
    new) in nested directories: some empty, one in 50 (at most 3) of 1-3 MiB,
    half random bytes and half log-like text, long and non-ASCII names when
    `names`.  Returns {relative posix path: sha256}."""
    rng = random.Random(seed)
    os.makedirs(dirpath, exist_ok=True)
    if os.listdir(dirpath):
        raise UsageError(f"{dirpath}: not empty")
    dirs = [("", 0)]
    for index in range(max(1, count // 10)):
        parent, depth = rng.choice([d for d in dirs if d[1] < 4])
        rel = f"{parent}/{_name(rng, index, names, True)}".lstrip("/")
        os.mkdir(os.path.join(dirpath, rel))
        dirs.append((rel, depth + 1))
    big = set(rng.sample(range(count), min(3, count // 50)))
    digests = {}
    for index in range(count):
        parent = rng.choice(dirs)[0] if index else ""
        rel = f"{parent}/{_name(rng, index, names, False)}".lstrip("/")
        if index in big:
            size = rng.randint(MiB, 3 * MiB)
        elif rng.random() < 0.06:
            size = 0
        else:
            size = rng.randint(1, max_size)
        data = _content(rng, size)
        with open(os.path.join(dirpath, rel), "wb") as f:
            f.write(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


def _splice(source, disk, offset):
    """Copy the non-zero 64 KiB blocks of `source` into `disk` at `offset`
    (a region still all zeros), so the disk file stays sparse."""
    with open(source, "rb") as src, open(disk, "r+b") as dst:
        pos = 0
        while block := src.read(64 * 1024):
            if block.count(0) != len(block):
                os.pwrite(dst.fileno(), block, offset + pos)
            pos += len(block)


def _make_fs(disk, fs, label, start, size, source, scratch):
    family = _family(fs)
    if family == "ext":
        run([f"mkfs.{fs}", "-q", "-F", "-L", label, "-d", source,
              "-E", f"offset={start}", disk, f"{size // 1024}k"])
    elif family == "fat":
        bits = {"fat12": "12", "fat16": "16"}.get(fs, "32")
        run(["mkfs.fat", "-F", bits, "-n", label, "--offset",
              str(start // 512), disk, str(size // 1024)])
        entries = [os.path.join(source, e) for e in sorted(os.listdir(source))]
        if entries:
            run(["mcopy", "-s", "-Q", "-i", f"{disk}@@{start}", *entries,
                  "::/"], env=MTOOLS_ENV)
    else:
        image = os.path.join(scratch, "ntfs.img")
        with open(image, "wb") as f:
            f.truncate(size)
        run(["mkntfs", "-F", "-Q", "-L", label, "-p", str(start // 512),
              "-H", "255", "-S", "63", image])
        with ntfs_mount(image, os.path.join(scratch, "mnt"), "rw") as mnt:
            shutil.copytree(source, mnt, dirs_exist_ok=True,
                            copy_function=shutil.copyfile)
        _splice(image, disk, start)
        os.unlink(image)


def _place(size, specs, first, gap=MiB):
    """Lay partitions (number, fs, label, fraction of `size`) from `first`,
    MiB-aligned with `gap` free after each."""
    parts = []
    start = first
    for number, fs, label, fraction in specs:
        psize = int(size * fraction) // MiB * MiB
        if psize < _MIN_SIZE.get(fs, 2 * MiB):
            raise UsageError(f"disk of {size} bytes too small: partition "
                             f"{number} ({fs}) would get {psize} bytes")
        parts.append((number, fs, label, start, psize))
        start += psize + gap
    return parts


def _build(path, size, table, rows, parts, files, seed):
    path = os.fspath(path)
    script = "\n".join([f"label: {table}", "unit: sectors", *rows, ""])
    if parts[-1][3] + parts[-1][4] > size - MiB:
        raise UsageError(f"disk of {size} bytes too small for its layout")
    with open(path, "wb") as f:
        f.truncate(size)
    try:
        run(["sfdisk", "-q", path], input=script)
        manifest = {"table": table, "size": size, "partitions": {}}
        with tempfile.TemporaryDirectory(
                prefix=".demodisk-", dir=os.path.dirname(os.path.abspath(path))
        ) as scratch:
            for number, fs, label, start, psize in parts:
                source = os.path.join(scratch, f"p{number}")
                digests = make_tree(source, files, seed + number)
                _make_fs(path, fs, label, start, psize, source, scratch)
                manifest["partitions"][number] = {
                    "fs": fs, "label": label, "start": start, "size": psize,
                    "files": digests}
    except BaseException:
        os.unlink(path)
        raise
    return manifest


def make_gpt_demo(path, *, size=256 * MiB, files=300, seed=1):
    """A GPT disk: 1 ext4 "demo-ext4", 2 FAT32 "DEMOFAT", 3 NTFS "demo-ntfs",
    free space between and after them.  Returns the manifest."""
    parts = _place(size, [(1, "ext4", "demo-ext4", 0.45),
                          (2, "fat32", "DEMOFAT", 0.25),
                          (3, "ntfs", "demo-ntfs", 0.25)], first=MiB)
    rows = [f"{number}: start={start // 512}, size={psize // 512}, "
            f"type={_record(fs).gpt_type}, name=\"{label}\""
            for number, fs, label, start, psize in parts]
    return _build(path, size, "gpt", rows, parts, files, seed)


def make_mbr_extended(path, *, size=192 * MiB, files=100, seed=7):
    """An MBR disk: primaries 1 ext4 and 2 FAT16, 3 extended holding logical
    5 ext3, 6 FAT32 and 7 ext2, with free space inside and after the
    extended partition.  Returns the manifest (keys are Linux numbers)."""
    primary = _place(size, [(1, "ext4", "demo-root", 0.20),
                            (2, "fat16", "DEMOFAT16", 0.16)], first=MiB)
    ext_start = primary[-1][3] + primary[-1][4] + MiB
    logical = _place(size, [(5, "ext3", "demo-ext3", 0.17),
                            (6, "fat32", "DEMOFAT32", 0.20),
                            (7, "ext2", "demo-ext2", 0.12)],
                     first=ext_start + MiB)
    ext_end = logical[-1][3] + logical[-1][4] + MiB
    rows = [f"start={start // 512}, size={psize // 512}, "
            f"type={_record(fs).mbr_type_of(fs)}"
            for _, fs, _, start, psize in primary + logical]
    rows.insert(2, f"start={ext_start // 512}, "
                   f"size={(ext_end - ext_start) // 512}, type=5")
    return _build(path, size, "dos", rows, primary + logical, files, seed)


def _checked(disk_path, fs):
    disk_path = os.fspath(disk_path)
    if not os.path.exists(disk_path):
        raise InputError(f"{disk_path}: no such disk")
    return disk_path, _family(fs)


def read_files(disk_path, start, size, fs):
    """{relative posix path: sha256} of every regular file in the filesystem
    at bytes [start, start+size) of `disk_path`."""
    disk_path, family = _checked(disk_path, fs)
    with tempfile.TemporaryDirectory(prefix="demodisk-read-") as tmp:
        out = os.path.join(tmp, "root")
        os.mkdir(out)
        if family == "ext":
            with loop_device(disk_path, start, size) as dev:
                proc = run(["debugfs", "-R", "rdump / .", dev], cwd=out)
            errors = [line for line in proc.stderr.splitlines()
                      if line.strip() and not _DEBUGFS_BANNER.match(line)]
            if errors:
                raise ToolError(f"debugfs rdump of {disk_path} at {start}: "
                                + "; ".join(errors[:20]), 0, proc.stderr)
        elif family == "fat":
            run(["mcopy", "-s", "-n", "-Q", "-i", f"{disk_path}@@{start}",
                  "::/", out + "/"], env=MTOOLS_ENV)
        elif family == "exfat":
            with loop_device(disk_path, start, size) as dev, \
                    exfat_mount(dev, os.path.join(tmp, "mnt")) as mnt:
                return digest_tree(mnt)
        else:
            with loop_device(disk_path, start, size) as dev, \
                    ntfs_mount(dev, os.path.join(tmp, "mnt"), "ro") as mnt:
                return digest_tree(mnt)
        return digest_tree(out)


def fsck(disk_path, start, size, fs):
    """Check the filesystem read-only with its own fsck (e2fsck -fn,
    fsck.fat -n, fsck.exfat -n, ntfsfix -n).  Returns (clean, output)."""
    disk_path, _ = _checked(disk_path, fs)
    return registry.fsck_region(disk_path, start, size, fs)


def check_disk(disk_path, manifest):
    """Problems found on `disk_path` against `manifest` (empty when all is
    well): fsck failures, and missing, changed or unexpected files.  A tool
    that is missing or a loop device that cannot be set up raises."""
    problems = []
    parts = manifest["partitions"]
    for number in sorted(parts, key=int):
        part = parts[number]
        where = f"partition {number} ({part['fs']})"
        args = (disk_path, part["start"], part["size"], part["fs"])
        clean, output = fsck(*args)
        if not clean:
            tail = " | ".join(output.splitlines()[-5:])
            problems.append(f"{where}: fsck reports errors: {tail}")
        try:
            found = read_files(*args)
        except ToolError as exc:
            if exc.returncode is None:
                raise
            problems.append(f"{where}: files cannot be read: {exc}")
            continue
        expected = part["files"]
        for rel in sorted(expected):
            if rel not in found:
                problems.append(f"{where}: {rel}: missing")
            elif found[rel] != expected[rel]:
                problems.append(f"{where}: {rel}: sha256 {found[rel]} "
                                f"differs from {expected[rel]}")
        for rel in sorted(set(found) - set(expected)):
            problems.append(f"{where}: {rel}: not in the manifest")
    return problems
