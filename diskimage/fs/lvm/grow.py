"""Growing an LVM2 PV after restore onto a larger partition (``--grow``),
with lvm2's own tools and no device-mapper (nothing is activated; only
metadata changes):

1. ``pvresize`` makes the PV fill its partition (new extents, free);
2. when the LV holding the PV's last allocated extent is a plain linear
   LV of one segment whose filesystem grows, ``lvextend`` gives it every
   extent after its segment (named as a PE range, so it stays one
   contiguous segment), and its filesystem is grown through a loop device
   over the LV's bytes (registry grow: resize2fs, xfs_growfs ...).

Otherwise the PV alone grows and the new extents stay free.  A volume
group spanning several PVs is left as it is (lvm2 would need them all).
lvm2 runs with a private configuration: this one device, no devices file,
activation off, no backups or archives, its locks in a temporary
directory; the host's LVM state is neither read nor changed.
"""

import os
import tempfile

from ...host.loop import loop_device
from ...host.tools import run as run_tool
from .. import registry
from ..tooling import ResizeError, detail, device_size
from ..usedmap import MapError
from .used import _inner, read_group


def _config(dev, lock_dir):
    return (f'devices {{ use_devicesfile = 0 filter = [ "a|^{dev}$|", '
            f'"r|.*|" ] obtain_device_list_from_udev = 0 '
            f'external_device_info_source = "none" }} '
            f'global {{ activation = 0 locking_dir = "{lock_dir}" }} '
            f'activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }} '
            f'backup {{ backup = 0 archive = 0 }}')


def _lvm(dev, lock_dir, etc, args, what):
    done = run_tool([args[0], "--config", _config(dev, lock_dir), *args[1:]],
                    check=False, what=what,
                    env={"LVM_SYSTEM_DIR": etc,
                         "LVM_SUPPRESS_FD_WARNINGS": "1"})
    if done.returncode != 0:
        raise ResizeError(f"{what}: {args[0]} failed: {detail(done)}")


def _read(dev):
    fd = os.open(dev, os.O_RDONLY)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        return read_group(lambda o, n: os.pread(fd, n, o), size)
    finally:
        os.close(fd)


def _last_lv(group):
    """(LV, its last PE + 1) of the LV holding the last allocated extent."""
    last, found = 0, None
    for lv in group.lvs:
        for _, pv_offset, size in lv.places:
            end = (pv_offset + size - group.pe_start) // group.extent_size
            if end > last:
                last, found = end, lv
    return found, last


def _grow_block(dev, size, what):
    with tempfile.TemporaryDirectory(prefix="rdeploy-lvm-") as tmp:
        lock_dir, etc = os.path.join(tmp, "lock"), os.path.join(tmp, "etc")
        os.mkdir(etc)
        try:
            label, group = _read(dev)
        except MapError as exc:
            raise ResizeError(f"{what}: its LVM2 metadata cannot be "
                              f"read ({exc})") from None
        if group.pv_count > 1:
            return label.device_size
        _lvm(dev, lock_dir, etc, ["pvresize", "-q", dev], what)
        label, grown = _read(dev)
        lv, end = _last_lv(grown)
        if lv is None or lv.whole or len(lv.places) != 1 or \
                end >= grown.pe_count:
            return size
        fd = os.open(dev, os.O_RDONLY)
        try:
            inner, kind, _ = _inner(lambda o, n: os.pread(fd, n, o), lv)
        finally:
            os.close(fd)
        record = registry.lookup(kind) if inner else None
        if record is None or record.grow is None:
            return size
        more = grown.pe_count - end
        _lvm(dev, lock_dir, etc,
             ["lvextend", "-q", "-l", f"+{more}", f"{grown.name}/{lv.name}",
              f"{dev}:{end}-{grown.pe_count - 1}"], what)
        _, final = _read(dev)
        lv = next(v for v in final.lvs if v.name == lv.name)
        if len(lv.places) != 1:
            raise ResizeError(f"{what}: LV {lv.name} is no longer one "
                              f"segment after lvextend")
        (_, offset, lv_size), = lv.places
    with loop_device(dev, offset, lv_size, read_only=False) as lv_dev:
        record.grow(lv_dev, lv_size, f"{what} LV {lv.name} ({kind})")
    return size


def grow(path, size, what):
    """Grow the PV at *path* (a partition's loop device, or a file) to
    `size` bytes, and its last LV and filesystem when they can: the size
    reached."""
    if os.path.isfile(path):
        with loop_device(path, 0, device_size(path),
                         read_only=False) as dev:
            return _grow_block(dev, size, what)
    return _grow_block(path, size, what)
