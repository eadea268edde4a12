"""One writer per image (issue 11 item 5 and its sweep): an edit or
rewrite of an image another imgx is editing is refused with exit 9, and two
converts to one output never spoil each other.  Two real processes: the
first is stopped (SIGSTOP) while at work."""

import os
import signal
import subprocess
import sys
import time


from tests.fsmaps import run
from tests.imgx_helpers import ROOT, imgx, ok, one_line_error
from tests.imgx_helpers import golden, image  # noqa: F401 (fixtures)

MiB = 1 << 20




def _stopped_in_its_edit(img, args):
    """An `imgx put` started and stopped (SIGSTOP) once it is at work, its
    scratch directory made: it holds the image for as long as the test
    needs."""
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
                     ["import", raw, img, "--force"]):
            err = one_line_error(imgx(*args), 9)
            assert f"{img}: another process is editing" in err, (args, err)
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    names = ok("ls", f"{img}:1/").decode().split()
    assert "first.txt" in names and "second.txt" not in names
    assert not (tmp_path / "o.rdi").exists()
    ok("put", second_file, f"{img}:1/")          # free again
    assert ok("cat", f"{img}:1/second.txt") == b"second\n"


def _first_convert_stopped_before_its_link(img, out, tries=5):
    """A convert to `out`, SIGSTOPped at a moment the test has seen: its
    scratch directory is there and `out` is not (checked while it is
    stopped, so it cannot get past meanwhile).  A run that got past before
    the stop (a fast machine) is let finish, cleaned away, and tried again.
    Returns the stopped Popen."""
    directory = os.path.dirname(out)
    for _ in range(tries):
        first = subprocess.Popen([sys.executable, "-m", "imgx", "convert",
                                  str(img), str(out), "--to=raw"], cwd=ROOT,
                                 stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(directory)
                   if n.startswith(".imgx-convert-")] and \
                first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        first.send_signal(signal.SIGSTOP)
        if first.poll() is None and not os.path.lexists(out) and [
                n for n in os.listdir(directory)
                if n.startswith(".imgx-convert-")]:
            return first
        first.send_signal(signal.SIGCONT)
        first.communicate(timeout=120)
        if os.path.lexists(out):
            os.unlink(out)
    raise AssertionError(f"the first convert finished before its stop "
                         f"{tries} times")


def test_two_converts_to_one_output_never_spoil_each_other(image, tmp_path):
    """The first convert, stopped while at work (before its link, as seen
    while it is stopped); a second to the same OUT finishes; the first
    then refuses to replace it (exit 5), and removes nothing of the
    second's."""
    img, _ = image
    out = tmp_path / "out.raw"
    first = _first_convert_stopped_before_its_link(img, out)
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


def test_capture_force_onto_an_image_being_edited_is_refused(image,
                                                             tmp_path):
    """rdeploy capture --force replaces an image under the same lock as
    imgx's edits (issue 11 round 3 item 7): the loser exits 9 and the
    edit's result is what stays."""
    img, _ = image
    disk = img.parent / "disk.raw"
    ok("convert", img, disk, "--to=raw")
    first_file = tmp_path / "first.txt"
    first_file.write_text("first\n")
    first = _stopped_in_its_edit(img, ["put", first_file, f"{img}:1/"])
    try:
        capture = subprocess.run(
            [sys.executable, "-m", "rdeploy", "capture", disk, img,
             "--force"], cwd=ROOT, capture_output=True)
        err = capture.stderr.decode()
        assert capture.returncode == 9, err
        assert f"{img}: another process is editing" in err
        assert not [n for n in os.listdir(img.parent)
                    if n.endswith(".partial")]
    finally:
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    assert ok("cat", f"{img}:1/first.txt") == b"first\n"


def test_an_edit_of_an_image_capture_force_is_replacing_is_refused(
        image, tmp_path, slow_source):
    """The other way round: while rdeploy capture --force writes over the
    image, an imgx put of it exits 9 and the capture's image is what
    stays, whole."""
    from pathlib import Path

    from tests.rdeploy_helpers import slow_capture
    from tests.signals import wait_for
    img, _ = image
    small = tmp_path / "small.txt"
    small.write_text("s\n")
    first = slow_capture(slow_source, img, "--force")
    try:
        wait_for(lambda: Path(f"{img}.partial").exists()
                 or first.poll() is not None)
        assert first.poll() is None, "capture finished too soon"
        err = one_line_error(imgx("put", small, f"{img}:1/"), 9)
        assert f"{img}: another process is editing" in err, err
        assert first.poll() is None, "capture finished too soon"
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, stderr
    check = subprocess.run([sys.executable, "-m", "rdeploy", "verify", img],
                           cwd=ROOT, capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
