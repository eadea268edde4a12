"""Boot into the service environment next, and back: the switch that
`bwpart boot-next` throws and the service boot throws back.

BIOS (the MBR boot code chooses by the partition table):

* MBR disk, a boot code that boots the active partition (syslinux's
  mbr.bin, as biosboot.identify knows it): the active flag (0x80) on the
  service partition only; the boot_indicator bytes of the four primaries
  before (byte 446 + 16 * (N - 1) of sector 0) are kept in
  ``state.armed.bios`` = ``{"method": "active-flag", "flags_before":
  {"1": 128, "2": 0, "3": 0, "4": 0}}`` and written back as they were.
* GPT disk, a boot code that boots the partition with the legacy BIOS
  bootable attribute (bit 2; syslinux's gptmbr.bin): bit 2 on the service
  partition only (cleared on every other entry); the attributes before of
  the service entry and of every entry that had bit 2 are kept in
  ``state.armed.bios`` = ``{"method": "legacy-attr", "attrs_before":
  {"N": u64 attributes}}`` (both GPT copies are patched: tables/flags).

A boot code bwpart does not know (or knows and cannot use, such as GRUB's
boot.img) is refused by :func:`check` before any write.

UEFI: the service partition's Boot#### entry (made once, added to the
install record so that `bwpart remove` deletes it), BootOrder with it first
and BootNext set to it.  BootNext is used up by the firmware at the next
boot, so :func:`rearm` at each service boot sets it again while a job is
pending; BootOrder as it was before is kept in ``state.armed.uefi`` =
``{"entry": "Boot0007", "bootorder_before": base64 or null (none),
"bootorder_attrs": int or null}``, read and saved before the first write
of BootOrder.  The entry is made by efiboot.ensure_entry (an identical
one is reused) before that, and listed in the install record's "nvram"
(record.add_nvram, before = null) when it is not yet.

The order of writes makes a cut at any moment safe: the state that says
what to put back is written first (a second arm keeps the first arm's
"before", never its own armed flags), the boot switch after; disarm puts
the boot switch back first and clears the state after, so a disarm cut
half way is done again whole.  Each write is made with the signals held
and fsynced (tail.write_state and flags.apply fsync).
"""

import base64
import os

from ..errors import InputError, TargetError
from ..sighold import held
from ..tables import flags, mbr
from . import (biosboot, efiboot, fatfs, layout, lock, partition, record,
               state, tail)
from .efivars import Efivars

EFI_ROOT = "/sys/firmware/efi"
#: EFI_GLOBAL_VARIABLE: BootOrder, BootNext, Boot####
GLOBAL_GUID = efiboot.EFI_GLOBAL_VARIABLE
LEGACY_BIOS_BOOTABLE = layout.ATTR_LEGACY_BOOT
ACTIVE = 0x80
MBR_SLOTS = 4
FIRMWARES = ("bios", "uefi")


def firmware(root=EFI_ROOT):
    """The running machine's firmware: "uefi" when the kernel was started
    by UEFI (/sys/firmware/efi exists), else "bios"."""
    return "uefi" if os.path.isdir(root) else "bios"


def _table(service):
    table, sector0 = partition.read_disk(service.disk)
    if table.kind != service.table_kind:
        raise TargetError(f"{service.disk}: the partition table is "
                          f"{table.kind} now, the service partition was "
                          f"found on {service.table_kind}")
    return table, sector0


def _efivars(vars):
    if vars is not None:
        return vars
    return Efivars()


def check(service, firmware, vars=None):
    """Every refusal of arm(), before any write: an unknown firmware name,
    a BIOS boot code that cannot choose the service partition (TargetError
    from biosboot.identify, saying which code and why), UEFI variables
    that cannot be written here.  Returns what arm() needs to know: the
    BIOS method ("active-flag" or "legacy-attr") or the Efivars."""
    if firmware not in FIRMWARES:
        raise InputError(f"firmware {firmware!r}: use bios or uefi")
    if firmware == "bios":
        table, sector0 = _table(service)
        try:
            name, method = biosboot.identify(sector0, table.kind)
        except TargetError as e:
            raise TargetError(f"{service.disk}: {e}") from None
        return method
    vars = _efivars(vars)
    if not vars.available():
        raise TargetError(f"{service.disk}: UEFI variables are not "
                          f"available here (no {EFI_ROOT}): this machine "
                          f"was not started by UEFI; use --firmware=bios")
    return vars


def _save(service, st):
    with held():
        state.save(service, st)


def _apply(service, writes):
    if writes:
        with held():
            flags.apply(service.disk, writes)


# -- BIOS -----------------------------------------------------------------

def _indicator(number):
    """The disk offset of MBR slot `number`'s boot_indicator byte."""
    return mbr.PARTITION_RECORD_OFFSET + 16 * (number - 1)


def _mbr_flags(sector0):
    """{slot number (str): boot_indicator byte} of the four primaries."""
    return {str(n): sector0[_indicator(n)] for n in range(1, MBR_SLOTS + 1)}


def _bios_before(service, method):
    table, sector0 = _table(service)
    if method == "active-flag":
        return {"method": method, "flags_before": _mbr_flags(sector0)}
    changed = {str(p.number): p.attrs for p in table.partitions
               if p.number == service.number
               or p.attrs & LEGACY_BIOS_BOOTABLE}
    return {"method": method, "attrs_before": changed}


def _bios_writes(service, bios, arming):
    """The writes that set the flags for `arming` (True: the service
    partition alone bootable) or put back the ones saved in `bios`."""
    table, sector0 = _table(service)
    if bios["method"] == "active-flag":
        now = _mbr_flags(sector0)
        if not arming:      # each boot indicator byte as it was, exactly
            return [(_indicator(int(n)), bytes([flag]))
                    for n, flag in sorted(bios["flags_before"].items())
                    if now[n] != flag]
        if {n for n, flag in now.items() if flag} == {str(service.number)} \
                and now[str(service.number)] == ACTIVE:
            return []
        return flags.mbr_active_writes(service.disk, table, [service.number])
    attrs = {p.number: p.attrs for p in table.partitions}
    if arming:
        want = {n: (a | LEGACY_BIOS_BOOTABLE) if n == service.number
                else a & ~LEGACY_BIOS_BOOTABLE for n, a in attrs.items()}
    else:
        want = dict(attrs)
        for n, a in bios["attrs_before"].items():
            if int(n) in want:
                want[int(n)] = a
    changes = {n: a for n, a in want.items() if attrs[n] != a}
    if not changes:
        return []
    return flags.gpt_attr_writes(service.disk, table, changes)


# -- UEFI -----------------------------------------------------------------

def _loader_path(service):
    """The loader the Boot#### entry starts: the record's "efi_loader"
    ("shim" or "grub"), else shim when /EFI/rdeploy/shimx64.efi is on the
    FAT, else the standalone GRUB."""
    kind = (tail.read_record(service) or {}).get("efi_loader")
    if kind not in layout.EFI_LOADERS:
        with fatfs.open_fat(service) as fat:
            kind = "shim" if fat.exists(layout.EFI_SHIM) else "grub"
    return layout.EFI_SHIM if kind == "shim" else layout.EFI_GRUB


def _entry(service, vars, known=None):
    """The service partition's Boot####: `known` while it holds exactly
    the entry that would be made now (efiboot.entry_matches), else one
    made (or an identical one found) and added to the install record
    (before=null: it did not exist before the install) before the stale
    one is deleted: an entry left from before the partition grew (its
    HD() node names the old size) or before the loader kind changed would
    start nothing.  A stale entry the record knew before the install
    (before-bytes kept) is left for `bwpart remove` to put back."""
    loader = _loader_path(service)
    if known and efiboot.entry_matches(vars, known, service, loader):
        return known
    with held():
        name = efiboot.ensure_entry(vars, service, loader)
    noted = {n.get("name"): n for n in
             (tail.read_record(service) or {}).get("nvram") or []}
    if name not in noted:
        with held():
            record.add_nvram(service, name, GLOBAL_GUID, None)
    stale = noted.get(known) if known and known != name else None
    if stale is not None and stale.get("before") is None:
        with held():
            efiboot.delete_entry(vars, known)
            _drop_nvram(service, known)
    return name


def _drop_nvram(service, name):
    """`name` (made by us: before null) out of the record's "nvram" list,
    once it is deleted: remove deletes every Boot#### the list names, and
    the number may be another system's by then.  (A shim here: record.py
    has add_nvram only.)"""
    rec = tail.read_record(service)
    items = rec.get("nvram") or []
    keep = [n for n in items if not (n.get("name") == name and
                                     n.get("guid") == GLOBAL_GUID and
                                     n.get("before") is None)]
    if len(keep) != len(items):
        rec["nvram"] = keep
        record.write_both(service, rec)


def _uefi_arm(service, st, vars):
    """Entry made, the BootOrder before saved in the state (only at the
    first arm), then BootOrder and BootNext written."""
    armed = st.get("armed")
    uefi = armed["uefi"] if armed and armed.get("firmware") == "uefi" \
        else None
    entry = _entry(service, vars, uefi and uefi.get("entry"))
    if uefi is None:
        got = vars.read("BootOrder", GLOBAL_GUID)
        uefi = {"entry": entry,
                "bootorder_before": None if got is None else
                base64.b64encode(got[1]).decode("ascii"),
                "bootorder_attrs": None if got is None else got[0]}
        st["armed"] = {"firmware": "uefi", "uefi": uefi}
        _save(service, st)
    elif uefi["entry"] != entry:
        uefi["entry"] = entry
        _save(service, st)
    with held():
        efiboot.arm(vars, entry, saved=uefi)
    return st["armed"]


def _uefi_disarm(service, uefi, vars):
    with held():
        efiboot.disarm(vars, uefi)


# -- the switch -----------------------------------------------------------

def arm(service, firmware, vars=None, st=None):
    """Make the next boot (and every boot until disarm) the service
    environment's.  `st`: the state to keep (boot-next passes the one it
    just saved), else it is loaded.  Returns ``state["armed"]``.  Armed
    already for the same firmware: the "before" of the first arm is kept.
    Armed for the other firmware: that is disarmed first.  Holds the
    disk's lock (lock.held), as rearm and disarm do."""
    with lock.held(service.disk):
        return _arm(service, firmware, vars, st)


def _arm(service, firmware, vars, st):
    how = check(service, firmware, vars)
    st = state.load(service) if st is None else st
    armed = st.get("armed")
    if armed and armed.get("firmware") != firmware:
        disarm(service, vars=vars, st=st)
        armed = None
    if firmware == "uefi":
        return _uefi_arm(service, st, how)
    if armed is None:
        st["armed"] = {"firmware": "bios",
                       "bios": _bios_before(service, how)}
        _save(service, st)
    _apply(service, _bios_writes(service, st["armed"]["bios"], True))
    return st["armed"]


def rearm(service, vars=None, st=None):
    """At a service boot: put the switch back as arm() set it (BootNext was
    used up by the firmware; BootOrder is asserted again; BIOS flags
    changed meanwhile are set again).  Not armed: nothing (returns None)."""
    with lock.held(service.disk):
        return _rearm(service, vars, st)


def _rearm(service, vars, st):
    st = state.load(service) if st is None else st
    armed = st.get("armed")
    if not armed:
        return None
    if armed["firmware"] == "uefi":
        return _uefi_arm(service, st, _efivars(vars))
    _apply(service, _bios_writes(service, armed["bios"], True))
    return armed


def disarm(service, vars=None, st=None, save=True):
    """Put back exactly what arm() saved, then clear ``state["armed"]``.
    Returns what was put back (None when it was not armed).  `save=False`
    (the service partition is gone: a job rewrote the table) writes
    nothing to the disk: only the UEFI variables are put back."""
    with lock.held(service.disk):
        return _disarm(service, vars, st, save)


def _disarm(service, vars, st, save):
    st = state.load(service) if st is None else st
    armed = st.get("armed")
    if not armed:
        return None
    if armed["firmware"] == "uefi":
        _uefi_disarm(service, armed["uefi"], _efivars(vars))
    elif save:
        _apply(service, _bios_writes(service, armed["bios"], False))
    st["armed"] = None
    if save:
        _save(service, st)
    return armed

