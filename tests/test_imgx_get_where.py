"""imgx get names the place a warning is about as it is in the image, and
a host path as it is on the host (issue 11 round 3, items 4 and 6): an
ext4 whose directory entries are edited in its raw bytes (debugfs -w, then
the name replaced) to hold a "../" run; a small ext4 mounted as a full
DEST."""

from .fsbuild import ext_mounted
from .imgx_helpers import capture_disk, imgx, one_line_error, tool
from .test_imgx_get import _ext_with


def _planted(tmp_path):
    evil = "../../victim/pwnedA.txt"
    src = tmp_path / "payload"
    return _ext_with(tmp_path, [(b"P" * len(evil), evil.encode())],
                     "mkdir sub", f"write {src} sub/{'P' * len(evil)}",
                     f"write {src} sub/fine")[0], evil


def test_get_warnings_name_the_place_in_the_image(tmp_path):
    image, evil = _planted(tmp_path)
    out = tmp_path / "outsub"
    result = imgx("get", "-R", f"{image}:/sub", out)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"{image}:/sub: entry {evil!r} not written" in err, err
    assert "outsub:" not in err
    assert sorted(p.name for p in out.iterdir()) == ["fine"]


def test_get_warnings_of_the_root_have_one_colon(tmp_path):
    image, evil = _planted(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = imgx("get", "-R", f"{image}:/", out)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"{image}:/sub: entry {evil!r} not written" in err, err
    assert "::" not in err


def test_get_onto_a_full_filesystem_names_the_host_path(tmp_path):
    disk = tmp_path / "big.img"
    tool("mkfs.ext4", "-q", "-O", "^metadata_csum", disk, "8M")
    (tmp_path / "big").write_bytes(b"x" * (3 << 20))
    tool("debugfs", "-w", "-R", "mkdir g", disk)
    tool("debugfs", "-w", "-R", f"write {tmp_path / 'big'} g/big", disk)
    image = tmp_path / "big.rdi"
    capture_disk(disk, image)
    small = tmp_path / "small.img"
    tool("mkfs.ext4", "-q", small, "1M")
    tfs = tmp_path / "tfs"
    with ext_mounted(small, tfs):
        err = one_line_error(imgx("get", "-R", f"{image}:/g", tfs), 6)
    assert f"imgx: error: {tfs}/g/big: no space left" in err, err
    assert f"(writing {image}:/g/big)" in err, err
