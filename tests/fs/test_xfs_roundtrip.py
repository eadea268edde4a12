"""XFS through the real commands: a GPT disk with an XFS partition (a tree,
a sparse file, deleted files, a file with punched holes, a fragmented
file) is captured with `rdeploy capture` and restored onto garbage, onto a
larger disk with --grow, with --new-ids, and refused on a smaller disk.
After each restore `xfs_repair -n` must be clean and every file's sha256
equal; the image is no larger than `partclone.xfs | lz4 -1` of the same
volume and far smaller than --raw; imgx ls, cat and get read inside it.
"""

import hashlib
import json
import os
import re

import pytest

import demodisk
from diskimage.fs import registry
from tests.imgx_helpers import ok
from tests.fs.xfs_tools import geometry, make_xfs, mounted
from tests.fsmaps import (MiB, blkid, partitioned_disk, random_fill, rdeploy,
                          run)

pytestmark = pytest.mark.needs("mkfs.xfs", "xfs_repair", "xfs_growfs",
                               "xfs_admin", "xfs_info", "xfs_io", "sfdisk",
                               "blkid", "losetup", root=True)


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """(disk, (start, size) of its XFS partition, digests, image)."""
    tmp = tmp_path_factory.mktemp("xfs-disk")
    fs_image, digests = make_xfs(tmp, 300)
    disk = tmp / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, "xfs")], "gpt")
    fs_image.unlink()
    image = tmp / "disk.rdi"
    captured = rdeploy("capture", disk, image, "--progress=none")
    assert "warning" not in captured.stderr
    return disk, (start, size), digests, image


def files_at(disk, start, size, tmp_path):
    """{path: sha256} of the XFS at [start, start+size) of `disk`, mounted
    read-only with no log replay."""
    with demodisk.loop_device(disk, start, size) as dev, \
            mounted(dev, tmp_path / "ro", "ro", "norecovery") as mnt:
        return demodisk.digest_tree(mnt)


def check(target, start, size, digests, tmp_path):
    clean, output = registry.fsck_region(target, start, size, "xfs")
    assert clean, output
    assert files_at(target, start, size, tmp_path) == digests


def partition(disk, number=1):
    """(start, size) in bytes of partition `number`, from sfdisk --json."""
    table = json.loads(run("sfdisk", "--json", disk).stdout)["partitiontable"]
    part = table["partitions"][number - 1]
    return part["start"] * 512, part["size"] * 512


def test_round_trip_onto_garbage(disk, tmp_path):
    source, (start, size), digests, image = disk
    area, = [a for a in json.loads(rdeploy("info", image, "--json").stdout)
             ["areas"] if a["partition"] == 1]
    assert (area["method"], area["filesystem"]) == ("used-blocks", "xfs")
    target = tmp_path / "target.img"
    random_fill(target, os.path.getsize(source), 5)
    rdeploy("restore", image, target, "--yes", "--progress=none")
    check(target, start, size, digests, tmp_path)


def test_grow_onto_a_larger_disk(disk, tmp_path):
    source, (start, size), digests, image = disk
    target = tmp_path / "large.img"
    random_fill(target, os.path.getsize(source) + 200 * MiB, 6)
    plan = rdeploy("restore", image, target, "--grow", "--dry-run").stdout
    assert "grown with xfs_growfs on a temporary mount" in plan, plan
    rdeploy("restore", image, target, "--yes", "--grow", "--progress=none")
    new_start, new_size = partition(target)
    assert new_size > size + 190 * MiB
    check(target, new_start, new_size, digests, tmp_path)
    with demodisk.loop_device(target, new_start, new_size) as dev:
        bs, blocks, _ = geometry(dev)
    assert blocks * bs > size + 190 * MiB and blocks * bs <= new_size


def test_smaller_disk_is_refused_with_the_size_needed(disk, tmp_path):
    source, (start, size), _, image = disk
    target = tmp_path / "small.img"
    with open(target, "wb") as f:
        f.truncate(os.path.getsize(source) - 64 * MiB)
    done = rdeploy("restore", image, target, "--yes", "--progress=none",
                   check=False)
    assert done.returncode != 0
    message = done.stderr
    assert "target too small" in message
    need = int(re.search(r"needs (\d+)", message).group(1))
    assert need >= os.path.getsize(source) - MiB
    assert "XFS cannot shrink" in message, message


def test_new_ids_gives_a_new_uuid(disk, tmp_path):
    source, (start, size), digests, image = disk
    target = tmp_path / "target.img"
    random_fill(target, os.path.getsize(source), 7)
    rdeploy("restore", image, target, "--yes", "--new-ids", "--progress=none")
    with demodisk.loop_device(source, start, size) as dev:
        old = blkid(dev)["UUID"]
    with demodisk.loop_device(target, start, size) as dev:
        new = blkid(dev)["UUID"]
    assert new and new != old
    check(target, start, size, digests, tmp_path)


@pytest.mark.needs("partclone.xfs", "lz4")
def test_image_no_larger_than_partclone_lz4_and_far_less_than_raw(disk,
                                                                   tmp_path):
    source, (start, size), _, image = disk
    with demodisk.loop_device(source, start, size) as dev:
        theirs = int(run("bash", "-o", "pipefail", "-c",
                         f"partclone.xfs -c -s {dev} -o - 2>/dev/null | "
                         f"lz4 -1 -c | wc -c").stdout)
    ours = os.path.getsize(image)
    assert ours <= theirs, (ours, theirs)
    raw = tmp_path / "raw.rdi"
    rdeploy("capture", source, raw, "--raw", "--progress=none")
    assert ours < os.path.getsize(raw) * 0.8, (ours, os.path.getsize(raw))


def test_imgx_ls_cat_get(disk, tmp_path):
    source, (start, size), digests, image = disk
    listing = ok("ls", f"{image}:1/").decode().replace("/", "")
    assert set(listing.split()) >= {"tree", "gone", "fill", "punched.bin",
                                    "sparse.bin", "fragmented.bin"}
    for name in ("fragmented.bin", "sparse.bin",
                 sorted(p for p in digests if p.startswith("tree/"))[-1]):
        cat = ok("cat", f"{image}:1/{name}")
        assert hashlib.sha256(cat).hexdigest() == digests[name], name
    long = ok("ls", "-l", f"{image}:1/").decode()
    assert "link-to-tree -> tree" in long, long
    assert ok("cat", f"{image}:1/link-to-tree/{name[5:]}") == \
        ok("cat", f"{image}:1/{name}")
    out = tmp_path / "got"
    ok("get", "-R", f"{image}:1/", out)
    assert demodisk.digest_tree(out) == digests


def test_imgx_edits_through_a_mount(disk, tmp_path):
    """imgx put, rm, mkdir and mv (edit="mount": the kernel's XFS driver),
    then a restore: xfs_repair -n clean, the files as edited."""
    source, (start, size), digests, image = disk
    edited = tmp_path / "edited.rdi"
    run("cp", image, edited)
    new = tmp_path / "new.bin"
    new.write_bytes(os.urandom(300 * 1024))
    ok("put", new, f"{edited}:1/tree/new.bin")
    ok("rm", f"{edited}:1/punched.bin")
    ok("mkdir", f"{edited}:1/moved")
    ok("mv", f"{edited}:1/sparse.bin", f"{edited}:1/moved/sparse.bin")
    wanted = dict(digests)
    wanted["tree/new.bin"] = hashlib.sha256(new.read_bytes()).hexdigest()
    del wanted["punched.bin"]
    wanted["moved/sparse.bin"] = wanted.pop("sparse.bin")
    area, = [a for a in json.loads(rdeploy("info", edited, "--json").stdout)
             ["areas"] if a["partition"] == 1]
    assert (area["method"], area["filesystem"]) == ("used-blocks", "xfs")
    target = tmp_path / "target.img"
    random_fill(target, os.path.getsize(source), 8)
    rdeploy("restore", edited, target, "--yes", "--progress=none")
    check(target, start, size, wanted, tmp_path)


def test_a_dirty_log_is_copied_whole_and_replays_on_the_copy(tmp_path):
    """A volume shut down with its log unreplayed: capture warns and copies
    it whole; on the copy xfs_repair -n gives the original's verdict (exit
    1, the log needs replay) and a mount replays the log, which holds the
    last file written."""
    fs_image, digests = make_xfs(tmp_path, 300, fragmented=False)
    with mounted(fs_image, tmp_path / "mnt") as mnt:
        data = os.urandom(200 * 1024)
        with open(os.path.join(mnt, "last.bin"), "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        run("xfs_io", "-x", "-c", "shutdown -f", mnt)
    digests["last.bin"] = hashlib.sha256(data).hexdigest()
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(fs_image, "xfs")], "gpt")
    fs_image.unlink()
    image = tmp_path / "dirty.rdi"
    captured = rdeploy("capture", disk, image, "--progress=none")
    assert "the XFS log needs recovery" in captured.stderr
    area, = [a for a in json.loads(rdeploy("info", image, "--json").stdout)
             ["areas"] if a["partition"] == 1]
    assert area["method"] != "used-blocks"
    target = tmp_path / "target.img"
    random_fill(target, os.path.getsize(disk), 9)
    rdeploy("restore", image, target, "--yes", "--progress=none")
    verdicts = []
    for path in (disk, target):
        with demodisk.loop_device(path, start, size) as dev:
            verdicts.append(run("xfs_repair", "-n", dev,
                                check=False).returncode)
    assert verdicts == [1, 1]
    with demodisk.loop_device(target, start, size, read_only=False) as dev:
        with mounted(dev, tmp_path / "replay") as mnt:     # replays
            assert demodisk.digest_tree(mnt) == digests
    check(target, start, size, digests, tmp_path)
