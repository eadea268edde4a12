"""LVM2 findings of issue 14's trial: an LV cut shorter than its
filesystem (the lvreduce mistake) copies its whole PV, since the
extents LVM now calls free after it still hold the filesystem's tail."""

import pytest

from diskimage.fs.lvm.used import open_volume
from diskimage.fs.usedmap import MapError
from tests import lvmbuild
from tests.fsmaps import MiB, partitioned_disk, range_digest, round_trip

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
