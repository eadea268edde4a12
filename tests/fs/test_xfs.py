"""XFS used-block maps (diskimage.fs.xfs.used) against xfsprogs on real
volumes made by mkfs.xfs and filled through a loop mount.

Used blocks are checked against `xfs_db`: every AG's free extents (`freesp
-d -a N`, less the free list's blocks from `agfl N`) must be exactly the
gaps between the map's runs, and the total against `freesp -s`; size
against `xfs_info`; label and UUID against `blkid -p`.  The map is checked
complete by a map-only restore into random bytes, then `xfs_repair -n` and
every file's sha256.  Volumes the map cannot trust (a log that needs
recovery, an external log, a realtime device, AGF counts that disagree with
the btree, a btree block with a bad magic) raise MapError.
"""

import os
import re

import pytest

from diskimage.fs import registry
from diskimage.fs.usedmap import LazyRuns, MapError
from diskimage.fs.xfs.used import open_volume
from tests.fs.xfs_tools import (agf, db, files, free_extents, geometry,
                                log_state, make_xfs, make_xfs_proto, mounted,
                                number, read_files)
from tests.fsmaps import blkid, copy_runs, random_fill, run

MiB = 1 << 20

pytestmark = pytest.mark.needs("mkfs.xfs", "xfs_db", "xfs_info",
                               "xfs_repair", "xfs_io", "xfs_logprint",
                               "blkid", "losetup", root=True)

VARIANTS = {
    # name: (size in MiB, mkfs.xfs options, fragmented, mount options)
    "v5-4k": (300, (), True, ()),
    "v5-1k": (300, ("-b", "size=1024"), False, ()),
    "v5-5ag-short-last": (333, ("-d", "agcount=5"), False, ()),
    "v5-4k-sectors": (300, ("-s", "size=4096"), False, ()),
    # 256 KiB log buffers: record headers of 8 basic blocks
    "v5-log-256k": (300, ("-l", "su=256k"), False, ("logbsize=256k",)),
    # filled by mkfs.xfs from a protofile: the kernel mounts no v4 here
    "v4-proto": (300, ("-m", "crc=0"), None, ()),
}


def open_map(image):
    """The map of an image file; its runs read the file while it lives."""
    f = open(image, "rb")

    def read(offset, length):
        return os.pread(f.fileno(), length, offset)
    return open_volume(read, os.path.getsize(image))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def volume(request, tmp_path_factory):
    """(image, digests, whether the kernel mounts it)."""
    size, options, fragmented, mount_options = VARIANTS[request.param]
    tmp = tmp_path_factory.mktemp(f"xfs-{request.param}")
    if fragmented is None:
        return (*make_xfs_proto(tmp, size, *options), False)
    return (*make_xfs(tmp, size, *options, fragmented=fragmented,
                      mount_options=mount_options), True)


def test_used_blocks_match_xfs_db(volume):
    image, _, mounts = volume
    umap = open_map(image)
    bs, blocks, agcount = geometry(image)
    assert (umap.kind, umap.block_size, umap.total_bytes) == \
        ("xfs", bs, blocks * bs)
    tags = blkid(image)
    assert (umap.label, umap.uuid) == (tags["LABEL"], tags["UUID"])
    assert isinstance(umap.runs, LazyRuns)
    runs = list(umap.runs)
    assert sum(length for _, length in runs) == umap.used_bytes
    agblocks = number("agblocks", db(image, "sb 0", "p agblocks"))
    # The gaps between the runs, per AG, are exactly xfs_db's free extents.
    gaps, cursor = [], 0
    for offset, length in runs + [(blocks * bs, 0)]:
        if offset > cursor:
            gaps.append((cursor // bs, (offset - cursor) // bs))
        cursor = offset + length
    total_free = agfl_blocks = 0
    levels = []
    for agno in range(agcount):
        wanted, agfl = free_extents(image, agno)
        mine = {(b - agno * agblocks, n) for b, n in gaps
                if agno * agblocks <= b < (agno + 1) * agblocks}
        assert mine == wanted, agno
        freeblks, flcount, level = agf(image, agno, "freeblks", "flcount",
                                       "bnolevel")
        assert sum(n for _, n in mine) == freeblks
        assert len(agfl) == flcount
        total_free += freeblks
        agfl_blocks += flcount
        levels.append(level)
    # freesp -s counts the free list's blocks as free too
    summary = db(image, "freesp -s")
    assert f"total free blocks {total_free + agfl_blocks}" in summary
    assert umap.used_bytes == (blocks - total_free) * bs
    if mounts:          # the protofile has no punched file
        assert max(levels) >= 2, "the punched file left a one-level btree"
    assert not umap.warnings


def test_map_only_restore_is_clean_and_files_match(volume, tmp_path):
    image, digests, mounts = volume
    umap = open_map(image)
    target = tmp_path / "target.img"
    random_fill(target, os.path.getsize(image), 3)
    copy_runs(image, target, umap.runs)
    clean, output = registry.fsck("xfs", str(target))
    assert clean, output
    assert read_files(target) == digests
    if mounts:
        assert files(target, tmp_path) == digests


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A filled v5 volume to damage, copied per test."""
    tmp = tmp_path_factory.mktemp("xfs-small")
    image, _ = make_xfs(tmp, 300, fragmented=False)
    return image


def copy_of(image, tmp_path):
    target = tmp_path / "copy.img"
    run("cp", "--sparse=always", image, target)
    return target


def test_dirty_log_is_refused_until_replayed(small, tmp_path):
    image = copy_of(small, tmp_path)
    with mounted(image, tmp_path / "mnt") as mnt:
        os.mkdir(os.path.join(mnt, "new"))
        with open(os.path.join(mnt, "new", "f"), "wb") as f:
            f.write(os.urandom(300 * 1024))
        run("xfs_io", "-x", "-c", "shutdown -f", mnt)
    assert log_state(image) == "DIRTY"
    assert run("xfs_repair", "-n", image, check=False).returncode == 1
    with pytest.raises(MapError, match="log needs recovery"):
        open_map(image)
    with mounted(image, tmp_path / "mnt"):         # replays the log
        pass
    assert log_state(image) == "CLEAN"
    assert open_map(image).used_bytes > 0


def test_external_log_and_realtime_are_copied_whole(tmp_path):
    for name, option in (("external log", "logdev"),
                         ("realtime device", "rtdev")):
        image, other = tmp_path / "data.img", tmp_path / "other.img"
        for path in (image, other):
            with open(path, "wb") as f:
                f.truncate(300 * MiB)
        flag = "-l" if option == "logdev" else "-r"
        run("mkfs.xfs", "-q", "-f", flag, f"{option}={other}", image)
        with pytest.raises(MapError, match=name):
            open_map(image)


def test_agf_free_count_that_disagrees_is_refused(small, tmp_path):
    image = copy_of(small, tmp_path)
    freeblks, = agf(image, 1, "freeblks")
    run("xfs_db", "-x", "-c", "agf 1", "-c", f"write freeblks "
        f"{freeblks + 8}", image)
    assert agf(image, 1, "freeblks") == [freeblks + 8]
    with pytest.raises(MapError, match="allocation group 1: the free space "
                       "btree holds"):
        open_map(image)


def test_bad_btree_block_is_refused(small, tmp_path):
    image = copy_of(small, tmp_path)
    root, = agf(image, 0, "bnoroot")
    bs, _, _ = geometry(image)
    with open(image, "r+b") as f:
        f.seek(root * bs)
        f.write(b"XXXX")
    with pytest.raises(MapError, match="magic"):
        open_map(image)


def test_a_free_extent_outside_the_group_is_refused(small, tmp_path):
    """The last record of AG 0's first leaf made to run past the group."""
    image = copy_of(small, tmp_path)
    out = db(image, "agf 0", "addr bnoroot", "p")
    level = number("level", out)
    path = ["agf 0", "addr bnoroot"] + ["addr ptrs[1]"] * level
    numrecs = number("numrecs", db(image, *path, "p numrecs"))
    run("xfs_db", "-x", *sum((["-c", c] for c in path), []), "-c",
        f"write -d recs[{numrecs}].blockcount 900000", image)
    with pytest.raises(MapError, match="outside the group"):
        open_map(image)


def test_by_size_btree_that_disagrees_is_refused(small, tmp_path):
    """The cntbt's largest extent moved one block down: the bnobt and the
    AGF still agree, the two btrees do not."""
    image = copy_of(small, tmp_path)
    path = ["agf 0", "addr cntroot"]
    level = number("level", db(image, *path, "p level"))
    while level:
        numrecs = number("numrecs", db(image, *path, "p numrecs"))
        path.append(f"addr ptrs[{numrecs}]")
        level -= 1
    numrecs = number("numrecs", db(image, *path, "p numrecs"))
    # "recs[N] = [startblock,blockcount] N:[START,COUNT]"
    rec = db(image, *path, f"p recs[{numrecs}]")
    start = int(re.search(r"\[(\d+),\d+\]", rec).group(1))
    run("xfs_db", "-x", *sum((["-c", c] for c in path), []), "-c",
        f"write -d recs[{numrecs}].startblock {start - 1}", image)
    with pytest.raises(MapError, match="free space btrees disagree"):
        open_map(image)
