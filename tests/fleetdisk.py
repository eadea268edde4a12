"""The fleet disk of issue 14's first "Done when", built with the field's
own tools: a GPT disk (sparse file, 830 MiB) holding

  1  XFS, 300 MiB: a tree of files
  2  btrfs, 128 MiB: subvolumes @root and @home with files, a read-only
     snapshot @home-snap of @home, then files deleted from @home (they
     live on in the snapshot)
  3  an LVM2 PV, 400 MiB, VG of 4 MiB extents: LV "root" (ext4, 64 MiB)
     and LV "data" (XFS, 300 MiB), each with files, and free extents
     that still hold the bytes of a removed LV "old"

Every volume also had a large random file written and deleted, so its
free space holds garbage (as on a disk that has been used): a capture
that copies a volume whole instead of its used blocks is larger than
partclone's image, and the size check fails for it.  btrfs is mounted
`nodiscard` so the kernel does not punch the freed ranges out of the
sparse file.

The PV is made by tests/lvmbuild.py (fs-lvm's: lvm2's own tools with a
private configuration on a loop device, `lvcreate -an -Zn`, activation
off, as there is no device-mapper here; it makes and fills the ext4 LV),
"old" removed with lvremove, and the PV laid into partition 3.  An LV's
bytes are read through its one segment's place in the PV (pe_start +
first PE times the extent size, as lvs and pvs report them).

`build(path)` returns a Fleet: the disk, {volume: {path: sha256}} and
{volume: Volume(start, size, fs, partition)}; `partclone_bytes()`
measures `partclone.<fs> -c -s DEV -o - | lz4 -1 | wc -c` of a volume.
"""

import contextlib
import dataclasses
import os
import random
import subprocess
import tempfile
from pathlib import Path

import demodisk
from tests import lvmbuild
from tests.fsmaps import MiB, run

SIZES = {"xfs": 300 * MiB, "btrfs": 128 * MiB, "pv": 400 * MiB}
EXTENT = 4 * MiB
LVS = (("root", 64 * MiB, "ext4"), ("old", 16 * MiB, None),
       ("data", 300 * MiB, "xfs"))
GPT_TYPES = {"xfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
             "btrfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
             "pv": "E6D6D379-F507-44C2-A23C-238F2A3DF928"}
PARTCLONE = {"xfs": "partclone.xfs", "btrfs": "partclone.btrfs",
             "ext4": "partclone.extfs"}
TOOLS = (*lvmbuild.LVM_TOOLS, "lvremove", "sfdisk", "mount", "umount",
         "mkfs.xfs", "xfs_repair", "mkfs.btrfs", "btrfs", "e2fsck",
         "partclone.xfs", "partclone.btrfs", "partclone.extfs", "lz4")


@dataclasses.dataclass(frozen=True)
class Volume:
    start: int              # bytes into the disk
    size: int
    fs: str                 # "xfs", "btrfs", "ext4"
    partition: int          # GPT partition number holding it


@dataclasses.dataclass(frozen=True)
class Fleet:
    disk: object
    files: dict             # {volume name: {path: sha256}}
    volumes: dict           # {volume name: Volume}
    vg: str
    pv: tuple               # (start, size, pe_start) of the PV partition


# --- mounts ------------------------------------------------------------------
@contextlib.contextmanager
def mounted(disk, volume, mountpoint, read_only=False):
    """`volume` of `disk` mounted through a loop device; btrfs without
    discard and at its top level (subvolid 5, so every subvolume and
    snapshot shows as a directory), XFS with nouuid (two XFS of the disk,
    or a copy, may meet)."""
    options = {"xfs": ["nouuid"], "btrfs": ["subvolid=5", "nodiscard"],
               "ext4": []}[volume.fs]
    if read_only:
        options.append("ro")
    os.makedirs(mountpoint, exist_ok=True)
    with demodisk.loop_device(disk, volume.start, volume.size,
                              read_only=read_only) as dev:
        run("mount", "-t", volume.fs, "-o", ",".join(options) or "defaults",
            dev, mountpoint)
        try:
            yield mountpoint
        finally:
            os.sync()
            run("umount", mountpoint)
            if volume.fs == "btrfs":     # the kernel forgets the device
                run("btrfs", "device", "scan", "--forget", dev, check=False)


def read_files(disk, volume):
    """{path: sha256} of every regular file in `volume`, mounted
    read-only."""
    with tempfile.TemporaryDirectory(prefix="fleet-read-") as tmp:
        with mounted(disk, volume, os.path.join(tmp, "mnt"),
                     read_only=True) as mnt:
            return demodisk.digest_tree(mnt)


def check(disk, volume):
    """(clean, output) of the volume's own checkers, read-only:
    xfs_repair -n, e2fsck -fn; for btrfs, btrfs check --readonly and a
    read-only scrub on a read-only mount (btrfs check reads one copy of
    each metadata block: a DUP copy left as garbage passes it, the scrub
    verifies every copy's checksum; it exits 0 even then, so its error
    summary is read)."""
    command = {"xfs": ["xfs_repair", "-n"],
               "btrfs": ["btrfs", "check", "--readonly"],
               "ext4": ["e2fsck", "-fn"]}[volume.fs]
    with demodisk.loop_device(disk, volume.start, volume.size) as dev:
        result = run(*command, dev, check=False)
    clean, output = result.returncode == 0, result.stdout + result.stderr
    if volume.fs == "btrfs":
        with tempfile.TemporaryDirectory(prefix="fleet-scrub-") as tmp, \
                mounted(disk, volume, os.path.join(tmp, "mnt"),
                        read_only=True) as mnt:
            scrub = run("btrfs", "scrub", "start", "-B", "-r", "-d", mnt,
                        check=False)
        output += scrub.stdout + scrub.stderr
        clean = clean and scrub.returncode == 0 and \
            "no errors found" in scrub.stdout
    return clean, output


# --- contents ----------------------------------------------------------------
def tree(mnt, rel, count, seed):
    return {f"{rel}/{k}": v for k, v in demodisk.make_tree(
        os.path.join(mnt, rel), count, seed, max_size=32 * 1024).items()}


def garbage(mnt, size, seed):
    """Write `size` random bytes to a file, sync, delete it: the freed
    blocks keep them."""
    path = os.path.join(mnt, "garbage.bin")
    block = random.Random(seed).randbytes(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            f.write(block[i:] + block[:i])
        os.fsync(f.fileno())
    os.sync()
    os.unlink(path)
    os.sync()


def fill_xfs(mnt, seed):
    files = tree(mnt, "tree", 120, seed)
    garbage(mnt, 120 * MiB, seed)
    return files


def more_ext4(mnt, seed):
    """lvmbuild made the ext4 LV and its tree; more files, and garbage in
    its free space."""
    files = tree(mnt, "more", 40, seed)
    garbage(mnt, 30 * MiB, seed)
    return files


def fill_btrfs(mnt, seed):
    for name in ("@root", "@home"):
        run("btrfs", "subvolume", "create", os.path.join(mnt, name))
    files = tree(mnt, "@root/etc", 60, seed)
    home = tree(mnt, "@home/user", 80, seed + 1)
    run("btrfs", "subvolume", "snapshot", "-r", os.path.join(mnt, "@home"),
        os.path.join(mnt, "@home-snap"))
    files.update(home)
    files.update({"@home-snap/" + k[len("@home/"):]: v
                  for k, v in home.items()})
    gone = sorted(home)[::3]
    for rel in gone:
        os.unlink(os.path.join(mnt, rel))
        del files[rel]
    run("btrfs", "filesystem", "sync", mnt)
    garbage(mnt, 40 * MiB, seed)
    run("btrfs", "filesystem", "sync", mnt)
    return files


# --- LVM ---------------------------------------------------------------------
def make_pv(directory, vg):
    """The PV image (tests/lvmbuild.py: lvm2's tools with a private
    configuration) with the VG and LVS, "old" removed again:
    (image, pe_start, {lv: (offset in the PV, size)}, {lv: digests})."""
    pv = lvmbuild.make_pv(directory, SIZES["pv"] // MiB,
                          [(name, size // MiB, "ext4" if fs == "ext4"
                            else None) for name, size, fs in LVS],
                          vg=vg, extent_mib=EXTENT // MiB, name="pv.img")
    places = {}
    for name, lv in pv.lvs.items():
        (at, size), = lv.places              # one linear segment each
        places[name] = (at, size)
    lvmbuild.lvm(pv.image, "lvremove", "-q", "-y", f"{vg}/old")
    pe_start = int(lvmbuild.report(pv.image)["pv"]["pe_start"])
    return pv.image, pe_start, places, {n: lv.digests
                                        for n, lv in pv.lvs.items()}


# --- the disk ----------------------------------------------------------------
def build(path, seed=14):
    """The fleet disk at `path` (see the module's docstring)."""
    starts, offset = {}, MiB
    for name in ("xfs", "btrfs", "pv"):
        starts[name] = offset
        offset += SIZES[name]
    with open(path, "wb") as f:
        f.truncate(offset + MiB)
    run("sfdisk", "-q", path, input="\n".join(
        ["label: gpt", "unit: sectors"] +
        [f"start={starts[n] // 512}, size={SIZES[n] // 512}, "
         f"type={GPT_TYPES[n]}" for n in ("xfs", "btrfs", "pv")] + [""]))
    vg = f"fleet{os.getpid()}"
    volumes = {"xfs": Volume(starts["xfs"], SIZES["xfs"], "xfs", 1),
               "btrfs": Volume(starts["btrfs"], SIZES["btrfs"], "btrfs", 2)}
    files = {}
    with tempfile.TemporaryDirectory(prefix="fleet-build-") as tmp:
        image, pe_start, places, made = make_pv(Path(tmp), vg)
        run("dd", f"if={image}", f"of={path}", "bs=1M",
            f"seek={starts['pv']}", "oflag=seek_bytes",
            "conv=sparse,notrunc", "status=none")
        old = places.pop("old")
        with open(path, "r+b") as f:        # the removed LV's bytes stay
            os.pwrite(f.fileno(), random.Random(seed).randbytes(old[1]),
                      starts["pv"] + old[0])
        for name, (at, size) in sorted(places.items()):
            fs = {lv: fs for lv, _, fs in LVS}[name]
            volumes[f"lvm/{name}"] = Volume(starts["pv"] + at, size, fs, 3)
            if fs == "ext4":                  # made and filled by lvmbuild
                files[f"lvm/{name}"] = made[name]
        for k, (name, volume) in enumerate(volumes.items()):
            if volume.fs in MKFS:
                with demodisk.loop_device(path, volume.start, volume.size,
                                          read_only=False) as dev:
                    run(*MKFS[volume.fs], dev)
            with mounted(path, volume, os.path.join(tmp, str(k))) as mnt:
                files[name] = files.get(name, {})
                files[name].update(FILL[volume.fs](mnt, seed + k))
    return Fleet(path, files, volumes, vg,
                 (starts["pv"], SIZES["pv"], pe_start))


MKFS = {"xfs": ["mkfs.xfs", "-q", "-f"], "btrfs": ["mkfs.btrfs", "-q", "-f"]}
FILL = {"xfs": fill_xfs, "btrfs": fill_btrfs, "ext4": more_ext4}


def partclone_bytes(disk, volume, log):
    """Bytes of `partclone.<fs> -c -s DEV -o - | lz4 -1` of `volume`,
    read through a read-only loop device at its place; partclone's log
    goes to `log`."""
    with demodisk.loop_device(disk, volume.start, volume.size) as dev:
        clone = subprocess.Popen(
            [PARTCLONE[volume.fs], "-c", "-s", dev, "-o", "-", "-L",
             os.fspath(log)], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        pack = subprocess.Popen(["lz4", "-1", "-c"], stdin=clone.stdout,
                                stdout=subprocess.PIPE)
        clone.stdout.close()
        total = 0
        for block in iter(lambda: pack.stdout.read(MiB), b""):
            total += len(block)
        assert pack.wait() == 0 and clone.wait() == 0, volume
    return total
