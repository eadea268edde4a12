"""imgx cat and get follow symlinks inside the image, inside it (issue 11
item 17): relative, absolute, ".." past the root; loops and links to host
files are errors."""

import os

from tests.imgx_helpers import capture_disk, imgx, ok, one_line_error, tool


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
