"""Restores that move and resize MBR logical partitions (issue 14): a disk
made by sfdisk with a primary ext4 and an extended partition holding two
logicals (ext4, then NTFS made by mkntfs and filled through ntfs-3g),
captured once, restored with --grow, --resize=proportional, --size and onto
a smaller disk.

Every result is judged by the field's tools, never by diskimage: `sfdisk
-d` against the layout worked out by hand in each test, `fdisk -l` without
a warning, the EBR chain read with the struct module and compared with the
chain sfdisk itself writes for the same layout, each filesystem's fsck
(e2fsck -fn, ntfsfix -n) and every file's sha256.
"""

import os
import re
import struct

import pytest

import demodisk

from tests.layout_helpers import (MiB, TOOLS, blank, checked, fs_bytes,
                                  rdeploy, run, sha256)

pytestmark = pytest.mark.needs(*TOOLS, "fdisk", "ntfsfix", root=True,
                               fuse=True)

S = 512                      # sectors of the source and of every target
SOURCE = 128 * MiB
# The source, in sectors, as an administrator lays it out with sfdisk:
# 1 MiB alignment, each EBR one MiB before its logical, no other gaps.
P1 = (2048, 24 * 2048)                       # ext4, primary
EXT = 51200                                  # the extended partition
P5 = (EXT + 2048, 24 * 2048)                 # ext4, logical
P6 = (P5[0] + P5[1] + 2048, 72 * 2048)       # NTFS, logical (last)


def _script(rows):
    return "".join(f"{path}{n} : start={start:>12}, size={size:>12}, "
                   f"type={kind}\n" for path, n, start, size, kind in rows)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(disk, image, manifest): the disk built and captured once, read
    only after."""
    d = tmp_path_factory.mktemp("mbrlogical")
    disk = d / "src.img"
    ext_size = P6[0] + P6[1] - EXT
    rows = [f"start={P1[0]}, size={P1[1]}, type=83",
            f"start={EXT}, size={ext_size}, type=5",
            f"start={P5[0]}, size={P5[1]}, type=83",
            f"start={P6[0]}, size={P6[1]}, type=7"]
    parts = [(1, "ext4", "mbr-root", P1[0] * S, P1[1] * S),
             (5, "ext4", "mbr-home", P5[0] * S, P5[1] * S),
             (6, "ntfs", "mbr-data", P6[0] * S, P6[1] * S)]
    # demodisk's builder: the sfdisk script, then each filesystem made by
    # its own tool and filled with a tree of files.
    manifest = demodisk._build(disk, SOURCE, "dos", rows, parts, 40, 14)
    assert _dump(disk) == _expected(disk, [(1, *P1, 83), (2, EXT, ext_size, 5),
                                           (5, *P5, 83), (6, *P6, 7)])
    image = d / "src.rdi"
    rdeploy("capture", disk, image, "-q")
    os.chmod(disk, 0o444)
    return disk, image, manifest


def _dump(path):
    """sfdisk -d's partition lines."""
    return [line for line in run("sfdisk", "-d", path).splitlines()
            if line.startswith(str(path))]


def _expected(path, rows):
    return _script([(path, *row) for row in rows]).splitlines()


def _fdisk_clean(path):
    result = run("fdisk", "-l", path)
    assert not re.search(r"warning|not in disk order|does not start|"
                         r"overlap|exceeds", result, re.I), result


def _chain(path):
    """[(EBR LBA, [(type, start, size)] of its two records)] along the
    chain, read with struct from the first extended record of sector 0."""
    with open(path, "rb") as f:
        def records(lba):
            f.seek(lba * S + 446)
            raw = f.read(32 if lba else 64)
            return [struct.unpack_from("<B3sB3sII", raw, 16 * i)
                    for i in range(len(raw) // 16)]
        ext = next(r for r in records(0) if r[2] in (5, 0x0F, 0x85))
        out, lba = [], ext[4]
        while len(out) < 16:
            recs = records(lba)
            out.append((lba, [(r[0], r[2], r[4], r[5]) for r in recs]))
            if not recs[1][5]:
                return out
            lba = ext[4] + recs[1][4]
    raise AssertionError(f"{path}: the chain does not end")


def _as_sfdisk_writes(tmp_path, target):
    """The EBR chain sfdisk writes for `target`'s own layout (its sfdisk -d
    fed to sfdisk on a blank disk of the same size)."""
    fresh = blank(tmp_path / "fresh.img", os.path.getsize(target))
    run("sfdisk", "-q", fresh, input=run("sfdisk", "-d", target))
    return _chain(fresh)


def _judged(tmp_path, target, rows, manifest):
    """The target's table is `rows` (sectors), fdisk is quiet, the chain
    is sfdisk's own, every filesystem is clean and holds its files."""
    assert _dump(target) == _expected(target, rows)
    _fdisk_clean(target)
    assert _chain(target) == _as_sfdisk_writes(tmp_path, target)
    assert checked(target, manifest) == []


def test_grow_onto_twice_the_size_fills_the_disk_with_the_ntfs(source,
                                                               tmp_path):
    disk, image, manifest = source
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    with open(disk, "rb") as f:
        boot_code = f.read(440)
    rdeploy("restore", image, target, "--grow", "--yes", "--verify")
    end = 2 * SOURCE // S
    _judged(tmp_path, target, [(1, *P1, 83), (2, EXT, end - EXT, 5),
                               (5, *P5, 83), (6, P6[0], end - P6[0], 7)],
            manifest)
    with open(target, "rb") as f:
        assert f.read(440) == boot_code
    part = dict(start=P6[0] * S, size=(end - P6[0]) * S)
    assert fs_bytes(target, part, "ntfs") >= part["size"] - MiB


def test_proportional_doubles_primaries_and_logicals(source, tmp_path):
    disk, image, manifest = source
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    rdeploy("restore", image, target, "--resize=proportional", "--yes")
    # Each size scaled by (256 MiB - 1 MiB) / (128 MiB - 1 MiB), rounded
    # down to MiB: 24 -> 48, 72 -> 144; every gap 1 MiB as before.
    p1 = (2048, 48 * 2048)
    ext = p1[0] + p1[1]
    p5 = (ext + 2048, 48 * 2048)
    p6 = (p5[0] + p5[1] + 2048, 144 * 2048)
    _judged(tmp_path, target, [(1, *p1, 83), (2, ext, p6[0] + p6[1] - ext, 5),
                               (5, *p5, 83), (6, *p6, 7)], manifest)
    for n, (start, size) in ((1, p1), (5, p5)):
        part = dict(start=start * S, size=size * S)
        assert fs_bytes(target, part, "ext4") == size * S, n


def test_size_of_the_logical_ntfs(source, tmp_path):
    disk, image, manifest = source
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    rdeploy("restore", image, target, "--size", "6=100M", "--yes")
    p6 = (P6[0], 100 * 2048)
    _judged(tmp_path, target, [(1, *P1, 83), (2, EXT, p6[0] + p6[1] - EXT, 5),
                               (5, *P5, 83), (6, *p6, 7)], manifest)


def test_smaller_disk_refused_with_the_size_needed_then_restored_there(
        source, tmp_path):
    """40 MiB cannot hold the data: refused (exit 5) with the size needed,
    nothing written.  A disk of exactly that size (smaller than the source)
    then takes it: everything shrinks to its least, the logicals move."""
    disk, image, manifest = source
    small = blank(tmp_path / "small.img", 40 * MiB)
    err = rdeploy("restore", image, small, "--yes", code=5).stderr
    need = int(re.search(r"the image's data needs (\d+)", err).group(1))
    assert sha256(small) == sha256(blank(tmp_path / "z.img", 40 * MiB))
    assert 40 * MiB < need < SOURCE
    target = blank(tmp_path / "need.img", need)
    rdeploy("restore", image, target, "--yes", "--verify")
    rows = [tuple(int(v) for v in re.findall(r"=\s*(\w+)", line)[:2])
            for line in _dump(target)]
    (s1, n1), (se, ne), (s5, n5), (s6, n6) = rows
    # The careful administrator's layout: 1 MiB starts, each EBR one MiB
    # before its logical right after the partition before, the extended
    # partition spanning its logicals exactly, the last one ending at the
    # disk's end; every partition smaller than it was.
    assert (s1, se, s5, s6) == (2048, -(-(s1 + n1) // 2048) * 2048,
                                se + 2048, -(-(s5 + n5) // 2048) * 2048 + 2048)
    assert se + ne == s6 + n6 == need // S
    assert n1 < P1[1] and n5 < P5[1] and n6 < P6[1]
    _judged(tmp_path, target, [(1, s1, n1, 83), (2, se, ne, 5),
                               (5, s5, n5, 83), (6, s6, n6, 7)], manifest)


def _poke(path, lba, record, field, value):
    """Set a field (2: type, 4: start, 5: size) of a record of the sector
    at `lba`."""
    at = lba * S + 446 + 16 * record + {2: 4, 4: 8, 5: 12}[field]
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(struct.pack("<B" if field == 2 else "<I", value))


EBR6 = P6[0] - 2048


@pytest.mark.parametrize("pokes, match", [
    # the last EBR links back to the first: a loop
    ([(EBR6, 1, 2, 5), (EBR6, 1, 4, 0), (EBR6, 1, 5, 2048)], "loops"),
    # the first EBR links past the end of the extended partition
    ([(EXT, 1, 4, P6[0] + P6[1] - EXT + 8)], "outside"),
    # logical 6's relative start wraps past 2^32 sectors: the entry named
    ([(EBR6, 0, 4, 2**32 - EBR6 + 2048)],
     f"logical partition 6 (record 1 of the EBR at byte offset {EBR6 * S})"
     f" starts at LBA {2**32 + 2048}"),
])
def test_hostile_chains_are_refused_by_capture(source, tmp_path, pokes,
                                               match):
    disk = tmp_path / "bad.img"
    disk.write_bytes(source[0].read_bytes())
    for poke in pokes:
        _poke(disk, *poke)
    err = rdeploy("capture", disk, tmp_path / "bad.rdi", code=3).stderr
    assert match in err and "--raw" in err
    assert not (tmp_path / "bad.rdi").exists()
    err = rdeploy("capture", disk, tmp_path / "p1.rdi", "--partitions=1",
                  code=3).stderr
    assert match in err and "not --partitions" in err


@pytest.mark.parametrize("over", [2048, 4096])
def test_a_logical_over_the_next_ebr_restores_in_place(source, tmp_path,
                                                        over):
    """Logical 5's record reaching over the EBR of logical 6, up to its
    start (Linux and sfdisk read such a table), or 1 MiB into it: the
    EBR's sector, in
    ext4's free space past its end, is copied with partition 5 and the
    capture says the image restores onto this layout only.  A same-size
    restore gives the source's table and files back (it once refused,
    exit 3: the image held no EBR for 6); one that would move them is
    refused first (exit 5), nothing written."""
    disk = tmp_path / "bad.img"
    disk.write_bytes(source[0].read_bytes())
    _poke(disk, EXT, 0, 5, P5[1] + over)
    image = tmp_path / "bad.rdi"
    err = rdeploy("capture", disk, image).stderr
    assert f"the EBR at byte offset {EBR6 * S} lies inside partition 5" \
        in err and "restores onto this layout only" in err
    assert ("partitions 5 and 6 overlap" in err) == (over > 2048)
    big = blank(tmp_path / "big.img", 2 * SOURCE)
    for options in (["--grow"], ["--size=5=30M"]):
        err = rdeploy("restore", image, big, "--yes", *options,
                      code=5).stderr
        assert ("partitions 5 and 6 overlap in the image" if over > 2048
                else "partition 6 has no EBR in the gap just before it") \
            in err
    assert sha256(big) == sha256(blank(tmp_path / "z.img", 2 * SOURCE))
    target = blank(tmp_path / "same.img", SOURCE)
    rdeploy("restore", image, target, "--yes", "--verify")
    assert [line.split(":", 1)[1] for line in _dump(target)] == \
        [line.split(":", 1)[1] for line in _dump(disk)]
    assert _chain(target) == _chain(disk)
    assert checked(target, source[2]) == []


def test_the_rest_past_an_ebr_without_signature_comes_back(source,
                                                           tmp_path):
    """The EBR of logical 6 without its 0x55AA: 6 is left out (as Linux
    reads it), but the rest of the extended partition, 6's NTFS with it,
    is copied whole, the capture says so, and a same-size restore gives
    every byte of it back (once it was not captured at all).  A restore
    that would move the chain is refused (exit 5), nothing written."""
    disk = tmp_path / "bad.img"
    disk.write_bytes(source[0].read_bytes())
    with open(disk, "r+b") as f:
        f.seek(EBR6 * S + 510)
        f.write(b"\0\0")
    rest = (EBR6 * S, (P6[0] + P6[1]) * S)
    image = tmp_path / "bad.rdi"
    err = rdeploy("capture", disk, image).stderr
    assert f"the rest of the extended partition, bytes {rest[0]} to " \
        f"{rest[1]}, is copied whole" in err
    big = blank(tmp_path / "big.img", 2 * SOURCE)
    err = rdeploy("restore", image, big, "--yes", "--grow", code=5).stderr
    assert "rest of their extended partition past an EBR" in err
    assert sha256(big) == sha256(blank(tmp_path / "z.img", 2 * SOURCE))
    target = blank(tmp_path / "same.img", SOURCE)
    rdeploy("restore", image, target, "--yes", "--verify")
    assert [line.split(":", 1)[1] for line in _dump(target)] == \
        [line.split(":", 1)[1] for line in _dump(disk)]
    span = rest[1] - rest[0]
    assert sha256(target, rest[0], span) == sha256(disk, rest[0], span)
    # every filesystem where the source had it: 6's NTFS too, by ntfsfix
    # and every file's sha256
    assert demodisk.check_disk(target, source[2]) == []


def test_a_primary_overlapping_a_logical_is_not_moved(source, tmp_path):
    """A primary 3 over the last MiB of logical 6 and past the extended
    partition: restored where it was, as the source had it, but a layout
    that would move the logicals is refused (exit 5), the reason named,
    nothing written."""
    disk = tmp_path / "bad.img"
    disk.write_bytes(source[0].read_bytes())
    _poke(disk, 0, 2, 2, 0x83)
    _poke(disk, 0, 2, 4, P6[0] + P6[1] - 2048)
    _poke(disk, 0, 2, 5, 4096)
    image = tmp_path / "bad.rdi"
    assert "partitions 6 and 3 overlap" in rdeploy("capture", disk,
                                                   image).stderr
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    for options in (["--resize=proportional"], ["--size=5=30M"]):
        err = rdeploy("restore", image, target, "--yes", *options,
                      code=5).stderr
        assert "partitions 6 and 3 overlap in the image" in err
    assert sha256(target) == sha256(blank(tmp_path / "z.img", 2 * SOURCE))
    rdeploy("restore", image, target, "--yes")
    assert [line.split(":", 1)[1] for line in _dump(target)] == \
        [line.split(":", 1)[1] for line in _dump(disk)]


def test_grow_beside_a_protected_partition_kept_at_the_end(source, tmp_path):
    """The target's OEM recovery partition (type 0x27) in its last 8 MiB
    is kept byte for byte; the last logical grows up to it; the kept one
    takes the last free slot, after the extended record (slot 2)."""
    disk, image, manifest = source
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    end = 2 * SOURCE // S
    oem = (end - 8 * 2048, 8 * 2048)
    run("sfdisk", "-q", target, input=f"start={oem[0]}, size={oem[1]}, "
                                      f"type=27\n")
    with open(target, "r+b") as f:
        f.seek(oem[0] * S)
        f.write(os.urandom(oem[1] * S))
    before = sha256(target, oem[0] * S, oem[1] * S)
    rdeploy("restore", image, target, "--grow", "--yes")
    assert _dump(target) == _expected(target, [
        (1, *P1, 83), (2, EXT, oem[0] - EXT, 5), (4, *oem, 27),
        (5, *P5, 83), (6, P6[0], oem[0] - P6[0], 7)])
    assert sha256(target, oem[0] * S, oem[1] * S) == before
    assert _chain(target) == _as_sfdisk_writes(tmp_path, target)
    assert checked(target, manifest) == []


def test_grow_over_an_empty_extended_partition_drops_it(tmp_path):
    """A primary ext4 and an empty extended partition after it (sfdisk):
    --grow extends the ext4 to the disk's end, and the empty container,
    which it now covers, leaves the table (the plan says so) instead of
    overlapping it; its EBR is not written inside the ext4."""
    disk = tmp_path / "e.img"
    rows = ["start=2048, size=32768, type=83",
            "start=40960, size=32768, type=5"]
    manifest = demodisk._build(disk, 64 * MiB, "dos", rows,
                               [(1, "ext4", "mbr-one", MiB, 16 * MiB)], 20, 3)
    image = tmp_path / "e.rdi"
    rdeploy("capture", disk, image, "-q")
    target = blank(tmp_path / "big.img", 128 * MiB)
    plan = rdeploy("restore", image, target, "--grow", "--dry-run").stdout
    assert "empty extended partition (EBR at byte 20971520) is dropped" \
        in plan
    rdeploy("restore", image, target, "--grow", "--yes")
    end = 128 * MiB // S
    assert _dump(target) == _expected(target, [(1, 2048, end - 2048, 83)])
    _fdisk_clean(target)
    assert checked(target, manifest) == []
    with open(target, "rb") as f:
        f.seek(40960 * S + 510)
        assert f.read(2) != b"\x55\xaa"


def test_an_image_of_the_last_logical_alone_is_not_moved(source, tmp_path):
    """`capture --partitions=6`: restored where it was, but not moved (a
    chain of 6 alone would make it 5): refused before a byte is written,
    where it once failed after wiping the table (exit 8)."""
    disk, _, manifest = source
    image = tmp_path / "p6.rdi"
    rdeploy("capture", disk, image, "--partitions=6", "-q")
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    err = rdeploy("restore", image, target, "--grow", "--yes", code=5).stderr
    assert "logical partitions [6] only" in err
    assert sha256(target) == sha256(blank(tmp_path / "z.img", 2 * SOURCE))
    rdeploy("restore", image, target, "--yes")
    assert _dump(target)[-1].split(":")[1] == _dump(disk)[-1].split(":")[1]
    assert checked(target, {"partitions": {6: manifest["partitions"][6]}}) \
        == []


def test_the_extended_partition_is_named_as_such(source, tmp_path):
    """`imgx ls IMG:2` and `--size=2=...` on the extended partition say
    what it is (they said "no partition 2"); a number that is not there
    still gets "no partition"."""
    from tests.imgx_helpers import imgx
    image = source[1]
    said = ("partition 2 is the extended partition (a container of "
            "logical partitions 5, 6)")
    result = imgx("ls", f"{image}:2")
    assert result.returncode == 3 and said in result.stderr.decode()
    target = blank(tmp_path / "big.img", 2 * SOURCE)
    err = rdeploy("restore", image, target, "--size=2=100M", "--yes",
                  code=3).stderr
    assert said in err
    assert "no partition 3" in imgx("ls", f"{image}:3").stderr.decode()
