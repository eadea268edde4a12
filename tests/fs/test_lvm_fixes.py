"""LVM2 findings of issue 14's trial: an LV cut shorter than its
filesystem (the lvreduce mistake) copies its whole PV, since the
extents LVM now calls free after it still hold the filesystem's tail; a
--size that grows a PV past the target is not called a shrink; an --into
restore that grows a PV says how (pvresize, lvextend) as --grow does;
--new-ids prints each LV filesystem's new UUID, as blkid reads it; `..`
at an LV's root in imgx stays at that root."""

import re
import subprocess
import sys

import pytest

from diskimage.fs.lvm.used import open_volume
from diskimage.fs.usedmap import MapError
from diskimage.host.loop import loop_device
from tests import lvmbuild
from tests.fsmaps import (ROOT, MiB, partitioned_disk, random_fill, range_digest,
                          rdeploy, round_trip, run)

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "sfdisk", "e2fsck",
                               "debugfs", "dumpe2fs", root=True)


def cut_data(text):
    """The `data` LV's one segment cut from 30 extents to 20, by lvm2's
    vgcfgrestore (what `lvreduce -L 20m` without resizing the fs does)."""
    at = text.index("data {")
    head, tail = text[:at], text[at:]
    assert "extent_count = 30" in tail
    return head + tail.replace("extent_count = 30", "extent_count = 20", 1)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lvreduce")
    pv = lvmbuild.make_pv(tmp, 56, [("root", 8, "ext4"),
                                    ("data", 30, "ext4")], garbage=7)
    lvmbuild.rewrite_metadata(pv.image, cut_data)
    assert lvmbuild.report(pv.image)["lv"]["data"]["lv_size"] == str(20 * MiB)
    return pv


def test_an_lv_shorter_than_its_filesystem_fails_the_pv_map(reduced):
    with open(reduced.image, "rb") as f:
        data = f.read()
    with pytest.raises(MapError, match=r"LV data's ext4 of 31457280 bytes "
                                       r"is larger than the LV of 20971520"):
        open_volume(lambda o, n: data[o:o + n], len(data))


def test_its_tail_in_free_extents_comes_back(reduced, tmp_path):
    disk = tmp_path / "disk.img"
    (start, size), = partitioned_disk(disk, [(reduced.image,
                                              "LVM2_member")])
    image, target, stderr = round_trip(disk, tmp_path)
    assert "larger than the LV" in stderr
    (offset, _), = reduced.lvs["data"].places
    # the ext4's 30 MiB: its last 10 MiB in extents LVM calls free
    assert range_digest(target, start + offset, 30 * MiB) == \
        range_digest(disk, start + offset, 30 * MiB)


@pytest.fixture(scope="module")
def pv_image(tmp_path_factory):
    """(image, disk, pv): a captured MBR disk whose partition 1 is a
    PV."""
    tmp = tmp_path_factory.mktemp("lvplan")
    pv = lvmbuild.make_pv(tmp, 40, [("root", 8, "ext4"),
                                    ("home", 8, "ext4")], garbage=3)
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(pv.image, "LVM2_member")], table="dos")
    image = tmp / "disk.rdi"
    rdeploy("capture", disk, image, "--progress=none")
    return image, disk, pv


def test_a_size_that_grows_is_not_called_a_shrink(pv_image, tmp_path):
    image, disk, _ = pv_image
    target = tmp_path / "target.img"
    with open(target, "wb") as f:
        f.truncate(80 * MiB)
    done = rdeploy("restore", image, target, "--size=1=100M", "--dry-run",
                   check=False)
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "target too small" in message, message
    assert "cannot shrink" not in message, message
    assert "partition 1 (LVM2_member) grows to 100.0 MiB as --size asks" \
        in message, message


def test_an_into_restore_that_grows_says_pvresize(pv_image, tmp_path):
    image, _, _ = pv_image
    target = random_fill(tmp_path / "target.img", 90 * MiB, 4)
    run("sfdisk", "-q", target, input="label: dos\nstart=2048, "
        "size=163840, type=8e\n")
    plan = rdeploy("restore", image, target, "--partitions=1", "--into=1",
                   "--dry-run").stdout
    assert re.search(r"PV grown by pvresize \(metadata only\), then its "
                     r"last LV \S+ by lvextend", " ".join(plan.split())), plan


def test_new_ids_prints_each_lv_filesystems_new_uuid(pv_image, tmp_path):
    image, disk, pv = pv_image
    target = random_fill(tmp_path / "target.img", disk.stat().st_size, 6)
    done = rdeploy("restore", image, target, "--yes", "--new-ids",
                   "--progress=none")
    said = done.stdout + done.stderr
    for name, lv in pv.lvs.items():
        (offset, size), = lv.places
        uuids = []
        for path in (disk, target):
            with loop_device(path, MiB + offset, size) as dev:
                uuids.append(run("blkid", "-p", "-o", "value", "-s", "UUID",
                                 dev).stdout.strip())
        assert uuids[0] and uuids[1] and uuids[0] != uuids[1]
        assert f"rdeploy: new partition 1 LV {name} filesystem: " \
               f"{uuids[0]} -> {uuids[1]}" in said, said
    assert "rdeploy: new partition 1 filesystem: " in said, said


def imgx_ls(where, code=0):
    done = subprocess.run([sys.executable, "-m", "imgx", "ls", where],
                          cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == code, done.stderr
    return done.stdout.split() if code == 0 else done.stderr


def test_dotdot_at_an_lvs_root_stays_there(pv_image):
    image, _, _ = pv_image
    assert imgx_ls(f"{image}:1") == ["home/", "root/"]
    inside = imgx_ls(f"{image}:1/root")
    assert "lost+found/" in inside
    for path in ("root/..", "root/../../", "root/lost+found/../../.."):
        assert imgx_ls(f"{image}:1/{path}") == inside, path
    # the other LV is not reached from inside this one
    assert "1/root/home: no such file or directory" in \
        imgx_ls(f"{image}:1/root/../home", code=3)
