"""bench/digestcost.py on a tiny disk: the lines it adds to a bench run and
its standalone A/B capture run.  No timing is checked (see test_bench)."""

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import digestcost  # noqa: E402


class Row:
    """A bench result row as limits and digestcost read it."""

    def __init__(self, name, wall):
        self.name, self.source, self.samples = name, "file", [wall]
        self._wall = wall

    def median(self, what):
        return self._wall


def test_digest_lines_and_the_ab_capture(tmp_path):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(10 << 20)
        f.seek(1 << 20)
        f.write(random.Random(5).randbytes(8 << 20))
    recipe = {"path": str(disk), "partitions": [{"start": 1 << 20,
                                                  "size": 8 << 20}]}
    lines = digestcost.digest_lines(
        recipe, [Row("rdeploy capture (file)", 2.0)], seconds=0.05)
    assert any("BLAKE3-256 runs at" in line for line in lines)
    row = next(line for line in lines if line.startswith("| rdeploy"))
    assert row.startswith("| rdeploy capture (file) (file) | 2.00 |")
    assert row.endswith("% |")
    walls, summary = digestcost.ab_capture(str(disk), rounds=1, threads=2)
    assert set(walls) == {"blake3", "none"} and min(walls.values()) > 0
    assert summary["data_bytes"] >= 8 << 20
    assert sorted(os.listdir(tmp_path)) == ["disk.img"]
