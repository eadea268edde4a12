"""host.partial.lock_named: the one way an image (image/lock.py) and a
site file (netboot/siteedit.py) are locked by name."""

import fcntl
import os

import pytest

from diskimage.errors import BusyError
from diskimage.host.partial import lock_named
from diskimage.netboot import siteedit

EX = fcntl.LOCK_EX | fcntl.LOCK_NB


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = lock_named(path, EX)
    try:
        # flock belongs to the open file: a second open is another holder
        with pytest.raises(BlockingIOError):
            lock_named(path, EX)
    finally:
        os.close(fd)
    os.close(lock_named(path, EX))


def test_the_lock_is_on_the_inode_the_name_holds(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    fd = lock_named(path, EX)
    new = tmp_path / "f.new"
    new.write_bytes(b"new")
    os.rename(new, path)          # what an edit does at its end
    try:
        other = lock_named(path, EX)    # the new inode is free
        assert os.path.samestat(os.fstat(other), os.stat(path))
        os.close(other)
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        lock_named(tmp_path / "gone", EX)


def test_a_fifo_is_opened_not_waited_on(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = lock_named(fifo, EX)     # no writer: O_NONBLOCK, no wait
    os.close(fd)


def test_the_site_lock_and_the_image_lock_are_one(tmp_path):
    from diskimage.image.lock import image_lock
    path = tmp_path / "pxeconf.site"
    path.write_text("[site]\n")
    with image_lock(path):
        with pytest.raises(BusyError, match="another pxeconf is editing"):
            with siteedit.locked(path):
                pass
    with siteedit.locked(path):
        pass
