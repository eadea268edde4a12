"""A warning about a filesystem whose used-block map is still used says
so, unlike the fallback's "copying the whole partition": the trial read
an XFS counter warning as a refusal, when the map had been used."""

import pytest

from diskimage.capture import plan_areas
from diskimage.host.device import open_source
from diskimage.tables.partitions import read_table
from tests.fsmaps import run

pytestmark = pytest.mark.needs("mkfs.ext4", "debugfs")


def test_a_warning_on_a_used_map_says_the_map_was_used(tmp_path):
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    run("mkfs.ext4", "-q", "-F", image)
    run("debugfs", "-w", "-R", "ssv state 0", image)     # not clean
    with open_source(image) as disk:
        table = read_table(disk.read, disk.size, 512)
        planned, warnings = plan_areas(disk, table)
    (area, _), = planned
    assert area["method"] == "used-blocks"
    assert warnings == ["the disk: not cleanly unmounted; its used-block "
                        "map was still used"]
