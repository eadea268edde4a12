"""The service partition's Boot#### entry, and BootOrder and BootNext that
make the firmware start it (UEFI spec 2.x, 3.3, "Globally defined
variables"), through an efivars.Efivars.

    Boot####   an EFI_LOAD_OPTION (loadoption.py); #### four upper-case
               hex digits
    BootOrder  u16 option numbers, little-endian, in order of preference
    BootNext   one u16 option number, for the next boot only (the firmware
               deletes it before it starts that option)

All three under the EFI global variable GUID, attributes NV|BS|RT (7).

arm() puts the entry first in BootOrder (so a power cut during a job boots
the service environment again) and sets BootNext to it; it returns what
disarm() needs to put BootOrder back byte for byte, as a JSON-ready dict
(state.armed["uefi"]): {"entry": "Boot0007", "bootorder_before": base64 or
None (there was none), "bootorder_attrs": int or None}.
"""

import base64
import re
import struct

from ..errors import InputError, NoSpaceError
from . import loadoption
from .efivars import NV_BS_RT

EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
DESCRIPTION = "rdeploy service"

#: a Boot#### variable's name
BOOT_ENTRY = re.compile(r"^Boot([0-9A-F]{4})$")
_BOOT = BOOT_ENTRY


def entry_number(name):
    """0x0007 of "Boot0007"; InputError for another name."""
    match = _BOOT.match(str(name))
    if not match:
        raise InputError(f"{name!r}: not a Boot#### variable name")
    return int(match.group(1), 16)


def entry_name(number):
    return f"Boot{number:04X}"


def entries(efivars):
    """{name: data} of every Boot#### variable, by number."""
    found = {}
    for name, _ in efivars.names(EFI_GLOBAL_VARIABLE):
        if _BOOT.match(name):
            got = efivars.read(name, EFI_GLOBAL_VARIABLE)
            if got is not None:
                found[name] = got[1]
    return dict(sorted(found.items()))


def unpack_order(data, what="BootOrder"):
    """BootOrder's data as a list of option numbers."""
    if len(data) % 2:
        raise InputError(f"{what}: {len(data)} bytes, not a list of u16")
    return list(struct.unpack(f"<{len(data) // 2}H", data))


def pack_order(numbers):
    return struct.pack(f"<{len(numbers)}H", *numbers)


def boot_order(efivars):
    """BootOrder as a list of numbers ([] when it does not exist)."""
    got = efivars.read("BootOrder", EFI_GLOBAL_VARIABLE)
    return [] if got is None else unpack_order(got[1])


def boot_next(efivars):
    """BootNext's number, or None."""
    got = efivars.read("BootNext", EFI_GLOBAL_VARIABLE)
    if got is None:
        return None
    if len(got[1]) != 2:
        raise InputError(f"BootNext: {len(got[1])} bytes, not one u16")
    return struct.unpack("<H", got[1])[0]


def entry_matches(efivars, name, service, loader_path,
                  description=DESCRIPTION):
    """Whether Boot#### `name` exists and holds exactly the entry
    ensure_entry would make now (False after the partition moved or grew:
    its HD() node names the old start and size)."""
    got = efivars.read(name, EFI_GLOBAL_VARIABLE)
    return got is not None and \
        got[1] == loadoption.build(description, service, loader_path)


def ensure_entry(efivars, service, loader_path, description=DESCRIPTION):
    """The name of a Boot#### entry that starts `loader_path` from the
    service partition: an existing one with identical bytes, else a new
    one at the lowest free number."""
    data = loadoption.build(description, service, loader_path)
    existing = entries(efivars)
    for name, old in existing.items():
        if old == data:
            return name
    used = {entry_number(name) for name in existing}
    number = next((n for n in range(0x10000) if n not in used), None)
    if number is None:
        raise NoSpaceError("UEFI: every Boot#### number is taken")
    name = entry_name(number)
    efivars.write(name, EFI_GLOBAL_VARIABLE, data, NV_BS_RT)
    return name


def arm(efivars, entry, saved=None):
    """BootOrder with `entry` first, BootNext = `entry`.  Returns what
    disarm() puts back (see the module's text).  Given the `saved` of an
    earlier arm (a re-arm at a service boot), that is kept and returned:
    the BootOrder to put back stays the one before the first arm."""
    number = entry_number(entry)
    got = efivars.read("BootOrder", EFI_GLOBAL_VARIABLE)
    if saved is None:
        saved = {"entry": entry,
                 "bootorder_before":
                     None if got is None else
                     base64.b64encode(got[1]).decode("ascii"),
                 "bootorder_attrs": None if got is None else got[0]}
    order = [] if got is None else unpack_order(got[1])
    new = [number] + [n for n in order if n != number]
    if got is None or got[1] != pack_order(new):
        efivars.write("BootOrder", EFI_GLOBAL_VARIABLE, pack_order(new),
                      NV_BS_RT)
    efivars.write("BootNext", EFI_GLOBAL_VARIABLE, struct.pack("<H", number),
                  NV_BS_RT)
    return saved


def disarm(efivars, saved):
    """Put BootOrder back as `saved` holds it (deleted when there was
    none) and delete BootNext while it still names our entry.  Returns
    the names of the variables changed."""
    changed = []
    number = entry_number(saved["entry"])
    if boot_next(efivars) == number:
        efivars.delete("BootNext", EFI_GLOBAL_VARIABLE)
        changed.append("BootNext")
    before = saved.get("bootorder_before")
    got = efivars.read("BootOrder", EFI_GLOBAL_VARIABLE)
    if before is None:
        if got is not None:
            efivars.delete("BootOrder", EFI_GLOBAL_VARIABLE)
            changed.append("BootOrder")
    else:
        data = base64.b64decode(before)
        attrs = saved.get("bootorder_attrs") or NV_BS_RT
        if got is None or got != (attrs, data):
            efivars.write("BootOrder", EFI_GLOBAL_VARIABLE, data, attrs)
            changed.append("BootOrder")
    return changed


def delete_entry(efivars, name):
    """Delete Boot#### `name`, and take its number out of BootOrder and
    BootNext where they still hold it.  Returns the names changed."""
    entry_number(name)
    changed = []
    if efivars.delete(name, EFI_GLOBAL_VARIABLE):
        changed.append(name)
    return changed + take_out(efivars, name)


def take_out(efivars, name):
    """Take Boot#### `name`'s number out of BootOrder (the others kept in
    their order, its attributes kept) and delete BootNext when it names
    it; the entry itself stays.  Returns the names changed."""
    number = entry_number(name)
    changed = []
    got = efivars.read("BootOrder", EFI_GLOBAL_VARIABLE)
    if got is not None:
        order = unpack_order(got[1])
        if number in order:
            efivars.write("BootOrder", EFI_GLOBAL_VARIABLE,
                          pack_order([n for n in order if n != number]),
                          got[0])
            changed.append("BootOrder")
    if boot_next(efivars) == number:
        efivars.delete("BootNext", EFI_GLOBAL_VARIABLE)
        changed.append("BootNext")
    return changed
