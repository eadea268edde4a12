"""The raw tail of the service partition: its last MiB, outside the FAT.

It holds the install record's second copy (the first is the FAT file
/bwpart/install.json) and two state slots, written in turn so that a write
cut in half (a power cut) leaves the other slot, and so the state before
the write, valid.  All integers little-endian; offsets from the tail's
start (docs/bwpart.md has the same table):

    +0        record copy, 512 KiB
      +0   8  magic b"RDSVCREC"
      +8   4  format (1)
      +12  4  length of the JSON in bytes
      +16  4  crc32 (zlib) of the JSON
      +20 12  zero
      +32     the JSON (UTF-8), zero-filled to the copy's end
    +512 KiB  state slot A, 256 KiB
    +768 KiB  state slot B, 256 KiB
      +0   8  magic b"RDSVCSTA"
      +8   8  sequence (the first write is 1)
      +16  4  length of the JSON
      +20  4  crc32 (zlib) of the JSON
      +24  8  zero
      +32     the JSON (UTF-8), zero-filled to the slot's end

The state JSON also carries "sequence", equal to the header's: a header
torn across its bytes (a new sequence over an old body) does not pass.
A write goes to the slot not holding the highest valid sequence, with that
sequence + 1, as one pwrite of the whole slot, then fsync.  A reader takes
the valid slot with the highest sequence.  Every read checks magic,
format, length bounds and crc; a copy that fails is named with its byte
offset on the disk.

A *service* here is anything with ``disk`` (the path) and ``tail_offset``
(the tail's byte offset on the disk): partition.Service, or a stand-in.
"""

import json
import zlib

from ..errors import DiskImageError, InputError
from ..host import device
from ..structs import Struct

KiB = 1 << 10
TAIL_SIZE = 1 << 20
RECORD_AT, RECORD_SIZE = 0, 512 * KiB
SLOT_SIZE = 256 * KiB
SLOTS = (("A", 512 * KiB), ("B", 768 * KiB))
RECORD_MAGIC = b"RDSVCREC"
STATE_MAGIC = b"RDSVCSTA"
FORMAT = 1
INSTALL_JSON = "/bwpart/install.json"     # layout.RECORD_PATH

RECORD_HEADER = Struct("service record header", [
    ("8s", "magic"),                # b"RDSVCREC"
    ("I", "format"),                # 1
    ("I", "length"),                # of the JSON
    ("I", "crc32"),                 # zlib.crc32 of the JSON
    ("12s", "reserved"),            # zero
], size=32)

STATE_HEADER = Struct("service state header", [
    ("8s", "magic"),                # b"RDSVCSTA"
    ("Q", "sequence"),              # highest valid one wins
    ("I", "length"),                # of the JSON
    ("I", "crc32"),                 # zlib.crc32 of the JSON
    ("8s", "reserved"),             # zero
], size=32)

RECORD_ROOM = RECORD_SIZE - RECORD_HEADER.size
STATE_ROOM = SLOT_SIZE - STATE_HEADER.size


class Damaged(InputError):
    """One copy of the tail fails a check: names it and its disk offset."""


def encode(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def _read(service, offset, length):
    with device.open_source(service.disk) as disk:
        data = disk.read(offset, length)
    if len(data) < length:
        raise InputError(f"{service.disk}: short read of the service "
                         f"partition's tail at byte {offset}: {len(data)} "
                         f"of {length} bytes")
    return data


def _write(service, offset, data):
    """pwrite *data* at *offset* and fsync.  Not O_EXCL: the disk's other
    partitions may be mounted (the running system's own disk)."""
    disk = device.open_target(service.disk, exclusive=False)
    try:
        device.write_all(disk, offset, data)
        device.sync(disk)
    finally:
        disk.close()


def _body(service, what, offset, header, data, room):
    """The JSON of a copy whose header parsed, checked; Damaged if not."""
    where = f"{service.disk}: {what} at byte {offset}"
    if header.length == 0 or header.length > room:
        raise Damaged(f"{where}: length {header.length} out of bounds "
                      f"(1 to {room})")
    body = data[32:32 + header.length]
    if zlib.crc32(body) != header.crc32:
        raise Damaged(f"{where}: crc32 mismatch (the copy is damaged)")
    try:
        value = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise Damaged(f"{where}: not JSON ({type(err).__name__}: "
                      f"{str(err)[:80]})") from None
    if not isinstance(value, dict):
        raise Damaged(f"{where}: the JSON is not an object")
    return value


# --- the record ---------------------------------------------------------------
def pack_record(record):
    body = encode(record)
    if len(body) > RECORD_ROOM:
        raise InputError(f"the service record is {len(body)} bytes, more "
                         f"than the {RECORD_ROOM} its tail copy holds")
    head = RECORD_HEADER.pack(magic=RECORD_MAGIC, format=FORMAT,
                              length=len(body), crc32=zlib.crc32(body))
    return (head + body).ljust(RECORD_SIZE, b"\0")


def parse_record(service, data):
    """The record in *data* (the record copy's bytes), None when it holds
    no record magic; Damaged for a copy with the magic that fails."""
    offset = service.tail_offset + RECORD_AT
    header = RECORD_HEADER.unpack(data, at=offset)
    if header.magic != RECORD_MAGIC:
        return None
    if header.format != FORMAT:
        raise Damaged(f"{service.disk}: service record (tail copy) at byte "
                      f"{offset}: format {header.format}, this tool reads "
                      f"format {FORMAT}")
    what = "service record (tail copy)"
    value = _body(service, what, offset, header, data, RECORD_ROOM)
    from . import record
    return record.validate(value, f"{service.disk}: {what} at byte {offset}")


def write_record(service, record):
    """Write the tail copy of *record* (one pwrite, then fsync)."""
    _write(service, service.tail_offset + RECORD_AT, pack_record(record))


def read_record(service, fat_copy=True):
    """The install record from the tail: a dict, or None when neither the
    tail nor (with *fat_copy*) the FAT holds one.  A tail copy that is
    damaged, or missing (its magic gone), while /bwpart/install.json on
    the FAT is whole and this partition's: that is written back to the
    tail and returned (with *fat_copy*).  A damaged tail copy with no
    whole FAT copy raises Damaged (InputError)."""
    data = _read(service, service.tail_offset + RECORD_AT, RECORD_SIZE)
    try:
        found = parse_record(service, data)
    except InputError:          # Damaged, or a field that fails its check
        if not fat_copy:
            raise
        found, damaged = None, True
    else:
        damaged = False
        if found is not None or not fat_copy:
            return found
    record = fat_record(service)
    if record is None:
        if damaged:
            return parse_record(service, data)      # raises Damaged again
        return None
    try:
        write_record(service, record)
    except DiskImageError:
        pass        # read-only: the FAT copy is still the answer
    return record


def fat_record(service):
    """/bwpart/install.json when it can be read and parsed and is this
    partition's (the same start), else None."""
    from . import fatfs
    if getattr(service, "start", None) is None:
        return None             # a stand-in with only disk and tail_offset
    try:
        with fatfs.open_fat(service) as fat:
            value = json.loads(fat.get(INSTALL_JSON).decode("utf-8"))
    except (DiskImageError, ValueError, OSError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        return None
    from . import record
    try:
        record.validate(value, f"{service.disk}: {INSTALL_JSON}")
    except InputError:
        return None
    start = getattr(service, "start", None)
    if start is not None and \
            (value.get("partition") or {}).get("start") != start:
        return None
    return value


# --- the state slots ----------------------------------------------------------
def pack_state(state, sequence):
    body = encode(dict(state, sequence=sequence))
    if len(body) > STATE_ROOM:
        raise InputError(f"the service state is {len(body)} bytes, more "
                         f"than the {STATE_ROOM} a state slot holds")
    head = STATE_HEADER.pack(magic=STATE_MAGIC, sequence=sequence,
                             length=len(body), crc32=zlib.crc32(body))
    return (head + body).ljust(SLOT_SIZE, b"\0")


def slots(service):
    """Each slot as (name, disk offset, sequence, state, problem): an
    empty slot (all-zero header) has sequence 0 and state None; a damaged
    one sequence None and its Damaged in *problem*."""
    data = _read(service, service.tail_offset + SLOTS[0][1],
                 SLOT_SIZE * len(SLOTS))
    found = []
    for index, (name, at) in enumerate(SLOTS):
        offset = service.tail_offset + at
        slot = data[index * SLOT_SIZE:(index + 1) * SLOT_SIZE]
        header = STATE_HEADER.unpack(slot, at=offset)
        what = f"service state slot {name}"
        if slot[:STATE_HEADER.size] == bytes(STATE_HEADER.size):
            found.append((name, offset, 0, None, None))
            continue
        if header.magic != STATE_MAGIC:
            found.append((name, offset, None, None, Damaged(
                f"{service.disk}: {what} at byte {offset}: no "
                f"{STATE_MAGIC.decode()} magic")))
            continue
        try:
            state = _body(service, what, offset, header, slot, STATE_ROOM)
            if state.pop("sequence", None) != header.sequence:
                raise Damaged(f"{service.disk}: {what} at byte {offset}: "
                              f"sequence {header.sequence} in the header, "
                              f"not the JSON's (a torn header)")
        except Damaged as damage:
            found.append((name, offset, None, None, damage))
            continue
        found.append((name, offset, header.sequence, state, None))
    return found


def _newest(found):
    valid = [s for s in found if s[2]]
    return max(valid, key=lambda s: s[2]) if valid else None


def read_state(service):
    """The newest valid state dict, {} when none was ever written.  One
    damaged slot is tolerated (a torn write: the other slot holds the
    state before it); both damaged raise Damaged naming both."""
    found = slots(service)
    newest = _newest(found)
    if newest is not None:
        from . import state
        return state.validate(newest[3], f"{service.disk}: service state "
                              f"slot {newest[0]} at byte {newest[1]}")
    problems = [s[4] for s in found if s[4] is not None]
    if len(problems) == len(found):
        raise Damaged("; ".join(str(p) for p in problems))
    return {}       # never written, or only its first write was torn


def write_state(service, state):
    """Write *state* to the slot not holding the newest valid state, with
    the next sequence; fsync.  Returns (slot name, sequence)."""
    found = slots(service)
    newest = _newest(found)
    sequence = newest[2] + 1 if newest else 1
    target = next(s for s in found if s is not newest) if newest \
        else found[0]
    _write(service, target[1], pack_state(state, sequence))
    return target[0], sequence


def zero(service):
    """Zero the whole tail (remove): nothing finds the record again."""
    _write(service, service.tail_offset, bytes(TAIL_SIZE))


def has_tail(service):
    """True when the tail's record copy carries the record magic."""
    with device.open_source(service.disk) as disk:
        return disk.read(service.tail_offset, 8) == RECORD_MAGIC


_fat_record = fat_record      # the old name
