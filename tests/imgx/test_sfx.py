"""imgx sfx: the frozen binary with the demo image appended restores
itself onto a disk file, with rdeploy restore's checks.  Needs dist/
(`make test` freezes first); without it these fail rather than skip."""

import os

import pytest

import demodisk
from diskimage.image.reader import ImageReader

from tests.bootdisk_helpers import DIST, bare, toolkit
from tests.imgx_helpers import demo_image, ok


@pytest.fixture(scope="module")
def sfx(tmp_path_factory):
    toolkit()
    _, image, manifest, tmp = demo_image(tmp_path_factory, "imgx-sfx", 80,
                                         description="sfx demo")
    out = tmp / "restore.run"
    ok("sfx", image, "-o", out)
    return out, image, manifest, tmp


def test_sfx_restores_the_demo_disk(sfx):
    out, image, manifest, tmp = sfx
    assert os.access(out, os.X_OK)
    assert out.stat().st_size > (DIST / "deploytool").stat().st_size + \
        image.stat().st_size
    target = tmp / "target.img"
    refused = bare(out, target)                  # no terminal, no --yes
    assert refused.returncode == 5 and not target.exists()
    result = bare(out, target, "--yes", "--verify")
    assert result.returncode == 0, result.stderr.decode()
    assert demodisk.check_disk(target, manifest) == []


def test_sfx_refuses_itself_and_reads_as_its_image(sfx):
    out, image, _, _ = sfx
    before = out.read_bytes()
    result = bare(out, out, "--yes")
    assert result.returncode == 5
    assert out.read_bytes() == before
    info = bare(out, "info")
    assert info.returncode == 0 and b"sfx demo" in info.stdout
    assert bare(out, "verify").returncode == 0
    with ImageReader(str(out)) as reader:        # the library, too
        with ImageReader(str(image)) as original:
            assert reader.entries == original.entries
    assert bare(out, "--help").stdout.startswith(b"What a self-restoring")


def test_sfx_loader_finds_its_archive_without_reading_the_image(sfx):
    """PyInstaller searches backwards from the end for its archive cookie:
    the grown copy before the trailer is found at once, and points at the
    same archive as the binary's own."""
    out, _, _, _ = sfx
    readers = pytest.importorskip("PyInstaller.archive.readers")
    archive = readers.CArchiveReader(str(out))
    original = readers.CArchiveReader(str(DIST / "deploytool"))
    assert archive._end_offset == out.stat().st_size - 32
    assert archive._start_offset == original._start_offset
    assert archive.toc == original.toc
