"""Hostile and damaged XFS volumes (diskimage.fs.xfs): every one a MapError
naming the reason, never a hang, another exception or unbounded memory.

Each test damages a copy of a real v5 volume made by mkfs.xfs and filled
through a loop mount (its free space btrees two levels deep).  Bytes are
flipped raw where the test means the CRC to catch them; where it means to
get past the CRC, xfs_db writes the field (`write -d`: no verifier, the CRC
recomputed).  Where the damage is real, `xfs_repair -n` is asked too.
"""

import re
import struct

import pytest

from diskimage.fs.usedmap import MapError
from tests.fs.test_xfs import copy_of, open_map
from tests.fs.xfs_tools import agf, db, geometry, make_xfs, number
from tests.fsmaps import run

pytestmark = pytest.mark.needs("mkfs.xfs", "xfs_db", "xfs_info",
                               "xfs_repair", "xfs_io", "blkid", "losetup",
                               root=True)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A filled v5 volume (two-level free space btrees), copied per test."""
    image, _ = make_xfs(tmp_path_factory.mktemp("xfs-hostile"), 300,
                        fragmented=False)
    assert agf(image, 0, "bnolevel") == [2]
    return image


def flip(image, at):
    with open(image, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


def xfs_db_write(image, *commands):
    args = []
    for command in commands:
        args += ["-c", command]
    run("xfs_db", "-x", *args, image)


def leaf_path(image, tree="bno", agno=0, child=1):
    """xfs_db commands that reach AG `agno`'s `tree` btree's leaf under
    the root's pointer number `child`."""
    return [f"agf {agno}", f"addr {tree}root", f"addr ptrs[{child}]"]


def test_a_flipped_byte_in_a_bnobt_block_is_a_crc_mismatch(small, tmp_path):
    image = copy_of(small, tmp_path)
    bs, _, _ = geometry(image)
    agblocks = number("agblocks", db(image, "sb 0", "p agblocks"))
    leaf, = agf(image, 1, "bnoroot")          # a leaf in AG 1
    at = (agblocks + leaf) * bs
    flip(image, at + 56 + 3)         # a byte of its first record
    with pytest.raises(MapError, match=f"allocation group 1: bnobt block "
                       f"{leaf} \\(byte offset {at}\\): its CRC is wrong"):
        open_map(image)
    out = run("xfs_repair", "-n", image, check=False)
    assert out.returncode == 1
    assert "Metadata CRC error detected" in out.stdout + out.stderr
    assert "xfs_bnobt block" in out.stdout + out.stderr


@pytest.mark.parametrize("what,sector,name", [
    ("superblock", 0, "the superblock"),
    ("AGF", 1, "the AGF of allocation group 1"),
    ("AGFL", 3, "the AGFL of allocation group 1")])
def test_a_flipped_byte_in_a_header_is_a_crc_mismatch(small, tmp_path, what,
                                                      sector, name):
    image = copy_of(small, tmp_path)
    bs, _, _ = geometry(image)
    agblocks = number("agblocks", db(image, "sb 0", "p agblocks"))
    sectsize = number("sectsize", db(image, "sb 0", "p sectsize"))
    base = 0 if what == "superblock" else agblocks * bs
    # past each structure's fields, still inside its CRC'd sector (the
    # AGFL's: a slot of its block array)
    flip(image, base + sector * sectsize + 400)
    with pytest.raises(MapError, match=f"the CRC of {name} "):
        open_map(image)


def test_a_pointer_back_to_the_root_is_refused(small, tmp_path):
    """A loop: the root's second child is the root itself."""
    image = copy_of(small, tmp_path)
    root, = agf(image, 0, "bnoroot")
    xfs_db_write(image, "agf 0", "addr bnoroot", f"write -d ptrs[2] {root}")
    with pytest.raises(MapError, match="level 1 where 0 belongs"):
        open_map(image)


def test_a_pointer_outside_the_group_is_refused(small, tmp_path):
    image = copy_of(small, tmp_path)
    xfs_db_write(image, "agf 0", "addr bnoroot", "write -d ptrs[2] 4000000")
    with pytest.raises(MapError, match="points to block 4000000, outside "
                       "the group"):
        open_map(image)


def test_two_pointers_to_one_leaf_are_refused(small, tmp_path):
    """The same leaf twice: its extents come again, out of order."""
    image = copy_of(small, tmp_path)
    leaf = number("ptrs\\[1\\]", db(image, "agf 0", "addr bnoroot",
                                     "p ptrs[1]"))
    xfs_db_write(image, "agf 0", "addr bnoroot", f"write -d ptrs[2] {leaf}")
    with pytest.raises(MapError, match="out of order"):
        open_map(image)


@pytest.mark.parametrize("level", [0, 10, 65535])
def test_levels_that_never_reach_a_leaf_are_refused(small, tmp_path, level):
    image = copy_of(small, tmp_path)
    xfs_db_write(image, "agf 0", f"write -d bnolevel {level}")
    with pytest.raises(MapError, match="bnobt root .* is not valid"):
        open_map(image)


def test_a_leaf_that_says_it_is_a_node_is_refused(small, tmp_path):
    image = copy_of(small, tmp_path)
    xfs_db_write(image, *leaf_path(image), "write -d level 1")
    with pytest.raises(MapError, match="level 1 where 0 belongs"):
        open_map(image)


@pytest.mark.parametrize("numrecs", [1000, 65535])
def test_more_records_than_the_block_holds_are_refused(small, tmp_path,
                                                       numrecs):
    image = copy_of(small, tmp_path)
    xfs_db_write(image, *leaf_path(image), f"write -d numrecs {numrecs}")
    with pytest.raises(MapError, match=f"{numrecs} records \\(at most"):
        open_map(image)


def test_records_out_of_order_are_refused(small, tmp_path):
    """The second record of a leaf moved before the first."""
    image = copy_of(small, tmp_path)
    path = leaf_path(image)
    first = number("recs\\[1\\].startblock", db(
        image, *path, "p recs[1].startblock"))
    xfs_db_write(image, *path, f"write -d recs[2].startblock {first - 1}")
    with pytest.raises(MapError, match="out of order"):
        open_map(image)


def test_overlapping_records_are_refused(small, tmp_path):
    """The first record of a leaf grown into the second."""
    image = copy_of(small, tmp_path)
    path = leaf_path(image)
    out = db(image, *path, "p recs[1].startblock recs[2].startblock")
    first = number("recs\\[1\\].startblock", out)
    second = number("recs\\[2\\].startblock", out)
    xfs_db_write(image, *path,
                 f"write -d recs[1].blockcount {second - first + 1}")
    with pytest.raises(MapError, match="out of order"):
        open_map(image)


def test_an_agf_length_other_than_the_superblocks_is_refused(small,
                                                             tmp_path):
    image = copy_of(small, tmp_path)
    length, = agf(image, 1, "length")
    xfs_db_write(image, "agf 1", f"write -d length {length - 8}")
    with pytest.raises(MapError, match=f"says it is group 1 of "
                       f"{length - 8} blocks, the superblock 1 of {length}"):
        open_map(image)


@pytest.mark.parametrize("agblocks,agcount", [
    (64, 4000000), (1, 4000000), (64, 0xFFFFFFFF),
    (1, None)])                     # one-block groups that add up
def test_a_huge_agcount_over_a_small_volume_is_refused(small, tmp_path,
                                                       agblocks, agcount):
    image = copy_of(small, tmp_path)
    agcount = agcount or number("dblocks", db(image, "sb 0", "p dblocks"))
    xfs_db_write(image, "sb 0", f"write -d agblocks {agblocks}",
                 f"write -d agcount {agcount}")
    with pytest.raises(MapError, match="allocation groups of"):
        open_map(image)


def test_a_free_list_block_also_free_in_the_btree_is_refused(small,
                                                             tmp_path):
    """An AGFL slot pointed at a block inside a free extent: it would be
    free twice."""
    image = copy_of(small, tmp_path)
    first, = agf(image, 1, "flfirst")
    start = number("recs\\[1\\].startblock", db(
        image, *leaf_path(image, agno=1) if agf(image, 1, "bnolevel")[0] > 1
        else ["agf 1", "addr bnoroot"], "p recs[1].startblock"))
    xfs_db_write(image, "agfl 1", f"write -d bno[{first}] {start}")
    with pytest.raises(MapError, match="is on the free list and in the free "
                       "extent"):
        open_map(image)


def test_a_log_marked_free_is_refused(tmp_path):
    """The internal log's blocks written into both free space btrees of
    its AG as one more free extent, the AGF's counts to match: every
    count agrees, only the log says the blocks are used."""
    image = tmp_path / "fresh.img"
    with open(image, "wb") as f:
        f.truncate(300 << 20)
    run("mkfs.xfs", "-q", "-f", image)
    out = db(image, "sb 0", "p logstart logblocks agblklog")
    logstart, logblocks, agblklog = (number(name, out) for name in (
        "logstart", "logblocks", "agblklog"))
    agno, at = logstart >> agblklog, logstart & ((1 << agblklog) - 1)
    assert agno > 0, "the log is in AG 0: the test wants another AG's"
    insert_free(image, agno, at, logblocks)
    with pytest.raises(MapError, match="the free space btrees hold blocks "
                       "of the internal log"):
        open_map(image)
    assert run("xfs_repair", "-n", image, check=False).returncode == 1


def test_a_free_extent_over_the_group_headers_is_refused(small, tmp_path):
    """Block 0 of AG 1 (its superblock, AGF, AGI and AGFL) written into
    both free space btrees as a free extent, the AGF to match."""
    image = copy_of(small, tmp_path)
    insert_free(image, 1, 0, 1)
    with pytest.raises(MapError, match="holds the group's headers"):
        open_map(image)


def insert_free(image, agno, start, count):
    """The extent start+count added to AG `agno`'s free space btrees (one
    leaf each) in key order, and to its AGF's freeblks and longest."""
    freeblks, longest = agf(image, agno, "freeblks", "longest")
    assert agf(image, agno, "bnolevel", "cntlevel") == [1, 1]
    for tree, key in (("bno", lambda r: r[0]), ("cnt", lambda r: r[::-1])):
        text = db(image, f"agf {agno}", f"addr {tree}root", "p recs")
        recs = [(int(s), int(n)) for s, n in re.findall(
            r"\d+:\[(\d+),(\d+)\]", text)]
        assert all(s > start + count or s + n < start for s, n in recs)
        recs = sorted(recs + [(start, count)], key=key)
        writes = [f"write -d numrecs {len(recs)}"] + [
            f"write -d recs[{k}].{field} {value}"
            for k, rec in enumerate(recs, 1)
            for field, value in zip(("startblock", "blockcount"), rec)]
        xfs_db_write(image, f"agf {agno}", f"addr {tree}root", *writes)
    xfs_db_write(image, f"agf {agno}", f"write -d freeblks {freeblks + count}",
                 f"write -d longest {max(longest, count)}")


@pytest.mark.parametrize("name,header,field", [
    ("inobt", "agi", "root"), ("finobt", "agi", "free_root"),
    ("refcountbt", "agf", "refcntroot")])
def test_a_btree_root_marked_free_is_refused(small, tmp_path, name, header,
                                             field):
    """A btree's root block written into both free space btrees as a free
    extent, the AGF to match: only the root's address says it is used."""
    image = copy_of(small, tmp_path)
    root = number(field, db(image, f"{header} 1", f"p {field}"))
    insert_free(image, 1, root, 1)
    with pytest.raises(MapError, match=f"block {root} is the {name} root "
                       f"and in the free extent {root}\\+1"):
        open_map(image)


def widen_free(image, agno, grow, recompute):
    """The trial's forgery: a free extent of AG `agno` (one-leaf btrees)
    started `grow` used blocks earlier, in both btrees, and the AGF's
    freeblks and longest to match, so every AG count agrees; raw bytes
    written, the CRCs left stale or (`recompute`) made right by xfs_db."""
    bs, _, _ = geometry(image)
    agblocks = number("agblocks", db(image, "sb 0", "p agblocks"))
    sectsize = number("sectsize", db(image, "sb 0", "p sectsize"))
    assert agf(image, agno, "bnolevel", "cntlevel") == [1, 1]
    recs = {}
    for tree in ("bno", "cnt"):
        text = db(image, f"agf {agno}", f"addr {tree}root", "p recs")
        recs[tree] = [(int(s), int(n)) for s, n in re.findall(
            r"\d+:\[(\d+),(\d+)\]", text)]
    bno = recs["bno"]
    ends = [64] + [s + n for s, n in bno]    # past the headers and roots
    k = next(k for k in range(len(bno)) if bno[k][0] - grow > ends[k] + 16)
    start, count = bno[k]
    new = (start - grow, count + grow)
    lists = {"bno": bno[:k] + [new] + bno[k + 1:],
             "cnt": sorted([r if r != (start, count) else new
                            for r in recs["cnt"]], key=lambda r: r[::-1])}
    freeblks, longest = agf(image, agno, "freeblks", "longest")
    with open(image, "r+b") as f:
        for tree, records in lists.items():
            root, = agf(image, agno, f"{tree}root")
            f.seek((agno * agblocks + root) * bs + 56)
            f.write(b"".join(struct.pack(">II", *r) for r in records))
        f.seek(agno * agblocks * bs + sectsize + 52)
        f.write(struct.pack(">II", freeblks + grow,
                            max(longest, new[1])))
    if recompute:
        xfs_db_write(image, f"agf {agno}", "crc -r",
                     f"agf {agno}", "addr bnoroot", "crc -r",
                     f"agf {agno}", "addr cntroot", "crc -r")
    return new


@pytest.mark.parametrize("recompute", [False, True])
def test_a_self_consistent_forged_free_extent_is_refused(small, tmp_path,
                                                         recompute):
    """Used blocks added to a free extent in both btrees and the AGF: the
    trial's capture used such a map and lost the blocks.  Stale CRCs are
    a CRC error; with the CRCs recomputed only the superblock's
    sb_fdblocks (synced at unmount) still disagrees."""
    image = copy_of(small, tmp_path)
    start, count = widen_free(image, 1, 64, recompute)
    # (xfs_db 6.1's crc command calls a stale AGF's CRC correct; it
    # does tell of the btree blocks)
    for where in (["agf 1", "addr bnoroot"], ["agf 1", "addr cntroot"]):
        assert ("(correct)" if recompute else "(bad)") in \
            db(image, *where, "crc")
    if recompute:
        match = (r"the free space btrees hold \d+ free blocks \(and \d+ on "
                 r"free lists or in their own blocks\), the superblock "
                 r"counts \d+")
    else:
        match = "CRC"
    with pytest.raises(MapError, match=match):
        open_map(image)
    assert run("xfs_repair", "-n", image, check=False).returncode == 1


def test_agi_counts_other_than_the_superblocks_are_refused(small, tmp_path):
    """An AGI's free inode count changed (CRC recomputed): the sum over
    the AGIs no longer is the superblock's sb_ifree."""
    image = copy_of(small, tmp_path)
    free = number("freecount", db(image, "agi 1", "p freecount"))
    xfs_db_write(image, "agi 1", f"write -d freecount {free + 1}")
    with pytest.raises(MapError, match="the AGIs count"):
        open_map(image)


def test_an_inobt_root_that_is_not_one_is_refused(small, tmp_path):
    """The AGI's inobt root moved to its free inode btree's root block."""
    image = copy_of(small, tmp_path)
    other = number("free_root", db(image, "agi 1", "p free_root"))
    xfs_db_write(image, "agi 1", f"write -d root {other}")
    with pytest.raises(MapError, match="the inobt root"):
        open_map(image)
