"""A reader of OVMF's variable store file (OVMF_VARS*.fd), for the tests
that compare NVRAM across boots: what the firmware wrote is read from the
file QEMU kept as its second pflash, after poweroff.

The file (EDK II, MdePkg/Include/Pi/PiFirmwareVolume.h and
MdeModulePkg/Include/Guid/VariableFormat.h), little-endian:

EFI_FIRMWARE_VOLUME_HEADER at 0
    +0  16  ZeroVector
    +16 16  FileSystemGuid   EFI_SYSTEM_NV_DATA_FV_GUID
    +32 u64 FvLength         the whole volume (the file's size)
    +40 4   Signature        "_FVH"
    +44 u32 Attributes
    +48 u16 HeaderLength     where the variable store starts
    +50 u16 Checksum         the header's u16 words sum to 0
    +52 u16 ExtHeaderOffset
    +54 u8  Reserved, +55 u8 Revision (2)
    +56     BlockMap: (u32 NumBlocks, u32 Length) pairs, (0, 0) ends it
VARIABLE_STORE_HEADER at HeaderLength, 28 bytes
    +0  16  Signature        gEfiAuthenticatedVariableGuid (the 4M files)
                             or gEfiVariableGuid (plain headers)
    +16 u32 Size             of the store, this header included
    +20 u8  Format (0x5A formatted), +21 u8 State (0xFE healthy)
    +22 u16, +24 u32 reserved
then variables, each at a 4-byte boundary:
AUTHENTICATED_VARIABLE_HEADER, 60 bytes
    +0  u16 StartId 0x55AA (0xFFFF: erased, the end of the list)
    +2  u8  State, +3 u8 reserved
    +4  u32 Attributes
    +8  u64 MonotonicCount
    +16 16  TimeStamp (EFI_TIME)
    +32 u32 PubKeyIndex
    +36 u32 NameSize, +40 u32 DataSize
    +44 16  VendorGuid
    then the name (UCS-2 with its NUL, NameSize bytes), the data at once
    (DataSize bytes: EDK II's ALIGNMENT is 1 on x64), and padding to the
    next 4-byte boundary (HEADER_ALIGNMENT), where the next header starts.
(VARIABLE_HEADER, 32 bytes, is the same without MonotonicCount,
TimeStamp and PubKeyIndex.)

State is a byte whose bits are cleared one by one as a write goes on:
VAR_HEADER_VALID_ONLY 0x7F, VAR_ADDED 0x3F, VAR_IN_DELETED_TRANSITION
clears 0x01 (0x3E), VAR_DELETED clears 0x02 (0x3C).  A variable is live
when its state is VAR_ADDED, or VAR_ADDED & IN_DELETED_TRANSITION when no
VAR_ADDED copy of the same name follows (a write cut short).
"""

import struct
import uuid

from diskimage.structs import Struct

NV_DATA_FV_GUID = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
AUTHENTICATED_VARIABLE_GUID = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
VARIABLE_GUID = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

START_ID = 0x55AA
VAR_HEADER_VALID_ONLY = 0x7F
VAR_ADDED = 0x3F
VAR_IN_DELETED_TRANSITION = 0xFE
VAR_DELETED = 0xFD

FV_HEADER = Struct("EFI_FIRMWARE_VOLUME_HEADER", [
    ("16s", "ZeroVector"), ("16s", "FileSystemGuid"), ("Q", "FvLength"),
    ("4s", "Signature"), ("I", "Attributes"), ("H", "HeaderLength"),
    ("H", "Checksum"), ("H", "ExtHeaderOffset"), ("B", "Reserved"),
    ("B", "Revision"),
], size=56)

STORE_HEADER = Struct("VARIABLE_STORE_HEADER", [
    ("16s", "Signature"), ("I", "Size"), ("B", "Format"), ("B", "State"),
    ("H", "Reserved"), ("I", "Reserved1"),
], size=28)

AUTH_VARIABLE_HEADER = Struct("AUTHENTICATED_VARIABLE_HEADER", [
    ("H", "StartId"), ("B", "State"), ("B", "Reserved"),
    ("I", "Attributes"), ("Q", "MonotonicCount"), ("16s", "TimeStamp"),
    ("I", "PubKeyIndex"), ("I", "NameSize"), ("I", "DataSize"),
    ("16s", "VendorGuid"),
], size=60)

VARIABLE_HEADER = Struct("VARIABLE_HEADER", [
    ("H", "StartId"), ("B", "State"), ("B", "Reserved"),
    ("I", "Attributes"), ("I", "NameSize"), ("I", "DataSize"),
    ("16s", "VendorGuid"),
], size=32)


class VarsError(ValueError):
    """A file that is not an OVMF variable store, or a damaged one."""


def _align4(n):
    return (n + 3) & ~3


def store(data):
    """(offset of the first variable, end of the store, authenticated?)."""
    fv = FV_HEADER.unpack(data)
    if fv.Signature != b"_FVH":
        raise VarsError(f"no _FVH signature at byte 40 ({fv.Signature!r})")
    if uuid.UUID(bytes_le=fv.FileSystemGuid) != NV_DATA_FV_GUID:
        raise VarsError("firmware volume is not EFI_SYSTEM_NV_DATA_FV")
    if fv.FvLength > len(data) or fv.HeaderLength > len(data):
        raise VarsError(f"FvLength {fv.FvLength} / HeaderLength "
                        f"{fv.HeaderLength} past the {len(data)} bytes")
    words = struct.unpack_from(f"<{fv.HeaderLength // 2}H", data)
    if sum(words) & 0xFFFF:
        raise VarsError("firmware volume header checksum is wrong")
    head = STORE_HEADER.unpack(data, fv.HeaderLength)
    kind = uuid.UUID(bytes_le=head.Signature)
    if kind not in (AUTHENTICATED_VARIABLE_GUID, VARIABLE_GUID):
        raise VarsError(f"variable store signature {kind} unknown")
    if head.Format != 0x5A:
        raise VarsError(f"variable store not formatted (0x{head.Format:02x})")
    end = fv.HeaderLength + head.Size
    if end > fv.FvLength:
        raise VarsError(f"variable store of {head.Size} bytes runs past "
                        f"the volume")
    return (_align4(fv.HeaderLength + STORE_HEADER.size), end,
            kind == AUTHENTICATED_VARIABLE_GUID)


def records(data):
    """Every variable header in the store, live or not, in order: dicts
    with offset, state, attrs, name, guid, data."""
    pos, end, auth = store(data)
    header = AUTH_VARIABLE_HEADER if auth else VARIABLE_HEADER
    found = []
    while pos + header.size <= end:
        var = header.unpack(data, pos)
        if var.StartId != START_ID:
            break
        name_at = pos + header.size
        data_at = name_at + var.NameSize
        stop = data_at + var.DataSize
        if var.NameSize % 2 or stop > end:
            raise VarsError(f"variable at byte {pos}: NameSize "
                            f"{var.NameSize} / DataSize {var.DataSize} "
                            f"run past the store")
        raw_name = data[name_at:name_at + var.NameSize]
        found.append({
            "offset": pos, "state": var.State, "attrs": var.Attributes,
            "name": raw_name.decode("utf-16-le").rstrip("\0"),
            "guid": str(uuid.UUID(bytes_le=var.VendorGuid)),
            "data": bytes(data[data_at:stop])})
        pos = _align4(stop)
    return found


def variables(path_or_bytes):
    """{(name, guid): (attrs, data)} of the live variables."""
    data = path_or_bytes
    if not isinstance(data, (bytes, bytearray)):
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    live, transition = {}, {}
    for rec in records(data):
        key = (rec["name"], rec["guid"])
        if rec["state"] == VAR_ADDED:
            live[key] = (rec["attrs"], rec["data"])
        elif rec["state"] == VAR_ADDED & VAR_IN_DELETED_TRANSITION:
            transition[key] = (rec["attrs"], rec["data"])
    for key, value in transition.items():
        live.setdefault(key, value)
    return live


def boot_entries(path_or_bytes):
    """{"Boot####": data, ..., "BootOrder": [numbers] or None, "BootNext":
    number or None} of the EFI global GUID."""
    found = {"BootOrder": None, "BootNext": None}
    for (name, guid), (_, data) in sorted(variables(path_or_bytes).items()):
        if guid != EFI_GLOBAL_VARIABLE:
            continue
        if name == "BootOrder":
            found[name] = list(struct.unpack(f"<{len(data) // 2}H", data))
        elif name == "BootNext":
            found[name] = struct.unpack("<H", data)[0]
        elif (len(name) == 8 and name.startswith("Boot")
              and all(c in "0123456789ABCDEF" for c in name[4:])):
            found[name] = data
    return found
