"""store on a real FAT32 at an offset: an image captured by rdeploy (split
and not), added (cut again into volumes), listed, taken back out with
mcopy and verified by rdeploy; refusals; partials never look whole."""

import os
import subprocess
import sys

import pytest

from diskimage.errors import InputError, NoSpaceError, TargetError
from diskimage.image.format import pack_file_header
from diskimage.service import fatfs, store
from tests.service.fatdisk import TOOLS, drive, fsck, make_disk, mdir_names

pytestmark = pytest.mark.needs(*TOOLS, "mmove", "mkfs.ext4")
ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")


def rdeploy(*args):
    return subprocess.run([sys.executable, "-m", "rdeploy", *args],
                          check=True, capture_output=True, text=True)


@pytest.fixture
def image(tmp_path):
    """A captured image of a small disk with an ext4 holding random data,
    in volumes of 1 MiB: the first volume's path."""
    disk = str(tmp_path / "src.img")
    with open(disk, "wb") as f:
        f.truncate(40 << 20)
    subprocess.run(["sfdisk", "--quiet", disk], check=True,
                   input=b"label: dos\nstart=2048\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "random").write_bytes(os.urandom(3 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-d", str(data), "-E",
                    "offset=1048576", disk, "30M"], check=True)
    out = str(tmp_path / "img" / "prod.rdi")
    os.mkdir(tmp_path / "img")
    rdeploy("capture", disk, out, "--split=1M", "--quiet", "--yes")
    return out


def test_add_ls_rm(tmp_path, image):
    service = make_disk(str(tmp_path / "disk.img"))
    sources = [image] + sorted(p for p in
                               (str(x) for x in (tmp_path / "img").iterdir())
                               if not p.endswith(".rdi"))
    assert len(sources) >= 4
    stream = b"".join(open(p, "rb").read() for p in sources)
    steps = []
    got = store.add(service, image, progress=steps.append,
                    split=(1 << 20) + 12345)    # cut again, other size
    assert got["name"] == "prod" and got["size"] == len(stream)
    assert store.ls(service) == [{"name": "prod", "size": len(stream),
                                  "volumes": got["volumes"]}]
    names = mdir_names(service, "/store")
    assert "prod.rdi" in names and not any(".partial" in n for n in names)
    names = ["prod.rdi"] + sorted(n for n in names if n != "prod.rdi")
    assert names[1:] == [f"prod.r{i:02d}" for i in range(1, len(names))]
    # Taken back out with mtools and verified by rdeploy itself.
    back = tmp_path / "back"
    back.mkdir()
    for name in names:
        subprocess.run(["mcopy", "-i", drive(service), f"::/store/{name}",
                        str(back / name)], check=True, env=ENV)
    assert b"".join((back / n).read_bytes() for n in names) == stream
    rdeploy("verify", str(back / "prod.rdi"), "--quiet")
    # A second add of the name is refused; another name is fine.
    with pytest.raises(TargetError, match="already holds prod"):
        store.add(service, image)
    store.add(service, image, name="copy2")
    assert [i["name"] for i in store.ls(service)] == ["copy2", "prod"]
    store.rm(service, "prod")
    assert [i["name"] for i in store.ls(service)] == ["copy2"]
    with pytest.raises(InputError, match="no image prod"):
        store.rm(service, "prod")
    assert fsck(service, str(tmp_path))[0] == 0


def test_refused_when_it_does_not_fit(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    big = str(tmp_path / "big.rdi")
    with open(big, "wb") as f:
        f.write(pack_file_header(1 << 20))
        f.truncate(400 << 20)          # more than the 259 MiB FAT
    with pytest.raises(NoSpaceError, match="needs"):
        store.add(service, big)
    assert store.ls(service) == []
    assert mdir_names(service, "/store") == []


def test_only_an_image_is_added(tmp_path, image):
    """A file that is not an .rdi image (no magic, a bad header crc, an
    empty one, a split image's second volume) is refused: InputError,
    nothing written to the store."""
    service = make_disk(str(tmp_path / "disk.img"))
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/sh\necho hi\n")
    bad_crc = bytearray(pack_file_header(1 << 20) + bytes(100))
    bad_crc[20] ^= 1
    (tmp_path / "crc.rdi").write_bytes(bytes(bad_crc))
    (tmp_path / "empty.rdi").write_bytes(b"")
    second = str(tmp_path / "img" / "prod.r01")
    for path, match in ((job, "not an rdeploy image"),
                        (tmp_path / "crc.rdi", "not an image the store"),
                        (tmp_path / "empty.rdi", "not an rdeploy image"),
                        ("/dev/null", "not an rdeploy image"),
                        (second, "later volume")):
        with pytest.raises(InputError, match=match):
            store.add(service, str(path), name="x")
    assert store.ls(service) == []
    with fatfs.open_fat(service) as fat:
        assert not fat.exists("/store")             # nothing written
    store.add(service, image)                       # a real one is taken
    assert [i["name"] for i in store.ls(service)] == ["prod"]


@pytest.mark.parametrize("name", ["../x", "-x", ".x", "a b", "x.rdi", ""])
def test_bad_names(tmp_path, name):
    service = make_disk(str(tmp_path / "disk.img"), fmt=False)
    with pytest.raises(InputError):
        store.rm(service, name)


def test_partial_is_no_image_and_is_cleaned(tmp_path, image):
    service = make_disk(str(tmp_path / "disk.img"))
    with fatfs.open_fat(service) as fat:
        fat.makedirs("/store")
        fat.put(b"half", "/store/prod.rdi.partial")
        fat.put(b"half", "/store/prod.r01.partial")
        fat.put(b"orphan", "/store/other.r01")
    assert store.ls(service) == []
    store.add(service, image)
    names = mdir_names(service, "/store")
    assert not any(n.startswith("prod") and n.endswith(".partial")
                   for n in names)
    assert [i["name"] for i in store.ls(service)] == ["prod"]
