"""The fixtures of tests/swarm, each built once for the package: the
golden image, the lab of test_receive*.py (one seeder of it with
opentracker), and the images of test_prepare.py and
test_descriptor_hostile.py with their torrents."""

import signal
import subprocess

import pytest

from diskimage.swarm.descriptor import parse_torrent
from diskimage.swarm.rawview import prepare
from tests.rdeploy_helpers import rdeploy
from tests.swarm.mapdisk import gpt_image, mbr_image, odd_image
from tests.swarm.swarmlab import (DISK, SEED, build_golden, free_port,
                                  sha256_head, start)


@pytest.fixture(scope="package")
def golden(tmp_path_factory):
    """The golden disk's image and the digest of the host's restore of it
    (the bytes every receiver must end with)."""
    d = tmp_path_factory.mktemp("swarm")
    disk = build_golden(d)
    image = d / "golden.rdi"
    assert rdeploy("capture", disk, image, "-q").returncode == 0
    host = d / "host.img"
    result = rdeploy("restore", image, host, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    return {"dir": d, "image": image, "digest": sha256_head(host, DISK)}


@pytest.fixture(scope="package")
def lab(golden):
    """The golden image, a torrent with the seeder and the tracker in it,
    and the seeder (rdeploy swarm seed --run-tracker), which must have
    served by the end."""
    d, image = golden["dir"], golden["image"]
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
        yield {**golden, "torrent": torrent, "magnet": magnet,
               "port": port, "seeder": seeder}
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


@pytest.fixture(scope="package")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    return {"gpt": gpt_image(d), "mbr": mbr_image(d), "odd": odd_image(d)}


@pytest.fixture(scope="package")
def prepared(images, tmp_path_factory):
    """Each image prepared once, read-only: (image, summary, desc)."""
    out = {}
    for kind, (_, image) in images.items():
        d = tmp_path_factory.mktemp(f"prep-{kind}")
        summary = prepare(image, d / f"{kind}.torrent",
                          web_seeds=["http://192.0.2.1/x.raw"],
                          trackers=["http://192.0.2.1:6969/announce"],
                          peers=[("192.0.2.1", 6881)])
        desc = parse_torrent((d / f"{kind}.torrent").read_bytes(), kind)
        out[kind] = image, summary, desc
    return out
