"""LVM2 physical volumes made for the tests with lvm2's own tools, on a
machine with no device-mapper: `pvcreate`, `vgcreate` and `lvcreate -an
-Zn` on a loop device over a file, with a private configuration
(LVM_SYSTEM_DIR pointing at an empty directory, `--config` naming the one
loop device, activation off, no backups, no locking), so the host's LVM
state is neither read nor changed.  Each LV's filesystem is made and
filled through a loop device at its segment's offset in the PV.

Interface (fs-fleet uses it: keep it stable):
  make_pv(tmp_path, size_mib, lvs, vg="vgtest", extent_mib=1, name="pv.img")
      -> PV(image, vg, lvs={name: LV(name, places, fs, digests)})
      `lvs`: [(name, size_mib, fs or None)], created in order; fs "ext4"
      (filled with a small tree) or None (left as garbage-free zeros).
  lvm(image, *args) -> stdout of an lvm command run on the PV image
  report(image) -> {"pv": {...}, "vg": {...}, "lv": {name: {...}}} from
      pvs/vgs/lvs --reportformat json
  places(image) -> {lv name: [(pv byte offset, bytes)]} from
      lvs -o seg_pe_ranges and pvs -o pe_start
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
from tests.fsmaps import KiB, MiB, run

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
    """The --config text that confines lvm to the loop device `dev`, with
    its locks in the private directory `etc`."""
    return (f'devices {{ use_devicesfile = 0 filter = [ "a|^{dev}$|", '
            f'"r|.*|" ] obtain_device_list_from_udev = 0 '
            f'external_device_info_source = "none" scan = [ "/dev" ] }} '
            f'global {{ activation = 0 locking_dir = "{etc}/lock" }} '
            f'activation {{ udev_sync = 0 udev_rules = 0 monitoring = 0 }} '
            f'backup {{ backup = 0 archive = 0 }} '
            f'log {{ verbose = 0 }}')


@contextlib.contextmanager
def attached(image):
    """(run, dev): `run(*args)` runs an lvm command on `image` through a
    loop device `dev` with the private configuration."""
    etc = tempfile.mkdtemp(prefix="lvmbuild-etc-")
    env = dict(os.environ, LVM_SYSTEM_DIR=etc, LVM_SUPPRESS_FD_WARNINGS="1")
    dev = run("losetup", "--find", "--show", image).stdout.strip()
    try:
        def lvm_run(command, *args, check=True):
            return run(command, "--config", config(dev, etc), *args,
                       env=env, check=check)
        yield lvm_run, dev
    finally:
        run("losetup", "-d", dev)
        shutil.rmtree(etc)


def lvm(image, command, *args):
    """stdout of one lvm command (`pvs`, `lvs` ...) on the PV image."""
    with attached(image) as (lvm_run, dev):
        return lvm_run(command, *args).stdout


def _json(lvm_run, command, fields):
    out = lvm_run(command, "--reportformat", "json", "--units", "b",
                  "--nosuffix", "-o", fields).stdout
    rows = json.loads(out)["report"][0]
    return next(iter(rows.values()))


def report(image):
    """What lvm2 itself says of the PV image: the PV, its VG and its LVs
    (sizes in bytes as text, as lvm's json report gives them)."""
    with attached(image) as (lvm_run, dev):
        pv = _json(lvm_run, "pvs", "pv_name,pv_uuid,pv_size,dev_size,"
                   "pe_start,pv_pe_count,pv_pe_alloc_count,vg_name")
        vg = _json(lvm_run, "vgs", "vg_name,vg_uuid,vg_size,vg_free,"
                   "vg_extent_size,vg_extent_count,vg_free_count,lv_count,"
                   "pv_count,vg_seqno")
        lv = _json(lvm_run, "lvs", "lv_name,lv_uuid,lv_size,seg_count,"
                   "segtype,lv_attr")
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


def places(image):
    """{lv name: [(byte offset in the PV, bytes)]}, segments in LV order."""
    with attached(image) as (lvm_run, dev):
        return _places(lvm_run)


def fill_ext(image, offset, size, tmp_path, name, seed):
    """mkfs.ext4 at [offset, offset+size) of `image` and a small tree in it:
    {path: sha256}."""
    with loop_device(image, offset, size, read_only=False) as dev:
        run("mkfs.ext4", "-q", "-F", "-L", name, dev)
        mnt = tmp_path / f"mnt-{name}"
        os.makedirs(mnt, exist_ok=True)
        run("mount", "-t", "ext4", dev, mnt)
        try:
            digests = demodisk.make_tree(os.path.join(mnt, "tree"), 40,
                                         seed, max_size=16 * KiB)
        finally:
            unmount(mnt)
        digests = {f"tree/{k}": v for k, v in digests.items()}
        os.sync()
    return digests


def make_pv(tmp_path, size_mib, lvs, vg="vgtest", extent_mib=1,
            name="pv.img"):
    """A PV image of `size_mib` holding VG `vg` and the LVs `lvs`
    [(name, size_mib, fs or None)], each fs made and filled."""
    image = tmp_path / name
    with open(image, "wb") as f:
        f.truncate(size_mib * MiB)
    with attached(image) as (lvm_run, dev):
        lvm_run("pvcreate", "-q", dev)
        lvm_run("vgcreate", "-q", "-s", f"{extent_mib}m", vg, dev)
        for lv_name, lv_mib, _ in lvs:
            lvm_run("lvcreate", "-q", "-an", "-Zn", "-L", f"{lv_mib}m",
                    "-n", lv_name, vg)
        where = _places(lvm_run)
    made = {}
    for seed, (lv_name, _, fs) in enumerate(lvs, start=1):
        digests = {}
        if fs == "ext4":
            (offset, size), = where[lv_name]
            digests = fill_ext(image, offset, size, tmp_path, lv_name, seed)
        elif fs is not None:
            raise ValueError(f"lvmbuild makes ext4 or nothing, not {fs}")
        made[lv_name] = LV(lv_name, where[lv_name], fs, digests)
    return PV(image, vg, made)
