"""rdeploy swarm prepare's mapping (diskimage.swarm.rawview, .descriptor):
NAME.raw is what a plain restore leaves, libtorrent agrees with its piece
hashes, the wanted and held pieces follow the image's records
(hostile descriptors: test_descriptor_hostile.py; the images and their
torrents, prepared once: conftest.py)."""

import hashlib
import os
import time

import pytest

from diskimage.errors import CorruptImageError, InputError, UnsupportedError
from diskimage.image.reader import ImageReader
from diskimage.swarm import bencode, libtorrent
from diskimage.swarm.descriptor import piece_size_for
from diskimage.swarm.rawview import prepare
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import MiB
from tests.swarm.mapdisk import captured

KiB = 1 << 10
GiB, TiB = 1 << 30, 1 << 40


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.mark.parametrize("kind", ["gpt", "mbr", "odd"])
def test_raw_is_what_a_plain_restore_leaves(prepared, kind, tmp_path):
    image, summary, desc = prepared[kind]
    target = tmp_path / "plain.img"
    with open(target, "wb") as f:
        f.truncate(desc.length)
    result = rdeploy("restore", image, target, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(target) == sha256(summary["raw"])
    st = os.stat(summary["raw"])
    assert st.st_size == desc.length
    assert st.st_blocks * 512 < desc.length // 2      # sparse: holes unwritten
    assert summary["disk_size"] == desc.length and desc.name == \
        f"{kind}.raw"
    with ImageReader(str(image)) as reader:
        assert summary["root"] == reader.root.hex() == desc.root.hex()


@pytest.mark.parametrize("kind", ["gpt", "mbr", "odd"])
def test_libtorrent_finds_every_piece_valid(prepared, kind):
    lt = libtorrent()
    _, summary, desc = prepared[kind]
    info = lt.torrent_info(summary["torrent"])
    assert (info.num_pieces(), info.piece_length(), info.total_size()) == \
        (desc.num_pieces, desc.piece_size, desc.length)
    assert str(info.info_hashes().v1) == desc.infohash == summary["infohash"]
    with open(summary["raw"], "rb") as f:       # lt's hashes, ours by hand
        for i in range(info.num_pieces()):
            piece = f.read(info.piece_size(i))
            assert bytes(info.hash_for_piece(i)) == \
                hashlib.sha1(piece).digest(), i
    sp = lt.session_params()
    sp.settings = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False,
                   "enable_lsd": False, "enable_upnp": False,
                   "enable_natpmp": False,
                   "alert_mask": lt.alert_category.status}
    sp.disk_io_constructor = "posix_disk_io_constructor"
    session = lt.session(sp)
    atp = lt.add_torrent_params()
    atp.ti = info
    atp.save_path = os.path.dirname(summary["raw"])
    handle = session.add_torrent(atp)   # no resume data, no seed_mode:
    deadline = time.monotonic() + 60    # every piece hashed from the file
    while time.monotonic() < deadline and not any(
            isinstance(a, lt.torrent_checked_alert)
            for a in session.pop_alerts()):
        time.sleep(0.05)
    have = list(handle.status().pieces)
    session.remove_torrent(handle)
    assert all(have[i] for i in desc.wanted_pieces())
    assert all(have), "every piece of NAME.raw, free space too, is valid"


def entry_ranges(image):
    with ImageReader(str(image)) as reader:
        return [(e.disk_offset, e.disk_offset + e.length)
                for e in reader.entries], reader.metadata


def pieces_over(ranges, size):
    return {i for start, end in ranges if end > start
            for i in range(start // size, (end - 1) // size + 1)}


@pytest.mark.parametrize("kind", ["gpt", "mbr", "odd"])
def test_wanted_and_held_pieces_follow_the_records(prepared, kind):
    image, summary, desc = prepared[kind]
    ranges, meta = entry_ranges(image)
    with ImageReader(str(image)) as reader:
        entries = reader.entries
    size = desc.piece_size
    wanted = pieces_over(ranges, size)
    assert desc.wanted_pieces() == sorted(wanted)
    assert summary["wanted_pieces"] == len(wanted) < desc.num_pieces
    last = desc.num_pieces - 1
    assert desc.wanted_bytes() == sum(
        size if i != last else desc.length - i * size for i in wanted)
    data = pieces_over([(e.disk_offset, e.disk_offset + e.length)
                        for e in entries if not e.is_zero], size)
    assert desc.zero_pieces() == sorted(wanted - data)
    with open(summary["raw"], "rb") as f:      # they are zeros in NAME.raw
        for i in desc.zero_pieces():
            f.seek(i * size)
            assert f.read(size).count(0) == min(size, desc.length - i * size)
    zones = []
    for a in meta["areas"]:
        if a["kind"] in ("ebr", "gpt-backup"):
            zones.append((a["start"], a["start"] + a["size"]))
        else:       # head, partition: the first MiB
            zones.append((a["start"], a["start"] + min(a["size"], MiB)))
    held = desc.held_pieces()
    assert sorted(held) == sorted(pieces_over(zones, size) & wanted)
    assert held[-1] == 0 and len(set(held)) == len(held)
    tables = pieces_over([(a["start"], a["start"] + a["size"])
                          for a in meta["areas"] if a["kind"] != "partition"],
                         size)
    parts_first = [i for i in held if i not in tables]
    assert held[:len(parts_first)] == parts_first   # partition starts first
    if kind == "gpt":       # the backup GPT at the end is a held piece
        assert last in held and held.index(last) > len(parts_first) - 1
    if kind == "mbr":
        assert any(a["kind"] == "ebr" for a in meta["areas"])


def test_the_torrent_carries_seeds_trackers_peers_and_magnet(prepared):
    _, summary, desc = prepared["gpt"]
    top = bencode.decode(open(summary["torrent"], "rb").read(), "t")
    assert top[b"url-list"] == [b"http://192.0.2.1/x.raw"]
    assert top[b"announce"] == b"http://192.0.2.1:6969/announce"
    assert top[b"nodes"] == top[b"rdeploy-peers"] == [[b"192.0.2.1", 6881]]
    assert set(top[b"info"]) == {b"name", b"length", b"piece length",
                                 b"pieces", b"rdeploy"}
    assert desc.peers == [("192.0.2.1", 6881)]
    magnet = summary["magnet"]
    assert magnet.startswith(f"magnet:?xt=urn:btih:{desc.infohash}&dn=gpt.raw")
    assert "x.pe=192.0.2.1:6881" in magnet and "ws=http%3A%2F%2F" in magnet
    lt = libtorrent()
    params = lt.parse_magnet_uri(magnet)
    assert str(params.info_hashes.v1) == desc.infohash
    assert desc.to_bytes() == open(summary["torrent"], "rb").read()


def test_outputs_exist_piece_size_and_force(images, tmp_path):
    _, image = images["gpt"]
    torrent = tmp_path / "a.torrent"
    s = prepare(image, torrent, piece_size=256 * KiB)
    assert s["pieces"] == 256 and s["piece_size"] == 256 * KiB
    with pytest.raises(InputError, match="a.torrent.*--force"):
        prepare(image, torrent)
    os.unlink(torrent)
    with pytest.raises(InputError, match="a.raw.*--force"):
        prepare(image, torrent)
    assert not torrent.exists()
    # the automatic size: 1024 pieces of this 64 MiB disk
    assert prepare(image, torrent, force=True)["piece_size"] == 64 * KiB
    for bad in (3000, 32 * KiB, 128 * MiB):
        with pytest.raises(InputError, match="piece size"):
            prepare(image, tmp_path / "b.torrent", piece_size=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.raw",
                                                          "a.torrent"]


def test_encrypted_and_1_0_images_are_refused(images, tmp_path):
    disk, _ = images["gpt"]
    pw = tmp_path / "pw"
    pw.write_text("swarm secret\n")
    sealed = captured(disk, tmp_path / "sealed.rdi", "--encrypt",
                      f"--passphrase-file={pw}")
    with pytest.raises(InputError, match="encrypted.*in the clear") as e:
        prepare(sealed, tmp_path / "s.torrent")
    assert e.value.exit_code == 3
    import gzip
    from pathlib import Path
    v10 = tmp_path / "v10.rdi"
    v10.write_bytes(gzip.decompress(
        (Path(__file__).parents[1] / "image/data/v10-ext4.rdi.gz")
        .read_bytes()))
    with pytest.raises(UnsupportedError, match="format 1.0") as e:
        prepare(v10, tmp_path / "v.torrent")
    assert e.value.exit_code == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pw", "sealed.rdi", "v10.rdi"]


# --- hostile descriptors -----------------------------------------------------
def test_a_damaged_image_leaves_no_output(images, tmp_path):
    _, image = images["gpt"]
    with ImageReader(str(image)) as reader:
        entry = next(e for e in reader.entries if not e.is_zero and
                     e.disk_offset > 2 * MiB)
    bad = tmp_path / "bad.rdi"
    raw = bytearray(image.read_bytes())
    raw[entry.record_offset + 68 + entry.stored_size // 2] ^= 0x10
    bad.write_bytes(raw)
    cut = tmp_path / "cut.rdi"
    cut.write_bytes(image.read_bytes()[:-100])
    for source in (bad, cut):
        with pytest.raises(CorruptImageError) as e:
            prepare(source, tmp_path / "out.torrent")
        assert e.value.exit_code == 4
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.rdi",
                                                              "cut.rdi"]


def test_prepare_from_a_url_gives_the_same_torrent(prepared, images,
                                                   tmp_path):
    from tests.rangeserver import RangeServer
    image, summary, desc = prepared["gpt"]
    with RangeServer(image.parent) as server:
        s = prepare(server.url(image.name), tmp_path / "gpt.torrent",
                    web_seeds=["http://192.0.2.1/x.raw"],
                    trackers=["http://192.0.2.1:6969/announce"],
                    peers=[("192.0.2.1", 6881)])
        assert server.sent >= image.stat().st_size
    assert s["infohash"] == summary["infohash"]
    assert (tmp_path / "gpt.torrent").read_bytes() == \
        open(summary["torrent"], "rb").read()
    assert sha256(tmp_path / "gpt.raw") == sha256(summary["raw"])


def test_automatic_piece_size_gives_enough_pieces_and_not_too_many():
    """1 MiB, halved while the disk has under 1024 pieces (a swarm needs
    pieces to spread), doubled while it has over 65536."""
    assert piece_size_for(1) == 64 * KiB
    assert piece_size_for(40 * MiB) == 64 * KiB             # 640 pieces
    assert piece_size_for(300 * MiB) == 256 * KiB           # 1200
    assert piece_size_for(GiB) == MiB                       # 1024
    assert piece_size_for(64 * GiB) == MiB                  # 65536
    assert piece_size_for(64 * GiB + 1) == 2 * MiB
    assert piece_size_for(8 * TiB) == 64 * MiB              # 131072
    assert piece_size_for(GiB, 128 * KiB) == 128 * KiB
