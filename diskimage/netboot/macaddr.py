"""MAC addresses: one spelling inside the toolkit (``52:54:00:12:34:56``,
lower case), and the names each loader asks the server for:

    pxelinux    pxelinux.cfg/01-52-54-00-12-34-56   (ARP type 1, dashes)
    GRUB        grub/grub.cfg-01-52-54-00-12-34-56  (2.06 and later)
                grub/grub.cfg-52:54:00:12:34:56      (older builds)
    iPXE        ipxe/52-54-00-12-34-56.ipxe         (${mac:hexhyp})
"""

import re

from ..errors import InputError

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$"
                  r"|^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$")


def normalise(text):
    """``52:54:00:ab:cd:ef`` from colons, dashes or nothing between the six
    bytes, in either case, or the switches' ``5254.00ab.cdef``.  A machine's
    MAC is unicast: all-zero, broadcast and multicast MACs are refused."""
    raw = str(text).strip().lower()
    if not _MAC.match(raw):
        raise InputError(f"{text!r}: not a MAC address (six bytes in hex, "
                         f"e.g. 52:54:00:12:34:56)")
    digits = raw.replace(":", "").replace("-", "").replace(".", "")
    mac = ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    if digits == "0" * 12:
        raise InputError(f"{text!r}: the all-zero MAC is no machine's "
                         f"(a machine's MAC is unicast)")
    if int(digits[:2], 16) & 1:
        what = "the broadcast MAC" if digits == "f" * 12 \
            else "a multicast MAC (the first byte is odd)"
        raise InputError(f"{text!r}: {what}, not a machine's (a machine's "
                         f"MAC is unicast)")
    return mac


def dashes(mac):
    return normalise(mac).replace(":", "-")


def pxelinux_name(mac):
    return f"pxelinux.cfg/01-{dashes(mac)}"


def grub_names(mac):
    return (f"grub/grub.cfg-01-{dashes(mac)}", f"grub/grub.cfg-{normalise(mac)}")


def ipxe_name(mac):
    return f"ipxe/{dashes(mac)}.ipxe"


def from_request(name):
    """The MAC a loader's per-machine request names, or None:
    the inverse of the three names above (used to see a machine boot)."""
    name = name.lstrip("/")
    for prefix, suffix in (("pxelinux.cfg/01-", ""), ("grub/grub.cfg-01-", ""),
                           ("grub/grub.cfg-", ""), ("ipxe/", ".ipxe")):
        if name.startswith(prefix) and name.endswith(suffix):
            middle = name[len(prefix):len(name) - len(suffix)]
            try:
                return normalise(middle)
            except InputError:
                return None
    return None
