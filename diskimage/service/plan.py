"""The install plan: every check of ``bwpart install`` done, nothing
written.

:func:`plan_install` reads the disk (its table, sector 0, the room for
the partition: :mod:`diskimage.service.room`), the bundle
(``bundle.load``), the firmware to boot by, and the BIOS boot code
(``biosboot.identify``) and the tools the install needs: BIOS firmware with a boot code bwpart cannot
chain from is refused here; on UEFI the BIOS side is recorded as
unsupported, with why.  It takes the record's snapshot of every area the
install may change and builds the table writes, each checked to lie in a
snapshot area, so ``--dry-run`` shows exactly what :func:`install` does.
"""

import os
import shutil
from dataclasses import dataclass, field

from ..errors import InputError, MissingToolError, TargetError
from ..fs import resize
from ..host import tools
from ..sizes import format_size
from . import biosboot, bundle as bundles, layout, loaders, partition, record
from . import room as rooms


@dataclass
class InstallPlan:
    disk: str
    disk_size: int
    sector_size: int
    table_kind: str             # "gpt" or "mbr"
    room: object                # room.Room
    bundle: object              # bundle.Bundle
    bundle_dir: str
    firmware: str               # "bios" or "uefi"
    efi_loader: str             # "shim" or "grub"
    bios: dict                  # {"code", "method"} | {"unsupported": why}
    part_uuid: str              # GPT: the new entry's unique GUID; MBR ""
    part_id: str
    areas: list = field(default_factory=list)    # record.snapshot
    writes: list = field(default_factory=list)   # [(offset, bytes)]
    notes: list = field(default_factory=list)

    @property
    def shrink(self):
        return self.room.shrink

    @property
    def size(self):
        return self.room.size

    def partition_row(self):
        """The new entry: number, start, size, part_id, type."""
        return {"number": self.room.number, "start": self.room.start,
                "size": self.room.size, "part_id": self.part_id,
                "type": layout.GPT_TYPE if self.table_kind == "gpt"
                else layout.MBR_TYPE_TEXT}

    def bundle_info(self):
        return dict(getattr(self.bundle, "info", None) or {})

    def to_dict(self):
        info = self.bundle_info()
        return {
            "disk": self.disk, "disk_size": self.disk_size,
            "sector_size": self.sector_size, "table": self.table_kind,
            "partition": self.partition_row(),
            "shrink": self.room.to_dict()["shrink"],
            "bundle": {"dir": self.bundle_dir,
                       "version": info.get("version"),
                       "id": info.get("id"),
                       "secure_boot": info.get("secure_boot", False)},
            "firmware": self.firmware, "efi_loader": self.efi_loader,
            "bios": dict(self.bios),
            "writes": [{"offset": at, "size": len(data)}
                       for at, data in self.writes],
            "notes": list(self.room.notes) + list(self.notes),
        }

    def lines(self):
        """The plan as restore shows its own: one line per step."""
        info = self.bundle_info()
        r = self.room
        out = [f"plan: install a service partition on {self.disk} "
               f"({format_size(self.disk_size)}, {self.sector_size}-byte "
               f"sectors, {self.table_kind.upper()})", ""]
        if r.shrink:
            number, fs, old, new = r.shrink
            out.append(f"shrink: partition {number} ({resize.title(fs)}) "
                       f"from {format_size(old)} to {format_size(new)}, "
                       f"its filesystem first")
        kind = (f"type {layout.GPT_TYPE}, attributes 0x{layout.GPT_ATTRS:016x}"
                f", name \"{layout.GPT_NAME}\"" if self.table_kind == "gpt"
                else f"type 0x{layout.MBR_TYPE:02x} (hidden FAT32), "
                     f"not active")
        out.append(f"new: partition {r.number} at byte {r.start}, "
                   f"{format_size(r.size)} ({kind}), id {self.part_id}")
        out.append(f"format: FAT32 \"{layout.FAT_LABEL}\" over "
                   f"{format_size(layout.fs_size(r.size))}, the last "
                   f"{format_size(layout.TAIL_SIZE)} holds the record")
        out.append(f"environment: {self.bundle_dir} (version "
                   f"{info.get('version', '?')}) into slot e1")
        out.append(f"loaders: UEFI {self.efi_loader}"
                   + (f", BIOS syslinux (boot code {self.bios['code']}, "
                      f"{self.bios['method']})" if "code" in self.bios
                      else f"; BIOS unsupported: {self.bios['unsupported']}"))
        out.append(f"firmware: {self.firmware} (boot-next arms it; install "
                   f"changes no boot code and no NVRAM)")
        out.append(f"table: {len(self.writes)} writes, "
                   f"{sum(len(d) for _, d in self.writes)} bytes, each in an "
                   f"area the record keeps for bwpart remove")
        out += [f"note: {note}" for note in r.notes + self.notes]
        return out


def running_firmware():
    """The running machine's firmware (part E's arming.firmware when it is
    there)."""
    try:
        from .arming import firmware
    except ImportError:
        return "uefi" if os.path.isdir("/sys/firmware/efi") else "bios"
    return firmware()


def bios_code(sector0, table_kind, firmware, disk=None):
    """{"code", "method"} from part C's biosboot.identify, or, on UEFI,
    {"unsupported": why} when it refuses; on BIOS its refusal stands,
    beginning with *disk* ("DISK: BIOS: ...")."""
    try:
        name, method = biosboot.identify(sector0, table_kind)
    except TargetError as exc:
        if firmware == "bios":
            where = f"{disk}: " if disk else ""
            raise TargetError(f"{where}BIOS: {exc}") from None
        return {"unsupported": str(exc)}
    return {"code": name, "method": method}


def check_tools(efi_loader, bios, bundle):
    """MissingToolError now, before any write, for a tool or loader file
    the install will need."""
    path = tools.tool_env().get("PATH")
    needed = ["mkfs.fat", "mcopy", "mdir"]
    if "code" in bios:
        needed.append("syslinux")
        file, package = loaders.LDLINUX_C32
        if not os.path.isfile(file):
            raise MissingToolError(file, package, "the BIOS loader")
    if efi_loader == "grub":
        needed.append("grub-mkstandalone")
        directory, package = loaders.GRUB_EFI_DIR
        if not os.path.isdir(directory):
            raise MissingToolError(directory, package, "the standalone GRUB")
    else:
        loaders.signed_files(bundle)
    for tool in needed:
        if shutil.which(tool, path=path) is None:
            raise MissingToolError(tool, what="bwpart install")


def plan_install(disk, bundle_dir, size=None, shrink=None, firmware=None,
                 efi_loader="shim"):
    """Decide what ``bwpart install`` does; every check done, nothing
    written.  Raises InputError (bad options, bundle), TargetError (the
    disk refused)."""
    if efi_loader not in layout.EFI_LOADERS:
        raise InputError(f"--efi-loader={efi_loader}: one of "
                         f"{', '.join(layout.EFI_LOADERS)}")
    firmware = firmware or running_firmware()
    if firmware not in layout.FIRMWARES:
        raise InputError(f"--firmware={firmware}: one of "
                         f"{', '.join(layout.FIRMWARES)}")
    bundle = bundles.load(bundle_dir)
    found = rooms.find_room(disk, size, shrink)
    table, sector0 = found.table, found.sector0
    bios = bios_code(sector0, table.kind, firmware, disk)
    check_tools(efi_loader, bios, bundle)
    info = getattr(bundle, "info", None) or {}
    notes = []
    if firmware == "uefi" and efi_loader == "shim" and \
            not info.get("secure_boot", False):
        notes.append("the bundle is not built --secure-boot: with Secure "
                     "Boot on, the firmware refuses its kernel")
    if found.shrink and found.shrink[1] == "ntfs":
        notes.append("ntfsresize marks the NTFS volume for a check: Windows "
                     "runs chkdsk at its next boot")
    part_uuid = partition.new_uuid() if table.kind == "gpt" else ""
    part_id = part_uuid if table.kind == "gpt" else \
        f"{int(table.disk_id, 16):08x}-{found.number:02d}"
    if table.kind == "mbr" and int(table.disk_id, 16) == 0:
        raise TargetError(f"{disk}: the MBR's disk signature is 0: the "
                          f"environment could not tell the partition by it")
    changes = {found.shrink[0]: found.shrink[3]} if found.shrink else {}
    writes = partition.table_writes(
        table, sector0, changes,
        dict(number=found.number, start=found.start, size=found.size,
             uuid=part_uuid))
    areas = record.snapshot(disk, table)
    _check_in_areas(disk, writes, areas)
    return InstallPlan(disk, table.disk_size, table.sector_size, table.kind,
                       found, bundle, os.fspath(bundle_dir), firmware,
                       efi_loader, bios, part_uuid, part_id, areas, writes,
                       notes)


def _check_in_areas(disk, writes, areas):
    """Each table write lies inside an area the record keeps (else remove
    could not put it back): TargetError before any write."""
    for at, data in writes:
        if not any(a["offset"] <= at and at + len(data) <= a["offset"] +
                   a["size"] for a in areas):
            raise TargetError(
                f"{disk}: the new table would write {len(data)} bytes at "
                f"byte {at}, outside the table areas it has now (a backup "
                f"GPT not at the disk's end: sgdisk -e moves it)")
