"""Self-restoring images (imgx sfx): the frozen multi-call binary with an
image appended, the classic ".EXE image".

Layout of the output file::

    the frozen binary (dist/deploytool) as built
    the image stream (its volumes, concatenated)
    a 32-byte trailer: "RDI-SFX\\n", the stream's offset and length, CRC-32

PyInstaller's boot loader finds its own archive by searching backwards from
the end of the file, so the appended bytes do not disturb it.  Run, the
binary sees the trailer on itself (cliutil/selfrestore.py) and restores the
image it carries through ``rdeploy restore``, with all of its checks.  Any
reader of the toolkit opens the file as the image it carries
(diskimage.volumes.sfx_window), so ``rdeploy info restore.run`` works too.
"""

import os
import shutil
import sys

from diskimage.errors import InputError
from diskimage.reader import ImageReader
from diskimage.volumes import PARTIAL, pack_sfx_trailer, sfx_window

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_binary():
    """This program when it is the frozen binary, else dist/deploytool of
    the source tree (built by `make freeze`)."""
    if getattr(sys, "frozen", False):
        return sys.executable
    return os.path.join(HERE, "dist", "deploytool")


def make_sfx(image_path, out, binary=None):
    """Write the self-restoring binary `out` for `image_path`."""
    binary = binary or default_binary()
    if not os.path.isfile(binary):
        raise InputError(f"{binary}: no frozen binary to build on (run "
                         f"`make freeze`, or give --binary)")
    with ImageReader(image_path) as reader:      # whole and checked
        source = reader.source
        stream_length = source.size
        partial = out + PARTIAL
        try:
            with open(binary, "rb") as b, open(partial, "wb") as f:
                if sfx_window(b.fileno()):
                    # A self-restoring binary given as the base: take its
                    # program part only.
                    length = sfx_window(b.fileno())[0]
                    f.write(b.read(length))
                else:
                    shutil.copyfileobj(b, f, 1 << 20)
                offset = f.tell()
                position = 0
                while position < stream_length:
                    block = source.read_at(position, min(
                        4 << 20, stream_length - position))
                    if not block:
                        raise InputError(f"{image_path}: image ends early")
                    f.write(block)
                    position += len(block)
                f.write(pack_sfx_trailer(offset, stream_length))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(partial, 0o755)
            os.replace(partial, out)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
    return {"binary_bytes": offset, "image_bytes": stream_length}
