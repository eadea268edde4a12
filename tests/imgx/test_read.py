"""imgx's reading commands against the field's own tools on the same disk:
debugfs for ext4, mdir/mtype for FAT32, ntfsls/ntfscat for NTFS, with the
demo disk's long and non-ASCII names; get -R against the manifest."""

import json
import re
from datetime import datetime

import pytest

import demodisk

from tests.imgx_helpers import capture_disk, demo_image, ok, tool

DEBUGFS_LINE = re.compile(r"^\s*\d+\s+([0-7]+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+"
                          r"(\d+)\s+(\S+ \S+) (.*)$")
# mdir writes the hour without a leading zero: "2026-11-26   0:06".
MDIR_LINE = re.compile(r"^(.{8}) (.{3})\s+(<DIR>|\d+)\s+\d{4}-\d\d-\d\d\s+"
                       r"\d{1,2}:\d\d ?(.*)$")
NTFSLS_LINE = re.compile(r"^\s*(\d+) \w{3} +\d+ \d\d:\d\d \d{4} (.*)$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_image(tmp_path_factory, "imgx-read", 150)


def _dirs(manifest, number):
    """Directories of the manifest of partition `number` (posix, '' root)."""
    found = {""}
    for rel in manifest["partitions"][number]["files"]:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]))
    # The root, the deepest directory and one with a non-ASCII name.
    odd = [d for d in found if not d.isascii()]
    return sorted({"", max(found, key=lambda d: d.count("/")),
                   *(odd[:1])})


def _unescape(name):
    """debugfs prints bytes above 0x7e as \\xNN."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]),
                 name.encode())
    return raw.decode("utf-8")


def _imgx_listing(image, number, directory):
    rows = json.loads(ok("ls", f"{image}:{number}/{directory}", "--json"))
    return {r["name"]: r for r in rows}


def _part(manifest, number):
    p = manifest["partitions"][number]
    return p["start"], p["size"]


def test_ext_ls_l_matches_debugfs(demo):
    disk, image, manifest, _ = demo
    start, size = _part(manifest, 1)
    with demodisk.loop_device(disk, start, size) as dev:
        for directory in _dirs(manifest, 1):
            out = tool("debugfs", "-R", f'ls -l "/{directory}"', dev,
                       env={"TZ": "UTC"})
            expected = {}
            for line in out.decode("utf-8").splitlines():
                m = DEBUGFS_LINE.match(line)
                if m and m[6] not in (".", ".."):
                    expected[_unescape(m[6])] = (
                        int(m[1], 8) & 0o7777, int(m[2]), int(m[3]),
                        int(m[4]), datetime.strptime(m[5], "%d-%b-%Y %H:%M"))
            got = {name: (int(r["mode"], 8), r["uid"], r["gid"], r["size"],
                          datetime.fromisoformat(r["mtime"]).replace(
                              second=0, tzinfo=None))
                   for name, r in _imgx_listing(image, 1, directory).items()}
            assert got == expected and expected, directory
            long = ok("ls", "-l", f"{image}:1/{directory}").decode()
            assert len(long.splitlines()) == len(expected)


def _mdir(disk, start, directory):
    out = tool("mdir", "-i", f"{disk}@@{start}", f"::/{directory}")
    found = {}
    for line in out.decode("utf-8").splitlines():
        m = MDIR_LINE.match(line)
        if not m or m[1].strip() in (".", ".."):
            continue
        base, ext = m[1].strip(), m[2].strip()
        name = m[4].strip() or (f"{base}.{ext}" if ext else base)
        found[name] = None if m[3] == "<DIR>" else int(m[3])
    return found


def test_fat_ls_and_cat_match_mdir_and_mtype(demo):
    disk, image, manifest, _ = demo
    start, _ = _part(manifest, 2)
    for directory in _dirs(manifest, 2):
        expected = _mdir(disk, start, directory)
        got = {name: None if r["type"] == "dir" else r["size"]
               for name, r in _imgx_listing(image, 2, directory).items()}
        assert got == expected and expected, directory
    for rel in list(manifest["partitions"][2]["files"])[:12]:
        assert ok("cat", f"{image}:2/{rel}") == \
            tool("mtype", "-i", f"{disk}@@{start}", f"::/{rel}"), rel


def test_ntfs_ls_and_cat_match_ntfsls_and_ntfscat(demo):
    disk, image, manifest, _ = demo
    start, size = _part(manifest, 3)
    with demodisk.loop_device(disk, start, size) as dev:
        for directory in _dirs(manifest, 3):
            out = tool("ntfsls", "-l", "-p", f"/{directory}", dev)
            expected = {}
            for line in out.decode("utf-8").splitlines():
                m = NTFSLS_LINE.match(line)
                if m and m[2] not in (".", ".."):
                    expected[m[2]] = int(m[1])
            got = {name: r["size"] for name, r in
                   _imgx_listing(image, 3, directory).items()}
            assert got == expected and expected, directory
        for rel in list(manifest["partitions"][3]["files"])[:12]:
            assert ok("cat", f"{image}:3/{rel}") == \
                tool("ntfscat", dev, f"/{rel}"), rel


@pytest.mark.parametrize("number", [1, 2, 3])
def test_get_tree_gives_identical_digests(demo, number):
    _, image, manifest, tmp = demo
    dest = tmp / f"got{number}"
    ok("get", "-R", f"{image}:{number}/", dest)
    found = demodisk.digest_tree(dest)
    if number == 1:
        assert (dest / "lost+found").is_dir()
    assert found == manifest["partitions"][number]["files"]


def test_get_keeps_times_and_modes_and_symlinks(tmp_path):
    import os
    import subprocess
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(src / "run.sh", 0o751)
    os.utime(src / "run.sh", (1_600_000_000, 1_600_000_000))
    os.symlink("run.sh", src / "link")
    disk = tmp_path / "ext.img"
    subprocess.run(["mkfs.ext4", "-q", "-d", src, disk, "8M"], check=True)
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    ok("get", "-R", f"{image}:/", tmp_path / "out")
    got = tmp_path / "out"
    assert os.readlink(got / "link") == "run.sh"
    st = os.stat(got / "run.sh")
    assert st.st_mode & 0o7777 == 0o751 and int(st.st_mtime) == 1_600_000_000
    listing = ok("ls", "-l", f"{image}:/").decode()
    assert "lrwxrwxrwx" in listing and "link -> run.sh" in listing


def test_find_tree_and_diff(demo, tmp_path):
    disk, image, manifest, _ = demo
    found = ok("find", f"{image}:1/", "-name", "*Ünïcode*").decode()
    assert "/Ünïcode ファイル.txt" in found.splitlines()
    tree = ok("tree", f"{image}:2").decode()
    for rel in list(manifest["partitions"][2]["files"])[:20]:
        assert rel.split("/")[-1] in tree
    # The same image differs from itself in nothing.
    assert ok("diff", image, image) == b""


def test_cat_and_get_of_a_hostile_extent_are_damage_in_one_line(tmp_path):
    """A file whose extent makes the reader fail only when its data is
    read (a negative seek, a ValueError of dissect's) is a damaged
    filesystem, exit 4 in one line, for cat and get as for ls; not an
    internal error (issue 11 review, the sweep of item 7)."""
    from tests.imgx_helpers import imgx, one_line_error
    from tests.imgx.test_diff import _hostile_ext, _image
    image = _image(tmp_path, "h", _hostile_ext)
    for args, where in ((["cat", f"{image}:/f"], f"{image}:/f"),
                        (["get", f"{image}:/f", tmp_path / "out"], image)):
        err = one_line_error(imgx(*args), 4)
        assert f"{where}: damaged filesystem: " in err, (args, err)
        assert "Error:" not in err, err
    assert not (tmp_path / "out").exists()
