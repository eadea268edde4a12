"""What the toolkit knows about one filesystem, as one record.

Each filesystem's module (or package) declares ``FILESYSTEM`` (or, where one
module covers several, ``FILESYSTEMS``), a :class:`Filesystem`; the registry
(:mod:`diskimage.fs.registry`) lists those modules once.  Everything that
depends on the kind of filesystem (capture, restore and its plan, the
checker after a restore, ``--new-ids``, imgx, the demo disks) asks the
registry for the record instead of keeping a table of kind names.

How imgx reads and edits a filesystem is data here (a reader name, an edit
method), so that the library never imports a command.
"""

from dataclasses import dataclass


def exit_zero(returncode, output):
    """The usual verdict of a read-only checker: clean when it exits 0."""
    return returncode == 0


@dataclass(frozen=True, eq=False)
class Filesystem:
    #: The kinds this record covers, as detect() names them, the image
    #: metadata records them and `blkid -p` calls them ("ext2", "fat32").
    kinds: tuple
    #: The family the kinds belong to ("ext", "fat"), and how messages name
    #: it ("ext2/3/4", "FAT12/16/32").
    family: str
    title: str
    #: Other names accepted for the kinds on input ("vfat" for FAT).
    aliases: tuple = ()
    #: detect(read) -> one of the registry's kinds, or None.  `read(offset,
    #: length)` reads the volume (its first 64 KiB + 72 bytes come from one
    #: read made for every record).  Every record is asked; a volume two
    #: kinds claim is named by none.  None: found by another record's detect.
    detect: object = None
    #: open_map(read, size) -> UsedMap (or None): the used-block map from the
    #: filesystem's own allocation structures; raises usedmap.MapError when
    #: they cannot be trusted.  None: the volume is copied whole.
    open_map: object = None
    #: identity(read) -> (label, uuid) for a kind with no map (the map gives
    #: them otherwise).
    identity: object = None
    #: whole(read) -> why a kind with no map is copied whole, as capture
    #: records it in `fallback` ("encrypted (LUKS2)"); None: "no used-block
    #: map for <kind>".
    whole: object = None
    #: The read-only checker: argv the device path is appended to, and
    #: verdict(returncode, output) -> clean.
    check: tuple = ()
    verdict: object = exit_zero
    #: grow(path, size, what) -> the size reached (at most `size`);
    #: shrink(path, size, what) -> `size`; min_size(used, size[, kind,
    #: block_size]) -> the least partition it shrinks into (None: the
    #: registry's margin rule; kind and block_size are passed to a
    #: min_size that takes them).  *path*
    #: names the filesystem alone (a file or a loop device over it).
    grow: object = None
    shrink: object = None
    min_size: object = None
    #: The least partition a grow may reach, in bytes (0: any): into a
    #: smaller one the partition grows and the filesystem keeps its size,
    #: decided by the plan before any byte is written (btrfs: the kernel's
    #: resize ioctl refuses a new size under 256 MiB).  grow_floor_why says
    #: why, for the plan's note.
    grow_floor: int = 0
    grow_floor_why: str = None
    #: new_ids(path, what): a new UUID / serial / volume ID (``--new-ids``);
    #: it may return {what: (old, new)} of the ids it renewed inside the
    #: volume ("LV root filesystem"), which restore reports too.
    new_ids: object = None
    #: What the restore plan says of a resize beyond "grow" / "shrink"
    #: ("grown on a temporary mount (xfs_growfs)"), when it is done in a
    #: way an administrator should know of.
    resize_note: str = None
    #: plan_note(area) -> the note for this image's area (its metadata), when
    #: what a resize does depends on the image (an LVM2 PV: whether its last
    #: LV grows); it stands in for resize_note.
    plan_note: object = None
    #: The tools the functions above run (their Debian packages are
    #: diskimage.host.tools.PACKAGES, the one table of them).
    tools: tuple = ()
    #: Nothing in it depends on the logical sector size: restore may
    #: convert it between 512 and 4096-byte sectors.
    sector_free: bool = False
    #: How imgx reads it (the name of its dissect-based reader: "ext",
    #: "fat", "exfat", "ntfs"; None: imgx does not browse it) and edits it
    #: ("mount": the kernel's driver by kind, "ntfs-3g" and "exfat-fuse":
    #: FUSE, "mtools": no mount at all).
    browse: str = None
    edit: str = None
    #: Names differ by case only (ext) or not (FAT, exFAT, NTFS); it keeps
    #: POSIX owners and modes, so an edit that cannot set them is an error
    #: (ext); it holds symlinks and hard links.
    case_sensitive: bool = False
    posix: bool = False
    links: bool = True
    #: The partition types an installer writes for it: MBR type (one per
    #: kind, or one for all) and GPT type GUID.
    mbr_type: object = None
    gpt_type: str = None

    def mbr_type_of(self, kind):
        """The MBR partition type (hex text) for `kind`."""
        if isinstance(self.mbr_type, dict):
            return self.mbr_type[kind]
        return self.mbr_type
