"""registry.detect against `blkid -p` where a signature's body is damaged
or cut short: NTFS boot sectors with bad sizes and missing MFT records,
exFAT, LUKS (and LUKS2 with its primary header wiped), XFS superblocks with
a bad geometry (the rule proposed for fs/xfs, foreign.xfs_sane), volumes
truncated at many places, and two signatures on one volume.  Same TYPE, or
both none (docs/filesystems/detection.md); the helpers are
tests/fs/test_detect_blkid.py's."""

import os
import struct
import subprocess

import pytest

from diskimage.fs import registry
from tests.fs.test_detect_blkid import (agree, blank, fatfile, ours, patch,
                                        swapfile, theirs)
from tests.fsmaps import KiB, MiB, blkid, run

__all__ = ["fatfile", "swapfile"]        # fixtures, used by name


# --- NTFS -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ntfs_image(tmp_path_factory):
    path = blank(tmp_path_factory.mktemp("ntfs") / "ntfs.img", 16 * MiB)
    run("mkntfs", "-q", "-F", "-f", path)
    return path.read_bytes()


NTFS_DAMAGE = {
    "sector size 100": (0x0B, struct.pack("<H", 100)),
    "sector size 8192": (0x0B, struct.pack("<H", 8192)),
    "3 sectors per cluster": (0x0D, b"\x03"),
    "cluster of 4 MiB": (0x0D, b"\xe9"),
    "reserved sectors": (0x0E, b"\x01\x00"),
    "a FAT count": (0x10, b"\x02"),
    "root entries": (0x11, b"\x10\x00"),
    "sectors per FAT": (0x16, b"\x01\x00"),
    "32-bit total": (0x20, b"\x01\0\0\0"),
    "MFT record of 3 clusters": (0x40, b"\x03"),
    "MFT record of 2^-8": (0x40, b"\xf8"),
    "MFT past the end": (0x30, struct.pack("<Q", 1 << 40)),
    "mirror past the end": (0x38, struct.pack("<Q", 1 << 40)),
    "no sectors": (0x28, struct.pack("<Q", 0)),
}


@pytest.mark.needs("mkntfs", "blkid")
@pytest.mark.parametrize("damage", [None, *sorted(NTFS_DAMAGE)])
def test_ntfs_sizes(ntfs_image, tmp_path, damage):
    path = tmp_path / "ntfs.img"
    path.write_bytes(ntfs_image)
    if damage:
        patch(path, *NTFS_DAMAGE[damage])
    agree(path, None if damage else "ntfs")


@pytest.mark.needs("mkntfs", "blkid")
@pytest.mark.parametrize("record", [0, 3])
def test_ntfs_mft_records_must_be_there(ntfs_image, tmp_path, record):
    path = tmp_path / "ntfs.img"
    path.write_bytes(ntfs_image)
    sector, spc = struct.unpack_from("<HB", ntfs_image, 0x0B)
    mft, = struct.unpack_from("<Q", ntfs_image, 0x30)
    size = 1 << -struct.unpack_from("<b", ntfs_image, 0x40)[0]
    patch(path, mft * sector * spc + record * size, b"BAAD")
    agree(path, None)


# --- exFAT ------------------------------------------------------------------
@pytest.mark.needs("mkfs.exfat", "blkid")
def test_exfat(tmp_path):
    path = blank(tmp_path / "exfat.img", 8 * MiB)
    run("mkfs.exfat", path)
    agree(path, "exfat")


# --- LUKS -------------------------------------------------------------------
def luks(tmp_path, version, size=20 * MiB):
    path = blank(tmp_path / f"{version}.img", size)
    key = tmp_path / "key"
    key.write_bytes(b"secret")
    run("cryptsetup", "luksFormat", "-q", "--type", version, "--pbkdf",
        "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", key,
        "--label" if version == "luks2" else "--uuid",
        "disk" if version == "luks2" else
        "0e6e4f7e-5cb8-4bd8-9e0f-2c3bd1e81e6e", path)
    return path


@pytest.mark.needs("cryptsetup", "blkid")
@pytest.mark.parametrize("version", ["luks1", "luks2"])
def test_luks(tmp_path, version):
    path = luks(tmp_path, version)
    agree(path, "crypto_LUKS")
    fd = os.open(path, os.O_RDONLY)
    found = registry.identity(lambda o, n: os.pread(fd, n, o), 0,
                              os.path.getsize(path), "crypto_LUKS")
    why = registry.why_whole(lambda o, n: os.pread(fd, n, o), 0,
                             os.path.getsize(path), "crypto_LUKS")
    os.close(fd)
    tags = blkid(path)
    assert found == (tags.get("LABEL", ""), tags["UUID"])
    assert why == f"encrypted (LUKS{version[-1]})"


@pytest.mark.needs("cryptsetup", "blkid")
def test_luks2_with_its_primary_header_wiped(tmp_path):
    path = luks(tmp_path, "luks2")
    patch(path, 0, bytes(4096))
    agree(path, "crypto_LUKS")           # found by its second header
    fd = os.open(path, os.O_RDONLY)
    why = registry.why_whole(lambda o, n: os.pread(fd, n, o), 0,
                             os.path.getsize(path), "crypto_LUKS")
    os.close(fd)
    assert why == "encrypted (LUKS2, only its second header at byte 16384)"


# --- two signatures ---------------------------------------------------------
@pytest.mark.needs("mkswap", "mkfs.fat", "blkid")
def test_two_filesystems_claim_it_so_none_does(fatfile, swapfile):
    """A FAT16 boot sector over a swap area (mkswap keeps the first 1 KiB):
    blkid -p calls it ambivalent and names nothing; so do we, and capture
    says why."""
    fat = fatfile("-F", "16", size=16 * MiB).read_bytes()[:512]
    path = swapfile(size=2 * MiB)
    patch(path, 0, fat)
    patch(path, 0x13, struct.pack("<H", 4096))    # a FAT the size of it
    assert theirs(path) is None and \
        run("blkid", "-p", path, check=False).returncode != 0
    fd = os.open(path, os.O_RDONLY)
    found = registry.signatures(lambda o, n: os.pread(fd, n, o), 0,
                                os.path.getsize(path))
    os.close(fd)
    assert found == ["fat12", "swap"]
    assert ours(path) is None


# --- XFS: a superblock with a bad body (the rule proposed for fs/xfs) -------
@pytest.fixture(scope="module")
def xfs_head(tmp_path_factory):
    """The first 64 KiB of an XFS made by mkfs.xfs (300 MiB, sparse): all
    blkid -p reads of it."""
    path = blank(tmp_path_factory.mktemp("xfs") / "xfs.img", 300 * MiB)
    run("mkfs.xfs", "-q", "-f", path)
    with open(path, "rb") as f:
        head = f.read(64 * KiB)
    path.unlink()
    return head


XFS_DAMAGE = {
    "agcount 0": (88, struct.pack(">I", 0)),
    "agcount too large for dblocks": (88, struct.pack(">I", 1000)),
    "agcount too small for dblocks": (88, struct.pack(">I", 1)),
    "blocksize not 2^blocklog": (4, struct.pack(">I", 4096 + 512)),
    "blocklog 17": (120, b"\x11"),
    "sectsize 256": (102, struct.pack(">H", 256)),
    "inodesize 128": (104, struct.pack(">H", 128)),
    "inopblog wrong": (123, b"\x01"),
    "imax_pct 101": (127, b"\x65"),
    "dblocks 0": (8, bytes(8)),
    "rextsize 0": (80, bytes(4)),
}


def xfs_volume(tmp_path, head, damage):
    path = blank(tmp_path / "xfs.img", 1 * MiB)
    patch(path, 0, head)
    if damage:
        patch(path, *XFS_DAMAGE[damage])
    return path


@pytest.mark.needs("mkfs.xfs", "blkid")
@pytest.mark.parametrize("damage", [None, *sorted(XFS_DAMAGE)])
def test_xfs_superblock_sanity(xfs_head, tmp_path, damage):
    """foreign.xfs_sane, the rule proposed for fs/xfs's detect, agrees with
    blkid -p on a made XFS and on each damaged superblock."""
    from diskimage.fs.foreign import xfs_sane
    path = xfs_volume(tmp_path, xfs_head, damage)
    expected = None if damage else "xfs"
    assert theirs(path) == expected, blkid(path)
    fd = os.open(path, os.O_RDONLY)
    assert xfs_sane(lambda o, n: os.pread(fd, n, o)) == (damage is None)
    os.close(fd)
    if damage is None:
        assert ours(path) == "xfs"


@pytest.mark.needs("mkfs.xfs", "blkid")
def test_xfs_with_a_bad_agcount_is_nothing(xfs_head, tmp_path):
    agree(xfs_volume(tmp_path, xfs_head, "agcount 0"), None)


# --- truncated volumes ----------------------------------------------------------
TRUNCATED = {
    # name: (make(path), sizes to cut it to)
    "fat12": (lambda p: run("mkfs.fat", "-F", "12", p), 2 * MiB),
    "fat32": (lambda p: run("mkfs.fat", "-F", "32", p), 40 * MiB),
    "ntfs": (lambda p: run("mkntfs", "-q", "-F", "-f", p), 16 * MiB),
    "swap": (lambda p: run("mkswap", "-q", p), 1 * MiB),
    "exfat": (lambda p: run("mkfs.exfat", p), 8 * MiB),
    "crypto_LUKS": (lambda p: luks_format(p, "luks1"), 4 * MiB),
}


def luks_format(path, version):
    key = path.parent / "key"
    key.write_bytes(b"secret")
    run("cryptsetup", "luksFormat", "-q", "--type", version, "--pbkdf",
        "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", key,
        path)


@pytest.mark.needs("mkfs.fat", "mkntfs", "mkswap", "mkfs.exfat",
                   "cryptsetup", "blkid")
@pytest.mark.parametrize("kind", sorted(TRUNCATED))
def test_truncated_volumes(tmp_path, kind):
    """The volume cut short at several places: we name it when blkid -p
    does, and not when it does not."""
    make, size = TRUNCATED[kind]
    path = blank(tmp_path / "fs.img", size)
    make(path)
    whole = path.read_bytes()
    seen = set()
    for cut in (256, 512, 1024, 1025, 2048, 4096, 40 * KiB, 64 * KiB, MiB,
                4 * MiB, size // 2):
        if cut >= size:
            continue
        path.write_bytes(whole[:cut])
        expected = theirs(path)
        assert ours(path) == expected, (cut, expected)
        seen.add(expected)
    assert seen == {None, kind}          # both answers were met


# --- LVM2: a label with a bad body (the rule proposed for fs/lvm) -----------
@pytest.fixture(scope="module")
def pv_head(tmp_path_factory):
    """The first 4 KiB of a PV made by pvcreate on a loop device, with a
    private configuration (no devices file, no udev, no backups)."""
    from diskimage.host.loop import loop_device
    tmp = tmp_path_factory.mktemp("pv")
    path = blank(tmp / "pv.img", 16 * MiB)
    (tmp / "etc").mkdir()
    with loop_device(path, 0, 16 * MiB, read_only=False) as dev:
        conf = (f'devices {{ use_devicesfile = 0 filter = [ "a|^{dev}$|", '
                f'"r|.*|" ] obtain_device_list_from_udev = 0 }} '
                f'global {{ locking_dir = "{tmp}/etc" }} '
                f'activation {{ udev_sync = 0 udev_rules = 0 }} '
                f'backup {{ backup = 0 archive = 0 }}')
        done = subprocess.run(
            ["pvcreate", "-q", "--config", conf, dev], capture_output=True,
            text=True, stdin=subprocess.DEVNULL,
            env=dict(os.environ, LVM_SYSTEM_DIR=str(tmp / "etc")))
        assert done.returncode == 0, done.stderr
    with open(path, "rb") as f:
        return f.read(4096)


LVM_DAMAGE = {
    "crc": (512 + 16, b"\0\0\0\0"),
    "sector_xl": (512 + 8, struct.pack("<Q", 2)),
    "a byte the crc covers": (512 + 100, b"\xff"),
    "type": (512 + 24, b"LVM1 001"),
    "id": (512, b"LABELTWO"),
}


def pv_volume(tmp_path, head, damage):
    path = blank(tmp_path / "pv.img", 2 * MiB)
    patch(path, 0, head)
    if damage:
        patch(path, *LVM_DAMAGE[damage])
    return path


@pytest.mark.needs("pvcreate", "losetup", "blkid", root=True)
@pytest.mark.parametrize("damage", [None, *sorted(LVM_DAMAGE)])
def test_lvm2_label_sanity(pv_head, tmp_path, damage):
    """foreign.lvm2_label_sane, the rule proposed for fs/lvm's detect,
    agrees with blkid -p on a PV made by pvcreate and on each damage."""
    from diskimage.fs.foreign import lvm2_label_sane
    path = pv_volume(tmp_path, pv_head, damage)
    assert theirs(path) == (None if damage else "LVM2_member"), blkid(path)
    fd = os.open(path, os.O_RDONLY)
    assert lvm2_label_sane(lambda o, n: os.pread(fd, n, o)) == \
        (damage is None)
    os.close(fd)
    if damage is None:
        assert ours(path) == "LVM2_member"


@pytest.mark.needs("pvcreate", "losetup", "blkid", root=True)
def test_lvm2_with_a_bad_label_crc_is_nothing(pv_head, tmp_path):
    agree(pv_volume(tmp_path, pv_head, "crc"), None)


# --- btrfs: a superblock whose checksum fails --------------------------------
@pytest.mark.needs("mkfs.btrfs", "blkid")
def test_btrfs_with_a_bad_checksum_is_named_and_not_mapped(tmp_path):
    """libblkid v2.38.1 names a btrfs whose superblock checksum fails
    (master does not); so do we, and its map refuses it: copied whole."""
    from diskimage.fs.usedmap import MapError
    path = blank(tmp_path / "btrfs.img", 120 * MiB)
    run("mkfs.btrfs", "-q", "-f", path)
    with open(path, "rb") as f:
        f.seek(0x10000 + 0x12b)
        byte = f.read(1)
    patch(path, 0x10000 + 0x12b, bytes([byte[0] ^ 0xFF]))   # the label
    agree(path, "btrfs")
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(MapError, match="checksum"):
        registry.used_map(lambda o, n: os.pread(fd, n, o), 0,
                          os.path.getsize(path), "btrfs")
    os.close(fd)
