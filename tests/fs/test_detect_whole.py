"""A kind that is not mapped is copied whole, and says why: a hibernation
image in a swap partition (with its swap signature replaced, and TuxOnIce's,
which keeps it), a BitLocker volume whose boot sector looks like FAT, LUKS2
made by cryptsetup, bytes no probe recognises, and a FAT boot sector over a
swap area (two kinds claim it, as blkid -p sees it: none is used).
`rdeploy capture`, then `rdeploy restore` onto a disk full of garbage:
every partition comes back byte for byte; `rdeploy info` (text and --json) and the restore plan name
the reason."""

import json
import os

import pytest

from diskimage.fs import swap
from tests.fs.test_detect_bodies import luks
from tests.fs.test_detect_blkid import bitlocker_like, blank, patch
from tests.fsmaps import (MiB, blkid, partitioned_disk, range_digest,
                          rdeploy, round_trip, run)

pytestmark = pytest.mark.needs("sfdisk", "mkswap", "mkfs.fat", "cryptsetup",
                               "blkid")

# partition: (kind, why it is copied whole)
EXPECTED = {
    1: ("swsuspend", "hibernation image in a swap area (swsuspend)"),
    2: ("swsuspend", "hibernation image in a swap area (swsuspend)"),
    3: ("BitLocker", "encrypted (BitLocker)"),
    4: ("crypto_LUKS", "encrypted (LUKS2)"),
    5: (None, "no filesystem recognised"),
    6: (None, "signatures of fat12 and swap (ambivalent): none used"),
}


def saved_pages(path, seed, start=4096, size=3 * MiB):
    """What a hibernation image holds: pages of memory after the header."""
    patch(path, start, os.urandom(size) if seed is None else
          bytes((i * seed) & 0xFF for i in range(size)))


def fat_boot_sector(tmp):
    """The boot sector of a FAT of 2 MiB (4096 sectors)."""
    fat = blank(tmp / "fat.img", 2 * MiB)
    run("mkfs.fat", "-F", "12", fat)
    return fat.read_bytes()[:512]


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    suspended = blank(tmp / "s1.img", 4 * MiB)
    run("mkswap", "-q", "-L", "swap1", suspended)
    patch(suspended, 4096 - 10, b"S1SUSPEND\0")
    saved_pages(suspended, None)
    tuxonice = blank(tmp / "toi.img", 4 * MiB)
    run("mkswap", "-q", "-L", "swap2", tuxonice)
    patch(tuxonice, 0, swap.TUXONICE)
    saved_pages(tuxonice, 7)
    bitlocker = blank(tmp / "bde.img", 16 * MiB)
    run("mkfs.fat", "-F", "16", bitlocker)
    bitlocker_like(bitlocker, "win7")
    patch(bitlocker, 1 * MiB, os.urandom(5 * MiB))       # ciphertext
    encrypted = luks(tmp, "luks2", size=20 * MiB)
    patch(encrypted, 16 * MiB, os.urandom(2 * MiB))      # ciphertext
    unknown = tmp / "unknown.img"
    unknown.write_bytes(os.urandom(2 * MiB))
    # a FAT boot sector over a swap area (mkswap keeps the first 1 KiB)
    both = blank(tmp / "both.img", 2 * MiB)
    run("mkswap", "-q", both)
    patch(both, 0, fat_boot_sector(tmp))
    saved_pages(both, 3, size=MiB)
    parts = [(suspended, "swap"), (tuxonice, "swap"), (bitlocker, "unknown"),
             (encrypted, "unknown"), (unknown, "unknown"), (both, "swap")]
    path = tmp / "disk.img"
    places = partitioned_disk(path, parts, "gpt")
    return path, places


def test_copied_whole_byte_for_byte_and_says_why(disk, tmp_path):
    path, places = disk
    image, target, stderr = round_trip(path, tmp_path)
    for number, (start, size) in enumerate(places, 1):
        assert range_digest(target, start, size) == \
            range_digest(path, start, size), f"partition {number}"
    info = json.loads(rdeploy("info", image, "--json").stdout)
    text = rdeploy("info", image).stdout
    areas = {a["partition"]: a for a in info["areas"]
             if a["kind"] == "partition"}
    for number, (kind, why) in EXPECTED.items():
        area = areas[number]
        assert (area["filesystem"], area["method"], area["fallback"]) == \
            (kind, "zero-skip", why), number
        assert "used_bytes" not in area
        assert f"partition {number}: whole partition copied (zero-skip): " \
            f"{why}" in text
    # the hibernation images are stored whole, not as one header page
    assert areas[1]["data_bytes"] >= 3 * MiB
    assert areas[2]["data_bytes"] >= 3 * MiB
    # LUKS: its 16 MiB header area (cryptsetup fills the keyslot area with
    # random bytes) and the ciphertext are stored; the 2 MiB never written
    # are holes (restore wrote them back as zeros: the target was garbage)
    assert 17 * MiB < areas[4]["data_bytes"] <= 18 * MiB
    plan = rdeploy("restore", image, tmp_path / "new.img", "--dry-run").stdout
    for number, (_, why) in EXPECTED.items():
        assert f"note: partition {number}: copied whole: {why}" in plan


def test_blkid_names_them_so(disk):
    """The premise: blkid -p names each partition's kind as we do."""
    import demodisk
    path, places = disk
    for number, (start, size) in enumerate(places, 1):
        with demodisk.loop_device(path, start, size) as dev:
            assert blkid(dev).get("TYPE") == EXPECTED[number][0], number
