"""An S3-compatible store as the swarm's only web seed, and no seeding
process: moto's server mode in the server's namespace (tests/swarm/
room.py) holding NAME.raw, uploaded with boto3; the torrent's web seed
is a presigned URL of it (a query string on a private address: what
libtorrent's SSRF mitigation refuses unless the receiver turns it off,
docs/swarm.md).  4 receivers, two on each subnet, complete and verify."""

import os
import subprocess
import sys
import time

import pytest

from tests import netns
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sha256
from tests.swarm import labdisk, times
from tests.swarm.room import Room, blank_disks

pytestmark = pytest.mark.needs("ip", "tc", "sfdisk", "mkfs.ext4",
                               "mkfs.fat", "mcopy", "e2fsck", "fsck.fat",
                               root=True)

S3_PORT = 5000


def _client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(s3={"addressing_style": "path"},
                                      signature_version="s3v4"))


def _upload(endpoint, raw):
    """Inside the server's namespace: the bucket (once moto answers) and
    NAME.raw in it."""
    s3 = _client(endpoint)
    deadline = time.monotonic() + 30
    while True:
        try:
            s3.create_bucket(Bucket="lab")
            break
        except Exception:       # botocore's connection errors, until up
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    s3.upload_file(raw, "lab", "images/lab.raw")


def test_four_receivers_from_a_presigned_s3_url(tmp_path):
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    lab = labdisk.build(tmp_path, 16)
    want = times.reference(lab, tmp_path)
    disks = blank_disks(tmp_path, 4, lab["size"])
    with Room(on_a=2, on_b=2, server_mbit=200, host_mbit=200) as room:
        endpoint = f"http://{room.server_address}:{S3_PORT}"
        # signing needs no network: the URL first, the torrent naming it,
        # then the object
        url = _client(endpoint).generate_presigned_url(
            "get_object", Params={"Bucket": "lab", "Key": "images/lab.raw"},
            ExpiresIn=900)
        assert "X-Amz-Signature=" in url
        torrent = os.path.join(tmp_path, "lab.torrent")
        result = rdeploy("swarm", "prepare", lab["image"], "-o", torrent, "-q",
                         f"--web-seed={url}")
        assert result.returncode == 0, result.stderr.decode()
        # its own process in the server's namespace: in the test's
        # process it shared the GIL with the threads reading the
        # receivers, and twice in four runs a receiver's web seed was
        # set aside by libtorrent (its retry interval) and it stalled
        moto = room.net.start(room.server, [
            sys.executable, "-m", "moto.server", "-H", room.server_address,
            "-p", str(S3_PORT)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        netns.call_in(room.server, _upload, endpoint,
                      os.path.join(tmp_path, "lab.raw"))
        runs = [room.receive(i, torrent, disk)
                for i, disk in enumerate(disks)]
        for i, run in enumerate(runs):
            assert times.finished(run, 120, f"receiver {i}") == 0, \
                f"receiver {i}: " + run.stderr[-3000:]
        netns.stop(moto)
    summaries = [run.of("end")[-1]["result"] for run in runs]
    assert all(s["web_seed_bytes"] > 0 for s in summaries), summaries
    for disk in disks:
        result = rdeploy("verify-target", disk, lab["image"])
        assert result.returncode == 0, result.stderr.decode()
        assert labdisk.fsck_clean(disk, lab["manifest"]) == []
        assert sha256(disk) == want
