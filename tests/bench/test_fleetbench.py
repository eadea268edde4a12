"""bench/run.py --fleet on the quick disk (a), one round: every fleet row
runs for real (multicast to 4 receivers and HTTP restores on the bench's
own bridge, delta and full restore), every restored disk is checked by
the bench itself, and the section lands between its markers.  No timing
is checked (see test_bench)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import fleetbench  # noqa: E402
from fleetrun import Sample  # noqa: E402

TOOLS = ("ip", "tc", "udp-sender", "udp-receiver", "sgdisk", "sfdisk",
         "mkfs.ext4", "e2fsck", "mkfs.fat", "mcopy", "mkntfs", "ntfs-3g",
         "losetup")


def _sample(wall, written=0, summary=None):
    return Sample(wall, wall / 2, 1024, written, 0, "", summary or {})


def test_tables_from_samples():
    net = {row: {"samples": [], "sender": [], "failed": []}
           for row in fleetbench.ROWS}
    net["multicast"]["samples"] = [_sample(w) for w in (4, 5, 5, 6)]
    net["multicast"]["sender"] = [_sample(6.5)]
    net["http-1"]["samples"] = [_sample(2.0)]
    net["http-4"]["failed"] = ["rdeploy: error: refused (HTTP 403)"]
    net["tc_drops"] = 0
    lines, link = fleetbench.network_table(net, 10 * 10 ** 6, 200)
    text = "\n".join(lines)
    # 10 MB over the median 5 s: 2 MB/s each, 8 MB/s for the four
    assert "| multicast (udpcast) to 4 receivers | 4 | 5.00 (4.00-6.00) | " \
        "2.0 | 8.0 | 6.50 | 2.50 |" in text
    assert "| unicast HTTP restore, one receiver alone | 1 | 2.00 " \
        "(2.00-2.00) | 5.0 | 5.0 | - | 1.00 |" in text
    assert "4 at once (failed in 1 round(s): rdeploy: error: refused " \
        "(HTTP 403)) | 4 | - |" in text
    assert "200 Mbit/s by tc tbf" in link and "--rate=180" in link
    delta = {"full": {"samples": [_sample(3, 100 * 10 ** 6)], "failed": []},
             "delta": {"samples": [_sample(2, 5 * 10 ** 6, {"result": {
                 "delta": {"read": 110 * 10 ** 6, "written": 4 * 10 ** 6,
                           "chunks_same": 50}}})], "failed": []}}
    text = "\n".join(fleetbench.delta_table(delta, True, {"files": 10,
                                                          "bytes": 2 << 20}))
    assert "| rdeploy restore --delta | 2.00 | 1.00 | 5.0 | 5.0 % | read " \
        "110.0 MB, written 4.0 MB, chunks_same 50 |" in text
    assert "the same bytes (content digest) in every round" in text


@pytest.mark.needs(*TOOLS, root=True)
def test_quick_fleet_rows_run(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n<!-- bench:begin (written by bench/run.py;"
                   " do not edit) -->\nold\n<!-- bench:end -->\n\nnotes\n")
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--fleet", "--quick", "--rounds=1",
         "--fleet-rate=1000",
         f"--work={work}", f"--out={out}"], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert text.index(fleetbench.BEGIN) > text.index("<!-- bench:end -->")
    assert text.rstrip().endswith("notes")
    section = text.split(fleetbench.BEGIN)[1].split(fleetbench.END)[0]
    assert "cores" in section and "bench/run.py --fleet --quick" in section
    assert "failed" not in section, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")
            for line in section.splitlines() if line.startswith("| ")}
    for name in fleetbench.TITLES.values():
        assert name in rows, name
        assert float(rows[name][2]) > 0
    assert "the same bytes (content digest) in every round" in section
    delta = float(rows["rdeploy restore --delta"][4])
    assert 0 < delta < float(rows["rdeploy restore (full)"][4]) / 2
    # nothing left behind: namespaces, loop devices, images
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True,
                            text=True).stdout
    assert "rdb-fleet-" not in spaces
    loops = subprocess.run(["losetup", "-a"], capture_output=True,
                           text=True).stdout
    assert str(work) not in loops
    left = sorted(p.name for p in work.iterdir())
    assert all(name.startswith("disk-") for name in left), left
