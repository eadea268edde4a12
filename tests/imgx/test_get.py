"""imgx get, cat and ls on images made hostile or odd with the field's own
tools: FAT long names and ext directory entries edited to hold "/", ".."
runs, absolute paths and NUL (issue 11 item 1); symlinks inside the image,
followed inside it (item 17); owners, xattrs, hard links, sparse files,
FIFOs and device nodes (item 8)."""

import os
import pathlib
import stat
import subprocess
import sys
import tempfile

from tests.imgx_helpers import ROOT, capture_disk, imgx, ok, one_line_error, tool


# --- building the images -----------------------------------------------------
def _lfn_chars(entry):
    raw = entry[1:11] + entry[14:26] + entry[28:32]
    return raw.decode("utf-16-le")


def _lfn_field(text):
    """13 UTF-16 characters of a long-name entry: the name, a NUL, then
    0xFFFF padding, as Windows and mtools write them."""
    if len(text) < 13:
        text = text + "\0" + "\uffff" * (12 - len(text))
    raw = text.encode("utf-16-le")
    return raw[:10], raw[10:22], raw[22:26]


def fat_rename_long(image, old, new):
    """Rewrite the long-name (LFN) entries that spell `old` to spell `new`
    (of the same length) in the FAT image file, as a hostile editor would;
    the short name and its checksum are left as mcopy wrote them."""
    assert len(old) == len(new)
    data = bytearray(image.read_bytes())
    hits = 0
    for at in range(0, len(data), 32):
        entry = data[at:at + 32]
        if entry[11] != 0x0F or entry[0] in (0, 0xE5):
            continue
        seq = entry[0] & 0x1F
        piece = old[(seq - 1) * 13:seq * 13]
        if piece and _lfn_chars(entry).split("\0")[0] == piece:
            a, b, c = _lfn_field(new[(seq - 1) * 13:seq * 13])
            data[at + 1:at + 11], data[at + 14:at + 26] = a, b
            data[at + 28:at + 32] = c
            hits += 1
    assert hits == -(-len(old) // 13), hits
    image.write_bytes(bytes(data))


def raw_rename(image, old, new):
    """Replace the one occurrence of the name `old` in an ext image (its
    directory entry) by `new`, of the same length."""
    data = image.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    image.write_bytes(data.replace(old, new))


def debugfs_w(image, *requests):
    for request in requests:
        out = subprocess.run(["debugfs", "-w", "-R", request, image],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "debugfs:" not in out.stderr.replace(
            "debugfs 1.", ""), (request, out.stderr)


def outside(tmp_path, inside):
    """Every path below tmp_path that is not below `inside` or an input."""
    found = set()
    for root, dirs, files in os.walk(tmp_path):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not path.startswith(str(inside) + "/") and path != str(inside):
                found.add(os.path.relpath(path, tmp_path))
    return found


# --- item 1: names that would leave DEST -------------------------------------
def test_fat_long_names_that_leave_dest_are_refused(tmp_path):
    disk = tmp_path / "fat.img"
    tool("mkfs.fat", "-C", disk, "2048")
    absolute = str(tmp_path / "abs-escaped.txt")
    evil = {"../../../escaped.txt": b"dotdot\n", absolute: b"absolute\n",
            "ok/../../../x.txt": b"slash\n"}
    payload = tmp_path / "payload"
    for n, (name, data) in enumerate(evil.items()):
        payload.write_bytes(data)
        tool("mcopy", "-i", disk, payload, f"::/{str(n) * len(name)}")
    payload.write_bytes(b"good\n")
    tool("mcopy", "-i", disk, payload, "::/good long name.txt")
    for n, name in enumerate(evil):
        fat_rename_long(disk, str(n) * len(name), name)
    payload.unlink()
    image = tmp_path / "fat.rdi"
    capture_disk(disk, image)
    before = outside(tmp_path, tmp_path / "a")
    dest = tmp_path / "a" / "b" / "out"
    dest.parent.mkdir(parents=True)
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert outside(tmp_path, dest) == before | {"a", "a/b"}
    assert result.returncode == 0, err
    assert os.listdir(dest) == ["good long name.txt"]
    for name in evil:
        assert f"entry {name!r} not written: the name holds '/'" in err, err


def _ext_with(tmp_path, renames, *requests):
    """A 4 MiB ext4 (no metadata checksums, so raw edits read back) filled
    by `debugfs -w` requests, with the names in `renames` then edited in
    its raw bytes; captured.  Returns (image, dest, names outside before)."""
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", "-O", "^metadata_csum", disk, "4M")
    (tmp_path / "payload").write_bytes(b"planted\n")
    debugfs_w(disk, *requests)
    for placeholder, evil in renames:
        raw_rename(disk, placeholder, evil)
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    dest = tmp_path / "a" / "b" / "out"
    dest.parent.mkdir(parents=True)
    return image, dest, outside(tmp_path, tmp_path / "a") | {"a", "a/b"}


def test_a_fat_long_name_too_long_for_the_host_is_refused(tmp_path):
    """255 UTF-16 characters fit a FAT long name; their UTF-8 may not fit
    the 255 bytes of a Linux name."""
    disk = tmp_path / "fat.img"
    tool("mkfs.fat", "-C", disk, "2048")
    (tmp_path / "f").write_bytes(b"x")
    tool("mcopy", "-i", disk, tmp_path / "f", "::/" + "n" * 130)
    tool("mcopy", "-i", disk, tmp_path / "f", "::/short.txt")
    fat_rename_long(disk, "n" * 130, "\u00e9" * 130)
    image = tmp_path / "fat.rdi"
    capture_disk(disk, image)
    result = imgx("get", "-R", f"{image}:/", tmp_path / "out")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert os.listdir(tmp_path / "out") == ["short.txt"]
    assert "not written: the name is 260 bytes, more than the host's 255" \
        in err, err


def test_ext_entries_with_slash_and_nul_are_refused(tmp_path):
    """Directory entries edited in the raw image: a run of "../", an
    absolute path, a NUL."""
    absolute = str(tmp_path / "abs-escaped")
    names = {b"P" * 15: b"../../../dotdot",
             b"Q" * len(absolute): absolute.encode(), b"RRR": b"a\0b"}
    src = tmp_path / "payload"
    image, dest, before = _ext_with(
        tmp_path, names.items(),
        *[f"write {src} {p.decode()}" for p in names], f"write {src} fine")
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert outside(tmp_path, dest) == before
    assert result.returncode == 0, err
    assert sorted(os.listdir(dest)) == ["fine", "lost+found"]
    assert "entry '../../../dotdot' not written: the name holds '/'" in err
    assert f"entry {absolute!r} not written: the name holds '/'" in err
    assert "entry 'a\\x00b' not written: the name holds a NUL byte" in err


def test_ext_symlink_then_directory_of_its_name_stays_in_dest(tmp_path):
    """A symlink to a host directory, then a directory of the same name
    (an edited entry) whose file would land through the link."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    src = tmp_path / "payload"
    image, dest, before = _ext_with(
        tmp_path, [(b"linkBBBB", b"linkAAAA")],
        f"symlink linkAAAA {host_dir}", "mkdir linkBBBB",
        f"write {src} linkBBBB/job")
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert os.listdir(host_dir) == []
    assert outside(tmp_path, dest) == before
    assert result.returncode == 0, err
    assert sorted(os.listdir(dest)) == ["linkAAAA", "lost+found"]
    assert os.readlink(dest / "linkAAAA") == str(host_dir)
    assert "entry 'linkAAAA' not written: a second entry of that name" in err


# --- item 17: symlinks inside the image, followed inside it ----------------
def _linked_image(tmp_path):
    """A merged-/usr ext4 made by mkfs.ext4 -d: relative, absolute, ".."
    past the root, looping and host-pointing links."""
    host = tmp_path / "host-secret"
    host.write_bytes(b"the host's own file\n")
    src = tmp_path / "root"
    (src / "usr" / "lib").mkdir(parents=True)
    (src / "etc").mkdir()
    (src / "usr" / "lib" / "os-release").write_bytes(b"ID=debian\n")
    links = {"etc/os-release": "../usr/lib/os-release", "lib": "usr/lib",
             "abs": "/usr/lib/os-release", "etc/up": "../../../../lib",
             "loop1": "loop2", "loop2": "loop1", "hostlink": str(host),
             "etc/dir-abs": "/etc"}
    # A chain of 41 links: l1 -> l2 -> ... -> l41 -> the file.
    links.update({f"l{i}": f"l{i + 1}" for i in range(1, 41)})
    links["l41"] = "usr/lib/os-release"
    for rel, target in links.items():
        os.symlink(target, src / rel)
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", "-d", src, disk, "4M")
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    return image


def test_cat_and_get_follow_links_inside_the_image(tmp_path):
    image = _linked_image(tmp_path)
    for path in ("etc/os-release", "lib/os-release", "abs",
                 "etc/up/os-release",
                 "etc/dir-abs/dir-abs/os-release", "usr/../lib/os-release"):
        assert ok("cat", f"{image}:/{path}") == b"ID=debian\n", path
    ok("get", f"{image}:/etc/os-release", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == b"ID=debian\n"
    ok("get", "-R", f"{image}:/lib", tmp_path / "lib")
    # Into a directory, by the name of the link, as cp -H.
    (tmp_path / "into").mkdir()
    ok("get", f"{image}:/abs", tmp_path / "into")
    ok("get", "-R", f"{image}:/lib", tmp_path / "into")
    assert sorted(os.listdir(tmp_path / "into")) == ["abs", "lib"]
    assert (tmp_path / "into" / "lib" / "os-release").is_file()
    assert (tmp_path / "lib" / "os-release").read_bytes() == b"ID=debian\n"
    # Inside a tree got with -R, links stay links.
    ok("get", "-R", f"{image}:/etc", tmp_path / "etc")
    assert os.readlink(tmp_path / "etc" / "os-release") == \
        "../usr/lib/os-release"
    long = ok("ls", "-l", f"{image}:/etc").decode()
    assert "os-release -> ../usr/lib/os-release" in long
    assert ok("ls", f"{image}:/lib").decode().split() == ["os-release"]
    assert "lib -> usr/lib" in ok("ls", "-l", f"{image}:/lib").decode()


def test_link_loops_and_host_targets_are_errors(tmp_path):
    image = _linked_image(tmp_path)
    assert ok("ls", f"{image}:/loop1") == b"loop1\n"     # the link itself
    err = one_line_error(imgx("cat", f"{image}:/loop1"), 3)
    assert "loop" in err and "too many levels of symbolic links" in err
    # The kernel's limit: 40 links on one walk are followed, 41 are not.
    assert ok("cat", f"{image}:/l2") == b"ID=debian\n"
    err = one_line_error(imgx("cat", f"{image}:/l1"), 3)
    assert "too many levels of symbolic links (more than 40)" in err
    # An absolute target means the image's root: the host file is not read.
    err = one_line_error(imgx("cat", f"{image}:/hostlink"), 3)
    assert "no such file or directory" in err
    one_line_error(imgx("get", f"{image}:/hostlink", tmp_path / "x"), 3)
    assert not (tmp_path / "x").exists()


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
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "imgx", "get", "-R", f"{image}:/",
             tmp / "out"], capture_output=True, cwd=ROOT)
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


# --- names shown: control characters and bytes that are not UTF-8 -----------
def test_listings_escape_names_that_are_not_text(tmp_path):
    src = tmp_path / "payload"
    renames = [(b"NNNN", b"caf\xe9"), (b"MMM", b"a\nb"), (b"OOOO", b"\x1b[2J")]
    image, dest, _ = _ext_with(tmp_path, renames,
                               *[f"write {src} {p.decode()}"
                                 for p, _ in renames])
    names = ok("ls", f"{image}:/").decode().splitlines()
    assert sorted(names) == sorted(["caf\\xe9", "a\\x0ab", "\\x1b[2J",
                                    "lost+found/"])
    assert "caf\\xe9" in ok("ls", "-l", f"{image}:/").decode()
    assert "\\x1b[2J" in ok("find", f"{image}:/", "-name", "*").decode()
    assert "a\\x0ab" in ok("tree", f"{image}:/").decode()
    import json
    rows = json.loads(ok("ls", "--json", f"{image}:/"))
    assert {r["name"].encode("utf-8", "surrogateescape") for r in rows} == \
        {b"caf\xe9", b"a\nb", b"\x1b[2J", b"lost+found"}
    # get writes the exact bytes as the host name.
    ok("get", "-R", f"{image}:/", dest)
    assert sorted(os.listdir(os.fsencode(dest))) == \
        sorted([b"caf\xe9", b"a\nb", b"\x1b[2J", b"lost+found"])


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


def test_entries_meeting_a_directory_in_dest_are_refused(tmp_path):
    src = tmp_path / "root"
    src.mkdir()
    (src / "f").write_bytes(b"file\n")
    os.symlink("f", src / "l")
    disk = tmp_path / "ext.img"
    tool("mkfs.ext4", "-q", "-d", src, disk, "4M")
    image = tmp_path / "ext.rdi"
    capture_disk(disk, image)
    dest = tmp_path / "out"
    (dest / "f").mkdir(parents=True)
    (dest / "l").mkdir()
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "entry 'f' not written: it exists in DEST as a directory" in err
    assert "entry 'l' not written: it exists in DEST as a directory" in err
    assert (dest / "f").is_dir() and (dest / "lost+found").is_dir()


def test_a_directory_that_contains_itself_is_not_walked_forever(tmp_path):
    """debugfs links the root into sub/loop: a directory loop, as a damaged
    or hostile filesystem holds; get -R wrote hundreds of levels before."""
    src = tmp_path / "payload"
    image, dest, _ = _ext_with(tmp_path, [], "mkdir sub",
                               f"write {src} sub/f", "link / sub/loop")
    result = imgx("get", "-R", f"{image}:/", dest)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert sorted(os.listdir(dest / "sub")) == ["f"]
    assert "sub: entry 'loop' not written: a directory that is one of its " \
        "own parents" in err
    for result, code in ((imgx("ls", "-R", f"{image}:/"), 4),
                         (imgx("find", f"{image}:/", "-name", "x"), 4),
                         (imgx("diff", image, image), 2),
                         (imgx("tree", f"{image}:/"), 4)):
        err = result.stderr.decode()
        assert result.returncode == code and err.count("\n") == 1, err
        assert "loop: damaged filesystem: a directory that is one of " \
            "its own parents" in err
