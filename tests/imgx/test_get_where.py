"""imgx get names the place a warning is about as it is in the image, and
a host path as it is on the host (issue 11 round 3, items 4 and 6): an
ext4 whose directory entries are edited in its raw bytes (debugfs -w, then
the name replaced) to hold a "../" run; a small ext4 mounted as a full
DEST."""

from tests.fsbuild import ext_mounted
from tests.imgx_helpers import capture_disk, imgx, one_line_error, tool
from tests.hostile_images import ext_with


def _planted(tmp_path):
    evil = "../../victim/pwnedA.txt"
    src = tmp_path / "payload"
    return ext_with(tmp_path, [(b"P" * len(evil), evil.encode())],
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


def test_get_of_a_file_past_the_file_size_limit_is_no_space(tmp_path):
    """EFBIG (here RLIMIT_FSIZE, set by prlimit(1); a FAT DEST's 4 GiB is
    the same errno) and EDQUOT on a file's data are exit 6 as ENOSPC is
    (issue 11 review item 6), not exit 1."""
    import subprocess
    import sys

    from diskimage.host.tools import tool_env

    from tests.imgx_helpers import ROOT
    disk = tmp_path / "big.img"
    tool("mkfs.ext4", "-q", "-O", "^metadata_csum", disk, "8M")
    (tmp_path / "big").write_bytes(b"x" * (3 << 20))
    tool("debugfs", "-w", "-R", f"write {tmp_path / 'big'} big", disk)
    image = tmp_path / "big.rdi"
    capture_disk(disk, image)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        ["prlimit", f"--fsize={1 << 20}", sys.executable, "-m", "imgx",
         "get", f"{image}:/big", out], cwd=ROOT, env=tool_env(None),
        capture_output=True)
    err = one_line_error(result, 6)
    assert f"imgx: error: {out}/big: no space left (File too large)" \
        in err, err
    assert not [p for p in out.iterdir()], list(out.iterdir())


def test_a_doubled_colon_is_a_usage_error_that_says_so(tmp_path):
    image, _ = _planted(tmp_path)
    for args in (("ls",), ("cat",), ("get", "-R")):
        rest = (tmp_path / "o",) if args[0] == "get" else ()
        result = imgx(*args, f"{image}::/sub", *rest)
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert f"{image}::/sub': one colon between the image and the " \
            f"path, as in {image}:N/path or {image}:/path" in err, err


def test_messages_about_a_walk_below_the_root_name_the_whole_path(tmp_path):
    """A directory loop met by ls -R, find and tree started at /top: the
    message names IMG:/top/sub/loop, one colon."""
    src = tmp_path / "payload"
    image, _, _ = ext_with(tmp_path, [], "mkdir top", "mkdir top/sub",
                           f"write {src} top/sub/f", "link /top top/sub/loop")
    for args in (("ls", "-R", f"{image}:/top"),
                 ("find", f"{image}:/top", "-name", "x"),
                 ("tree", f"{image}:/top")):
        err = one_line_error(imgx(*args), 4)
        assert f"{image}:/top/sub/loop: damaged filesystem: a directory " \
            f"that is one of its own parents" in err, (args, err)


def test_cat_of_a_directory_and_tree_of_a_file_name_the_whole_path(
        tmp_path):
    src = tmp_path / "payload"
    image, _, _ = ext_with(tmp_path, [], "mkdir top", "mkdir top/sub",
                           f"write {src} top/sub/f")
    result = imgx("cat", f"{image}:/top/sub")
    assert one_line_error(result, 3).endswith(
        f"{image}:/top/sub: not a regular file\n")
    result = imgx("tree", f"{image}:/top/sub/f")
    assert one_line_error(result, 3).endswith(
        f"{image}:/top/sub/f: not a directory\n")
    assert result.stdout == b""


def test_get_of_many_directories_onto_a_full_filesystem_is_exit_6(tmp_path):
    """DEST's inodes run out on a directory, not a file's data: still exit
    6 naming DEST, not a bare errno with exit 1."""
    src = tmp_path / "payload"
    image, _, _ = ext_with(tmp_path, [], "mkdir g",
                           *[f"mkdir g/d{i}" for i in range(300)])
    small = tmp_path / "small.img"
    tool("mkfs.ext4", "-q", "-N", "64", small, "1M")
    tfs = tmp_path / "tfs"
    with ext_mounted(small, tfs):
        err = one_line_error(imgx("get", "-R", f"{image}:/g", tfs), 6)
    assert f"imgx: error: {tfs}: no space left (blocks or inodes) while " \
        f"getting {image}:/g into it" in err, err
    assert src.exists()
