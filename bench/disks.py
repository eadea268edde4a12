"""The benchmark disks, built reproducibly and cached in the work directory.

(a) a GPT disk: FAT32, ext4 holding real files (copies of /usr/lib and
    /usr/share), NTFS holding real files, free space between and after;
(b) the same partitions and the same bytes on a much larger sparse disk
    (the backup GPT moved to its end with ``sgdisk -e``);
(c) a GPT disk with one partition of seeded random bytes (incompressible).

Which system files go where is decided by a seeded shuffle of the sorted
list of regular files, so the same machine and seed give the same disks.
ext4 is filled through a mount of a loop device, NTFS through ntfs-3g on a
loop device (``losetup -o OFFSET --sizelimit``), FAT32 with mcopy (vfat
does not mount here).  Each disk is written as NAME.partial and renamed
when complete, with its recipe in NAME.json; a disk whose recipe matches is
reused.
"""

import json
import os
import random
import shutil
import tempfile

from diskimage.fs import registry
from diskimage.fs.fat.mtools import MTOOLS_ENV
from diskimage.host import fuse, tools
from diskimage.host.loop import loop_device
from demodisk import MiB
from diskimage.host.device import data_extents

GiB = 1 << 30
RECIPE_VERSION = 1
SOURCE_DIRS = ("/usr/lib", "/usr/share")
MAX_FILE = 32 * MiB

# (fs, label, size in bytes or None for the rest, bytes of files)
FULL = {"a": 4 * GiB, "b": 64 * GiB, "c_part": 2 * GiB,
        "parts": [("fat32", "BENCHFAT", 256 * MiB, 100 * MiB),
                  ("ext4", "bench-ext4", 2560 * MiB, 1 * GiB),
                  ("ntfs", "bench-ntfs", None, 400 * MiB)]}
QUICK = {"a": 320 * MiB, "b": 4 * GiB, "c_part": 64 * MiB,
         "parts": [("fat32", "BENCHFAT", 40 * MiB, 8 * MiB),
                   ("ext4", "bench-ext4", 160 * MiB, 48 * MiB),
                   ("ntfs", "bench-ntfs", None, 24 * MiB)]}


# A raw partition (no filesystem) is typed Linux data.
LINUX_DATA = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def _gpt_type(fs):
    record = registry.lookup(fs)
    return record.gpt_type if record else LINUX_DATA


def _run(*args, **kw):
    return tools.run([str(a) for a in args], **kw)


def system_files(seed):
    """[(path, size)] of regular files under SOURCE_DIRS, in a seeded
    random order (sorted first, so the order depends on the seed only)."""
    found = []
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if os.path.isfile(path) and not os.path.islink(path) and \
                        0 < st.st_size <= MAX_FILE and \
                        os.access(path, os.R_OK):
                    found.append((path, st.st_size))
    random.Random(seed).shuffle(found)
    return found


def _take(files, budget):
    """Take files from the front of `files` (removing them) until `budget`
    bytes are taken; files over a 16th of the budget are passed over."""
    taken, total, rest = [], 0, []
    while files and total < budget:
        path, size = files.pop(0)
        if size > budget // 16:
            rest.append((path, size))
            continue
        taken.append(path)
        total += size
    files[:0] = rest
    return taken, total


def _copy_into(paths, root, flat=False):
    """Copy files under `root`: at their path below / (real names), or
    when `flat` as dNNN/fNNNNN.bin (names any FAT takes)."""
    for index, path in enumerate(paths):
        rel = f"d{index // 200:03d}/f{index:05d}.bin" if flat \
            else path.lstrip("/")
        dest = os.path.join(root, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(path, dest)


def _layout(size, parts):
    """[(number, fs, label, start, size, budget)] from 1 MiB, 1 MiB apart,
    the last partition taking the rest but 1 MiB (and the backup GPT)."""
    out, start = [], MiB
    for number, (fs, label, psize, budget) in enumerate(parts, 1):
        psize = psize or size - start - 2 * MiB
        out.append((number, fs, label, start, psize, budget))
        start += psize + MiB
    return out


def _sfdisk(path, layout):
    rows = [f"{n}: start={start // 512}, size={psize // 512}, "
            f"type={_gpt_type(fs)}, name=\"{label}\""
            for n, fs, label, start, psize, _ in layout]
    _run("sfdisk", "-q", path, input="\n".join(
        ["label: gpt", "unit: sectors", *rows, ""]))


def _fill_fs(path, fs, label, start, size, files, scratch):
    """Make filesystem `fs` at [start, start+size) of disk `path` and copy
    `files` into it."""
    if fs == "fat32":
        _run("mkfs.fat", "-F", "32", "-s", "1", "-n", label,
             "--offset", start // 512,
             path, size // 1024)
        tree = os.path.join(scratch, "fat")
        _copy_into(files, tree, flat=True)
        entries = [os.path.join(tree, e) for e in sorted(os.listdir(tree))]
        _run("mcopy", "-s", "-Q", "-i", f"{path}@@{start}", *entries, "::/",
             env=MTOOLS_ENV)
        shutil.rmtree(tree)
        return
    mnt = os.path.join(scratch, "mnt")
    os.makedirs(mnt, exist_ok=True)
    with loop_device(path, start, size, read_only=False) as dev:
        if fs == "ext4":
            _run("mkfs.ext4", "-q", "-F", "-L", label, dev)
            _run("mount", "-t", "ext4", dev, mnt)
            try:
                _copy_into(files, mnt)
            finally:
                _run("umount", mnt)
        else:
            _run("mkntfs", "-F", "-Q", "-L", label, "-p", start // 512,
                 "-H", "255", "-S", "63", dev)
            with fuse.ntfs_mount(dev, mnt, "rw"):
                _copy_into(files, mnt)


def _commit(partial, path, recipe):
    os.chmod(partial, 0o444)
    os.replace(partial, path)
    with open(path + ".json", "w") as f:
        json.dump(recipe, f, indent=1)


def _cached(path, recipe):
    try:
        with open(path + ".json") as f:
            old = json.load(f)
    except (OSError, ValueError):
        return None
    recipe = json.loads(json.dumps(recipe))   # tuples as JSON lists
    if os.path.exists(path) and all(old.get(k) == v
                                    for k, v in recipe.items()):
        return old
    return None


def build_a(path, spec, seed):
    recipe = {"version": RECIPE_VERSION, "disk": "a", "size": spec["a"],
              "parts": spec["parts"], "seed": seed}
    cached = _cached(path, recipe)
    if cached:
        return cached
    layout = _layout(spec["a"], spec["parts"])
    files = system_files(seed)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.truncate(spec["a"])
    _sfdisk(partial, layout)
    parts = []
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path),
                                     prefix=".bench-build-") as scratch:
        for number, fs, label, start, psize, budget in layout:
            chosen, total = _take(files, budget)
            _fill_fs(partial, fs, label, start, psize, chosen, scratch)
            parts.append({"number": number, "fs": fs, "start": start,
                          "size": psize, "files": len(chosen),
                          "file_bytes": total})
    recipe["partitions"] = parts
    _commit(partial, path, recipe)
    return recipe


def _copy_sparse(src, dst):
    """Copy the data extents of file `src` into file `dst` (holes stay
    holes)."""
    with open(src, "rb") as s, open(dst, "r+b") as d:
        for offset, hole in data_extents(s.fileno(),
                                         os.fstat(s.fileno()).st_size):
            while offset < hole:
                block = os.pread(s.fileno(), min(8 * MiB, hole - offset),
                                 offset)
                os.pwrite(d.fileno(), block, offset)
                offset += len(block)


def build_b(path, disk_a, spec, seed):
    """Disk (a)'s partitions and bytes on a disk of spec["b"] bytes."""
    recipe = {"version": RECIPE_VERSION, "disk": "b", "size": spec["b"],
              "parts": spec["parts"], "seed": seed, "from_size": spec["a"]}
    cached = _cached(path, recipe)
    if cached:
        return cached
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.truncate(spec["b"])
    _copy_sparse(disk_a["path"], partial)
    _run("sgdisk", "-e", partial)   # backup GPT to the new end
    recipe["partitions"] = disk_a["partitions"]
    _commit(partial, path, recipe)
    return recipe


def build_c(path, spec, seed):
    """One partition of spec["c_part"] seeded random bytes."""
    size = spec["c_part"] + 2 * MiB
    recipe = {"version": RECIPE_VERSION, "disk": "c", "size": size,
              "seed": seed}
    cached = _cached(path, recipe)
    if cached:
        return cached
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.truncate(size)
    layout = [(1, "raw", "bench-random", MiB, spec["c_part"], 0)]
    _sfdisk(partial, layout)
    rng = random.Random(seed)
    with open(partial, "r+b") as f:
        for offset in range(0, spec["c_part"], 4 * MiB):
            os.pwrite(f.fileno(), rng.randbytes(
                min(4 * MiB, spec["c_part"] - offset)), MiB + offset)
    recipe["partitions"] = [{"number": 1, "fs": None, "start": MiB,
                             "size": spec["c_part"], "files": 0,
                             "file_bytes": spec["c_part"]}]
    _commit(partial, path, recipe)
    return recipe


def build_all(workdir, quick, seed, which=("a", "b", "c")):
    """{name: recipe with "path"} for the disks in `which`, built or
    reused."""
    spec = QUICK if quick else FULL
    tag = "quick" if quick else "full"
    os.makedirs(workdir, exist_ok=True)
    disks = {}
    path = os.path.join(workdir, f"disk-a-{tag}.img")
    if "a" in which or "b" in which:
        disks["a"] = dict(build_a(path, spec, seed), path=path)
    if "b" in which:
        path = os.path.join(workdir, f"disk-b-{tag}.img")
        disks["b"] = dict(build_b(path, disks["a"], spec, seed), path=path)
    if "c" in which:
        path = os.path.join(workdir, f"disk-c-{tag}.img")
        disks["c"] = dict(build_c(path, spec, seed), path=path)
    return {k: v for k, v in disks.items() if k in which}
