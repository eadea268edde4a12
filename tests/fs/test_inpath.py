"""diskimage.fs.inpath.resolve_in_root on a mounted-like tree of the host: the
callbacks the edit side would give it (lexists and readlink below a root
directory), so that a link never leads out of that root."""

import os

import pytest

from diskimage.errors import InputError
from diskimage.fs.inpath import LinkLoopError, resolve_in_root, unsafe_name


def _resolve(root, path, follow_last=True):
    def child(node, name):
        path = os.path.join(node, name)
        return path if os.path.lexists(path) else None

    def link(node):
        return os.readlink(node) if os.path.islink(node) else None

    return resolve_in_root(str(root), path, child, link, os.path.isdir,
                           follow_last)


def test_links_stay_inside_the_root(tmp_path):
    outside = tmp_path / "host"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "passwd").write_text("host")
    root = tmp_path / "mnt"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("image")
    os.symlink(str(outside / "etc"), root / "abs")          # the host's path
    os.symlink("../../../../etc", root / "etc" / "up")
    os.symlink("/etc/passwd", root / "pw")
    # Absolute targets and runs of ".." end inside the root.
    assert _resolve(root, "pw") == (str(root / "etc" / "passwd"),
                                    "/etc/passwd")
    assert _resolve(root, "etc/up/passwd")[1] == "/etc/passwd"
    with pytest.raises(InputError, match="no such file"):
        _resolve(root, "abs/passwd")      # the host's /tmp/... is not here
    assert _resolve(root, "pw", follow_last=False) == (str(root / "pw"),
                                                       "/pw")
    os.symlink("loop", root / "loop")
    with pytest.raises(LinkLoopError, match="more than 40"):
        _resolve(root, "loop")


def test_unsafe_names():
    for name in ("", ".", "..", "a/b", "/etc", "a\0b"):
        assert unsafe_name(name), name
    for name in ("...", "a\\b", ".hidden", "é"):
        assert unsafe_name(name) is None, name
