"""Tests of diskimage.host.device and sysfs on real loop devices, mounts
and tmpfs: root with losetup, undone after each test."""

import contextlib
import errno
import os
import subprocess

import pytest

from diskimage.host import device
from diskimage.host.device import open_source, open_target, sync, write_all, zero_range
from diskimage.host.identity import same_storage
from diskimage.host.sysfs import busy_reason, list_disks
from diskimage.errors import NoSpaceError, TargetError

MiB = 1 << 20

needs_root = pytest.mark.needs("losetup", "mkfs.ext4", root=True)


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def loop(backing, *options):
    dev = run("losetup", "--find", "--show", *options, str(backing))
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@contextlib.contextmanager
def mounted(source, where, *options):
    os.makedirs(where, exist_ok=True)
    run("mount", *options, str(source), str(where))
    try:
        yield str(where)
    finally:
        subprocess.run(["umount", str(where)], check=False)


def blockdev(dev):
    size, ss, pbsz = run("blockdev", "--getsize64", "--getss", "--getpbsz", dev).split()
    return int(size), int(ss), int(pbsz)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    return path


@pytest.fixture
def loopdev(image):
    with loop(image) as dev:
        yield dev


@pytest.fixture
def ext4(tmp_path, image):
    """(image, loop device, mount point) of a mounted ext4 filesystem."""
    run("mkfs.ext4", "-q", "-F", str(image))
    with loop(image) as dev, mounted(dev, tmp_path / "mnt") as where:
        yield image, dev, where


# --- real loop devices --------------------------------------------------------


@needs_root
def test_loop_sizes(loopdev):
    with open_source(loopdev) as disk:
        assert disk.is_block
        assert (disk.size, disk.logical_sector_size, disk.physical_sector_size) == blockdev(loopdev)
        assert disk.size == 64 * MiB


@needs_root
def test_loop_4k_sectors(image):
    with loop(image, "--sector-size", "4096") as dev, open_source(dev) as disk:
        assert disk.logical_sector_size == 4096
        assert (disk.size, disk.logical_sector_size, disk.physical_sector_size) == blockdev(dev)


@needs_root
def test_mounted_loop_is_busy(ext4):
    image, dev, where = ext4
    reason = busy_reason(dev)
    assert reason is not None and where in reason
    reason = busy_reason(str(image))
    assert reason is not None and dev in reason and where in reason
    with pytest.raises(TargetError) as e:
        open_target(dev)
    assert dev in str(e.value) and "in use" in str(e.value) and where in str(e.value)
    with pytest.raises(TargetError, match="in use"):
        open_target(str(image))
    assert {d["path"]: d for d in list_disks()}[dev]["mounted_at"] == [where]
    with open_source(dev) as disk:  # reading a mounted disk is allowed
        assert len(disk.read(0, 4096)) == 4096


@needs_root
def test_free_loop_exclusive(loopdev, image):
    assert busy_reason(loopdev) is None and busy_reason(str(image)) is None
    with open_target(loopdev) as disk:
        assert disk.is_block and disk.size == 64 * MiB
        with pytest.raises(TargetError, match="in use"):
            open_target(loopdev)  # our own O_EXCL open holds it
        with open_target(loopdev, exclusive=False) as again:
            assert again.size == disk.size


@needs_root
def test_same_storage_loop(image, tmp_path):
    other = tmp_path / "other.img"
    other.write_bytes(bytes(MiB))
    with loop(image) as whole, \
            loop(image, "-o", str(MiB), "--sizelimit", str(8 * MiB)) as first, \
            loop(image, "-o", str(9 * MiB), "--sizelimit", str(8 * MiB)) as second, \
            loop(image, "-o", str(12 * MiB), "--sizelimit", str(MiB)) as inside:
        assert same_storage(str(image), whole) and same_storage(whole, str(image))
        assert same_storage(first, str(image)) and same_storage(whole, first)
        assert not same_storage(first, second)
        assert same_storage(second, inside) and not same_storage(first, inside)
        assert not same_storage(whole, str(other))
        with loop(whole) as stacked:  # a loop device over a loop device
            assert same_storage(stacked, str(image)) and same_storage(stacked, second)


@needs_root
def test_zero_range_loop(image):
    with loop(image, "--sector-size", "4096") as dev:
        with open_target(dev) as disk:
            write_all(disk, 0, b"\xaa" * (16 * MiB))
            zero_range(disk, MiB, 4 * MiB)  # aligned: BLKZEROOUT
            zero_range(disk, 8 * MiB - 100, 10000)  # unaligned edges are written
            sync(disk)
            assert disk.read(MiB, 4 * MiB) == bytes(4 * MiB)
            assert disk.read(MiB - 10, 10) == b"\xaa" * 10
            assert disk.read(8 * MiB - 100, 10000) == bytes(10000)
            assert disk.read(8 * MiB - 200, 100) == b"\xaa" * 100
            assert disk.read(8 * MiB + 9900, 100) == b"\xaa" * 100
    with open(image, "rb") as f:
        f.seek(MiB)
        assert f.read(4 * MiB) == bytes(4 * MiB)


@needs_root
def test_zero_range_loop_fallback(loopdev, monkeypatch):
    def unsupported(*args):
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
    monkeypatch.setattr(device, "_blkzeroout", unsupported)
    with open_target(loopdev) as disk:
        write_all(disk, 0, b"\x55" * (6 * MiB))
        zero_range(disk, 512, 5 * MiB)
        assert disk.read(0, 6 * MiB) == b"\x55" * 512 + bytes(5 * MiB) + b"\x55" * (MiB - 512)


@needs_root
def test_write_past_end_of_device(loopdev):
    with open_target(loopdev) as disk:
        with pytest.raises(NoSpaceError) as e:
            write_all(disk, disk.size - 512, bytes(4096))
    assert loopdev in str(e.value) and str(64 * MiB) in str(e.value)


@needs_root
def test_write_all_full_tmpfs(tmp_path):
    with mounted("tmpfs", tmp_path / "small", "-t", "tmpfs", "-o", "size=1m") as where:
        path = os.path.join(where, "big.img")
        with open_target(path, create_size=0) as disk:
            with pytest.raises(NoSpaceError) as e:
                write_all(disk, 0, bytes(4 * MiB))
        assert path in str(e.value) and "offset" in str(e.value)


@needs_root
def test_write_all_full_ext4(ext4):
    _, _, where = ext4
    path = os.path.join(where, "big.img")
    with open_target(path, create_size=0) as disk, pytest.raises(NoSpaceError, match="big.img"):
        for i in range(80):
            write_all(disk, i * MiB, bytes(MiB))
            sync(disk)


@needs_root
def test_list_disks_loop(image):
    with loop(image, "--sector-size", "4096") as dev:
        name = os.path.basename(dev)
        disks = {d["name"]: d for d in list_disks()}
        mine = disks[name]
        assert mine["path"] == dev
        assert mine["size"] == 64 * MiB
        assert mine["backing_file"] == str(image)
        assert mine["logical_sector_size"] == 4096
        assert mine["partitions"] == [] and mine["mounted_at"] == [] and mine["holders"] == []
        assert not any(n.startswith(("ram", "zram")) for n in disks)
        for d in disks.values():
            assert not d["name"].startswith("loop") or d["backing_file"]


@needs_root
def test_read_only_device_is_refused(image):
    with loop(image, "--read-only") as dev:
        with pytest.raises(TargetError, match=f"{dev} is read-only"):
            open_target(dev)
        assert {d["path"]: d for d in list_disks()}[dev]["read_only"]


@needs_root
@pytest.mark.parametrize("name, plain", [("a\rb.img", "a\nb.img"), ("space.img ", "space.img"),
                                         ("caf\udce9.img", "caf.img")])
def test_loop_over_a_file_with_an_odd_name(tmp_path, name, plain):
    """The backing file's name is read from sysfs exactly (a CR is not a
    line end, a trailing space is part of the name), so a loop device over
    it is still the same storage as the file, and a loop device over a
    file of the plain name is not."""
    odd = tmp_path / name
    odd.write_bytes(bytes(MiB))
    plain = tmp_path / plain
    plain.write_bytes(bytes(MiB))
    with loop(odd) as dev:
        assert same_storage(dev, str(odd)) and same_storage(str(odd), dev)
        assert not same_storage(dev, str(plain))
        assert {d["path"]: d for d in list_disks()}[dev]["backing_file"] == str(odd)
