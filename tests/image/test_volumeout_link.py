"""VolumeOutput without --force gives each volume its final name with
link(2), so a file that appeared meanwhile is never replaced (issue 11
review item 3).  Here a real file appears under the final name just before
the link and is gone again before the check that follows it: the volume
must still get its name, never be counted as linked and lost."""

import os

import pytest

from diskimage.image import volumeout
from diskimage.errors import BusyError
from diskimage.image.volumes import PARTIAL


def _racing_link(monkeypatch, times):
    """os.link that, `times` times, meets a real file under the new name
    (made just before, removed just after the failing call)."""
    real_link = os.link
    left = [times]

    def link(src, dst, *args, **kw):
        if left[0] and str(src).endswith(PARTIAL):
            left[0] -= 1
            with open(dst, "wb") as other:
                other.write(b"someone else's\n")
            try:
                return real_link(src, dst, *args, **kw)
            finally:
                os.unlink(dst)
        return real_link(src, dst, *args, **kw)

    monkeypatch.setattr(volumeout.os, "link", link)
    return left


@pytest.mark.parametrize("split", [None, 4096])
def test_a_name_that_appears_and_vanishes_does_not_lose_a_volume(
        tmp_path, monkeypatch, split):
    path = tmp_path / "new.rdi"
    data = os.urandom(10000)
    out = volumeout.VolumeOutput(str(path), split=split, replace=False)
    out.write(data)
    left = _racing_link(monkeypatch, 1)
    out.commit()
    assert left == [0], "the race was not staged"
    names = sorted(n for n in os.listdir(tmp_path))
    assert not [n for n in names if n.endswith(PARTIAL)], names
    got = b"".join((tmp_path / n).read_bytes() for n in out.volumes)
    assert got == data
    assert all(os.path.isfile(v) for v in out.volumes)


def test_a_name_that_keeps_appearing_is_refused_not_lost(tmp_path,
                                                         monkeypatch):
    path = tmp_path / "new.rdi"
    out = volumeout.VolumeOutput(str(path), replace=False)
    out.write(b"x" * 5000)
    _racing_link(monkeypatch, 1000)
    with pytest.raises(BusyError) as caught:
        out.commit()
    assert str(path) in str(caught.value)
    out.abort()
    assert os.listdir(tmp_path) == []
