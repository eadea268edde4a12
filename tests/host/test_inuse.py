"""Tests of diskimage.host.inuse on a real mount: an ext4 filesystem in a
disk file at an offset, mounted through a loop device (root, losetup)."""

import subprocess

import pytest

from diskimage.host import inuse, sysfs
from diskimage.host.identity import extent

MiB = 1 << 20


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.needs("losetup", "mkfs.ext4", root=True)
def test_mount_extent_names_the_bytes_of_a_loop_mount(tmp_path):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(40 * MiB)
    dev = run("losetup", "--find", "--show", "-o", str(8 * MiB),
              "--sizelimit", str(16 * MiB), str(disk))
    where = tmp_path / "mnt"
    where.mkdir()
    try:
        run("mkfs.ext4", "-q", dev)
        run("mount", dev, str(where))
        try:
            line = next(m for m in sysfs.mountinfo() if m[1] == str(where))
            storage = extent(str(disk))[0]
            assert inuse.mount_extent(line[0], line[2]) == \
                (storage, 8 * MiB, 24 * MiB)
            # the old private name still answers the same
            assert inuse._mount_extent(line[0], line[2]) == \
                inuse.mount_extent(line[0], line[2])
            found = inuse.rw_mounts(str(disk))
            assert [(s, e, p) for s, e, p, _ in found] == \
                [(8 * MiB, 24 * MiB, str(where))]
        finally:
            subprocess.run(["umount", str(where)], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_mount_extent_of_a_mount_without_a_device():
    assert inuse.mount_extent("0:42", "tmpfs") is None
    assert inuse.mount_extent("bad", "none") is None


def test_room_uses_no_private_name_of_inuse():
    import diskimage.service.room as room
    with open(room.__file__, encoding="utf-8") as f:
        text = f.read()
    assert "_mount_extent" not in text
    assert room.mount_extent is inuse.mount_extent
