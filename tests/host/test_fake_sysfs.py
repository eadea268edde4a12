"""diskimage.host.sysfs over a fake sysfs and mountinfo: partitions (loop
partitions get no nodes here), their holders and mount points, and mount
points with odd bytes in them."""

import os
import stat

import pytest

from diskimage.host import sysfs
from diskimage.host.identity import same_storage
from diskimage.host.sysfs import busy_reason, list_disks

MiB = 1 << 20


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


@pytest.mark.needs(root=True)     # mknod
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


@pytest.mark.needs(root=True)     # mknod
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
