"""The switch thrown back without the state: when both state slots are
damaged (a torn disk, a forged tail) while the machine is armed, nothing
says what arm() changed, and the service boot would fail and boot the
service environment again for ever.  The install record still says what
the table was and which Boot#### entries are ours, and that is enough:

* BIOS, only when our flag is set on the service partition (the MBR
  active flag, byte 446 + 16 * (N - 1) of sector 0; or the GPT legacy
  BIOS bootable attribute, bit 2): our flag cleared and every other
  partition's flag set as the record's snapshot (the areas'
  before-bytes) has it.  Install changes no flag, so that is also the
  table as install left it.  MBR slots unused now are left at 0.
* UEFI, where the variables are there: each Boot#### the record's
  "nvram" names taken out of BootOrder (the other numbers kept in their
  order) and BootNext deleted while it names one of them; the entries
  stay for `bwpart remove`.  BootOrder as it was before the arm is lost
  with the state; this is the same order less our entry.

serviceboot calls :func:`disarm_from_record`, then writes a fresh state
whose "last" says "state damaged", and returns non-zero: the machine
reboots into the production OS.
"""

import os

from ..errors import InputError
from ..host.device import open_source
from ..sighold import held
from ..tables import flags
from ..tables.partitions import read_table
from . import efiboot, layout, lock, partition, record, tail
from .efivars import Efivars

LEGACY = layout.ATTR_LEGACY_BOOT
MBR_SLOTS = 4
GLOBAL_GUID = efiboot.EFI_GLOBAL_VARIABLE


def _before_table(service, rec):
    """The table as the record's snapshot holds it: each area's
    before-bytes laid over the disk's bytes."""
    befores = [(a["offset"], record.unb64(a["before"]))
               for a in rec.get("areas") or []]
    with open_source(os.fspath(service.disk)) as disk:
        def read(offset, length):
            return flags.overlay(disk.read(offset, length), offset, befores)
        return read_table(read, disk.size, service.sector_size)


def _bios_from_record(service, rec):
    """The writes that throw the BIOS switch back without the state: only
    when it is thrown (our flag on the service partition); our flag
    cleared, every other partition's flag as the record's snapshot had
    it (install changes no flag, so that is also how install left it)."""
    table, sector0 = partition.read_disk(service.disk)
    if table.kind == "mbr":
        if not sector0[flags.mbr_indicator(service.number)] & flags.ACTIVE:
            return []
        before = next((record.unb64(a["before"]) for a in rec["areas"]
                       if a["offset"] == 0), None)
        if before is None:
            raise InputError(f"{service.disk}: the install record holds no "
                             f"sector 0 (byte 0) to take the flags from")
        want = {}
        for n in range(1, MBR_SLOTS + 1):
            at = flags.mbr_indicator(n)
            used = any(sector0[at + 1:at + 16])
            want[n] = 0 if n == service.number or not used else before[at]
        return [(flags.mbr_indicator(n), bytes([flag]))
                for n, flag in want.items()
                if sector0[flags.mbr_indicator(n)] != flag]
    attrs = {p.number: p.attrs for p in table.partitions}
    if not attrs.get(service.number, 0) & LEGACY:
        return []
    old = {p.number: p.attrs for p in _before_table(service, rec).partitions}
    changes = {}
    for n, a in attrs.items():
        bit = 0 if n == service.number else old.get(n, 0) & LEGACY
        if (a & ~LEGACY) | bit != a:
            changes[n] = (a & ~LEGACY) | bit
    return flags.gpt_attr_writes(service.disk, table, changes) \
        if changes else []


def disarm_from_record(service, vars=None, rec=None):
    """Throw the switch back when the state that says what arm() changed
    is lost (both state slots damaged): BIOS, when our flag is set on the
    service partition, the flags as the install record's snapshot had
    them (:func:`_bios_from_record`); UEFI, where the variables are
    there, every Boot#### the record names taken out of BootOrder and
    BootNext deleted while it names one of them (the entries stay for
    `bwpart remove`).  Writes nothing to the state.  Returns what was
    changed, as text."""
    with lock.held(service.disk):
        rec = tail.read_record(service) if rec is None else rec
        if rec is None:
            raise InputError(f"{service.disk}: no install record to "
                             f"disarm from")
        done = []
        writes = _bios_from_record(service, rec)
        if writes:
            with held():
                flags.apply(service.disk, writes)
            done.append("BIOS flags as the install record has them")
        vars = Efivars() if vars is None else vars
        if vars.available():
            for item in rec.get("nvram") or []:
                name = item.get("name", "")
                if item.get("guid") == GLOBAL_GUID and \
                        efiboot.BOOT_ENTRY.match(name):
                    with held():
                        done += efiboot.take_out(vars, name)
        return done


def armed_by_record(service, vars=None, rec=None):
    """What is armed as the install record tells it, when the state that
    would say is lost (read-only): ``{"bios": the flag writes that would
    throw it back ([] when our flag is not set), "uefi": [Boot#### the
    record names that are in BootOrder or BootNext], "lines": [text]}``.
    UEFI is only looked at where the variables are there."""
    rec = tail.read_record(service) if rec is None else rec
    if rec is None:
        raise InputError(f"{service.disk}: no install record to read the "
                         f"arming from")
    bios = _bios_from_record(service, rec)
    lines = []
    if bios:
        what = "the active flag" if service.table_kind == "mbr" else \
            "the legacy BIOS bootable attribute"
        lines.append(f"bios: {what} is on partition {service.number}")
    uefi = []
    vars = Efivars() if vars is None else vars
    if vars.available():
        got = vars.read("BootOrder", GLOBAL_GUID)
        order = efiboot.unpack_order(got[1]) if got else []
        after = efiboot.boot_next(vars)
        for item in rec.get("nvram") or []:
            name = item.get("name", "")
            if item.get("guid") != GLOBAL_GUID or \
                    not efiboot.BOOT_ENTRY.match(name):
                continue
            number = efiboot.entry_number(name)
            if number in order or number == after:
                uefi.append(name)
                lines.append(f"uefi: {name} is in BootOrder or BootNext")
    return {"bios": bios, "uefi": uefi, "lines": lines}
