"""Tests of diskimage.host.device on image files: opening sources and
targets, writing, punching holes, telling storage apart.  Real loop devices,
mounts and tmpfs are in test_device_loop.py, partitions of a fake sysfs in
test_fake_sysfs.py."""

import errno
import os

import pytest

from diskimage.host import device
from diskimage.host.device import open_source, open_target, sync, write_all, zero_range
from diskimage.host.identity import same_storage
from diskimage.errors import DiskImageError, InputError, NoSpaceError, TargetError

MiB = 1 << 20


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


def test_write_error_is_not_no_space(tmp_path, monkeypatch):
    def eio(*args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    with open_target(str(tmp_path / "x.img"), create_size=MiB) as disk:
        monkeypatch.setattr(os, "pwrite", eio)
        with pytest.raises(DiskImageError, match="offset 123") as e:
            write_all(disk, 123, b"x")
    assert not isinstance(e.value, NoSpaceError)
