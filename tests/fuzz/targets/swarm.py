"""A swarm descriptor (.torrent of rdeploy) over hostile bytes:
diskimage.swarm.descriptor.parse_torrent, as `rdeploy swarm receive` reads
a file or a URL's answer (bencode, the info dict's limits, the skeleton's
records and root), then what a receiver asks of it (wanted, held and zero
pieces, the magnet link, the bytes again).

`python -m tests.fuzz.targets.swarm` writes the seeds (the torrent of a
small GPT disk's image, made by the real capture and prepare) into
tests/fuzz/corpus/swarm/."""

import os
import sys

from diskimage.swarm.descriptor import parse_torrent

MAX_LEN = 16384


def one_input(data):
    desc = parse_torrent(data, "fuzz.torrent")
    desc.wanted_pieces()
    desc.held_pieces()
    desc.zero_pieces()
    desc.magnet()
    desc.to_bytes()


def write_seeds():
    import hashlib
    import tempfile
    from pathlib import Path

    from diskimage.swarm.rawview import prepare
    from tests.swarm.mapdisk import gpt_image
    out = Path(__file__).parents[1] / "corpus" / "swarm"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        _, image = gpt_image(Path(d))
        # 1 MiB pieces as the seeds were written (the automatic size of
        # this 64 MiB disk is 64 KiB now: 1024 hashes, over MAX_LEN)
        for name, options in (("plain", {"piece_size": 1 << 20}), ("seeded", {
                "piece_size": 1 << 20,
                "web_seeds": ["http://192.0.2.1/lab.raw"],
                "trackers": ["udp://192.0.2.1:6969"],
                "peers": [("192.0.2.1", 6881), ("2001:db8::1", 6882)]}),
                ("small-pieces", {"piece_size": 256 << 10})):
            torrent = os.path.join(d, f"{name}.torrent")
            prepare(image, torrent, **options)
            data = open(torrent, "rb").read()
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":
    sys.exit(write_seeds())
