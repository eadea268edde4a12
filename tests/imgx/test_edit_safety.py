"""imgx edits that stay inside the image and keep what they copy (issue
11 items 2, 6, 8): symlinks of the image are never followed onto the host
(ext4 made by mkfs.ext4 -d, NTFS made through ntfs-3g, links with absolute
targets naming files this test made on the host), an existing path is
refused unless --force, and owners, groups, modes, times, xattrs and holes
of what `put` adds are kept."""

import os
import re

import pytest

from tests.fsmaps import run
from tests.imgx_helpers import imgx, ok, one_line_error
from tests.imgx_helpers import golden, image  # noqa: F401 (fixtures)
from tests.shared import copy

MiB = 1 << 20




def _host_state(host):
    return (host / "file").read_text(), sorted(os.listdir(host / "dir"))


def test_put_onto_an_image_symlink_never_touches_the_host(image, tmp_path):
    img, host = image
    before = _host_state(host)
    evil = tmp_path / "evil.txt"
    evil.write_text("evil\n")
    for target in ("t2/link", "t2/dirlink"):
        for force in ((), ("--force",)):
            imgx("put", evil, f"{img}:1/{target}", *force)
            assert _host_state(host) == before, (target, force)
    # With --force the link itself is replaced, inside the image.
    assert ok("cat", f"{img}:1/t2/link") == b"evil\n"
    assert ok("cat", f"{img}:1/t2/dirlink") == b"evil\n"


def test_rm_and_mv_of_an_image_symlink_act_on_the_link(image):
    img, host = image
    before = _host_state(host)
    ok("mv", f"{img}:1/t2/link", "/t2/moved")
    ok("rm", f"{img}:1/t2/dirlink")
    assert _host_state(host) == before
    assert (host / "dir").is_dir()
    names = ok("ls", f"{img}:1/t2").decode().split()
    assert names == ["moved"]


def test_rm_r_of_a_tree_holding_host_links_removes_only_the_links(image):
    img, host = image
    before = _host_state(host)
    ok("rm", "-r", f"{img}:1/t2")
    assert _host_state(host) == before
    assert "t2" not in ok("ls", f"{img}:1/").decode().split()


def test_put_refuses_an_existing_file_without_force(image, tmp_path):
    img, _ = image
    new = tmp_path / "new.txt"
    new.write_text("new\n")
    before = img.read_bytes()
    err = one_line_error(imgx("put", new, f"{img}:1/existing.txt"), 3)
    assert "already exists" in err and "--force" in err
    assert img.read_bytes() == before
    ok("put", "--force", new, f"{img}:1/existing.txt")
    assert ok("cat", f"{img}:1/existing.txt") == b"new\n"
    # The path was replaced, not written through: its other hard link
    # keeps the old content.
    assert ok("cat", f"{img}:1/hardlink.txt") == b"old\n"


def test_put_of_a_directory_onto_an_existing_one_needs_force(image,
                                                              tmp_path):
    img, _ = image
    src = tmp_path / "t2"
    src.mkdir()
    (src / "added.txt").write_text("added\n")
    err = one_line_error(imgx("put", src, f"{img}:1/"), 3)
    assert "t2: already exists" in err
    ok("put", "--force", src, f"{img}:1/")
    assert sorted(ok("ls", f"{img}:1/t2").decode().split()) == \
        ["added.txt", "dirlink", "link"]


def _debugfs(img, tmp_path, *requests):
    """debugfs's answers about partition 1 of the image, through a raw
    copy of its disk and a read-only loop device over the partition."""
    raw = tmp_path / "check.raw"
    if raw.exists():
        raw.unlink()
    ok("convert", img, raw, "--to=raw")
    table = run("sfdisk", "--json", raw).stdout
    import json
    part = json.loads(table)["partitiontable"]["partitions"][0]
    dev = run("losetup", "--find", "--show", "--read-only", "-o",
              str(part["start"] * 512), "--sizelimit",
              str(part["size"] * 512), raw).stdout.strip()
    try:
        return [run("debugfs", "-R", r, dev).stdout for r in requests]
    finally:
        run("losetup", "-d", dev)


def test_put_keeps_owner_group_mode_times_and_xattrs(image, tmp_path):
    img, _ = image
    src = tmp_path / "keep"
    (src / "sub").mkdir(parents=True)
    f = src / "sub" / "owned.bin"
    f.write_bytes(b"x" * 5000)
    os.chown(f, 1234, 5678)
    os.chmod(f, 0o640)
    os.setxattr(f, "user.note", b"kept")
    os.utime(f, (1_600_000_000, 1_500_000_000))
    os.chown(src / "sub", 4321, 8765)
    os.chmod(src / "sub", 0o750)
    os.symlink("owned.bin", src / "sub" / "rel")
    os.lchown(src / "sub" / "rel", 1111, 2222)
    os.utime(src / "sub", (1_600_000_000, 1_400_000_000))
    ok("put", src, f"{img}:1/")
    file_stat, dir_stat, link_stat, xattr = _debugfs(
        img, tmp_path, "stat /keep/sub/owned.bin", "stat /keep/sub",
        "stat /keep/sub/rel", "ea_get /keep/sub/owned.bin user.note")
    assert "User:  1234   Group:  5678" in file_stat, file_stat
    assert "Mode:  0640" in file_stat
    assert "mtime: 0x59682f00" in file_stat        # 1_500_000_000
    assert "User:  4321   Group:  8765" in dir_stat, dir_stat
    assert "Mode:  0750" in dir_stat
    assert "mtime: 0x53724e00" in dir_stat         # 1_400_000_000
    assert "User:  1111   Group:  2222" in link_stat, link_stat
    assert "kept" in xattr, xattr


def test_root_resolves_links_inside_itself(tmp_path):
    """inroot.Root on a plain directory tree: an absolute link and a run of
    `..` in a link both stay inside the root, however the host looks."""
    from diskimage.edit.inroot import Root
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    root = tmp_path / "root"
    inside = root / str(host / "dir").lstrip("/")
    inside.mkdir(parents=True)
    (root / "a").mkdir()
    os.symlink(host / "dir", root / "a" / "abs")          # absolute
    os.symlink("../../../../../../..", root / "a" / "up")  # climbs
    os.symlink("loop", root / "loop")
    new = tmp_path / "new.txt"
    new.write_text("n\n")
    with Root(str(root)) as tree:
        tree.put(str(new), "a/abs/one.txt")
        tree.put(str(new), "a/up/two.txt")
        tree.mkdir("a/up/a/abs/made")
        with pytest.raises(OSError) as loop:
            tree.put(str(new), "loop/x")
    assert loop.value.errno == 40                         # ELOOP
    assert os.listdir(host / "dir") == []
    assert sorted(os.listdir(inside)) == ["made", "one.txt"]
    assert (root / "two.txt").read_text() == "n\n"
    assert not (tmp_path / "two.txt").exists()


def _ntfs_facts(img, tmp_path, rel):
    """(mtime, user.note xattr) of `rel` in the NTFS of the image, read
    through ntfs-3g from a raw copy of its disk."""
    import json
    from diskimage.host import fuse, loop
    raw = tmp_path / "check.raw"
    ok("convert", img, raw, "--to=raw")
    part = json.loads(run("sfdisk", "--json", raw).stdout)[
        "partitiontable"]["partitions"][0]
    with loop.loop_device(raw, part["start"] * 512, part["size"] * 512) \
            as dev, fuse.ntfs_mount(dev, tmp_path / "m", "ro") as mnt:
        path = os.path.join(mnt, rel)
        return (os.stat(path).st_mtime,
                os.getxattr(path, "user.note"))


def test_ntfs_put_stays_in_the_image_and_keeps_times_and_xattrs(
        ntfs_golden, tmp_path):
    golden, host = ntfs_golden
    img = tmp_path / "ntfs.rdi"
    copy(golden, img)
    before = _host_state(host)
    evil = tmp_path / "evil.txt"
    evil.write_text("evil\n")
    os.setxattr(evil, "user.note", b"kept")
    os.utime(evil, (1_600_000_000, 1_500_000_000))
    for target in ("t2/link", "t2/dirlink"):
        for force in ((), ("--force",)):
            imgx("put", evil, f"{img}:1/{target}", *force)
            assert _host_state(host) == before, (target, force)
    assert ok("cat", f"{img}:1/t2/link") == b"evil\n"
    assert _ntfs_facts(img, tmp_path, "t2/link") == (1_500_000_000, b"kept")


def test_put_keeps_a_sparse_file_sparse(image, tmp_path):
    img, _ = image
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(8 * MiB)
        os.pwrite(f.fileno(), b"d" * 4096, 1 * MiB)
    ok("put", sparse, f"{img}:1/")
    stat_text, = _debugfs(img, tmp_path, "stat /sparse.bin")
    assert "Size: 8388608" in stat_text, stat_text
    blocks = int(re.search(r"Blockcount: (\d+)", stat_text)[1])
    assert blocks <= 16, stat_text                 # 4 KiB of data, not 8 MiB
    assert ok("cat", f"{img}:1/sparse.bin") == sparse.read_bytes()
