"""The metadata check (diskimage/image/metacheck.py) against real tables:
GPT attribute bits 62 and 63 (hidden, no drive letter: Microsoft's
reserved and recovery partitions, bwpart's service partition) are part of
a 64-bit field, so an image of such a disk must verify and restore.  The
metadata check once took them for an offset (below 2**63) and refused
every image of such a disk as damaged."""

import subprocess

import pytest

from tests.smalldisk import sha256

pytestmark = pytest.mark.needs("sfdisk")

MIB = 1 << 20
HIGH = (1 << 0) | (1 << 62) | (1 << 63)


def _rdeploy(*args):
    return subprocess.run([".venv/bin/python", "-m", "rdeploy", *map(str, args)],
                          capture_output=True, text=True)


def test_gpt_attribute_bits_62_and_63_verify_and_restore(tmp_path):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 * MIB)
    subprocess.run(["sfdisk", "-q", str(disk)], check=True, text=True,
                   input='label: gpt\nsize=4M, type=L, attrs="RequiredPartition '
                         'GUID:62,63"\nsize=4M, type=L\n')
    with open(disk, "r+b") as f:
        f.seek(MIB)
        f.write(b"service partition data" * 1000)
    image, target = tmp_path / "d.rdi", tmp_path / "t.img"
    assert _rdeploy("capture", disk, image, "--quiet").returncode == 0
    info = _rdeploy("info", image, "--json")
    assert info.returncode == 0, info.stderr
    assert '"attrs": %d' % HIGH in info.stdout
    done = _rdeploy("verify", image, "--quiet")
    assert done.returncode == 0, done.stderr
    done = _rdeploy("restore", image, target, "--yes", "--quiet")
    assert done.returncode == 0, done.stderr
    assert sha256(target) == sha256(disk)
