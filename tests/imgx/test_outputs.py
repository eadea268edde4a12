"""Outputs of imgx sfx and convert are never written through a symlink or
over another writer's file: a planted OUT.partial (a symlink to someone's
disk file, say) is left alone (issue 11 item 1's sweep)."""

import fcntl
import os
import signal
import shutil
import subprocess
import sys
import time

import pytest

from tests.imgx_helpers import capture_disk, imgx, ok, one_line_error, tool
from tests.nolockfs import NoLockFS


def _image(tmp_path):
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", disk, "4M")
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    return image


def _victim(tmp_path):
    victim = tmp_path / "someone-elses.img"
    victim.write_bytes(b"precious" * 1024)
    with open(victim, "r+b") as f:
        f.truncate(4 << 20)
    return victim


def test_sfx_refuses_a_planted_partial_and_leaves_it(tmp_path):
    image, victim = _image(tmp_path), _victim(tmp_path)
    binary = tmp_path / "fake-binary"
    shutil.copy("/bin/true", binary)
    out = tmp_path / "lab.run"
    os.symlink(victim, str(out) + ".partial")
    err = one_line_error(imgx("sfx", image, "-o", out, f"--binary={binary}"),
                         3)
    assert f"{out}.partial: exists and is not a partial file (a symlink)" \
        in err
    assert victim.read_bytes()[:16] == b"precious" * 2
    assert os.readlink(str(out) + ".partial") == str(victim)
    assert not os.path.lexists(out)
    os.unlink(str(out) + ".partial")
    result = imgx("sfx", image, "-o", out, f"--binary={binary}")
    assert result.returncode == 0, result.stderr
    assert os.stat(out).st_mode & 0o777 == 0o755


def test_convert_never_writes_through_a_planted_partial(tmp_path):
    image, victim = _image(tmp_path), _victim(tmp_path)
    out = tmp_path / "out.raw"
    os.symlink(victim, str(out) + ".partial")
    result = imgx("convert", image, out, "--to=raw")
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes()[:16] == b"precious" * 2
    assert os.path.getsize(out) == 4 << 20 and not os.path.islink(out)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".imgx")] == []
    one_line_error(imgx("convert", image, out, "--to=raw"), 5)


def _other(tmp_path, name="other.rdi"):
    other = tmp_path / name
    other.write_bytes(b"someone else's file\n")
    return other


@pytest.mark.parametrize("args", [
    ["split", "{image}", "1M", "--output={out}"],
    ["join", "{image}", "--output={out}"],
    ["recompress", "{image}", "--compress=zstd", "--output={out}"],
    ["import", "{disk}", "{out}"],
])
def test_an_existing_output_is_refused_without_force(tmp_path, args):
    """split, join, recompress with -o and import onto an existing file
    refuse (exit 3) and leave it; --force replaces it with a whole image
    (issue 11 round 2, outputs item 1)."""
    image = _image(tmp_path)
    out = _other(tmp_path)
    words = [a.format(image=image, out=out, disk=tmp_path / "ext.img")
             for a in args]
    err = one_line_error(imgx(*words), 3)
    assert f"{out}: exists; not replaced without --force" in err
    assert out.read_bytes() == b"someone else's file\n"
    ok(*words, "--force")
    ok("verify", out)
    assert sorted(n for n in os.listdir(tmp_path)
                  if "partial" in n or n.startswith(".imgx")) == []


def _fake_binary(tmp_path):
    binary = tmp_path / "fake-binary"
    shutil.copy("/bin/true", binary)
    return binary


def test_sfx_reads_under_the_shared_image_lock(tmp_path):
    """An image held exclusively (as an edit holds it; `flock` stands for
    the editing imgx) is not read by sfx: exit 9, nothing written (issue
    11 round 2, outputs item 3)."""
    image, binary = _image(tmp_path), _fake_binary(tmp_path)
    out = tmp_path / "lab.run"
    holder = subprocess.Popen(["flock", "-x", image, "sleep", "60"],
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while imgx("join", image, f"--output={tmp_path / 'probe.rdi'}"
                   ).returncode != 9:
            assert time.monotonic() < deadline
            (tmp_path / "probe.rdi").unlink(missing_ok=True)
        err = one_line_error(imgx("sfx", image, "-o", out,
                                  f"--binary={binary}"), 9)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)    # flock and its sleep
        holder.wait()
    assert f"{image}: another process is editing, rewriting" in err
    assert not os.path.lexists(out)
    assert not os.path.lexists(f"{out}.partial")
    ok("sfx", image, "-o", out, f"--binary={binary}")


def test_sfx_refuses_an_existing_out_without_force(tmp_path):
    """Found in the sweep: sfx replaced an existing OUT without a word."""
    image, binary = _image(tmp_path), _fake_binary(tmp_path)
    out = _other(tmp_path, "lab.run")
    err = one_line_error(imgx("sfx", image, "-o", out, f"--binary={binary}"),
                         3)
    assert f"{out}: exists; not replaced without --force" in err
    assert out.read_bytes() == b"someone else's file\n"
    ok("sfx", image, "-o", out, f"--binary={binary}", "--force")
    assert os.stat(out).st_mode & 0o777 == 0o755
    assert ok("info", out).startswith(b"image")


@pytest.mark.needs(fuse=True)           # for the lock-less filesystem
def test_an_image_on_a_filesystem_without_locks_is_one_line(tmp_path):
    """flock gives ENOLCK (as on an NFS mount without its lock daemon; here
    a real FUSE mount that refuses every lock): one line naming the file,
    exit 3, not a raw OSError (issue 11 round 2, outputs item 4)."""
    from diskimage.errors import InputError
    from diskimage.host.partial import lock

    (tmp_path / "mnt").mkdir()
    with NoLockFS(tmp_path / "mnt") as fs:
        for args in (["join", fs.path, f"--output={tmp_path / 'o.rdi'}"],
                     ["sfx", fs.path, "-o", tmp_path / "o.run",
                      f"--binary={_fake_binary(tmp_path)}"]):
            err = one_line_error(imgx(*args), 3)
            assert (f"{fs.path}: cannot lock it: its filesystem has no "
                    f"file locks (No locks available)") in err, args
        fd = os.open(fs.path, os.O_RDONLY)
        try:
            with pytest.raises(InputError, match="no file locks"):
                lock(fd, fs.path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert sorted(os.listdir(tmp_path)) == ["fake-binary", "mnt"]


def test_get_never_removes_a_file_named_like_its_partial(tmp_path):
    """Found in the sweep: get wrote `a` through `a.partial`, removing
    whatever had that name first, so an image holding `a.partial` (got
    first) and `a` lost `a.partial` in DEST; a user's own DEST/a.partial
    was removed too.  mcopy keeps the order in which entries are made."""
    disk = tmp_path / "fat.img"
    tool("mkfs.fat", "-C", disk, "2048")
    for name in ("a.partial", "a"):
        (tmp_path / name).write_bytes(f"the file {name}\n".encode())
        tool("mcopy", "-i", disk, tmp_path / name, f"::/{name}")
    image = tmp_path / "fat.rdi"
    capture_disk(disk, image)
    out = tmp_path / "out"
    ok("get", "-R", f"{image}:/", out)
    assert sorted(os.listdir(out)) == ["a", "a.partial"]
    assert (out / "a.partial").read_bytes() == b"the file a.partial\n"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.partial").write_bytes(b"the user's own file\n")
    ok("get", f"{image}:/a", mine)
    assert (mine / "a").read_bytes() == b"the file a\n"
    assert (mine / "a.partial").read_bytes() == b"the user's own file\n"


def test_sfx_onto_a_full_filesystem_is_no_space(tmp_path):
    """An sfx OUT on a filesystem without room for it: exit 6 in one line
    naming OUT, nothing left (issue 11 review, the sweep of item 6: it was
    exit 1, "No space left on device", naming nothing)."""
    from tests.fsbuild import ext_mounted
    image = _image(tmp_path)
    binary = tmp_path / "big-binary"
    binary.write_bytes(b"\0" * (3 << 20))
    small = tmp_path / "small.img"
    tool("mkfs.ext4", "-q", small, "1M")
    with ext_mounted(small, tmp_path / "mnt") as mnt:
        out = mnt / "lab.run"
        err = one_line_error(imgx("sfx", image, "-o", out,
                                  f"--binary={binary}"), 6)
        assert f"imgx: error: {out}: no space left" in err, err
        assert sorted(os.listdir(mnt)) == ["lost+found"]


def test_sfx_takes_the_toolkit_as_bootdisk_does(tmp_path):
    """One name for the frozen toolkit (issue 12): `--toolkit=FILE` as in
    bootdisk; `--binary`, its old name, still works; a missing one is named
    with the option to give."""
    image, toolkit = _image(tmp_path), _fake_binary(tmp_path)
    ok("sfx", image, "-o", tmp_path / "a.run", f"--toolkit={toolkit}")
    ok("sfx", image, "-o", tmp_path / "b.run", f"--binary={toolkit}")
    assert (tmp_path / "a.run").read_bytes() == \
        (tmp_path / "b.run").read_bytes()
    assert ok("info", tmp_path / "a.run").startswith(b"image")
    err = one_line_error(imgx("sfx", image, "-o", tmp_path / "c.run",
                              f"--toolkit={tmp_path / 'none'}"), 3)
    assert "no frozen toolkit binary" in err and "--toolkit" in err, err
    assert b"--toolkit=FILE" in ok("sfx", "--help")


def test_sfx_of_an_installed_toolkit_without_one_says_how_to_get_it(
        tmp_path):
    """An installed imgx (no source tree, no dist/) and no toolkit cached
    yet: the error names the cache it looked in and `bootdisk toolkit`,
    which fills it, exit 3.  Before: a dist/deploytool path inside
    site-packages and `make freeze`, a step that needs the source tree."""
    from tests.bootdisk.test_toolkit import _env, _installed_like
    from diskimage import __version__
    image, src = _image(tmp_path), _installed_like(tmp_path)
    out = tmp_path / "x.run"
    result = subprocess.run(
        [sys.executable, "-m", "imgx", "sfx", str(image), "-o", str(out)],
        cwd=src, env=_env(tmp_path), capture_output=True, text=True)
    cache = tmp_path / "cache" / "rdeploy-toolkit" / __version__ / \
        "deploytool"
    assert (result.returncode, result.stderr) == (3, (
        f"imgx: error: no frozen toolkit binary ({cache} does not exist): "
        f"`bootdisk toolkit` builds it (with pip install "
        f"'rdeploy-toolkit[freeze]'); or give --toolkit\n"))
    assert not out.exists()
