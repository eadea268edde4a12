"""imgx diff's answer follows diff(1): 0 the same, 1 different, 2 trouble,
and it says what it could not compare (issue 11 item 18)."""

import os

from diskimage.fs.read import READS
from tests.imgx_helpers import capture_disk, imgx, one_line_error, tool


def _image(tmp_path, name, make):
    disk = tmp_path / f"{name}.img"
    make(disk)
    image = tmp_path / f"{name}.rdi"
    capture_disk(disk, image)
    return image


def _ext(tree):
    def make(disk):
        src = disk.with_suffix(".d")
        src.mkdir()
        for rel, data in tree.items():
            (src / rel).write_bytes(data)
        tool("mkfs.ext4", "-q", "-d", src, disk, "4M")
    return make


def _random(disk):
    disk.write_bytes(os.urandom(1 << 20))


def _swap(disk):
    disk.write_bytes(bytes(1 << 20))
    tool("mkswap", disk)


def test_images_without_a_comparable_filesystem_are_trouble(tmp_path):
    a = _image(tmp_path, "a", _random)
    b = _image(tmp_path, "b", _random)
    result = imgx("diff", a, b)
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    assert result.stderr.decode() == (
        "imgx: diff: not compared: no filesystem found in both images "
        f"(imgx reads {READS})\n")
    s1, s2 = _image(tmp_path, "s1", _swap), _image(tmp_path, "s2", _swap)
    result = imgx("diff", s1, s2)
    assert result.returncode == 2
    assert b"not compared: swap in both images" in result.stderr
    result = imgx("diff", s1, a)
    assert result.returncode == 2
    assert f"not compared: swap in {s1}, no filesystem found in {a}".encode() \
        in result.stderr


def test_exit_codes_follow_diff(tmp_path):
    a = _image(tmp_path, "a", _ext({"f": b"one\n", "g": b"same\n"}))
    b = _image(tmp_path, "b", _ext({"f": b"two\n", "g": b"same\n",
                                    "h": b"new\n"}))
    same = imgx("diff", a, a)
    assert (same.returncode, same.stdout, same.stderr) == (0, b"", b"")
    different = imgx("diff", a, b)
    assert different.returncode == 1, different.stderr
    assert different.stdout.decode().splitlines() == ["M /f", "+ /h"]
    # Trouble is 2 whatever the fault, with the usual one line.
    one_line_error(imgx("diff", a, tmp_path / "missing.rdi"), 2)
    (tmp_path / "bad.rdi").write_bytes(b"not an image at all" * 100)
    one_line_error(imgx("diff", tmp_path / "bad.rdi", a), 2)


def test_a_partition_in_one_image_only_is_a_difference(tmp_path):
    def disk(parts):
        def make(path):
            path.write_bytes(bytes(12 << 20))
            table = "label: dos\n" + "".join(
                f"start={2048 + 10240 * i}, size=8192, type=83\n"
                for i in range(parts))
            import subprocess
            subprocess.run(["sfdisk", "-q", path], input=table.encode(),
                           check=True)
            tool("mkfs.ext4", "-q", "-E", "offset=1048576", path, "4M")
        return make
    a = _image(tmp_path, "a", disk(1))
    b = _image(tmp_path, "b", disk(2))
    result = imgx("diff", a, b)
    assert result.returncode == 1, result.stderr
    assert result.stdout == b"+ 2/\n" and result.stderr == b""
    result = imgx("diff", b, a, "--json")
    assert result.returncode == 1 and b'"partition": 2' in result.stdout


def _hostile_ext(disk):
    """An ext4 whose file f has an extent at logical block 2**31-1: the
    reader seeks to a negative position when it reads f's data (a
    ValueError, not one of the toolkit's errors)."""
    _ext({"f": b"one\n"})(disk)
    tool("debugfs", "-w", "-R", "sif /f block[3] 0x7fffffff", disk)


def test_a_reader_that_chokes_is_trouble_in_one_line(tmp_path):
    """imgx diff exits 2 for any error, as docs/imgx.md says: a reader's
    own exception on a hostile filesystem too, not 70 (issue 11 review
    item 7); RDEPLOY_DEBUG=1 still shows the traceback."""
    a = _image(tmp_path, "a", _ext({"f": b"two\n"}))
    b = _image(tmp_path, "b", _hostile_ext)
    err = one_line_error(imgx("diff", a, b), 2)
    assert err.startswith("imgx: error: ") and "internal" not in err, err
    assert str(b) in err, err
    debug = imgx("diff", a, b, env={"RDEPLOY_DEBUG": "1"})
    assert debug.returncode == 2
    assert b"Traceback (most recent call last)" in debug.stderr
