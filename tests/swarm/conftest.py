"""The lab fixture shared by tests/swarm/test_receive*.py (one seeder with
opentracker for the package, built once)."""

import signal
import subprocess

import pytest

from tests.rdeploy_helpers import rdeploy
from tests.swarm.swarmlab import (DISK, SEED, build_golden, free_port,
                                  sha256_head, start)


@pytest.fixture(scope="package")
def lab(tmp_path_factory):
    """The golden disk, its image, the host's restore of it (the bytes
    every receiver must end with), a torrent with the seeder and the
    tracker in it, and the seeder (rdeploy swarm seed --run-tracker)."""
    d = tmp_path_factory.mktemp("swarm")
    disk = build_golden(d)
    image = d / "golden.rdi"
    assert rdeploy("capture", disk, image, "-q").returncode == 0
    host = d / "host.img"
    result = rdeploy("restore", image, host, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    port, tracker = free_port(), free_port()
    torrent = d / "lab.torrent"
    result = rdeploy("swarm", "prepare", image, "-o", torrent,
                     f"--peer={SEED}:{port}",
                     f"--tracker=http://{SEED}:{tracker}/announce")
    assert result.returncode == 0, result.stderr.decode()
    magnet = result.stdout.decode().strip()
    seeder = start("swarm", "seed", torrent, f"--listen={SEED}:{port}",
                   f"--run-tracker={tracker}", "--progress=json")
    seeder.until(lambda r: r.of("ready"), what="the seeder ready")
    try:
        yield {"dir": d, "image": image, "torrent": torrent,
               "magnet": magnet, "port": port, "seeder": seeder,
               "digest": sha256_head(host, DISK)}
    finally:
        seeder.proc.send_signal(signal.SIGTERM)
        assert seeder.wait(30) == 143, seeder.stderr
        summary = seeder.of("summary")[0]["result"]
        assert summary["uploaded_bytes"] > 0, summary
        fed = summary["torrents"][0]["peers_fed"]
        assert 1 <= fed <= summary["torrents"][0]["peers_seen"], summary
        out = subprocess.run(["pgrep", "-f", f"opentracker -p {tracker}"],
                             capture_output=True, text=True).stdout
        assert out == "", "opentracker outlived its seeder"
