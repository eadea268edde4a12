"""The frozen multi-call binary, run as boot media run it: with an empty
environment (env -i).  `make test` builds dist/ first; without it these
tests fail rather than skip, so CI cannot pass on an unfrozen tree."""

import os
import subprocess

import pytest

from diskimage import __version__
import demodisk
from tests.bootdisk_helpers import DIST, bare, toolkit


@pytest.fixture(scope="module")
def frozen():
    binary = toolkit()
    assert os.path.realpath(DIST / "rdeploy") == str(binary.resolve())
    return DIST / "rdeploy"


def test_frozen_help_and_version(frozen):
    assert bare(frozen, "--version").stdout.decode().strip() == \
        f"rdeploy {__version__}"
    result = bare(frozen, "--help")
    assert result.returncode == 0 and b"Exit codes" in result.stdout
    listed = bare(DIST / "deploytool", "--list")
    assert b"rdeploy" in listed.stdout.split()


def test_frozen_demo_round_trip(frozen, tmp_path):
    disk, image = tmp_path / "demo.img", tmp_path / "demo.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=200)
    for args in (["capture", disk, image], ["verify", image],
                 ["restore", image, tmp_path / "copy.img", "--yes",
                  "--verify"]):
        result = bare(frozen, *args)
        assert result.returncode == 0, result.stderr.decode()
    assert demodisk.check_disk(tmp_path / "copy.img", manifest) == []
    piped = subprocess.run(
        f"env -i {frozen} capture {disk} - | "
        f"env -i {frozen} restore - {tmp_path / 'piped.img'} --yes",
        shell=True, capture_output=True)
    assert piped.returncode == 0, piped.stderr.decode()
    assert demodisk.check_disk(tmp_path / "piped.img", manifest) == []


def test_frozen_reports_errors_in_one_line(frozen, tmp_path):
    result = bare(frozen, "verify", tmp_path / "missing.rdi")
    assert result.returncode == 3
    assert result.stderr.decode().count("\n") == 1


def test_frozen_demo_command_runs_with_empty_environment(frozen, tmp_path):
    result = bare(frozen, "demo", f"--dir={tmp_path / 'demo'}")
    assert result.returncode == 0, result.stderr.decode()
    assert b"OK:" in result.stdout


def test_frozen_imgx_ls(tmp_path):
    """imgx in the frozen binary, through its link, reading all three
    filesystems of the demo disk with dissect's readers."""
    from tests.imgx_helpers import capture_disk
    disk, image = tmp_path / "demo.img", tmp_path / "demo.rdi"
    manifest = demodisk.make_gpt_demo(disk, files=30)
    capture_disk(disk, image)
    for number, part in manifest["partitions"].items():
        result = bare(DIST / "imgx", "ls", "-R", f"{image}:{number}/")
        assert result.returncode == 0, result.stderr.decode()
        listed = set(result.stdout.decode().splitlines())
        assert set(part["files"]) <= listed
    result = bare(DIST / "imgx", "ls", f"{image}:9/")
    assert result.returncode == 3 and result.stderr.count(b"\n") == 1


def test_frozen_imgx_edit(tmp_path):
    """An edit from the frozen binary: the system's mount, ntfs-3g, mtools
    and fsck run from it with an empty environment."""
    from tests.imgx_helpers import capture_disk
    disk, image = tmp_path / "demo.img", tmp_path / "demo.rdi"
    demodisk.make_gpt_demo(disk, files=20)
    capture_disk(disk, image)
    note = tmp_path / "note.txt"
    note.write_bytes(b"from the frozen binary\n")
    for number in (1, 2, 3):
        result = bare(DIST / "imgx", "put", note, f"{image}:{number}/")
        assert result.returncode == 0, result.stderr.decode()
        shown = bare(DIST / "imgx", "cat", f"{image}:{number}/note.txt")
        assert shown.stdout == note.read_bytes()
