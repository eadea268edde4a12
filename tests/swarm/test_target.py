"""The receiver's target (diskimage.swarm.target): refused when small,
marked and its guard zones zeroed before any piece, checked record by
record after the pieces, and finished (backup GPT at the end of a larger
disk, new identities) with tools of the field judging the result."""

import json
import os
import subprocess
import tempfile

import pytest

from diskimage import restoremark
from diskimage.errors import (CorruptImageError, IncompleteTargetError,
                              TargetError)
from diskimage.image import format as fmt
from diskimage.swarm.descriptor import parse_torrent
from diskimage.swarm.rawview import prepare
from diskimage.swarm import target as targets
from diskimage.swarm.target import check, finish, marker_name
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import MiB, read_at
from tests.swarm.mapdisk import (gpt_image, loop, mbr_image, odd_image,
                                 receive_by_hand)

FILL = b"\xa5"


def open_target(*args, **options):
    """target.open_target, its hold on the target let go at once (a
    receive keeps it until finish)."""
    state = targets.open_target(*args, **options)
    os.close(state.pop("hold"))
    return state


@pytest.fixture(scope="module")
def torrents(tmp_path_factory):
    d = tmp_path_factory.mktemp("tgt")
    out = {}
    for kind, build in (("gpt", gpt_image), ("mbr", mbr_image),
                        ("odd", odd_image)):
        disk, image = build(d)
        summary = prepare(image, d / f"{kind}.torrent")
        desc = parse_torrent((d / f"{kind}.torrent").read_bytes(),
                             f"{kind}.torrent")
        out[kind] = disk, image, summary, desc
    return out


def filled(path, size):
    """A disk file whose every byte is FILL: what was there before."""
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(FILL * MiB)
        f.write(FILL * (size % MiB))
    return path


def test_a_smaller_target_is_refused_untouched(torrents, tmp_path):
    _, _, _, desc = torrents["gpt"]
    target = filled(tmp_path / "small.img", desc.length - MiB)
    with pytest.raises(TargetError, match="too small") as e:
        open_target(target, desc, "x.torrent", yes_checked=True)
    assert e.value.exit_code == 5
    assert read_at(target, 0, MiB) == FILL * MiB
    with pytest.raises(TargetError, match="--yes"):
        open_target(filled(tmp_path / "t.img", desc.length), desc,
                    "x.torrent", yes_checked=False)


def test_a_mounted_target_is_refused(torrents, tmp_path):
    _, _, _, desc = torrents["gpt"]
    target = tmp_path / "m.img"
    with open(target, "wb") as f:
        f.truncate(desc.length)
    with loop(target, MiB, 16 * MiB) as dev, \
            tempfile.TemporaryDirectory() as mnt:
        subprocess.run(["mkfs.ext4", "-q", dev], check=True)
        subprocess.run(["mount", dev, mnt], check=True)
        try:
            with pytest.raises(TargetError, match="mounted") as e:
                open_target(target, desc, "x.torrent", yes_checked=True)
        finally:
            subprocess.run(["umount", mnt], check=True)
    assert e.value.exit_code == 5
    assert read_at(target, 0, 512) == bytes(512)


@pytest.mark.parametrize("kind", ["gpt", "mbr", "odd"])
def test_marker_first_guard_zones_zeroed_rest_untouched(torrents, kind,
                                                        tmp_path):
    _, _, summary, desc = torrents[kind]
    target = filled(tmp_path / "t.img", desc.length)
    state = open_target(target, desc, "rel/x.torrent", yes_checked=True)
    assert state["resume"] is False
    zones = state["guard_zones"]
    assert zones[0][0] == 0
    with open(target, "rb") as f:
        marker = restoremark.unpack(f.read(512), 0)
        assert marker.name == "swarm:" + os.path.abspath("rel/x.torrent")
        assert marker.root == desc.root and marker.phase == 1
        for start, end in zones:
            f.seek(start)
            body = f.read(end - start)
            if start == 0:
                body = body[512:]
            assert body.count(0) == len(body), (start, end)
        f.seek(zones[0][1])     # between the zones: as it was
        assert f.read(4096) == FILL * 4096
    result = rdeploy("verify-target", target)
    assert result.returncode == 13, result.stderr.decode()
    assert "swarm:" in result.stderr.decode()
    again = open_target(target, desc, "rel/x.torrent", yes_checked=True)
    assert again["resume"] is True and again["marker"].root == desc.root
    # half a receive: everything but the held pieces; still marked
    receive_by_hand(desc, summary["raw"], target, stop_before_held=True)
    assert rdeploy("verify-target", target).returncode == 13
    with pytest.raises(CorruptImageError, match="does not match"):
        check(target, desc)
    for new_ids in (False, True):
        with pytest.raises(IncompleteTargetError, match="marker") as e:
            finish(target, desc, new_ids=new_ids)
        assert e.value.exit_code == 13
    assert read_at(target, 0, 14) == restoremark.MAGIC
    assert open_target(target, desc, "rel/x.torrent",
                       yes_checked=True)["resume"] is True


def test_marker_names_the_source_without_secrets():
    assert marker_name("https://u:pw@h.example/a/x.torrent?sig=1") == \
        "swarm:https://h.example/a/x.torrent"
    assert marker_name("magnet:?xt=urn:btih:ab&dn=x&tr=y") == \
        "swarm:magnet:?xt=urn:btih:ab"
    assert marker_name("/a/b.torrent") == "swarm:/a/b.torrent"


def received(torrents, kind, target):
    _, _, summary, desc = torrents[kind]
    open_target(target, desc, str(target) + ".torrent", yes_checked=True)
    receive_by_hand(desc, summary["raw"], target)
    return desc


@pytest.mark.parametrize("kind", ["gpt", "mbr", "odd"])
def test_check_passes_a_whole_receive_and_it_equals_the_disk(torrents, kind,
                                                             tmp_path):
    disk, image, _, _ = torrents[kind]
    target = filled(tmp_path / "t.img", 64 * MiB)
    desc = received(torrents, kind, target)
    assert not read_at(target, 0, 14) == restoremark.MAGIC
    summary = check(target, desc)
    assert summary["chunks"] == len(desc.entries)
    assert summary["checked_bytes"] == sum(e["length"] for e in desc.entries)
    result = rdeploy("verify-target", target, image)
    assert result.returncode == 0, result.stderr.decode()
    fin = finish(target, desc, new_ids=False)
    assert fin == {"steps": [], "ids": {}}
    assert rdeploy("verify-target", target, image).returncode == 0


def test_check_finds_a_flipped_data_byte_and_a_dirty_zero(torrents,
                                                          tmp_path):
    target = filled(tmp_path / "t.img", 64 * MiB)
    desc = received(torrents, "gpt", target)
    data = next(e for e in desc.entries if e["kind"] == fmt.KIND_DATA and
                e["disk_offset"] > 2 * MiB)
    zero = next(e for e in desc.entries if e["kind"] == fmt.KIND_ZERO and
                e["length"] > 8192)
    with open(target, "r+b") as f:
        f.seek(data["disk_offset"] + 100)
        byte = f.read(1)
        f.seek(data["disk_offset"] + 100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CorruptImageError) as e:
        check(target, desc)
    assert e.value.exit_code == 4
    assert f"disk offset {data['disk_offset']} " in str(e.value)
    assert "DATA chunk" in str(e.value) and "\n" not in str(e.value)
    with open(target, "r+b") as f:
        f.seek(data["disk_offset"] + 100)
        f.write(byte)
        dirty = zero["disk_offset"] + 5000
        f.seek(dirty)
        f.write(b"\x01")
    with pytest.raises(CorruptImageError,
                       match=f"disk offset {dirty} .ZERO range"):
        check(target, desc)


def blkid(path, offset, tag):
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, "-O",
                           str(offset), str(path)], capture_output=True,
                          text=True).stdout.strip()


def fsck_clean(target, start, size):
    with loop(target, start, size, read_only=True) as dev:
        result = subprocess.run(["e2fsck", "-fn", dev], capture_output=True,
                                text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_finish_on_a_larger_gpt_target_moves_the_backup(torrents, tmp_path):
    disk, image, _, desc = torrents["gpt"]
    size = 80 * MiB
    target = filled(tmp_path / "big.img", size)
    subprocess.run(["sfdisk", "-q", str(target)], check=True, text=True,
                   input="label: gpt\nstart=2048, size=100000\n")
    assert read_at(target, size - 512, 8) == b"EFI PART"
    open_target(target, desc, "x.torrent", yes_checked=True)
    # the target's own backup GPT is gone before any piece lands
    assert read_at(target, size - 33 * 512, 33 * 512) == bytes(33 * 512)
    assert "Creating new GPT entries" in subprocess.run(   # no GPT found
        ["sgdisk", "-v", str(target)], capture_output=True, text=True).stdout
    received(torrents, "gpt", target)
    check(target, desc)
    result = finish(target, desc, new_ids=False, source_name="x.torrent")
    assert result["steps"] == [f"backup GPT moved to the end ({size} bytes)"]
    verdict = subprocess.run(["sgdisk", "-v", str(target)],
                             capture_output=True, text=True)
    assert verdict.returncode == 0 and "No problems found" in \
        verdict.stdout, verdict.stdout
    last = read_at(target, size - 512, 512)
    assert last[:8] == b"EFI PART"
    assert int.from_bytes(last[24:32], "little") == size // 512 - 1
    ours = json.loads(subprocess.run(["sfdisk", "--json", str(target)],
                                     capture_output=True, text=True,
                                     check=True).stdout)["partitiontable"]
    theirs = json.loads(subprocess.run(["sfdisk", "--json", str(disk)],
                                       capture_output=True, text=True,
                                       check=True).stdout)["partitiontable"]
    assert ours["id"] == theirs["id"]
    assert [(p["start"], p["size"], p["uuid"]) for p in ours["partitions"]] \
        == [(p["start"], p["size"], p["uuid"]) for p in theirs["partitions"]]
    assert ours["lastlba"] == size // 512 - 34
    assert blkid(target, MiB, "UUID") == blkid(disk, MiB, "UUID")
    fsck_clean(target, MiB, 32 * MiB)
    assert rdeploy("verify-target", target).returncode == 0


@pytest.mark.parametrize("kind", ["gpt", "mbr"])
def test_new_ids_after_the_download(torrents, kind, tmp_path):
    disk, _, _, desc = torrents[kind]
    target = filled(tmp_path / "t.img", 64 * MiB)
    received(torrents, kind, target)
    check(target, desc)
    result = finish(target, desc, new_ids=True)
    parts = [a for a in desc.meta["areas"] if a["kind"] == "partition" and
             a["filesystem"] in ("ext4", "vfat", "fat16", "fat12", "fat32")]
    assert parts
    for area in parts:
        old = blkid(disk, area["start"], "UUID")
        new = blkid(target, area["start"], "UUID")
        assert old and new and old != new, area
        if area["filesystem"] == "ext4":
            fsck_clean(target, area["start"], area["size"])
    assert blkid(target, 0, "PTUUID") != blkid(disk, 0, "PTUUID")
    if kind == "gpt":
        verdict = subprocess.run(["sgdisk", "-v", str(target)],
                                 capture_output=True, text=True)
        assert "No problems found" in verdict.stdout, verdict.stdout
        assert "disk GUID" in result["ids"]
    else:
        assert "disk signature" in result["ids"]
    assert not read_at(target, 0, 14) == restoremark.MAGIC
    assert rdeploy("verify-target", target).returncode == 0


def test_a_block_device_target_end_to_end(torrents, tmp_path):
    """A loop device (this test's own) as the target: BLKZEROOUT for the
    guard zones, the pieces, the check, and a finish that moves the backup
    GPT and gives new ids through loop devices over its partitions."""
    disk, image, summary, desc = torrents["gpt"]
    backing = filled(tmp_path / "dev.img", 72 * MiB)
    with loop(backing, 0, 72 * MiB) as dev:
        state = open_target(dev, desc, "lab.torrent", yes_checked=True)
        assert state["disk_size"] == 72 * MiB and not state["resume"]
        assert read_at(dev, 512, MiB - 512) == bytes(MiB - 512)
        assert rdeploy("verify-target", dev).returncode == 13
        receive_by_hand(desc, summary["raw"], dev)
        check(dev, desc)
        result = finish(dev, desc, new_ids=True, source_name="lab.torrent")
        assert "disk GUID" in result["ids"] and len(result["steps"]) == 2
        verdict = subprocess.run(["sgdisk", "-v", dev], capture_output=True,
                                 text=True)
        assert "No problems found" in verdict.stdout, verdict.stdout
        assert blkid(dev, MiB, "UUID") != blkid(disk, MiB, "UUID")
        fsck_clean(dev, MiB, 32 * MiB)
        assert rdeploy("verify-target", dev).returncode == 0
