"""The kernel's view of block devices, read from sysfs,
``/proc/self/mountinfo`` and ``/proc/swaps``: which device a number names,
what a loop device is attached to, whether a device (or an image file a
loop device is attached to) is mounted, held or used as swap, and the list
of whole disks.

Everything here reads; nothing changes the system.  Tests point
:data:`SYSFS`, :data:`MOUNTINFO` and :data:`SWAPS` at a fake tree.
"""

import os
import re
import stat

SYSFS = "/sys"
MOUNTINFO = "/proc/self/mountinfo"
SWAPS = "/proc/swaps"


def read_attr(*path, default=None, exact=False):
    """A sysfs attribute's text, stripped of white space; with `exact`,
    only of the one newline that ends it (a file name may hold a CR or
    end in a space).  Bytes that are not UTF-8 are kept (surrogateescape),
    as os.fsdecode keeps them in a path."""
    try:
        with open(os.path.join(*path), newline="\n",
                  errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return default
    return text.removesuffix("\n") if exact else text.strip()


def sectors(*path):
    """A sysfs count of 512-byte sectors (whatever the device's), in bytes."""
    return int(read_attr(*path, default="0")) * 512


def _listdir(*path):
    try:
        return sorted(os.listdir(os.path.join(*path)))
    except OSError:
        return []


def stat_of(path):
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def fstat_of(fd):
    try:
        return os.fstat(fd)
    except OSError:
        return None


def sysdir_of(rdev):
    """The sysfs directory of the block device numbered *rdev*, or None."""
    link = os.path.join(SYSFS, "dev", "block", f"{os.major(rdev)}:{os.minor(rdev)}")
    return os.path.realpath(link) if os.path.exists(link) else None


def _block_sysdirs(prefix=""):
    return [os.path.realpath(os.path.join(SYSFS, "block", name))
            for name in _listdir(SYSFS, "block") if name.startswith(prefix)]


def _partitions(sysdir):
    """Sysfs directories of the partitions of the whole disk at *sysdir*."""
    name = os.path.basename(sysdir)
    return [os.path.join(sysdir, e) for e in _listdir(sysdir)
            if e.startswith(name) and os.path.exists(os.path.join(sysdir, e, "partition"))]


def unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mountinfo():
    """(major:minor, mount point, source, options) of every mount we can
    see, from MOUNTINFO.  Its fields are separated by single spaces (a
    space, tab, newline or backslash in a name is written as octal), so
    only those split it: a mount point holding a CR, ESC or bytes that are
    not UTF-8 (any user can make one, with FUSE) is read as it is, and a
    line that cannot be parsed is skipped, never the lines after it."""
    mounts = []
    try:
        with open(MOUNTINFO, newline="\n", errors="surrogateescape") as f:
            lines = f.read().split("\n")
    except OSError:
        return mounts
    for line in lines:
        fields = line.split(" ")
        try:
            tail = fields.index("-")
            options = fields[5].split(",")
        except (ValueError, IndexError):
            continue
        options += fields[tail + 3].split(",") if len(fields) > tail + 3 else []
        source = unescape(fields[tail + 2]) if len(fields) > tail + 2 else ""
        mounts.append((fields[2], unescape(fields[4]), source, options))
    return mounts


def _mounts():
    """(major:minor, mount point, source) of every mount we can see."""
    return [(majmin, point, source) for majmin, point, source, _ in mountinfo()]


def _mounted_at(sysdir, mounts):
    """Mount points of the device at *sysdir* (by number, or by source name
    for filesystems such as btrfs that report an anonymous number)."""
    number = read_attr(sysdir, "dev")
    node = "/dev/" + os.path.basename(sysdir)
    return [point for majmin, point, source in mounts
            if majmin == number or (source.startswith("/dev/") and os.path.realpath(source) == node)]


def backing_file(sysdir):
    backing = read_attr(sysdir, "loop", "backing_file", exact=True)
    return backing.removesuffix(" (deleted)") if backing else None


def _block_busy(sysdir, mounts):
    node = "/dev/" + os.path.basename(sysdir)
    points = _mounted_at(sysdir, mounts)
    if points:
        return f"mounted at {', '.join(points)}"
    holders = _listdir(sysdir, "holders")
    if holders:
        return f"held by {', '.join(holders)}"
    for part in _partitions(sysdir):
        reason = _block_busy(part, mounts)
        if reason:
            return f"partition /dev/{os.path.basename(part)} is {reason}"
    swaps = (read_attr(SWAPS) or "").splitlines()[1:]
    if any(line.split() and os.path.realpath(unescape(line.split()[0])) == node for line in swaps):
        return "in use as swap"
    return None


def busy_reason(path):
    """Why *path* must not be written now, or None when it is free.

    A block device is busy when it or one of its partitions is mounted,
    held (device-mapper, LVM, md), or used as swap, and a loop device also
    when its backing file is busy through another loop device; an image
    file when a loop device attached to it is busy.  Missing paths are free.
    """
    st, mounts = stat_of(path), _mounts()
    if st and stat.S_ISBLK(st.st_mode):
        sysdir = sysdir_of(st.st_rdev)
        reason = _block_busy(sysdir, mounts) if sysdir else None
        backing = backing_file(sysdir) if sysdir and not reason else None
        under = busy_reason(backing) if backing else None
        return f"its backing file {backing} is {under}" if under else reason
    if not (st and stat.S_ISREG(st.st_mode)):
        return None
    for loop in _block_sysdirs("loop"):
        backing = stat_of(backing_file(loop) or "")
        if backing and (backing.st_dev, backing.st_ino) == (st.st_dev, st.st_ino):
            reason = _block_busy(loop, mounts)
            if reason:
                return f"attached to /dev/{os.path.basename(loop)}, which is {reason}"
    return None


def disk_model(path):
    """The model of the block device *path* (its disk's, for a partition),
    "" for files and devices that do not say."""
    st = stat_of(path)
    if not (st and stat.S_ISBLK(st.st_mode)):
        return ""
    sysdir = sysdir_of(st.st_rdev)
    if not sysdir:
        return ""
    model = read_attr(sysdir, "device", "model", default="") or \
        read_attr(os.path.dirname(sysdir), "device", "model", default="")
    if not model and backing_file(sysdir):
        model = f"loop over {backing_file(sysdir)}"
    return model.strip()


def list_disks():
    """The whole disks in /sys/block, without RAM disks, zram, unattached
    loop devices and empty drives."""
    mounts = _mounts()
    disks = []
    for sysdir in _block_sysdirs():
        name, backing = os.path.basename(sysdir), backing_file(sysdir)
        size = sectors(sysdir, "size")
        if name.startswith(("ram", "zram")) or size == 0 or (name.startswith("loop") and not backing):
            continue
        disks.append({
            "name": name, "path": f"/dev/{name}", "size": size,
            "model": read_attr(sysdir, "device", "model", default=""),
            "logical_sector_size": int(read_attr(sysdir, "queue", "logical_block_size", default="512")),
            "physical_sector_size": int(read_attr(sysdir, "queue", "physical_block_size", default="512")),
            "removable": read_attr(sysdir, "removable") == "1",
            "rotational": read_attr(sysdir, "queue", "rotational") == "1",
            "read_only": read_attr(sysdir, "ro") == "1",
            "partitions": [{
                "name": os.path.basename(part), "path": f"/dev/{os.path.basename(part)}",
                "start": sectors(part, "start"), "size": sectors(part, "size"),
                "mounted_at": _mounted_at(part, mounts), "holders": _listdir(part, "holders"),
            } for part in _partitions(sysdir)],
            "mounted_at": _mounted_at(sysdir, mounts), "holders": _listdir(sysdir, "holders"),
            "backing_file": backing,
        })
    return disks
