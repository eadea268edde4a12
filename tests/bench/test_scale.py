"""bench/run.py --scale runs end to end on small disks (--quick: a 64 GiB
sparse disk against a 2 GiB one, used maps of 64 GiB filesystems) and
writes its section between its markers.  No timing is checked."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "mkntfs", "losetup",
                               root=True)


def test_scale_quick_writes_its_section(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n<!-- bench:begin (written by "
                   "bench/run.py; do not edit) -->\nmain\n<!-- bench:end "
                   "-->\n\nnotes\n")
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--scale", "--quick", "--rounds=1",
         "--warm", f"--work={work}", f"--out={out}"], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert text.rstrip().endswith("notes") and "\nmain\n" in text
    begin = text.index("<!-- bench-scale:begin")
    assert begin > text.index("<!-- bench:end -->")
    section = text[begin:text.index("<!-- bench-scale:end -->")]
    for row in ("| capture | rdeploy capture, 64 GiB disk |",
                "| capture | rdeploy capture, 2 GiB disk |",
                "| restore | rdeploy restore, 64 GiB disk |",
                "| restore | rdeploy restore, 2 GiB disk |"):
        line = next(x for x in section.splitlines() if x.startswith(row))
        wall, rss = float(line.split("|")[4]), float(line.split("|")[6])
        assert wall > 0 and rss > 0, line
    for fs in ("ext4", "ntfs"):
        maps = [x for x in section.splitlines() if x.startswith(f"| {fs} |")]
        assert len(maps) == 2, maps        # 4 GiB and 64 GiB
        assert all(float(x.split("|")[5]) > 0 for x in maps)   # peak RSS
    assert section.count("PASS") + section.count("FAIL") == 4
    left = sorted(p.name for p in work.iterdir())
    assert all(name.startswith("disk-") for name in left), left
