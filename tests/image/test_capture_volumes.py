"""A split image with a volume moved away: every reader (rdeploy restore,
verify, info; imgx info, ls, verify, cat) names the missing file instead of
saying the image ends early (issue 11 item 15)."""

import os
import shutil
from pathlib import Path

import pytest

from tests.imgx_helpers import imgx
from tests.smalldisk import MiB, build_disk
from tests.rdeploy_helpers import rdeploy
from diskimage.image.format import RECORD_HEADER

RECORD = RECORD_HEADER.size     # 68 in format 1.1


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


def _copy(split_image, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(split_image.parent, copy,
                    ignore=shutil.ignore_patterns("disk.img"))
    return copy


@pytest.mark.parametrize("reader", READERS)
def test_cut_volume_is_named(split_image, tmp_path, reader):
    """sp.r02 cut to 500K (issue 11 round 3, volmsg item 1): refused before
    anything is read, naming the file and saying it is cut short."""
    copy = _copy(split_image, tmp_path)
    os.truncate(copy / "sp.r02", 500 * 1024)
    result = READERS[reader](copy / "sp.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert err.count("\n") == 1, err
    assert f"{copy / 'sp.r02'}: volume 3 of the split image" in err, err
    assert "512000 bytes" in err and "cut short" in err, err
    assert not (tmp_path / "target.img").exists()


@pytest.mark.parametrize("reader", ["rdeploy verify", "rdeploy restore",
                                    "rdeploy info", "imgx verify"])
def test_cut_last_volume_is_named(split_image, tmp_path, reader):
    copy = _copy(split_image, tmp_path)
    size = os.path.getsize(copy / "sp.r03")
    os.truncate(copy / "sp.r03", size - 300)
    result = READERS[reader](copy / "sp.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert err.count("\n") == 1, err
    assert f"in {copy / 'sp.r03'} at byte " in err, err
    assert f"the last volume, {copy / 'sp.r03'}, is cut short" in err, err


def test_stray_volume_after_the_last_is_named(split_image, tmp_path):
    """A volume left from another image after the real last one: the short
    real last and the stray after it are both named."""
    copy = _copy(split_image, tmp_path)
    shutil.copy(copy / "sp.r01", copy / "sp.r04")
    result = rdeploy("info", copy / "sp.rdi")
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert f"{copy / 'sp.r03'}: volume 4 of the split image" in err, err
    assert f"or {copy / 'sp.r04'} is left from another image" in err, err


def _records_inside(image, volume):
    """(record offset, stored size) of the data records that lie wholly in
    volume `volume` (1 MiB volumes), from the image's own index."""
    from diskimage.image.reader import ImageReader
    with ImageReader(str(image)) as reader:
        entries = list(reader.entries)
    start, end = volume * MiB, (volume + 1) * MiB
    return [(e.record_offset, e.stored_size) for e in entries
            if not e.is_zero and start <= e.record_offset
            and e.record_offset + RECORD + e.stored_size <= end]


@pytest.mark.parametrize("reader", ["rdeploy verify", "rdeploy restore",
                                    "imgx verify"])
def test_damage_in_a_volume_names_it(split_image, tmp_path, reader):
    """A flipped byte in a chunk stored in sp.r03 (the tester's case: a
    fault in a later volume said only the stream offset)."""
    copy = _copy(split_image, tmp_path)
    records = _records_inside(split_image, 3)
    assert records
    offset, stored = records[0]
    local = offset - 3 * MiB
    with open(copy / "sp.r03", "r+b") as f:
        f.seek(local + RECORD + stored // 2)
        byte = f.read(1)
        f.seek(local + RECORD + stored // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = READERS[reader](copy / "sp.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode in (4, 8), err
    assert f"in {copy / 'sp.r03'} at byte {local}, image offset {offset})" \
        in err, err


@pytest.mark.parametrize("reader", ["rdeploy verify", "rdeploy restore",
                                    "imgx verify"])
def test_volume_put_twice_is_named(split_image, tmp_path, reader):
    """A copy of sp.r01 in place of sp.r02: the same size, so only the
    content tells; the fault names both files as copies."""
    copy = _copy(split_image, tmp_path)
    shutil.copy(copy / "sp.r01", copy / "sp.r02")
    result = READERS[reader](copy / "sp.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode in (4, 8), err
    assert err.count("\n") == 1, err
    assert f"{copy / 'sp.r01'} and {copy / 'sp.r02'} start with the same " \
        f"bytes" in err, err


@pytest.fixture(scope="module")
def encrypted_split(tmp_path_factory):
    d = tmp_path_factory.mktemp("encsplit")
    source = build_disk(d / "disk.img")
    (d / "pw").write_bytes(b"pass phrase")
    image = d / "e.rdi"
    result = rdeploy("capture", source, image, "--split=1M", "-q",
                     "--encrypt", f"--passphrase-file={d / 'pw'}")
    assert result.returncode == 0, result.stderr.decode()
    (d / "disk.img").unlink()
    return image


@pytest.mark.parametrize("reader", ["rdeploy info", "imgx info"])
def test_encrypted_split_image_names_its_missing_or_cut_volume(
        encrypted_split, tmp_path, reader):
    """Without the passphrase, info reads the plain trailer itself
    (image/sealed.py): a missing last volume is named (exit 3) and a cut
    one located in it, as for a plain image."""
    copy = tmp_path / "copy"
    shutil.copytree(encrypted_split.parent, copy,
                    ignore=shutil.ignore_patterns("pw"))
    (copy / "e.r03").rename(tmp_path / "e.r03")
    result = READERS[reader](copy / "e.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert f"{copy / 'e.r03'}: no such file" in err, err
    shutil.copy(tmp_path / "e.r03", copy / "e.r03")
    os.truncate(copy / "e.r03", os.path.getsize(copy / "e.r03") - 300)
    result = READERS[reader](copy / "e.rdi", tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 4, err
    assert err.count("\n") == 1, err
    assert f"in {copy / 'e.r03'} at byte " in err, err
    assert f"the last volume, {copy / 'e.r03'}, is cut short" in err, err
