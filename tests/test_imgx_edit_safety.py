"""imgx edits that must stay inside the image and keep what they copy
(issue 11): symlinks in the image are never followed onto the host, an
existing path is refused unless --force, owners, groups, modes, times and
xattrs of what `put` adds are kept, two edits of one image at once are
refused, and the messages are one true sentence each.

The image is a GPT disk with one small ext4 made by mkfs.ext4 -d, holding
links whose absolute targets name files and directories this test made
under its own tmp directory on the host."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from .fsmaps import partitioned_disk, run
from .imgx_helpers import ROOT, capture_disk, imgx, ok, one_line_error

MiB = 1 << 20


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edit-safety")
    host = tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host file\n")
    tree = tmp / "tree"
    (tree / "t2").mkdir(parents=True)
    os.symlink(host / "file", tree / "t2" / "link")
    os.symlink(host / "dir", tree / "t2" / "dirlink")
    (tree / "existing.txt").write_text("old\n")
    os.link(tree / "existing.txt", tree / "hardlink.txt")
    fs = tmp / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(16 * MiB)
    run("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    image = tmp / "golden.rdi"
    capture_disk(disk, image)
    return image, host


@pytest.fixture
def image(golden, tmp_path):
    source, host = golden
    copy = tmp_path / "lab.rdi"
    shutil.copy(source, copy)
    return copy, host


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
    from imgx.inroot import Root
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


def _stopped_in_its_edit(img, args):
    """An `imgx put` started and stopped (SIGSTOP) once it is at work, its
    scratch directory made: it holds the image for as long as the test
    needs."""
    import signal
    proc = subprocess.Popen([sys.executable, "-m", "imgx", *map(str, args)],
                            cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(img.parent)
               if n.startswith(".imgx-edit-")]:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)
    return proc


def test_a_second_edit_or_rewrite_of_a_locked_image_is_refused(image,
                                                                tmp_path):
    import signal
    img, _ = image
    first_file = tmp_path / "first.txt"
    first_file.write_text("first\n")
    second_file = tmp_path / "second.txt"
    second_file.write_text("second\n")
    raw = tmp_path / "raw.img"
    with open(raw, "wb") as f:
        f.truncate(1 * MiB)
    first = _stopped_in_its_edit(img, ["put", first_file, f"{img}:1/"])
    try:
        for args in (["put", second_file, f"{img}:1/"],
                     ["mkdir", f"{img}:1/d"], ["rm", f"{img}:1/existing.txt"],
                     ["mv", f"{img}:1/existing.txt", "/e"],
                     ["describe", img, "text"], ["split", img, "1M"],
                     ["join", img], ["recompress", img, "--compress=zstd"],
                     ["recompress", img, f"--output={tmp_path / 'o.rdi'}"],
                     ["convert", img, tmp_path / "o.raw", "--to=raw"],
                     ["import", raw, img]):
            err = one_line_error(imgx(*args), 9)
            assert f"{img}: another imgx is editing" in err, (args, err)
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    names = ok("ls", f"{img}:1/").decode().split()
    assert "first.txt" in names and "second.txt" not in names
    assert not (tmp_path / "o.rdi").exists()
    ok("put", second_file, f"{img}:1/")          # free again
    assert ok("cat", f"{img}:1/second.txt") == b"second\n"


def test_put_of_a_tree_with_a_fifo_says_so_in_a_sentence(image, tmp_path):
    img, _ = image
    src = tmp_path / "withfifo"
    src.mkdir()
    (src / "plain.txt").write_text("p\n")
    os.mkfifo(src / "pipe")
    before = img.read_bytes()
    err = one_line_error(imgx("put", src, f"{img}:1/"), 3)
    assert err == (f"imgx: error: {src / 'pipe'}: is a FIFO; imgx put "
                   f"copies files, directories and symlinks only; nothing "
                   f"changed\n")
    assert img.read_bytes() == before


def test_rm_or_mv_of_the_root_is_refused_in_english(image):
    img, _ = image
    err = one_line_error(imgx("rm", "-r", f"{img}:1/"), 3)
    assert err.endswith(f"{img}:1/: the root cannot be removed\n"), err
    err = one_line_error(imgx("mv", f"{img}:1/", "/x"), 3)
    assert err.endswith(f"{img}:1/: the root cannot be moved\n"), err


def test_a_full_ext_filesystem_is_exit_6_naming_the_partition(image,
                                                              tmp_path):
    img, _ = image
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MiB))       # the ext4 holds 16 MiB
    before = img.read_bytes()
    err = one_line_error(imgx("put", big, f"{img}:1/"), 6)
    assert f"{img}: put: no space left in partition 1 (" in err, err
    assert f"for {big} (20.0 MiB, " in err and "more than was free" in err
    assert img.read_bytes() == before


@pytest.fixture(scope="module")
def fat_image(tmp_path_factory):
    """A table-less FAT disk (its one filesystem is IMAGE:/)."""
    tmp = tmp_path_factory.mktemp("edit-fat")
    disk = tmp / "fat.img"
    with open(disk, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.fat", disk)
    image = tmp / "fat.rdi"
    capture_disk(disk, image)
    return image


def test_messages_on_a_table_less_image_have_one_colon(fat_image, tmp_path):
    image = tmp_path / "fat.rdi"
    shutil.copy(fat_image, image)
    for args in (["rm", f"{image}:/nonexist"],
                 ["mv", f"{image}:/nonexist", "/x"],
                 ["mkdir", f"{image}:/no/such"]):
        err = one_line_error(imgx(*args), 3)
        assert f"{image}::" not in err and f"{image}:/no" in err, err
    note = tmp_path / "note.txt"
    note.write_text("n\n")
    ok("put", note, f"{image}:/")
    err = one_line_error(imgx("put", note, f"{image}:/"), 3)
    assert err == (f"imgx: error: {image}:/note.txt: already exists "
                   f"(--force replaces it)\n")
    note.write_text("m\n")
    ok("put", "--force", note, f"{image}:/")
    assert ok("cat", f"{image}:/note.txt") == b"m\n"


@pytest.fixture(scope="module")
def ntfs_golden(tmp_path_factory):
    """A GPT disk with one NTFS whose t2/link and t2/dirlink (made through
    ntfs-3g) point at absolute paths of this test's host files."""
    from .fsbuild import ntfs_mounted
    tmp = tmp_path_factory.mktemp("edit-safety-ntfs")
    host = tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host file\n")
    fs = tmp / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(16 * MiB)
    run("mkntfs", "-q", "-F", "-Q", fs)
    with ntfs_mounted(fs, tmp / "mnt") as mnt:
        os.mkdir(os.path.join(mnt, "t2"))
        os.symlink(host / "file", os.path.join(mnt, "t2", "link"))
        os.symlink(host / "dir", os.path.join(mnt, "t2", "dirlink"))
    disk = tmp / "disk.img"
    partitioned_disk(disk, [(fs, "ntfs")])
    image = tmp / "golden.rdi"
    capture_disk(disk, image)
    return image, host


def _ntfs_facts(img, tmp_path, rel):
    """(mtime, user.note xattr) of `rel` in the NTFS of the image, read
    through ntfs-3g from a raw copy of its disk."""
    import json
    from diskimage import fstools
    raw = tmp_path / "check.raw"
    ok("convert", img, raw, "--to=raw")
    part = json.loads(run("sfdisk", "--json", raw).stdout)[
        "partitiontable"]["partitions"][0]
    with fstools.loop_device(raw, part["start"] * 512, part["size"] * 512) \
            as dev, fstools.ntfs_mount(dev, tmp_path / "m", "ro") as mnt:
        path = os.path.join(mnt, rel)
        return (os.stat(path).st_mtime,
                os.getxattr(path, "user.note"))


def test_ntfs_put_stays_in_the_image_and_keeps_times_and_xattrs(
        ntfs_golden, tmp_path):
    golden, host = ntfs_golden
    img = tmp_path / "ntfs.rdi"
    shutil.copy(golden, img)
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


def test_no_free_inode_is_exit_6_for_every_edit(tmp_path):
    """An ext4 made with 16 inodes, all in use: mkdir and put find no room
    and say so with exit 6, as the exit-code table says."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(5):
        (tree / f"f{i}").write_text(f"{i}\n")
    fs = tmp_path / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(4 * MiB)
    run("mkfs.ext4", "-q", "-F", "-N", "16", "-d", tree, fs)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    img = tmp_path / "full.rdi"
    capture_disk(disk, img)
    small = tmp_path / "small.txt"
    small.write_text("s\n")
    before = img.read_bytes()
    for args in (["mkdir", f"{img}:1/d"], ["put", small, f"{img}:1/"]):
        err = one_line_error(imgx(*args), 6)
        assert f"{img}: {args[0]}: no space left in partition 1 (no free " \
               f"inodes" in err, err
    assert img.read_bytes() == before


def test_put_of_dot_lands_under_the_directory_name(image, tmp_path):
    img, _ = image
    src = tmp_path / "here"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    result = subprocess.run([sys.executable, "-m", "imgx", "put", ".",
                             f"{img}:1/"], cwd=src, capture_output=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr.decode()
    assert ok("cat", f"{img}:1/here/a.txt") == b"a\n"


def test_mv_of_a_directory_into_itself_is_refused_before_work(image):
    img, _ = image
    err = one_line_error(imgx("mv", f"{img}:1/t2", "/t2/deeper"), 3)
    assert err.endswith(f"{img}:1/t2: a directory cannot be moved into "
                        f"itself (t2/deeper)\n"), err


def test_two_converts_to_one_output_never_spoil_each_other(image, tmp_path):
    """The first convert, stopped while at work; a second to the same OUT
    finishes; the first then refuses to replace it (exit 5), and removes
    nothing of the second's."""
    import signal
    img, _ = image
    out = tmp_path / "out.raw"
    first = subprocess.Popen([sys.executable, "-m", "imgx", "convert",
                              str(img), str(out), "--to=raw"], cwd=ROOT,
                             stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not [n for n in os.listdir(tmp_path) if n.startswith(
            (".imgx-convert-", "out.raw"))]:
        assert first.poll() is None, first.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    first.send_signal(signal.SIGSTOP)
    try:
        second = imgx("convert", img, out, "--to=raw")
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    assert second.returncode == 0, second.stderr.decode()
    assert first.returncode == 5, err.decode()
    assert f"{out}: exists; not overwritten" in err.decode()
    assert json_parts(out) == 1
    assert sorted(os.listdir(tmp_path)) == ["lab.rdi", "out.raw"]


def json_parts(raw):
    import json
    return len(json.loads(run("sfdisk", "--json", raw).stdout)[
        "partitiontable"]["partitions"])


def test_a_symlink_for_a_filesystem_without_symlinks_is_refused(fat_image,
                                                                tmp_path):
    """FAT (mcopy followed it, copying what it points at) and exFAT (the
    writer failed with 'Function not implemented (a)') hold no symlinks:
    a source holding one is refused by name before any work."""
    image = tmp_path / "fat.rdi"
    shutil.copy(fat_image, image)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    os.symlink("a", src / "l")
    before = image.read_bytes()
    err = one_line_error(imgx("put", src, f"{image}:/"), 3)
    assert re.fullmatch(rf"imgx: error: {re.escape(str(src / 'l'))}: is a "
                        rf"symlink, and fat1[26] holds none; nothing "
                        rf"changed\n", err), err
    assert image.read_bytes() == before
    exfat = tmp_path / "exfat.img"
    with open(exfat, "wb") as f:
        f.truncate(8 * MiB)
    run("mkfs.exfat", exfat)
    capture_disk(exfat, tmp_path / "exfat.rdi")
    err = one_line_error(imgx("put", src, f"{tmp_path / 'exfat.rdi'}:/"), 3)
    assert f"{src / 'l'}: is a symlink, and exfat holds none" in err, err
