"""The image lock's own promises (issue 11 review, items 1 and 2): a busy
message that says what the holder does, and no silent upgrade of a shared
lock to an exclusive one within one process.  The other holder is a real
process (flock(1)); the image is a real image made by imgx."""

import os
import signal
import subprocess
import time

import pytest

from diskimage.image import lock as imagelock
from diskimage.errors import BusyError, DiskImageError

from tests.imgx_helpers import imgx, one_line_error
from tests.imgx_helpers import golden, image  # noqa: F401 (fixtures)


def _held_by_flock(path, mode):
    """flock(1) holding `path` (mode "-s" or "-x") until killed; returns
    once the lock is seen held."""
    holder = subprocess.Popen(["flock", mode, path, "sleep", "60"],
                              start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            imagelock.release(imagelock.acquire(path))
        except BusyError:
            return holder
        assert time.monotonic() < deadline, "flock never took the lock"
        time.sleep(0.01)


def _stop(holder):
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()


def test_an_edit_that_meets_a_reader_is_told_it_is_a_reader(image, tmp_path):
    img, _ = image
    small = tmp_path / "small.txt"
    small.write_text("s\n")
    holder = _held_by_flock(img, "-s")
    try:
        with pytest.raises(BusyError) as caught:
            imagelock.acquire(img)
        err = one_line_error(imgx("put", small, f"{img}:1/"), 9)
    finally:
        _stop(holder)
    for text in (str(caught.value), err):
        assert f"{img}: another process is reading this image" in text, text
        assert "editing" not in text and "rewriting" not in text, text
    imagelock.release(imagelock.acquire(img))          # free again


def test_a_writer_that_holds_the_image_is_named_a_writer(image):
    img, _ = image
    holder = _held_by_flock(img, "-x")
    try:
        for shared in (False, True):
            with pytest.raises(BusyError) as caught:
                imagelock.acquire(img, shared=shared)
            assert (f"{img}: another process is editing, rewriting or "
                    f"replacing this image") in str(caught.value)
    finally:
        _stop(holder)


def test_a_shared_lock_is_not_upgraded_within_one_process(image):
    img, _ = image
    reading = imagelock.acquire(img, shared=True)
    try:
        with pytest.raises(DiskImageError) as caught:
            imagelock.acquire(img)
        assert not isinstance(caught.value, BusyError)
        assert "cannot be upgraded" in str(caught.value)
        assert "another process" not in str(caught.value)
        # The shared hold is intact: a second shared hold counts, and after
        # both are released the image is free for an exclusive lock.
        again = imagelock.acquire(img, shared=True)
        imagelock.release(again)
        assert imagelock._HELD, "the first shared hold was lost"
    finally:
        imagelock.release(reading)
    assert not imagelock._HELD
    imagelock.release(imagelock.acquire(img))
