"""udp-receiver on the media: what `rdeploy multicast receive` runs at boot.

The environment carries the host's own ``udp-receiver`` (Debian's udpcast
package) at /usr/bin/udp-receiver, Debian's path, beside the toolkit, with
its shared-library closure (ldd, closure.py; on Debian 12 that is libc,
libdl, libpthread and the loader, which the toolkit's closure already
holds, so only the binary itself is added: 65,096 bytes for udpcast
20120424).  It is found on the system PATH of diskimage.host.tools (the
sbin and bin directories); a host without it cannot make media that
receive multicast: MissingToolError (exit 10) naming the package, before
anything is built.  Only the receiver goes in: a medium joins sessions,
it does not send them.
"""

import os
import shutil

from diskimage.errors import MissingToolError
from diskimage.host import tools

from .closure import library_closure

NAME = "udp-receiver"
PACKAGE = "udpcast"
#: Where it goes on the medium (where Debian installs it; on /init's PATH).
DEST = f"/usr/bin/{NAME}"
#: What started in the medium's root proves it loads (prints the licence,
#: exit 0; udp-receiver has no --version).
START_ARGS = ("--license",)


def find(path=None):
    """The host's udp-receiver (absolute path), looked up on `path` (else
    the PATH tools run with, sbin and bin directories included);
    MissingToolError naming the udpcast package when it is not there."""
    search = path if path is not None else tools.tool_env()["PATH"]
    found = shutil.which(NAME, path=search)
    if found is None:
        raise MissingToolError(NAME, PACKAGE,
                               "the environment's multicast receiver")
    return os.path.abspath(found)


def add(tree, binary, have):
    """Put `binary` (the host's udp-receiver) and the libraries of its
    closure that are not in `have` ({path as loaded: real file}, the
    closure already in the tree) into `tree`.  Returns the manifest entry:
    its path on the medium, its size, its libraries, and `added`, the
    bytes it adds to the uncompressed tree (the binary plus the libraries
    that were not there yet)."""
    libraries = library_closure(binary)
    tree.add_host(binary, DEST)
    added = os.path.getsize(binary)
    for loaded, real in libraries.items():
        if loaded not in have:
            tree.add_host(real, loaded)
            added += os.path.getsize(real)
    return {"binary": DEST, "source": binary,
            "size": os.path.getsize(binary),
            "libraries": sorted(libraries), "added": added}
