"""lvm2's tools as the toolkit runs them on a restored PV, with no
device-mapper (nothing is activated; only metadata changes) and a private
configuration: this one device, no devices file, activation off, no
backups or archives, locks and LVM_SYSTEM_DIR in a temporary directory,
so the host's LVM state is neither read nor changed.  Also ``--new-ids``
for a PV: new PV and VG UUIDs (``pvchange -u``, ``vgchange -u``), new LV UUIDs
(lvm2 has no command for them: ``vgcfgbackup``, each LV's ``id`` replaced,
``vgcfgrestore --force``, which writes metadata only) and a new identity
for each filesystem inside a linear LV of one segment."""

import contextlib
import os
import secrets
import string
import tempfile

from ...host.loop import loop_device
from ...host.tools import run as run_tool
from .. import registry
from ..tooling import ResizeError, blkid, detail, device_size
from ..usedmap import MapError
from .used import _inner, read_group


def _config(dev, lock_dir):
    return (f'devices {{ use_devicesfile = 0 filter = [ "a|^{dev}$|", '
            f'"r|.*|" ] obtain_device_list_from_udev = 0 '
            f'external_device_info_source = "none" }} '
            f'global {{ activation = 0 locking_dir = "{lock_dir}" }} '
            f'activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }} '
            f'backup {{ backup = 0 archive = 0 }}')


class Lvm:
    """lvm2 commands on the block device `dev` (see the module)."""

    def __init__(self, dev, tmp, what):
        self.dev, self.what, self.tmp = dev, what, tmp
        self.lock_dir = os.path.join(tmp, "lock")
        self.etc = os.path.join(tmp, "etc")
        os.makedirs(self.etc, exist_ok=True)

    def __call__(self, *args):
        done = run_tool([args[0], "--config",
                         _config(self.dev, self.lock_dir), *args[1:]],
                        check=False, what=self.what,
                        env={"LVM_SYSTEM_DIR": self.etc,
                             "LVM_SUPPRESS_FD_WARNINGS": "1"})
        if done.returncode != 0:
            raise ResizeError(f"{self.what}: {args[0]} failed: "
                              f"{detail(done)}")
        return done.stdout

    def group(self):
        """(Label, VolumeGroup) as the device holds them now."""
        fd = os.open(self.dev, os.O_RDONLY)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            return read_group(lambda o, n: os.pread(fd, n, o), size)
        except MapError as exc:
            raise ResizeError(f"{self.what}: its LVM2 metadata cannot be "
                              f"read ({exc})") from None
        finally:
            os.close(fd)

    def inner(self, lv):
        """(UsedMap, kind, why not) of the LV's filesystem; (None, None,
        why) when it is larger than the LV (left as it is)."""
        fd = os.open(self.dev, os.O_RDONLY)
        try:
            return _inner(lambda o, n: os.pread(fd, n, o),
                          device_size(self.dev), lv)
        except MapError as exc:
            return None, None, str(exc)
        finally:
            os.close(fd)


@contextlib.contextmanager
def lvm_on(path, what):
    """An Lvm on *path*: a block device, or a file through a loop device."""
    with tempfile.TemporaryDirectory(prefix="rdeploy-lvm-") as tmp:
        if os.path.isfile(path):
            with loop_device(path, 0, device_size(path),
                             read_only=False) as dev:
                yield Lvm(dev, tmp, what)
        else:
            yield Lvm(path, tmp, what)


#: the characters of an lvm2 UUID (lvm2's lib/uuid/uuid.c accepts these
#: and "!#"; it writes all of them)
UUID_CHARS = string.digits + string.ascii_letters


def fresh_uuid():
    """A new LVM UUID, 32 characters grouped 6-4-4-4-4-4-6."""
    raw = "".join(secrets.choice(UUID_CHARS) for _ in range(32))
    groups, at = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        groups.append(raw[at:at + width])
        at += width
    return "-".join(groups)


def renew_lv_uuids(lvm, group):
    """Give every LV of `group` a new UUID through lvm2's own backup and
    restore of the VG's metadata (each old UUID must appear once)."""
    if not group.lvs:
        return
    backup = os.path.join(lvm.tmp, "vg.cfg")
    lvm("vgcfgbackup", "-q", "-f", backup, group.name)
    with open(backup, encoding="utf-8") as f:
        text = f.read()
    for lv in group.lvs:
        old = f'id = "{lv.uuid}"'
        if text.count(old) != 1:
            raise ResizeError(f"{lvm.what}: LV {lv.name}'s UUID appears "
                              f"{text.count(old)} times in its VG's "
                              f"backup")
        text = text.replace(old, f'id = "{fresh_uuid()}"')
    with open(backup, "w", encoding="utf-8") as f:
        f.write(text)
    lvm("vgcfgrestore", "-q", "--force", "-y", "-f", backup, group.name)


def new_ids(path, what):
    """New PV, VG and LV UUIDs, and new identities for the filesystems of
    the linear one-segment LVs whose records have them: {"LV name
    filesystem": (old UUID, new UUID)}, as `blkid -p` reads them."""
    with lvm_on(path, what) as lvm:
        _, group = lvm.group()
        if group.pv_count > 1:          # its other PVs are not here
            return {}
        lvm("pvchange", "-q", "-u", lvm.dev)
        lvm("vgchange", "-q", "-u", group.name)
        renew_lv_uuids(lvm, group)
        renewed = {}
        for lv in group.lvs:
            if lv.whole or len(lv.places) != 1:
                continue
            inner, kind, _ = lvm.inner(lv)
            record = registry.lookup(kind) if inner else None
            if record is None or record.new_ids is None:
                continue
            (_, offset, size), = lv.places
            with loop_device(lvm.dev, offset, size, read_only=False) as dev:
                old = blkid(dev, "UUID")
                record.new_ids(dev, f"{what} LV {lv.name} ({kind})")
                renewed[f"LV {lv.name} filesystem"] = old, blkid(dev, "UUID")
    return renewed
