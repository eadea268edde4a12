"""LVM2 physical volumes made for the tests with lvm2's own tools, on a
machine with no device-mapper: `pvcreate`, `vgcreate` and `lvcreate -an
-Zn` on a loop device over a file, with a private configuration
(LVM_SYSTEM_DIR pointing at an empty directory, `--config` naming the one
loop device, activation off, no backups, no locking), so the host's LVM
state is neither read nor changed.  Each LV's filesystem is made and
filled through a loop device at its segment's offset in the PV.

Interface (fs-fleet uses it: keep it stable):
  make_pv(tmp_path, size_mib, lvs, vg="vgtest", extent_mib=1, name="pv.img",
          garbage=None, pv_args=())
      -> PV(image, vg, lvs={name: LV(name, places, fs, digests)})
      `lvs`: [(name, size_mib, fs or None)], created in order; fs "ext4"
      or "xfs" (>= 300 MiB; filled with a small tree) or None (left as it
      was); `garbage`: a
      seed to start the PV full of random bytes instead of zeros.
  attached(image, offset=0, size=None) -> context of (run, dev): lvm
      commands on the PV through a loop device
  attached_all(*images) -> context of (run, devs): a VG over several PVs
  rewrite_metadata(image, edit, vg="vgtest"): vgcfgbackup, edit(text),
      vgcfgrestore --force (thin pools, RAID without device-mapper)
  lvm(image, command, *args, offset=0, size=None) -> stdout of an lvm
      command run on the PV image (or the PV at offset in a disk image)
  report(image, offset=0, size=None) -> {"pv": {...}, "vg": {...},
      "lv": {name: {...}}} from pvs/vgs/lvs --reportformat json
  places(image, offset=0, size=None) -> {lv name: [(pv byte offset,
      bytes)]} from lvs -o seg_pe_ranges and pvs -o pe_start
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import demodisk
from diskimage.host.loop import loop_device
from tests.fsbuild import unmount
from tests.fsmaps import KiB, MiB, random_fill, run

LVM_TOOLS = ("pvcreate", "vgcreate", "lvcreate", "lvs", "pvs", "vgs",
             "losetup", "mkfs.ext4")


@dataclasses.dataclass
class LV:
    name: str
    places: list                # [(offset in the PV, bytes)], in LV order
    fs: str
    digests: dict

    @property
    def size(self):
        return sum(size for _, size in self.places)


@dataclasses.dataclass
class PV:
    image: object
    vg: str
    lvs: dict


def config(dev, etc):
    """The --config text that confines lvm to the loop device `dev` (or
    the loop devices of a list), with its locks in the private directory
    `etc`."""
    devs = [dev] if isinstance(dev, str) else dev
    accept = "".join(f'"a|^{d}$|", ' for d in devs)
    return (f'devices {{ use_devicesfile = 0 filter = [ {accept}'
            f'"r|.*|" ] obtain_device_list_from_udev = 0 '
            f'external_device_info_source = "none" scan = [ "/dev" ] }} '
            f'global {{ activation = 0 locking_dir = "{etc}/lock" }} '
            f'activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }} '
            f'backup {{ backup = 0 archive = 0 }} '
            f'log {{ verbose = 0 }}')


@contextlib.contextmanager
def attached(image, offset=0, size=None):
    """(run, dev): `run(*args)` runs an lvm command on `image` (or its
    bytes [offset, offset+size), a partition) through a loop device `dev`
    with the private configuration."""
    etc = tempfile.mkdtemp(prefix="lvmbuild-etc-")
    env = dict(os.environ, LVM_SYSTEM_DIR=etc, LVM_SUPPRESS_FD_WARNINGS="1")
    where = ["-o", str(offset)] + (["--sizelimit", str(size)] if size
                                   else [])
    dev = run("losetup", "--find", "--show", *where, image).stdout.strip()
    try:
        def lvm_run(command, *args, check=True):
            return run(command, "--config", config(dev, etc), *args,
                       env=env, check=check)
        yield lvm_run, dev
    finally:
        run("losetup", "-d", dev)
        shutil.rmtree(etc)


@contextlib.contextmanager
def attached_all(*images):
    """(run, devs): lvm commands on several PV images at once (a volume
    group spanning them), each through its loop device."""
    etc = tempfile.mkdtemp(prefix="lvmbuild-etc-")
    env = dict(os.environ, LVM_SYSTEM_DIR=etc, LVM_SUPPRESS_FD_WARNINGS="1")
    devs = []
    try:
        for image in images:
            devs.append(run("losetup", "--find", "--show",
                            image).stdout.strip())

        def lvm_run(command, *args, check=True):
            return run(command, "--config", config(devs, etc), *args,
                       env=env, check=check)
        yield lvm_run, devs
    finally:
        for dev in devs:
            run("losetup", "-d", dev)
        shutil.rmtree(etc)


def rewrite_metadata(image, edit, vg="vgtest"):
    """The VG's metadata rewritten by lvm2 itself: `vgcfgbackup`, then
    edit(text) -> text, then `vgcfgrestore --force` (how the tests get
    thin pools and RAID LVs, which lvcreate refuses without
    device-mapper, into a PV)."""
    with attached(image) as (lvm_run, dev):
        backup = os.path.join(tempfile.mkdtemp(prefix="lvmbuild-cfg-"),
                              "vg.cfg")
        lvm_run("vgcfgbackup", "-q", "-f", backup, vg)
        with open(backup) as f:
            text = edit(f.read())
        with open(backup, "w") as f:
            f.write(text)
        lvm_run("vgcfgrestore", "-q", "--force", "-y", "-f", backup, vg)
        shutil.rmtree(os.path.dirname(backup))


def lvm(image, command, *args, offset=0, size=None):
    """stdout of one lvm command (`pvs`, `lvs` ...) on the PV image."""
    with attached(image, offset, size) as (lvm_run, dev):
        return lvm_run(command, *args).stdout


def _json(lvm_run, command, fields):
    out = lvm_run(command, "--reportformat", "json", "--units", "b",
                  "--nosuffix", "-o", fields).stdout
    rows = json.loads(out)["report"][0]
    return next(iter(rows.values()))


def report(image, offset=0, size=None):
    """What lvm2 itself says of the PV image (or of the PV at [offset,
    offset+size) of a disk image): the PV, its VG and its LVs (sizes in
    bytes as text, as lvm's json report gives them; the loop device's name
    left out)."""
    with attached(image, offset, size) as (lvm_run, dev):
        pv = _json(lvm_run, "pvs", "pv_name,pv_uuid,pv_size,dev_size,"
                   "pe_start,pv_pe_count,pv_pe_alloc_count,vg_name")
        vg = _json(lvm_run, "vgs", "vg_name,vg_uuid,vg_size,vg_free,"
                   "vg_extent_size,vg_extent_count,vg_free_count,lv_count,"
                   "pv_count,vg_seqno")
        lv = _json(lvm_run, "lvs", "lv_name,lv_uuid,lv_size,seg_count,"
                   "segtype,lv_attr")
    pv[0].pop("pv_name")
    return {"pv": pv[0], "vg": vg[0], "lv": {row["lv_name"]: row
                                              for row in lv}}


def _places(lvm_run):
    pe_start = int(_json(lvm_run, "pvs", "pe_start")[0]["pe_start"])
    extent = int(_json(lvm_run, "vgs", "vg_extent_size")[0][
        "vg_extent_size"])
    rows = _json(lvm_run, "lvs", "lv_name,seg_le_ranges,seg_pe_ranges,"
                 "seg_start_pe")
    found = {}
    for row in sorted(rows, key=lambda r: (r["lv_name"],
                                           int(r["seg_start_pe"]))):
        # "/dev/loop3:4-6": physical extents 4 to 6 inclusive
        first, last = row["seg_pe_ranges"].rsplit(":", 1)[1].split("-")
        count = int(last) - int(first) + 1
        found.setdefault(row["lv_name"], []).append(
            (pe_start + int(first) * extent, count * extent))
    return found


def places(image, offset=0, size=None):
    """{lv name: [(byte offset in the PV, bytes)]}, segments in LV order."""
    with attached(image, offset, size) as (lvm_run, dev):
        return _places(lvm_run)


#: mkfs for each filesystem an LV gets (XFS: at least 300 MiB with this
#: xfsprogs): the argv the device is appended to.
MKFS = {"ext4": ("mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-L"),
        "xfs": ("mkfs.xfs", "-q", "-f", "-K", "-L")}


def fill(image, offset, size, tmp_path, name, seed, fs):
    """mkfs of `fs` at [offset, offset+size) of `image` and a small tree
    in it: {path: sha256}."""
    label = name[:12] if fs == "xfs" else name
    with loop_device(image, offset, size, read_only=False) as dev:
        run(*MKFS[fs], label, dev)
        mnt = tmp_path / f"mnt-{name}"
        os.makedirs(mnt, exist_ok=True)
        run("mount", "-t", fs, dev, mnt)
        try:
            digests = demodisk.make_tree(os.path.join(mnt, "tree"), 40,
                                         seed, max_size=16 * KiB)
        finally:
            unmount(mnt)
        digests = {f"tree/{k}": v for k, v in digests.items()}
        os.sync()
    return digests




def make_pv(tmp_path, size_mib, lvs, vg="vgtest", extent_mib=1,
            name="pv.img", garbage=None, pv_args=()):
    """A PV image of `size_mib` holding VG `vg` and the LVs `lvs`
    [(name, size_mib, fs or None)], each fs made and filled.  With a
    `garbage` seed the PV starts full of random bytes (a used disk: free
    extents and free blocks hold garbage), else zeros.  `pv_args`: more
    pvcreate options ("--pvmetadatacopies", "2")."""
    image = tmp_path / name
    if garbage is None:
        with open(image, "wb") as f:
            f.truncate(size_mib * MiB)
    else:
        random_fill(image, size_mib * MiB, garbage)
    with attached(image) as (lvm_run, dev):
        lvm_run("pvcreate", "-q", *pv_args, dev)
        lvm_run("vgcreate", "-q", "-s", f"{extent_mib}m", vg, dev)
        for lv_name, lv_mib, _ in lvs:
            lvm_run("lvcreate", "-q", "-an", "-Zn", "-L", f"{lv_mib}m",
                    "-n", lv_name, vg)
        where = _places(lvm_run)
    made = {}
    for seed, (lv_name, _, fs) in enumerate(lvs, start=1):
        digests = {}
        if fs in MKFS:
            (offset, size), = where[lv_name]
            digests = fill(image, offset, size, tmp_path, lv_name, seed, fs)
        elif fs is not None:
            raise ValueError(f"lvmbuild makes ext4, xfs or nothing, not "
                             f"{fs}")
        made[lv_name] = LV(lv_name, where[lv_name], fs, digests)
    return PV(image, vg, made)
