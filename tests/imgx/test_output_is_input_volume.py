"""Item 3 of issue 11 round 4: an output of join, split, recompress or
describe that is one of the input's own volumes (or whose volumes would
be) is refused, exit 5, and the input still verifies; never exit 0 over a
destroyed input."""

import os

import pytest

from diskimage.image.volumes import find_volumes

from tests.imgx_helpers import capture_disk, imgx
from tests.smalldisk import sha256


@pytest.fixture
def split_image(small_disk, tmp_path):
    disk = small_disk
    image = tmp_path / "sp.rdi"
    capture_disk(disk, image, split=1 << 20)
    volumes = find_volumes(os.fspath(image))
    assert len(volumes) >= 3
    return image, volumes


def digests(volumes):
    return [sha256(v) for v in volumes]


@pytest.mark.parametrize("args", [
    ("join", "{image}", "--output={r01}"),
    ("join", "{image}", "--output={r01}", "--force"),
    ("split", "{image}", "2M", "--output={r01}", "--force"),
    ("recompress", "{image}", "--compress=zstd", "--output={r02}",
     "--force"),
    ("split", "{image}", "2M", "--output={base}", "--force"),
], ids=["join", "join-force", "split", "recompress", "split-base"])
def test_output_over_an_input_volume_is_refused(split_image, args):
    image, volumes = split_image
    before = digests(volumes)
    names = dict(image=image, r01=volumes[1], r02=volumes[2],
                 base=os.fspath(image)[:-4])
    result = imgx(*(a.format(**names) for a in args))
    err = result.stderr.decode()
    assert result.returncode == 5, (result.returncode, err)
    assert err.startswith("imgx: error: ") and err.count("\n") == 1, err
    assert "volume" in err, err
    assert find_volumes(os.fspath(image)) == volumes
    assert digests(volumes) == before
    assert imgx("verify", image).returncode == 0


def test_describe_over_itself_still_works(split_image):
    image, volumes = split_image
    result = imgx("describe", image, "new words")
    assert result.returncode == 0, result.stderr.decode()
    assert imgx("verify", image).returncode == 0


def test_sfx_over_an_input_volume_is_refused_even_with_force(
        split_image, tmp_path):
    """Sweep: imgx sfx -o IMG.r01 --force replaced an input volume with
    the self-restoring binary (exit 0; the image then failed verify)."""
    image, volumes = split_image
    before = digests(volumes)
    binary = tmp_path / "bin"
    binary.write_bytes(open("/bin/true", "rb").read())
    result = imgx("sfx", image, "-o", volumes[1], "--force",
                  f"--binary={binary}")
    err = result.stderr.decode()
    assert result.returncode == 5, (result.returncode, err)
    assert "volume 2 of the image read" in err, err
    assert digests(volumes) == before
    assert imgx("verify", image).returncode == 0
