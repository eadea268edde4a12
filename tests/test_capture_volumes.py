"""A split image with a volume moved away: every reader (rdeploy restore,
verify, info; imgx info, ls, verify, cat) names the missing file instead of
saying the image ends early (issue 11 item 15)."""

import os
import shutil
from pathlib import Path

import pytest

from tests.imgx_helpers import imgx
from tests.smalldisk import build_disk
from tests.test_bad_input import rdeploy


@pytest.fixture(scope="module")
def split_image(tmp_path_factory):
    d = tmp_path_factory.mktemp("split")
    source = build_disk(d / "disk.img")
    image = d / "sp.rdi"
    result = rdeploy("capture", source, image, "--split=1M", "-q")
    assert result.returncode == 0, result.stderr.decode()
    volumes = sorted(d.glob("sp.r*"))
    assert [v.name for v in volumes] == ["sp.r01", "sp.r02", "sp.r03",
                                         "sp.rdi"]
    assert os.path.getsize(d / "sp.r03") < os.path.getsize(d / "sp.r02")
    return image


READERS = {
    "rdeploy restore": lambda image, tmp: rdeploy(
        "restore", image, tmp / "target.img", "--yes"),
    "rdeploy verify": lambda image, tmp: rdeploy("verify", image),
    "rdeploy info": lambda image, tmp: rdeploy("info", image),
    "imgx info": lambda image, tmp: imgx("info", image),
    "imgx ls": lambda image, tmp: imgx("ls", f"{image}:1/"),
    "imgx verify": lambda image, tmp: imgx("verify", image),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("gone", ["sp.r02", "sp.r03"])
def test_missing_volume_is_named(split_image, tmp_path, reader, gone):
    """sp.r02 missing: sp.r03 is still there; sp.r03 missing: sp.r02 is
    the last and full, so the stream goes on in a volume that is not."""
    copy = tmp_path / "copy"
    shutil.copytree(split_image.parent, copy,
                    ignore=shutil.ignore_patterns("disk.img"))
    (copy / gone).rename(tmp_path / gone)
    result = READERS[reader](copy / "sp.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert err.count("\n") == 1, err
    assert f"{copy / gone}: no such file" in err, err
    assert "ends early" not in err
    assert not (tmp_path / "target.img").exists()
