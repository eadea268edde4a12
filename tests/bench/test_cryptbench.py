"""bench/cryptbench.py: its rows are real rdeploy commands (run here on a
small disk, once each, the encrypted image restored and compared), and its
ratios and targets come from the medians.  No timing is checked."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import cryptbench  # noqa: E402
from measure import Result  # noqa: E402


class Sample:
    def __init__(self, wall, cpu):
        self.wall, self.cpu, self.rss_kib = wall, cpu, 1024


def result(name, wall, cpu):
    return Result(name, "capture", "file", None, [Sample(wall, cpu)], 10 ** 6)


def test_ratios_targets_and_section():
    rows = [result(cryptbench.PLAIN_CAPTURE, 10, 20),
            result(cryptbench.SEALED_CAPTURE, 11, 21),
            result(cryptbench.PLAIN_RESTORE, 10, 10),
            result(cryptbench.SEALED_RESTORE, 12, 11)]
    assert [round(r, 3) for *_, r in cryptbench.ratios(rows)] == [1.1, 1.2]
    assert [round(r, 3) for *_, r in cryptbench.ratios(rows, "cpu")] == \
        [1.05, 1.1]
    assert [ok for ok, _ in cryptbench.targets(rows)] == [True, False]
    text = "\n".join(cryptbench.section({"size": 1 << 30}, rows, 1))
    assert "| capture | rdeploy capture --encrypt | 11.00 | 21.00 |" in text
    assert "FAIL: rdeploy restore (encrypted image) takes 1.20x" in text


def _run(step):
    for argv in step.stages:
        subprocess.run(argv, check=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.needs("sfdisk", "mkfs.ext4")
def test_the_rows_capture_and_restore_for_real(small_disk_ro, tmp_path):
    disk = {"path": str(small_disk_ro)}
    pwfile = cryptbench.passphrase_file(str(tmp_path))
    assert oct(os.stat(pwfile).st_mode & 0o777) == "0o600"

    def out(name):
        return str(tmp_path / name)
    for row in cryptbench.capture_rows(disk, out, pwfile) + \
            cryptbench.restore_rows(out, pwfile):
        row["setup"]()
        for step in row["steps"]:
            _run(step)
        if row["name"] == cryptbench.PLAIN_RESTORE:
            plain = hashlib.sha256(Path(out("crypt-target.img"))
                                   .read_bytes()).digest()
    sealed = hashlib.sha256(Path(out("crypt-target.img"))
                            .read_bytes()).digest()
    assert sealed == plain
    assert b'"encryption"' in Path(out("crypt-sealed.rdi")).read_bytes()[
        :4096]
