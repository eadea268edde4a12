"""imgx get, cat and ls on images whose names are hostile, made so with the
field's own tools: FAT long names and ext directory entries edited to hold
"/", ".." runs, absolute paths and NUL (issue 11 item 1), names that are not
text, entries meeting a directory in DEST, a directory inside itself.
Links inside the image are in test_get_links.py, owners, xattrs and hard
links in test_get_metadata.py."""

import os

from tests.hostile_images import ext_with, fat_rename_long, outside
from tests.imgx_helpers import capture_disk, imgx, ok, tool


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
    image, dest, before = ext_with(
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
    image, dest, before = ext_with(
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


# --- names shown: control characters and bytes that are not UTF-8 -----------
def test_listings_escape_names_that_are_not_text(tmp_path):
    src = tmp_path / "payload"
    renames = [(b"NNNN", b"caf\xe9"), (b"MMM", b"a\nb"), (b"OOOO", b"\x1b[2J")]
    image, dest, _ = ext_with(tmp_path, renames,
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
    image, dest, _ = ext_with(tmp_path, [], "mkdir sub",
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
