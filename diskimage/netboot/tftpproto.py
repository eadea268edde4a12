"""TFTP packets (RFC 1350) and option negotiation (RFC 2347, 2348, 2349,
7440), for the read-only server in tftp.py.

Every packet starts with a big-endian 16-bit opcode; the fixed headers are
declared once as tables of struct codes, the variable parts (NUL-terminated
strings) are parsed by :func:`parse_request`.

    RRQ/WRQ  | opcode | filename | 0 | mode | 0 | [ option | 0 | value | 0 ]*
    DATA     | opcode | block  | data (0..blksize bytes)
    ACK      | opcode | block  |
    ERROR    | opcode | error code | message | 0
    OACK     | opcode | [ option | 0 | value | 0 ]*

Anything malformed raises BadPacket with the reason (the server answers
with error 4, or 8 for the options, and logs the reason).
"""

import struct

from ..errors import InputError

# opcodes (RFC 1350, OACK: RFC 2347)
RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
OPCODES = {RRQ: "RRQ", WRQ: "WRQ", DATA: "DATA", ACK: "ACK", ERROR: "ERROR",
           OACK: "OACK"}

# error codes (RFC 1350; 8: RFC 2347)
NOT_DEFINED, NOT_FOUND, ACCESS_VIOLATION, DISK_FULL, ILLEGAL_OPERATION, \
    UNKNOWN_TID, FILE_EXISTS, NO_SUCH_USER, OPTION_REFUSED = range(9)


def _declare(fields):
    """A struct.Struct of big-endian (code, field) rows."""
    return struct.Struct("!" + "".join(code for code, _ in fields))


HEADER = _declare([("H", "opcode")])                        # 2 bytes
BLOCK = _declare([("H", "opcode"), ("H", "block")])         # DATA, ACK
ERRHEAD = _declare([("H", "opcode"), ("H", "error_code")])  # ERROR
assert (HEADER.size, BLOCK.size, ERRHEAD.size) == (2, 4, 4)

MODES = ("octet", "netascii")
DEFAULT_BLKSIZE = 512

#: option -> (lowest, highest) value a client may ask for; a value above
#: the highest is clamped (blksize, windowsize: the server may answer with
#: less), one below the lowest, or not a number, makes the option ignored.
LIMITS = {
    "blksize": (8, 65464),      # RFC 2348
    "timeout": (1, 255),        # RFC 2349: seconds; out of range: ignored
    "windowsize": (1, 65535),   # RFC 7440
}
CLAMPED = ("blksize", "windowsize")


class BadPacket(InputError):
    """A packet that is not what its opcode says (the reason in words);
    `code` is the TFTP error code to answer with."""

    def __init__(self, reason, code=ILLEGAL_OPERATION):
        super().__init__(reason)
        self.code = code


def opcode(packet):
    if len(packet) < HEADER.size:
        raise BadPacket(f"a packet of {len(packet)} bytes")
    return HEADER.unpack_from(packet)[0]


def _printable(raw):
    return raw.decode("ascii", "backslashreplace")


def parse_request(packet):
    """(opcode, filename bytes, mode str, [(option, value str)]) of an RRQ
    or WRQ.  The filename stays bytes: rootpath judges it (UTF-8, length,
    control characters)."""
    op = opcode(packet)
    if op not in (RRQ, WRQ):
        raise BadPacket(f"opcode {op} ({OPCODES.get(op, 'unknown')}) "
                        f"where a request was expected")
    body = packet[HEADER.size:]
    if not body.endswith(b"\0"):
        raise BadPacket("request not terminated by a NUL byte")
    fields = body[:-1].split(b"\0")
    if len(fields) < 2:
        raise BadPacket("request without a mode")
    name, mode = fields[0], fields[1]
    try:
        mode = mode.decode("ascii").lower()
    except UnicodeDecodeError:
        raise BadPacket(f"mode {_printable(mode)!r} is not ASCII") from None
    if mode not in MODES:
        raise BadPacket(f"transfer mode {mode!r} not supported "
                        f"(octet, netascii)")
    rest = fields[2:]
    if len(rest) % 2:
        raise BadPacket(f"option {_printable(rest[-1])!r} without a value",
                        OPTION_REFUSED)
    options = []
    for i in range(0, len(rest), 2):
        try:
            options.append((rest[i].decode("ascii").lower(),
                            rest[i + 1].decode("ascii")))
        except UnicodeDecodeError:
            raise BadPacket("option name or value not ASCII",
                            OPTION_REFUSED) from None
    return op, name, mode, options


def negotiate(options, size):
    """The options the server accepts, in the client's order, as
    (option, value) pairs for the OACK; `size` is the file's size for
    tsize.  Unknown options, repeats and values that are not numbers or
    below the lowest are left out (RFC 2347: the server ignores what it
    does not take).  tsize of an empty file is left out too: curl (7.88)
    ends a transfer whose OACK says "tsize 0" ("invalid tsize")."""
    accepted, seen = [], set()
    for name, value in options:
        if name in seen:
            continue
        seen.add(name)
        if not value.isdigit():
            continue
        # A value of thousands of digits is past every limit: never made
        # an int (Python refuses over 4300 digits, a ValueError).
        digits = value.lstrip("0") or "0"
        number = int(digits) if len(digits) <= 19 else 1 << 64
        if name == "tsize":
            if number == 0 and size:    # RFC 2349: a read asks with 0
                accepted.append((name, size))
            continue
        if name not in LIMITS:
            continue
        low, high = LIMITS[name]
        if number < low or (number > high and name not in CLAMPED):
            continue
        accepted.append((name, min(number, high)))
    return accepted


def oack(accepted):
    return HEADER.pack(OACK) + b"".join(
        f"{name}\0{value}\0".encode("ascii") for name, value in accepted)


def data(block, payload):
    return BLOCK.pack(DATA, block & 0xFFFF) + payload


def error(code, message):
    return ERRHEAD.pack(ERROR, code) + \
        message.encode("ascii", "replace")[:200] + b"\0"


def parse_reply(packet):
    """What a client sends during a transfer: ("ack", block) or
    ("error", code, message); BadPacket for anything else."""
    op = opcode(packet)
    if op == ACK:
        if len(packet) < BLOCK.size:
            raise BadPacket(f"an ACK of {len(packet)} bytes")
        return ("ack", BLOCK.unpack_from(packet)[1])
    if op == ERROR:
        if len(packet) < ERRHEAD.size:
            raise BadPacket(f"an ERROR of {len(packet)} bytes")
        message = packet[ERRHEAD.size:].split(b"\0", 1)[0]
        return ("error", ERRHEAD.unpack_from(packet)[1], _printable(message))
    raise BadPacket(f"opcode {op} ({OPCODES.get(op, 'unknown')}) "
                    f"during a read transfer")


def to_netascii(raw):
    """RFC 764's NVT ASCII as RFC 1350 asks of netascii: CR LF for a line
    end, CR NUL for a bare CR."""
    return raw.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")
