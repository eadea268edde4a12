"""The service partition's table entry: found, added, and grown; and the
shrink of the partition whose room it takes.

A partition is the service partition when its table entry has our type
(GPT :data:`~diskimage.service.layout.GPT_TYPE`, MBR primary
:data:`~diskimage.service.layout.MBR_TYPE`) AND its raw tail holds a valid
record (:mod:`diskimage.service.tail`): a type alone is never trusted.

The table writes are built by :mod:`diskimage.tables.write` (both GPT
copies with their CRCs, or sector 0 of an MBR), returned as
``[(offset, bytes)]`` and applied by :func:`apply` with the signals that
end a command held (:mod:`diskimage.sighold`), so a Ctrl-C never cuts a
table in half.
"""

import os
import uuid
from dataclasses import asdict, dataclass

from .. import sighold
from ..errors import (DiskImageError, InputError, MissingToolError,
                      TargetChangedError, TargetError)
from ..fs import resize
from ..host import sysfs
from ..host.device import open_source, open_target, sync, write_all
from ..host.tools import run
from ..sizes import format_size
from ..tables import gpt, mbr
from ..tables.partitions import read_table
from ..tables.write import gpt_writes, mbr_writes
from . import layout, lock, record

@dataclass
class Service:
    disk: str
    number: int
    start: int
    size: int
    table_kind: str             # "gpt" or "mbr"
    part_id: str                # GPT unique GUID; MBR "<sig 8 hex>-<nn>"
    sector_size: int = 512

    @property
    def fs_size(self):
        return layout.fs_size(self.size)

    @property
    def tail_offset(self):
        return layout.tail_offset(self.start, self.size)

    @property
    def end(self):
        return self.start + self.size

    def to_dict(self):
        return dict(asdict(self), fs_size=self.fs_size,
                    tail_offset=self.tail_offset)


# --- reading ------------------------------------------------------------------
def read_disk(path):
    """(table, sector 0) of the disk or disk file *path*, read-only.
    InputError for a path that is no disk; TableError for a bad table."""
    with open_source(path) as disk:
        return _read(disk), disk.read(0, disk.logical_sector_size)


def _read(disk):
    if disk.is_block:
        return read_table(disk.read, disk.size, disk.logical_sector_size,
                          sector_size_from="the device")
    return read_table(disk.read, disk.size, 512, sector_size_from=None)


def is_service_type(table, part):
    if table.kind == "gpt":
        return part.type == layout.GPT_TYPE
    return table.kind == "mbr" and part.number < mbr.FIRST_LOGICAL and \
        part.type == layout.MBR_TYPE_TEXT


def part_id(table, part):
    """How the environment names the partition: GPT's unique GUID, or the
    MBR disk signature and the number, as Linux's PARTUUID."""
    if table.kind == "gpt":
        return part.uuid
    return f"{int(table.disk_id, 16):08x}-{part.number:02d}"


def service_of(path, table, part):
    return Service(path, part.number, part.start, part.size, table.kind,
                   part_id(table, part), table.sector_size)


class DamagedService(InputError):
    """A partition that is ours (our GPT type; an MBR 0x1c whose FAT is
    labelled RDSERVICE or holds /bwpart/install.json) with neither copy of
    the record whole: never "no service partition".  *service*: it;
    *reason*: what is wrong with the tail copy (copy and byte offset)."""

    def __init__(self, service, reason):
        super().__init__(f"{service.disk}: partition {service.number} is a "
                         f"damaged service partition: {reason}, and "
                         f"/bwpart/install.json is not whole either")
        self.service, self.reason = service, reason


def tail_check(service):
    """None when *service*'s tail holds a valid record (a type alone is
    never trusted), else why not (the copy and its byte offset)."""
    from . import tail
    if service.size < layout.MIN_SIZE or service.size % layout.ALIGN:
        return (f"its size {service.size} is not a whole number of MiB of "
                f"at least {format_size(layout.MIN_SIZE)}")
    try:
        if tail.read_record(service, fat_copy=False) is not None:
            return None
    except InputError as err:
        said, prefix = str(err), f"{service.disk}: "
        return said[len(prefix):] if said.startswith(prefix) else said
    return (f"no service record (tail copy) at byte "
            f"{service.tail_offset + tail.RECORD_AT}")


def _fat_says_ours(service):
    """An MBR 0x1c partition is ours when its FAT32 boot sector's label
    (byte 71, 11 bytes) is RDSERVICE or the FAT holds install.json."""
    from . import fatfs
    with open_source(service.disk) as disk:
        boot = disk.read(service.start, 512)
    if boot[71:82].rstrip(b" ") == layout.FAT_LABEL.encode():
        return True
    try:
        with fatfs.open_fat(service) as fat:
            return fat.exists(layout.RECORD_PATH)
    except DiskImageError:
        return False


def find_service(disk):
    """The service partition of the disk or disk file *disk*, or None.
    Found by its type and a whole record: the tail copy, or (tail copy
    missing or damaged) a whole /bwpart/install.json of this partition.
    A partition that is ours with neither copy whole raises
    DamagedService (InputError)."""
    from . import tail
    with open_source(disk) as opened:
        table = _read(opened)
    for part in table.partitions:
        if not is_service_type(table, part):
            continue
        service = service_of(disk, table, part)
        why = tail_check(service)
        if why is None:
            return service
        if service.size > layout.TAIL_SIZE and \
                tail.fat_record(service) is not None:
            return service
        if table.kind == "gpt" or (service.size > layout.TAIL_SIZE and
                                   _fat_says_ours(service)):
            raise DamagedService(service, why)
    return None


def service_by_id(wanted):
    """The service partition whose part_id is *wanted*, on any disk in
    /sys/block (the environment's way to find it).  InputError when none."""
    wanted = wanted.lower()
    for found in sysfs.list_disks():
        if found["name"].startswith("loop") and not found["backing_file"]:
            continue
        try:
            service = find_service(found["path"])
        except DiskImageError:  # unreadable, no table: not ours to judge
            continue
        if service is not None and service.part_id.lower() == wanted:
            return service
    raise InputError(f"no service partition {wanted} on any disk "
                     f"(looked at /sys/block)")


# --- the table writes ---------------------------------------------------------
def _rows(table):
    return [dict(number=p.number, start=p.start, size=p.size, type=p.type,
                 uuid=p.uuid, name=p.name, attrs=p.attrs,
                 bootable=p.bootable) for p in table.partitions]


def new_uuid():
    return str(uuid.uuid4())


def table_writes(table, sector0, changes, new=None):
    """The writes that give *table* the sizes in *changes* ({number: new
    size}) and, when given, the *new* entry (a dict: number, start, size
    and, GPT, uuid).  GPT: both copies, from all entries; sector 0 kept as
    it is unless it is a hybrid MBR whose records follow their partitions.
    MBR: sector 0 with the changed and new primary records."""
    rows = _rows(table)
    for row in rows:
        if row["number"] in changes:
            row["size"] = changes[row["number"]]
    if new is not None:
        spans = [(r["start"], r["start"] + r["size"], f"partition "
                  f"{r['number']}") for r in rows]
        spans += [(start, end, "the extended partition")
                  for start, end in extended_spans(table, sector0)]
        end = new["start"] + new["size"]
        for start, stop, what in spans:
            if start < end and new["start"] < stop:
                raise TargetError(f"the new partition (bytes {new['start']}"
                                  f" to {end}) would overlap {what}")
    if table.kind == "gpt":
        if new is not None:
            rows.append(dict(new, type=layout.GPT_TYPE, name=layout.GPT_NAME,
                             attrs=layout.GPT_ATTRS))
        moved = {(p.start, p.size): (p.start, changes.get(p.number, p.size))
                 for p in table.partitions}
        writes = gpt_writes(rows, table.disk_size, table.sector_size,
                            table.disk_id, sector0, moved,
                            table.sector_size)
        plain = _with_protective_only(sector0, table)
        if plain:
            writes = [(at, data) for at, data in writes if at != 0]
        return writes
    primaries = [r for r in rows if r["number"] in changes]
    if new is not None:
        primaries.append(dict(new, type=layout.MBR_TYPE_TEXT,
                              bootable=False))
    if any(r["number"] >= mbr.FIRST_LOGICAL for r in primaries):
        raise TargetError("a logical partition's size is not changed here")
    return mbr_writes(sector0, primaries, table.sector_size)


def _with_protective_only(sector0, table):
    """Sector 0 of a GPT disk holds a protective record and no other: it
    needs no write (its 0xEE record already covers the disk)."""
    records = [mbr.PARTITION_RECORD.unpack(sector0, mbr.PARTITION_RECORD_OFFSET
                                           + 16 * slot) for slot in range(4)]
    used = [r for r in records if mbr.is_used(r)]
    return len(used) == 1 and used[0].os_type == mbr.PROTECTIVE_TYPE


def apply(path, writes, what):
    """Write *writes* to *path* and fsync, the signals held meanwhile.
    The disk is opened without O_EXCL: its other partitions may be mounted
    (the running OS), which is what a service partition is installed
    beside; the plan has refused a mounted partition it changes."""
    held = sighold.hold()
    try:
        with open_target(path, exclusive=False) as disk:
            for offset, data in writes:
                write_all(disk, offset, data)
            sync(disk)
    finally:
        sighold.release(held)
    _tell_kernel(path)


def _tell_kernel(path):
    """Let the kernel see the new table of a block device whose other
    partitions are in use (partx updates what it can; best effort).

    Only when the kernel already lists partitions of the disk: a loop
    device attached without partition scanning lists none, and partitions
    partx added to it would outlive its detaching (the next user of that
    loop device would find them, and mkfs refuse it)."""
    try:
        import stat
        st = os.stat(path)
        if not stat.S_ISBLK(st.st_mode) or not _kernel_partitions(st):
            return
    except OSError:
        return
    try:
        run(["partx", "--update", path], check=False)
    except MissingToolError:
        pass        # the kernel sees it at the next boot


def _kernel_partitions(st):
    """The kernel lists partitions of the disk whose stat is `st`."""
    node = f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    try:
        return any(os.path.exists(os.path.join(node, name, "partition"))
                   for name in os.listdir(node))
    except OSError:
        return False


def check_written(path, expected):
    """Read the table back and compare it with *expected* ({number: (start,
    size)}): TargetChangedError naming the first difference."""
    table, _ = read_disk(path)
    have = {p.number: (p.start, p.size) for p in table.partitions}
    for number, place in expected.items():
        if have.get(number) != place:
            raise TargetChangedError(
                f"{path}: partition {number} reads back as {have.get(number)}"
                f" after the table write, not {place}")
    return table


# --- shrink and grow ----------------------------------------------------------
def shrink_fs(path, part_start, old_size, kind, new_size, progress=None):
    """Shrink the *kind* filesystem of the partition at *part_start* to
    *new_size* bytes (fs.resize on a loop device over the partition);
    returns its size after."""
    what = f"{path}: partition at {part_start}"
    if progress:
        progress(f"shrinking the {resize.title(kind)} filesystem to "
                 f"{format_size(new_size)}")
    with resize.region(path, part_start, old_size) as dev:
        return resize.resize(kind, dev, new_size, what)


def check_fs(path, part_start, size, kind):
    """The filesystem's own checker on the partition, read-only."""
    with resize.region(path, part_start, size) as dev:
        resize.check(kind, dev, f"{path}: partition at {part_start}")


def grow(service, new_size, progress=None):
    """Grow *service* to *new_size* bytes into the free space right after
    it: the tail copied to the new end first, then the table entry, then
    the FAT grown over the old tail, and the record resealed (its areas'
    after-digests and size: the new table is the install's own).
    TargetError (nothing written) when the space after it is not free.
    Holds the disk's lock (lock.held)."""
    with lock.held(service.disk):
        return _grow(service, new_size, progress)


def _grow(service, new_size, progress):
    if new_size % layout.ALIGN or new_size < service.size:
        raise InputError(f"{service.disk}: a service partition grows to a "
                         f"whole number of MiB above its "
                         f"{format_size(service.size)}, not "
                         f"{format_size(new_size)}")
    if new_size == service.size:
        return service
    table, sector0 = read_disk(service.disk)
    limit = free_after(table, sector0, service.end)
    if service.start + new_size > limit:
        raise TargetError(
            f"{service.disk}: partition {service.number} cannot grow to "
            f"{format_size(new_size)}: only "
            f"{format_size(limit - service.end)} are free after it")
    if table.kind == "mbr" and \
            service.start + new_size > mbr.MAX_LBAS * table.sector_size:
        raise TargetError(f"{service.disk}: an MBR partition cannot end "
                          f"past {format_size(mbr.MAX_LBAS * table.sector_size)}")
    new_tail = layout.tail_offset(service.start, new_size)
    with open_source(service.disk) as disk:
        tail = disk.read(service.tail_offset, layout.TAIL_SIZE)
    if progress:
        progress("copying the tail to the new end")
    apply(service.disk, [(new_tail, tail)], "tail")
    try:
        apply(service.disk, table_writes(table, sector0,
                                         {service.number: new_size}),
              "table")
        check_written(service.disk, {service.number: (service.start,
                                                      new_size)})
        grown = Service(service.disk, service.number, service.start,
                        new_size, service.table_kind, service.part_id,
                        service.sector_size)
        # the new table is ours: remove takes it, even when the FAT grow
        # below fails (a FAT smaller than its partition is still whole)
        record.reseal(grown)
        if progress:
            progress("growing the FAT")
        with resize.region(service.disk, service.start,
                           layout.fs_size(new_size)) as dev:
            resize.resize("fat32", dev, layout.fs_size(new_size),
                          f"{service.disk}: partition {service.number}")
    except TargetChangedError:
        raise
    except Exception as exc:
        raise TargetChangedError(
            f"{service.disk}: growing partition {service.number} failed "
            f"after its tail was copied to byte {new_tail}: {exc}") from exc
    return grown


def free_after(table, sector0, offset):
    """Where the free space starting at *offset* ends: the next partition
    (or, on MBR, extended container) start, or the end of what the table
    lets partitions use."""
    ends = [p.start for p in table.partitions if p.start >= offset]
    ends += [start for start, _ in extended_spans(table, sector0)
             if start >= offset]
    return min(ends + [usable_end(table)])


def usable_end(table):
    """The byte after the last a partition may use: GPT, the backup entry
    array a new table puts at the disk's end; MBR, the disk end."""
    ss = table.sector_size
    if table.kind == "gpt":
        count = max([128] + [p.number for p in table.partitions])
        array = -(-count * gpt.GPT_ENTRY.size // ss)
        return (table.disk_size // ss - 1 - array) * ss
    return table.disk_size // ss * ss


def extended_spans(table, sector0):
    """(start, end) in bytes of each MBR extended container."""
    if table.kind != "mbr":
        return []
    found = []
    for ext in table.extended:
        r = mbr.PARTITION_RECORD.unpack(
            sector0, mbr.PARTITION_RECORD_OFFSET + 16 * (ext["number"] - 1))
        found.append((r.starting_lba * table.sector_size,
                      (r.starting_lba + r.size_in_lba) * table.sector_size))
    return found
