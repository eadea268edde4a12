"""imgx refuses, before any work and with exit 7, an edit of what it does
not edit, naming it: a path inside an LVM2 PV's volume (imgx reads LVs but
does not write them: before, the edit ran exFAT's FUSE mount on the PV).
The image is left byte for byte as it was and ls still reads the LV."""

import hashlib
import subprocess
import sys

import pytest

from tests import lvmbuild
from tests.fsmaps import ROOT, partitioned_disk, rdeploy

pytestmark = pytest.mark.needs(*lvmbuild.LVM_TOOLS, "sfdisk", root=True)


def imgx(*args):
    return subprocess.run([sys.executable, "-m", "imgx", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edit-refused")
    pv = lvmbuild.make_pv(tmp, 24, [("root", 10, "ext4")])
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(pv.image, "LVM2_member")])
    out = tmp / "disk.rdi"
    rdeploy("capture", disk, out, "--progress=none")
    src = tmp / "new.txt"
    src.write_text("new\n")
    return out, src


@pytest.mark.parametrize("op", [("put", "SRC", "root/new.txt"),
                                ("mkdir", "root/dir"), ("rm", "root/x"),
                                ("mv", "root/a", "root/b")])
def test_an_edit_inside_an_lv_is_refused_up_front(image, op):
    path, src = image
    before = sha(path)
    verb, *rest = op
    if verb == "put":
        args = [verb, src, f"{path}:1/{rest[1]}"]
    elif verb == "mv":
        args = [verb, f"{path}:1/{rest[0]}", "/" + rest[1].split("/", 1)[1]]
    else:
        args = [verb, f"{path}:1/{rest[0]}"]
    done = imgx(*args)
    assert done.returncode == 7, (done.returncode, done.stderr)
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{path}:1/root: imgx does not edit inside LVM2 volumes" in err, \
        err
    assert "exfat" not in err.lower() and "Error:" not in err, err
    assert sha(path) == before
    assert imgx("ls", f"{path}:1").returncode == 0
