"""XFS features that put used blocks where the free space btrees are the
only witness (diskimage.fs.xfs.used): reflink (the refcount btree, shared
and CoW'd extents), the reverse-mapping btree, sparse inode chunks, the
free inode btree, bigtime and inobtcount, a volume grown by xfs_growfs (new
AGs, the last one short), and CoW staging extents left by a crash.

Each volume is real (mkfs.xfs, filled through a loop mount); its map is
restored alone onto random bytes (tests.fsmaps.map_only_restore), then
`xfs_repair -n` must pass and every file's sha256 must match.  (The log
of a default 4-AG volume is in AG 2: every volume here has its log outside
AG 0.  A realtime section is refused whole: test_xfs.py.  Quotas are not
tested: this kernel has no CONFIG_XFS_QUOTA and refuses the mount options;
their inodes' blocks are file blocks to the free space btrees.)
"""

import hashlib
import os
import random
import re

import pytest

from diskimage.fs import registry
from diskimage.fs.usedmap import MapError
from tests.fs.test_xfs import open_map
from tests.fs.xfs_tools import (db, files, make_xfs, mounted, number)
from tests.fsbuild import write_file
from tests.fsmaps import KiB, MiB, map_only_restore, run

pytestmark = pytest.mark.needs("mkfs.xfs", "xfs_db", "xfs_info",
                               "xfs_repair", "xfs_io", "xfs_growfs",
                               "blkid", "losetup", root=True)

FEATURES = "reflink=1,rmapbt=1,finobt=1,bigtime=1,inobtcount=1"


def reflinked(mnt, digests, rng):
    """Files sharing extents with cp --reflink, then partly rewritten
    (copy on write): refcount btree records, shared and unshared."""
    write_file(mnt, "orig.bin", rng.randbytes(4 * MiB), digests)
    for k in range(3):
        run("cp", "--reflink=always", os.path.join(mnt, "orig.bin"),
            os.path.join(mnt, f"clone{k}.bin"))
        digests[f"clone{k}.bin"] = digests["orig.bin"]
    with open(os.path.join(mnt, "clone1.bin"), "r+b") as f:
        data = bytearray(f.read())
        for at in range(0, len(data), 256 * KiB):
            data[at:at + 8 * KiB] = rng.randbytes(8 * KiB)
        f.seek(0)
        f.write(data)
        os.fsync(f.fileno())
    digests["clone1.bin"] = hashlib.sha256(data).hexdigest()


def sparse_inodes(mnt, digests, rng):
    """All free space preallocated to one file, then 16 KiB of every
    32 KiB punched out: holes smaller than a 32 KiB inode chunk, so new
    files' inodes can only come in sparse chunks."""
    path = os.path.join(mnt, "holes.bin")
    st = os.statvfs(mnt)
    size = (st.f_bavail * st.f_frsize - 256 * KiB) // (32 * KiB) * (32 * KiB)
    run("xfs_io", "-f", "-c", f"falloc 0 {size}", path)
    run("xfs_io", *[arg for at in range(0, size, 32 * KiB) for arg in (
        "-c", f"fpunch {at + 4 * KiB} {28 * KiB}")], path)
    digests["holes.bin"] = None
    os.makedirs(os.path.join(mnt, "new"))
    for k in range(20000):             # until ENOSPC
        data = rng.randbytes(1 + k % 600)
        try:
            write_file(mnt, f"new/{k}", data, {})
        except OSError:
            break
        digests[f"new/{k}"] = hashlib.sha256(data).hexdigest()


VARIANTS = {
    # name: (image MiB, mkfs.xfs options, mount options, what is added)
    "reflink-rmapbt": (300, ("-m", FEATURES), (), reflinked),
    "sparse-inodes": (300, ("-m", "reflink=0,finobt=0", "-i", "sparse=1"), (),
                      sparse_inodes),
    "grown": (420, ("-d", "size=300m,agcount=4"), (), "grow"),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def volume(request, tmp_path_factory):
    size, options, mount_options, extra = VARIANTS[request.param]
    tmp = tmp_path_factory.mktemp(f"xfs-{request.param}")
    image, digests = make_xfs(tmp, size, *options, fragmented=False,
                              mount_options=mount_options)
    rng = random.Random(size)
    with mounted(image, tmp / "mnt2", *mount_options) as mnt:
        if extra == "grow":
            run("xfs_growfs", "-d", mnt)
            write_file(mnt, "after-grow.bin", rng.randbytes(30 * MiB),
                       digests)
        else:
            extra(mnt, digests, rng)
    digests = {k: v for k, v in digests.items() if v is not None}
    return request.param, image, digests


def test_map_only_restore_is_clean_and_files_match(volume, tmp_path):
    name, image, digests = volume
    umap = open_map(image)
    assert not umap.warnings
    target = map_only_restore(image, tmp_path / "target.img", umap.runs, 5)
    clean, output = registry.fsck("xfs", str(target))
    assert clean, output
    found = files(target, tmp_path)
    assert {k: found[k] for k in digests} == digests
    if name == "grown":
        out = db(image, "sb 0", "p agcount agblocks dblocks")
        agcount, agblocks, dblocks = (number(n, out) for n in (
            "agcount", "agblocks", "dblocks"))
        assert agcount > 4 and dblocks < agcount * agblocks
    if name == "sparse-inodes":
        # inobt records [startino,holemask,count,freecount,free], every
        # level (btdump)
        recs = db(image, *sum(([f"agi {a}", "addr root", "btdump"]
                               for a in range(4)), []))
        assert re.search(r"\d+:\[\d+,(?!0,)", recs), \
            "no sparse inode chunk (a record with a holemask) was made"


def test_cow_staging_left_by_a_crash(tmp_path):
    """A reflinked file rewritten with a CoW extent size hint, then the
    volume shut down: staging extents are in the refcount btree and the
    log.  Refused until replayed; then the map is complete."""
    image, digests = make_xfs(tmp_path, 300, "-m", FEATURES,
                              fragmented=False)
    rng = random.Random(3)
    with mounted(image, tmp_path / "mnt") as mnt:
        reflinked(mnt, digests, rng)
        path = os.path.join(mnt, "clone2.bin")
        run("xfs_io", "-c", "cowextsize 1m", path)
        run("xfs_io", "-c", "pwrite -S 0x5a 4096 65536", "-c", "fsync",
            path)
        with open(path, "rb") as f:
            digests["clone2.bin"] = hashlib.sha256(f.read()).hexdigest()
        run("xfs_io", "-x", "-c", "shutdown -f", mnt)
    with pytest.raises(MapError, match="log needs recovery"):
        open_map(image)
    with mounted(image, tmp_path / "mnt"):         # replays the log
        pass
    umap = open_map(image)
    target = map_only_restore(image, tmp_path / "target.img", umap.runs, 6)
    clean, output = registry.fsck("xfs", str(target))
    assert clean, output
    found = files(target, tmp_path)
    assert {k: found[k] for k in digests} == digests
