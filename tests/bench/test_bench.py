"""The benchmark script runs end to end on tiny disks (--quick) and writes
its table between the markers of the results file.  No timing is checked
here: the targets are for bench/run.py on a real run, not for unit tests."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("partclone.ext4", "partclone.fat32", "partclone.ntfs", "lz4", "zstd",
         "e2image", "qemu-img", "sgdisk", "sfdisk", "mkfs.ext4", "mkfs.fat",
         "mcopy", "mkntfs", "ntfs-3g", "losetup")
pytestmark = pytest.mark.needs(*TOOLS, root=True)

CONTENDERS = ("rdeploy capture (file)", "rdeploy capture (loop)",
              "partclone.<fs> -c \\| lz4 -1, per partition",
              "lz4 -1 (whole disk)", "zstd -1 -T0 (whole disk)",
              "e2image -ra \\| lz4 -1 (ext4 only)",
              "qemu-img convert -O qcow2", "rdeploy restore",
              "lz4 -d \\| partclone.<fs> -r, per partition",
              "qemu-img convert -O raw", "python-lz4 alone",
              # issue 19: the copy floor and today's peers
              "copy floor: read the used ranges, write them to a file",
              "copy floor: read that file, write at the disk offsets",
              "partclone.<fs> -c \\| zstd -1 -T0, per partition",
              "zstd -d \\| partclone.<fs> -r, per partition",
              "rdeploy capture --compress=zstd (file)",
              "rdeploy capture --compress=zstd (loop)",
              "rdeploy capture --compress=zstd --level=1 (loop)",
              "rdeploy restore (zstd image)")


def test_quick_run_writes_the_table(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes\n\n"
                   "<!-- bench:begin (written by bench/run.py; do not edit) "
                   "-->\nold table\n<!-- bench:end -->\n\nmore notes\n")
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--rounds=1", "--warm",
         f"--work={work}", f"--out={out}"], cwd=ROOT, capture_output=True,
        text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written notes\n")
    assert text.rstrip().endswith("more notes") and "old table" not in text
    assert "cores" in text and "Load average at start" in text
    assert "bench/run.py --quick --rounds=1" in text    # the command line
    for disk in ("(a)", "(b)", "(c)"):
        assert f"### Disk {disk}" in text
    for name in CONTENDERS:
        assert name in text, name
    rows = [line.split("|") for line in text.splitlines()
            if line.startswith("| capture | rdeploy capture (file)")]
    assert len(rows) == 3                               # one per disk
    for row in rows:
        wall, cpu, rss, size = (float(row[i]) for i in (4, 5, 6, 7))
        assert wall > 0 and cpu > 0 and rss > 0 and size > 0
    assert "PASS" in text or "FAIL" in text
    # disks (a) and (b) captured in the same rounds, and the target on them
    assert "### Disk (b) against disk (a), paired" in text
    paired = [line for line in text.splitlines()
              if line.startswith("| capture | rdeploy capture of disk (")]
    assert len(paired) == 4, paired                 # 2 disks x file, loop
    assert "(paired rounds; target <= 1.2x)" in text
    # issue 19: every disk's ratios to the copy floor, (c)'s judged
    for disk in "abc":
        assert f"Copy floor of disk ({disk}):" in text
    assert "restore of disk (c): " in text and "x the copy floor" in text
    if shutil.which("bmaptool"):
        assert "bmaptool create" in text and "bmaptool copy --bmap" in text
    # Nothing left behind: no loop device over the work files, no images.
    loops = subprocess.run(["losetup", "-a"], capture_output=True,
                           text=True).stdout
    assert str(work) not in loops
    left = sorted(p.name for p in work.iterdir())
    assert all(name.startswith("disk-") for name in left), left
