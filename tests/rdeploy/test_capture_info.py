"""rdeploy info names what it cannot map as `blkid -p` does, with its label
and UUID: XFS, btrfs, LUKS and an LVM physical volume, made by their own
tools (mkfs.xfs, mkfs.btrfs, cryptsetup luksFormat with a key file,
pvcreate) on loop devices over the partitions of a sparse GPT disk file
(issue 11 item 19)."""

import json
import os
import subprocess

import pytest

from tests.smalldisk import MiB, sfdisk
from tests.rdeploy_helpers import rdeploy

TOOLS = ["mkfs.xfs", "mkfs.btrfs", "cryptsetup", "pvcreate", "blkid",
         "losetup"]
pytestmark = pytest.mark.needs(*TOOLS, root=True)

# (start sector, sectors, how to make it); XFS needs 300 MiB at least
PARTS = [(2048, 614400, "xfs"), (616448, 262144, "btrfs"),
         (878592, 40960, "luks"), (919552, 40960, "lvm")]


def run(*cmd, **kw):
    return subprocess.run(list(map(str, cmd)), check=True,
                          capture_output=True, text=True, **kw).stdout


def make(kind, dev, tmp):
    if kind == "xfs":
        run("mkfs.xfs", "-q", "-L", "xfs-lab", dev)
    elif kind == "btrfs":
        run("mkfs.btrfs", "-q", "-L", "btrfs-lab", dev)
    elif kind == "luks":
        key = tmp / "key"
        key.write_bytes(os.urandom(32))
        run("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--label",
            "luks-lab", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations",
            1000, "--key-file", key, dev)
    else:
        run("pvcreate", "-q", "-ff", "-y", dev)


def blkid(dev):
    """blkid -p's TYPE, LABEL and UUID of `dev`."""
    out = run("blkid", "-p", "-o", "export", dev)
    tags = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return tags["TYPE"], tags.get("LABEL"), tags.get("UUID")


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsinfo")
    path = tmp / "disk.img"
    with open(path, "wb") as f:
        f.truncate(520 * MiB)
    sfdisk(path, "label: gpt\n" + "".join(
        f"start={start}, size={size}\n" for start, size, _ in PARTS))
    expected = {}
    for number, (start, size, kind) in enumerate(PARTS, 1):
        dev = run("losetup", "-o", start * 512, "--sizelimit", size * 512,
                  "--find", "--show", path).strip()
        try:
            make(kind, dev, tmp)
            expected[number] = blkid(dev)
        finally:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
    image = tmp / "disk.rdi"
    result = rdeploy("capture", path, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    return image, expected


def test_info_json_names_kinds_labels_and_uuids_as_blkid(disk):
    image, expected = disk
    result = rdeploy("info", image, "--json")
    assert result.returncode == 0, result.stderr.decode()
    areas = {a["partition"]: a for a in json.loads(result.stdout)["areas"]
             if a["kind"] == "partition"}
    got = {n: (a["filesystem"], a.get("label") or None, a.get("uuid"))
           for n, a in areas.items()}
    assert got == expected
    assert [t for t, _, _ in expected.values()] == [
        "xfs", "btrfs", "crypto_LUKS", "LVM2_member"]


def test_info_text_shows_labels_and_uuids(disk):
    image, expected = disk
    result = rdeploy("info", image)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    for number, (kind, label, uuid) in expected.items():
        assert f"partition {number}: {kind} uuid {uuid}" in text, text
        if label:
            assert label in text
    assert "None" not in text


def test_info_of_a_table_less_disk_says_whole_disk(tmp_path):
    """A filesystem on the whole disk (no table) is said as such, not as
    'partition -' (issue 11 round 3, volmsg item 5)."""
    path = tmp_path / "whole.img"
    run("mkfs.ext4", "-q", "-F", "-L", "whole-lab", path, "8M")
    uuid = blkid(path)[2]
    image = tmp_path / "whole.rdi"
    result = rdeploy("capture", path, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    text = rdeploy("info", image).stdout.decode()
    assert f"whole disk: ext4 uuid {uuid}, " in text, text
    assert "partition -" not in text, text
    result = rdeploy("restore", image, tmp_path / "back.img", "--dry-run")
    plan = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "partition table: none (the image is of a whole disk)" in plan
    assert "whole disk: 8.0 MiB, written as the image holds it" in plan
    assert "PART" not in plan, plan
    plain = tmp_path / "plain.img"
    plain.write_bytes(b"no filesystem here " * 1000)
    result = rdeploy("capture", plain, tmp_path / "plain.rdi", "-q")
    assert result.returncode == 0, result.stderr.decode()
    text = rdeploy("info", tmp_path / "plain.rdi").stdout.decode()
    assert "whole disk: copied (zero-skip): no filesystem recognised" \
        in text, text
    assert "partition -" not in text, text
