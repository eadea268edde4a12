"""EFI_LOAD_OPTION, the data of a Boot#### variable, and the three device
path nodes bwpart's entry uses, built and parsed (UEFI spec 2.x, 3.1.3 and
10.3).  All little-endian:

EFI_LOAD_OPTION
    +0  u32  Attributes          LOAD_OPTION_ACTIVE (1) for ours
    +4  u16  FilePathListLength  bytes of the device path below
    +6       Description         UCS-2 (UTF-16LE), NUL-terminated
    +6+D     FilePathList        device path nodes, the last an End node
    +6+D+L   OptionalData        the rest (empty for ours)

A device path node starts with u8 Type, u8 SubType, u16 Length (of the
whole node, header included):

    HD (type 4 media, subtype 1), 42 bytes:
        +4  u32  PartitionNumber   1-based, as the table numbers it
        +8  u64  PartitionStart    in logical blocks
        +16 u64  PartitionSize     in logical blocks
        +24 16   PartitionSignature  GPT: the partition's unique GUID in
                 its on-disk (mixed-endian) form; MBR: the disk signature
                 u32 in the first 4 bytes, 12 zero bytes
        +40 u8   MBRType           1 MBR, 2 GPT
        +41 u8   SignatureType     1 MBR 32-bit signature, 2 GUID
    File path (type 4, subtype 4), 4 + 2*(n+1) bytes: the path, backslashes,
        UCS-2 NUL-terminated
    End of the whole path (type 0x7f, subtype 0xff), 4 bytes

Parsing checks every length: a node shorter than its header or running
past FilePathListLength, a FilePathListLength past the data, a description
without its NUL, an HD node not 42 bytes: InputError naming the byte.
"""

import struct
import uuid

from ..errors import InputError
from ..structs import Struct

LOAD_OPTION_ACTIVE = 0x00000001

MEDIA_DEVICE_PATH = 0x04
MEDIA_HARDDRIVE_DP = 0x01
MEDIA_FILEPATH_DP = 0x04
END_DEVICE_PATH_TYPE = 0x7F
END_ENTIRE_DEVICE_PATH_SUBTYPE = 0xFF

MBR_TYPE_PCAT = 1            # MBRType: legacy MBR
MBR_TYPE_EFI = 2             # MBRType: GPT
SIGNATURE_TYPE_MBR = 1       # SignatureType: 32-bit MBR disk signature
SIGNATURE_TYPE_GUID = 2      # SignatureType: GUID

LOAD_OPTION_HEAD = Struct("EFI_LOAD_OPTION head", [
    ("I", "Attributes"),
    ("H", "FilePathListLength"),
], size=6)

NODE_HEAD = Struct("EFI_DEVICE_PATH_PROTOCOL", [
    ("B", "Type"),
    ("B", "SubType"),
    ("H", "Length"),
], size=4)

HARDDRIVE_DEVICE_PATH = Struct("HARDDRIVE_DEVICE_PATH", [
    ("B", "Type"),
    ("B", "SubType"),
    ("H", "Length"),
    ("I", "PartitionNumber"),
    ("Q", "PartitionStart"),
    ("Q", "PartitionSize"),
    ("16s", "Signature"),
    ("B", "MBRType"),
    ("B", "SignatureType"),
], size=42)


def _ucs2(text):
    try:
        return text.encode("utf-16-le") + b"\0\0"
    except UnicodeEncodeError:
        raise InputError(f"{text!r}: cannot be written as UCS-2") from None


def hd_node(number, start_lba, size_lba, signature, table_kind):
    """The HD() node: `signature` a GUID string (GPT) or the 32-bit disk
    signature as an int (MBR)."""
    if table_kind == "gpt":
        sig = uuid.UUID(str(signature)).bytes_le
        mbr_type, sig_type = MBR_TYPE_EFI, SIGNATURE_TYPE_GUID
    elif table_kind in ("mbr", "dos"):
        sig = struct.pack("<I", int(signature)) + bytes(12)
        mbr_type, sig_type = MBR_TYPE_PCAT, SIGNATURE_TYPE_MBR
    else:
        raise InputError(f"partition table {table_kind!r}: neither gpt nor mbr")
    return HARDDRIVE_DEVICE_PATH.pack(
        Type=MEDIA_DEVICE_PATH, SubType=MEDIA_HARDDRIVE_DP, Length=42,
        PartitionNumber=number, PartitionStart=start_lba,
        PartitionSize=size_lba, Signature=sig, MBRType=mbr_type,
        SignatureType=sig_type)


def file_node(path):
    """The File() node: `path` with / or \\ separators, made absolute."""
    path = "\\" + path.replace("/", "\\").lstrip("\\")
    name = _ucs2(path)
    return NODE_HEAD.pack(Type=MEDIA_DEVICE_PATH, SubType=MEDIA_FILEPATH_DP,
                          Length=4 + len(name)) + name


def end_node():
    return NODE_HEAD.pack(Type=END_DEVICE_PATH_TYPE,
                          SubType=END_ENTIRE_DEVICE_PATH_SUBTYPE, Length=4)


def service_signature(service):
    """(table kind, signature) of a Service: GPT its partition GUID, MBR
    the disk signature taken from part_id "<8 hex>-<2 digits>"."""
    kind = service.table_kind
    if kind == "gpt":
        return kind, str(uuid.UUID(service.part_id))
    head = str(service.part_id).split("-")[0]
    try:
        return "mbr", int(head, 16)
    except ValueError:
        raise InputError(f"{service.part_id!r}: not an MBR partition id "
                         f"(disk signature-number)") from None


def build_raw(description, hd, path, attributes=LOAD_OPTION_ACTIVE,
              optional=b""):
    """EFI_LOAD_OPTION bytes from an HD node's bytes and a loader path."""
    paths = hd + file_node(path) + end_node()
    if len(paths) > 0xFFFF:
        raise InputError(f"{path}: device path too long")
    return (LOAD_OPTION_HEAD.pack(Attributes=attributes,
                                  FilePathListLength=len(paths))
            + _ucs2(description) + paths + bytes(optional))


def build(description, service, loader_path):
    """The Boot#### data of an entry that starts `loader_path` (a path on
    the service FAT, such as /EFI/rdeploy/shimx64.efi) from the service
    partition.  `service.start` and `.size` are bytes; the sector size is
    `service.sector_size` when it has one, else 512."""
    sector = getattr(service, "sector_size", None) or 512
    kind, sig = service_signature(service)
    hd = hd_node(service.number, service.start // sector,
                 service.size // sector, sig, kind)
    return build_raw(description, hd, loader_path)


def _bad(what, offset):
    return InputError(f"EFI load option: {what} (byte {offset})")


def _parse_hd(node, offset):
    if len(node) != 42:
        raise _bad(f"HD node of {len(node)} bytes, not 42", offset)
    hd = HARDDRIVE_DEVICE_PATH.unpack(node)
    if hd.SignatureType == SIGNATURE_TYPE_GUID:
        signature = str(uuid.UUID(bytes_le=hd.Signature))
    elif hd.SignatureType == SIGNATURE_TYPE_MBR:
        signature = struct.unpack_from("<I", hd.Signature)[0]
    else:
        signature = hd.Signature.hex()
    return {"type": "hd", "number": hd.PartitionNumber,
            "start": hd.PartitionStart, "size": hd.PartitionSize,
            "signature": signature, "mbr_type": hd.MBRType,
            "signature_type": hd.SignatureType}


def _parse_file(node, offset):
    text = node[4:]
    if len(text) % 2 or text[-2:] != b"\0\0":
        raise _bad("file path node not NUL-terminated UCS-2", offset)
    return {"type": "file",
            "path": text[:-2].decode("utf-16-le", errors="replace")}


def parse_path(data, base=0):
    """The nodes of a device path (up to and including its End node) as a
    list of dicts; `base` the offset of `data` for messages."""
    nodes, pos = [], 0
    while True:
        if len(data) - pos < 4:
            raise _bad("device path without its End node", base + pos)
        head = NODE_HEAD.unpack(data, pos)
        if head.Length < 4 or pos + head.Length > len(data):
            raise _bad(f"device path node of length {head.Length}", base + pos)
        node = bytes(data[pos:pos + head.Length])
        kind = (head.Type, head.SubType)
        if kind == (MEDIA_DEVICE_PATH, MEDIA_HARDDRIVE_DP):
            nodes.append(_parse_hd(node, base + pos))
        elif kind == (MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP):
            nodes.append(_parse_file(node, base + pos))
        elif head.Type == END_DEVICE_PATH_TYPE:
            if head.Length != 4:
                raise _bad(f"End node of length {head.Length}", base + pos)
            nodes.append({"type": "end", "subtype": head.SubType})
            if head.SubType == END_ENTIRE_DEVICE_PATH_SUBTYPE:
                if pos + 4 != len(data):
                    raise _bad("bytes after the End node", base + pos + 4)
                return nodes
        else:
            nodes.append({"type": "other", "node_type": head.Type,
                          "subtype": head.SubType, "data": node[4:].hex()})
        pos += head.Length


def parse(data):
    """A Boot#### variable's data as a dict: attributes, description,
    nodes (see parse_path), hd and file (ours, or None), optional (bytes)."""
    data = bytes(data)
    head = LOAD_OPTION_HEAD.unpack(data)
    pos = 6
    while True:
        if pos + 2 > len(data):
            raise _bad("description without its NUL", pos)
        if data[pos:pos + 2] == b"\0\0":
            break
        pos += 2
    description = data[6:pos].decode("utf-16-le", errors="replace")
    pos += 2
    end = pos + head.FilePathListLength
    if end > len(data):
        raise _bad(f"FilePathListLength {head.FilePathListLength} runs past "
                   f"the {len(data)} bytes", 4)
    nodes = parse_path(data[pos:end], pos)
    hd = next((n for n in nodes if n["type"] == "hd"), None)
    file = next((n for n in nodes if n["type"] == "file"), None)
    return {"attributes": head.Attributes, "description": description,
            "nodes": nodes, "hd": hd, "file": file["path"] if file else None,
            "optional": data[end:]}
