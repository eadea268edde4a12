"""imgx get keeps what a file is besides its bytes (issue 11 item 8):
owners, xattrs, hard links (ext and NTFS), holes, FIFOs and device nodes,
and says what it could not keep as another user."""

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile

from tests.bootdisk_helpers import toolkit
from tests.imgx_helpers import capture_disk, imgx, ok, tool


# --- item 8, get side: owners, xattrs, hard links, holes, special files ------
def test_get_keeps_owners_xattrs_hard_links_and_holes(tmp_path):
    src = tmp_path / "root"
    (src / "home").mkdir(parents=True)
    owned = src / "home" / "alice.txt"
    owned.write_bytes(b"alice\n")
    os.chown(owned, 1234, 2345)
    os.chmod(owned, 0o640)
    os.chown(src / "home", 1234, 2345)
    os.setxattr(owned, "user.note", b"kept")
    os.setxattr(owned, "trusted.tag", b"t")
    os.link(owned, src / "home" / "alice-link.txt")
    sparse = src / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(8 << 20)
        os.pwrite(f.fileno(), b"start", 0)
        os.pwrite(f.fileno(), b"end", (8 << 20) - 3)
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.symlink("home/alice.txt", src / "link")
    os.lchown(src / "link", 1234, 2345)
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", "-d", src, disk, "16M")
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    dest = tmp_path / "out"
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    got = os.stat(dest / "home" / "alice.txt")
    assert (got.st_uid, got.st_gid, stat.S_IMODE(got.st_mode)) == \
        (1234, 2345, 0o640)
    assert os.stat(dest / "home").st_uid == 1234
    assert os.lstat(dest / "link").st_uid == 1234
    assert os.getxattr(dest / "home" / "alice.txt", "user.note") == b"kept"
    assert os.getxattr(dest / "home" / "alice.txt", "trusted.tag") == b"t"
    assert got.st_nlink == 2 and got.st_ino == \
        os.stat(dest / "home" / "alice-link.txt").st_ino
    big = os.stat(dest / "sparse.bin")
    assert big.st_size == 8 << 20 and big.st_blocks * 512 <= 64 << 10
    data = (dest / "sparse.bin").read_bytes()
    assert data[:5] == b"start" and data[-3:] == b"end" and \
        data.count(0) == len(data) - 8
    assert not os.path.lexists(dest / "fifo")
    assert not os.path.lexists(dest / "null")
    assert err == ("imgx: warning: not copied: 1 FIFO, 1 device node (get "
                   "copies files, directories and symlinks)\n"), err


def test_get_as_another_user_says_owners_were_not_kept():
    # Not below pytest's tmp_path: its parents are root's alone.
    with tempfile.TemporaryDirectory(prefix="imgx-get-user-") as tmp:
        tmp = pathlib.Path(tmp)
        src = tmp / "root"
        src.mkdir()
        (src / "f").write_bytes(b"x")
        os.chown(src / "f", 1234, 2345)
        # A hard link whose first name is in a directory with no search
        # right: the second cannot be linked by a user, and is a copy.
        (src / "a0").mkdir()
        (src / "a0" / "x").write_bytes(b"linked")
        os.link(src / "a0" / "x", src / "z")
        os.chmod(src / "a0", 0o600)
        disk = tmp / "ext.img"
        tool("mkfs.ext4", "-q", "-d", src, disk, "4M")
        image = tmp / "ext.rdi"
        capture_disk(disk, image)
        os.chmod(tmp, 0o777)
        os.chmod(image, 0o644)
        # The frozen toolkit, copied beside the image: the checkout and its
        # venv may be where the user cannot read (a clone in root's 0700
        # home: `python -m imgx` then finds no module named imgx).
        shutil.copy(toolkit(), tmp / "deploytool")
        os.chmod(tmp / "deploytool", 0o755)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             tmp / "deploytool", "imgx", "get", "-R", f"{image}:/",
             tmp / "out"], capture_output=True, cwd=tmp,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "TMPDIR": str(tmp)})
        err = result.stderr.decode()
        assert result.returncode == 0, err
        assert (tmp / "out" / "f").read_bytes() == b"x"
        assert os.stat(tmp / "out" / "f").st_uid == 65534
        assert "imgx: warning: not kept: owners and groups (not running " \
            "as root)\n" in err, err
        assert (tmp / "out" / "z").read_bytes() == b"linked"
        assert "imgx: warning: not kept: hard links (made into copies) " \
            "(Permission denied)\n" in err, err
        os.chmod(tmp / "out" / "a0", 0o700)   # for the cleanup


def test_get_keeps_ntfs_hard_links(tmp_path):
    from tests.fsbuild import ntfs_mounted
    disk = tmp_path / "ntfs.img"
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    tool("mkntfs", "-F", "-Q", disk)
    with ntfs_mounted(disk, tmp_path / "mnt") as mnt:
        os.mkdir(os.path.join(mnt, "d"))
        with open(os.path.join(mnt, "one.txt"), "wb") as f:
            f.write(b"linked\n")
        os.link(os.path.join(mnt, "one.txt"), os.path.join(mnt, "d",
                                                           "two.txt"))
    image = tmp_path / "ntfs.rdi"
    capture_disk(disk, image)
    dest = tmp_path / "out"
    ok("get", "-R", f"{image}:/", dest)
    one, two = os.stat(dest / "one.txt"), os.stat(dest / "d" / "two.txt")
    assert one.st_ino == two.st_ino and one.st_nlink == 2
    assert (dest / "d" / "two.txt").read_bytes() == b"linked\n"
