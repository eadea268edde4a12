"""Tests of diskimage.host.device: image files always, real loop devices, mounts
and tmpfs when running as root with losetup available."""

import contextlib
import errno
import os
import shutil
import stat
import subprocess

import pytest

from diskimage.host import device, sysfs
from diskimage.host.device import open_source, open_target, sync, write_all, zero_range
from diskimage.host.identity import same_storage
from diskimage.host.sysfs import busy_reason, list_disks
from diskimage.errors import DiskImageError, InputError, NoSpaceError, TargetError

MiB = 1 << 20

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"),
    reason="needs root, losetup and mkfs.ext4")


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


# --- files -------------------------------------------------------------------


def test_open_source_file(tmp_path):
    path = tmp_path / "a.img"
    path.write_bytes(b"0123456789" * 100)
    with open_source(str(path)) as disk:
        assert (disk.size, disk.logical_sector_size, disk.physical_sector_size) == (1000, 512, 512)
        assert not disk.is_block and not disk.created
        assert disk.read(10, 5) == b"01234"
        assert disk.read(995, 100) == b"56789"
        assert disk.read(2000, 10) == b""
        fd = disk.fd
    assert disk.fd == -1
    with pytest.raises(OSError):
        os.fstat(fd)


def test_open_source_refuses(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in [(tmp_path / "missing", "No such file"), (tmp_path, "directory"),
                      ("/dev/null", "character device"), (fifo, "pipe")]:
        with pytest.raises(InputError) as e:
            open_source(str(path))
        assert str(path) in str(e.value) and why in str(e.value)
        assert "\n" not in str(e.value)


def test_open_source_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "a.img"
    path.write_bytes(b"x")

    def denied(*args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError, match="Permission denied"):
        open_source(str(path))


def test_open_target_creates_sparse_file(tmp_path):
    path = tmp_path / "new.img"
    with pytest.raises(InputError, match="new.img"):
        open_target(str(path))
    with open_target(str(path), create_size=32 * MiB) as disk:
        assert disk.created and disk.size == 32 * MiB and not disk.is_block
    st = os.stat(path)
    assert st.st_size == 32 * MiB and st.st_blocks == 0
    with open_target(str(path), create_size=MiB) as disk:
        assert not disk.created and disk.size == 32 * MiB


def test_open_target_refuses(tmp_path):
    with pytest.raises(TargetError, match="directory"):
        open_target(str(tmp_path))
    with pytest.raises(TargetError, match="character device"):
        open_target("/dev/null")
    with pytest.raises(TargetError, match="cannot create"):
        open_target(str(tmp_path / "no" / "such.img"), create_size=MiB)


def test_write_all_and_read_back(tmp_path):
    path = tmp_path / "w.img"
    with open_target(str(path), create_size=MiB) as disk:
        write_all(disk, 1000, b"hello" * 1000)
        sync(disk)
        assert disk.read(1000, 10) == b"hellohello"
    assert path.read_bytes()[1000:6000] == b"hello" * 1000


def test_zero_range_punches_file(tmp_path):
    path = tmp_path / "z.img"
    data = os.urandom(8 * MiB)
    path.write_bytes(data)
    with open_target(str(path)) as disk:
        sync(disk)
        before = os.stat(path).st_blocks
        zero_range(disk, 1 * MiB, 4 * MiB)
        zero_range(disk, 6 * MiB + 100, 5000)  # not block aligned
        after = os.stat(path).st_blocks
        assert after <= before - (4 * MiB) // 512
        content = disk.read(0, disk.size)
    assert content[:MiB] == data[:MiB]
    assert content[MiB:5 * MiB] == bytes(4 * MiB)
    assert content[5 * MiB:6 * MiB + 100] == data[5 * MiB:6 * MiB + 100]
    assert content[6 * MiB + 100:6 * MiB + 5100] == bytes(5000)
    assert content[6 * MiB + 5100:] == data[6 * MiB + 5100:]


def test_zero_range_past_end_extends_file(tmp_path):
    path = tmp_path / "z.img"
    path.write_bytes(b"\xff" * 4096)
    with open_target(str(path)) as disk:
        zero_range(disk, 2048, 8192)
    assert path.read_bytes() == b"\xff" * 2048 + bytes(8192)


def test_zero_range_falls_back_to_writing(tmp_path, monkeypatch):
    def unsupported(*args):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    monkeypatch.setattr(device, "_fallocate", unsupported)
    path = tmp_path / "z.img"
    path.write_bytes(b"\xff" * (9 * MiB))
    with open_target(str(path)) as disk:
        zero_range(disk, 100, 9 * MiB - 200)
    assert path.read_bytes() == b"\xff" * 100 + bytes(9 * MiB - 200) + b"\xff" * 100


def test_same_storage_files(tmp_path):
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    os.link(a, tmp_path / "hard")
    os.symlink(a, tmp_path / "soft")
    assert same_storage(str(a), str(a))
    assert same_storage(str(a), str(tmp_path / "hard"))
    assert same_storage(str(tmp_path / "soft"), str(a))
    assert not same_storage(str(a), str(b))
    assert not same_storage(str(a), str(tmp_path / "missing"))
    with open(tmp_path / "hard", "rb") as f:       # an open fd, as stdin
        assert same_storage(str(a), f.fileno())
        assert not same_storage(str(b), f.fileno())
    read, write = os.pipe()
    try:
        assert not same_storage(str(a), read)
    finally:
        os.close(read)
        os.close(write)


# --- a fake sysfs, for partitions (loop partitions get no nodes here) ---------


@pytest.fixture
def fake_sys(tmp_path, monkeypatch):
    """A disk 240:0 named fakedisk with partitions 240:1 and 240:2, nodes
    for all three in tmp_path/dev, and a mountinfo mounting 240:2."""
    sys_root = tmp_path / "sys"
    disk = sys_root / "devices" / "virtual" / "block" / "fakedisk"
    layout = {"fakedisk": (0, None, None), "fakedisk1": (1, 2048, 4096), "fakedisk2": (2, 8192, 4096)}
    nodes = {}
    for name, (minor, start, size) in layout.items():
        d = disk if start is None else disk / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "holders").mkdir()
        (d / "dev").write_text(f"240:{minor}\n")
        (d / "size").write_text(f"{size or 65536}\n")
        if start is not None:
            (d / "partition").write_text(f"{minor}\n")
            (d / "start").write_text(f"{start}\n")
        (sys_root / "dev" / "block").mkdir(parents=True, exist_ok=True)
        (sys_root / "dev" / "block" / f"240:{minor}").symlink_to(d)
        nodes[name] = tmp_path / "dev" / name
        nodes[name].parent.mkdir(exist_ok=True)
        os.mknod(nodes[name], stat.S_IFBLK | 0o600, os.makedev(240, minor))
    (sys_root / "block").mkdir()
    (sys_root / "block" / "fakedisk").symlink_to(disk)
    (disk / "queue").mkdir()
    (disk / "queue" / "logical_block_size").write_text("512\n")
    (disk / "queue" / "physical_block_size").write_text("4096\n")
    (disk / "queue" / "rotational").write_text("1\n")
    (disk / "device").mkdir()
    (disk / "device" / "model").write_text("FAKE DISK       \n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("1 0 254:0 / / rw - ext4 /dev/vda rw\n"
                         "2 1 240:2 / /mnt/my\\040data rw shared:1 - ext4 /dev/fakedisk2 rw\n")
    monkeypatch.setattr(sysfs, "SYSFS", str(sys_root))
    monkeypatch.setattr(sysfs, "MOUNTINFO", str(mountinfo))
    monkeypatch.setattr(sysfs, "SWAPS", str(tmp_path / "no-swaps"))
    return {name: str(node) for name, node in nodes.items()} | {"sys": disk}


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_fake_partitions(fake_sys):
    disk, one, two = fake_sys["fakedisk"], fake_sys["fakedisk1"], fake_sys["fakedisk2"]
    assert same_storage(one, disk) and same_storage(disk, two)
    assert not same_storage(one, two)
    assert busy_reason(one) is None
    assert busy_reason(two) == "mounted at /mnt/my data"
    assert busy_reason(disk) == "partition /dev/fakedisk2 is mounted at /mnt/my data"
    (fake_sys["sys"] / "fakedisk1" / "holders" / "dm-3").touch()
    assert busy_reason(one) == "held by dm-3"
    [listed] = list_disks()
    assert listed["name"] == "fakedisk" and listed["model"] == "FAKE DISK"
    assert (listed["size"], listed["logical_sector_size"], listed["physical_sector_size"]) == (
        65536 * 512, 512, 4096)
    assert listed["rotational"] and not listed["removable"] and listed["backing_file"] is None
    assert listed["mounted_at"] == [] and listed["holders"] == []
    assert listed["partitions"] == [
        {"name": "fakedisk1", "path": "/dev/fakedisk1", "start": 2048 * 512, "size": 4096 * 512,
         "mounted_at": [], "holders": ["dm-3"]},
        {"name": "fakedisk2", "path": "/dev/fakedisk2", "start": 8192 * 512, "size": 4096 * 512,
         "mounted_at": ["/mnt/my data"], "holders": []}]


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


def test_write_error_is_not_no_space(tmp_path, monkeypatch):
    def eio(*args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    with open_target(str(tmp_path / "x.img"), create_size=MiB) as disk:
        monkeypatch.setattr(os, "pwrite", eio)
        with pytest.raises(DiskImageError, match="offset 123") as e:
            write_all(disk, 123, b"x")
    assert not isinstance(e.value, NoSpaceError)


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


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
@pytest.mark.parametrize("odd", [b"/mnt/a\rb", b"/mnt/caf\xe9", b"/mnt/\x1b[2J"])
def test_odd_mount_point_hides_no_other_mount(fake_sys, tmp_path, odd):
    """A mount point holding a CR (a line break to Python's universal
    newlines), bytes that are not UTF-8 or ESC: the lines after it are still
    read, so a mounted partition is still seen as mounted (by restore's
    busy check and capture's read-write check)."""
    from diskimage.host.inuse import rw_mounts
    with open(tmp_path / "mountinfo", "wb") as f:
        f.write(b"1 0 254:0 / / rw - ext4 /dev/vda rw\n"
                b"5 1 0:50 / " + odd + b" rw,nosuid - fuse.evil evil rw\n"
                b"2 1 240:2 / /mnt/my\\040data rw shared:1 - ext4 /dev/fakedisk2 rw\n")
    assert busy_reason(fake_sys["fakedisk2"]) == "mounted at /mnt/my data"
    assert [m[2] for m in rw_mounts(fake_sys["fakedisk"])] == ["/mnt/my data"]
    points = [point for _, point, _ in sysfs._mounts()]
    assert os.fsencode(points[1]) == odd


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
