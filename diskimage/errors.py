"""The exception hierarchy, one class per kind of fault, each with its exit code.

The commands' shared runner turns these into one line on stderr and the exit
code below; the table is repeated in every command's ``--help`` and in
docs/rdeploy.md.
"""


import errno

#: The errnos that mean "no room for these bytes" (exit 6, NoSpaceError):
#: a full filesystem, a quota, a file past its size limit (FAT's 4 GiB,
#: RLIMIT_FSIZE).  Every writer that turns an OSError into an exit code
#: tests against this one set.
NO_SPACE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG))


def no_space_left(exc):
    """The words for an OSError of NO_SPACE_ERRNOS: "no space left", and
    the errno's own text when it is a quota or a size limit."""
    if exc.errno == errno.ENOSPC:
        return "no space left"
    return f"no space left ({exc.strerror})"


class DiskImageError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1


class UsageError(DiskImageError):
    """The command was called with words or values that make no sense."""

    exit_code = 2


class InputError(DiskImageError):
    """A source or image path that cannot be used: missing, a directory,
    not an image, a terminal where data must flow, a bad partition list."""

    exit_code = 3


class CorruptImageError(DiskImageError):
    """Image data that fails its checks: a checksum, a record header, a
    truncated stream.  Names the chunk and the byte offset in the image
    and, in a split image, the volume file and the byte in it (`volume`:
    a (name, offset) pair); `hint` is a sentence added at the end."""

    exit_code = 4

    def __init__(self, message, *, offset=None, chunk=None, volume=None,
                 hint=None):
        self.what = message
        where = []
        if chunk is not None:
            where.append(f"chunk {chunk}")
        if volume is not None:
            where.append(f"in {volume[0]} at byte {volume[1]}")
        if offset is not None:
            where.append(f"image offset {offset}")
        if where:
            message = f"{message} ({', '.join(where)})"
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)
        self.offset = offset
        self.chunk = chunk
        self.volume = volume
        self.hint = hint


class TargetError(DiskImageError):
    """A restore target that is refused before anything is written: too
    small, mounted, the source itself, another sector size, unconfirmed."""

    exit_code = 5


class NoSpaceError(DiskImageError):
    """The output ran out of space: a full filesystem, a quota, a file size
    limit (NO_SPACE_ERRNOS).  Another failed write is a plain
    DiskImageError (exit 1)."""

    exit_code = 6


class UnsupportedError(DiskImageError):
    """Something in the image this tool does not read: a major format
    version, a codec (zstd without the zstandard package), a checksum
    algorithm, a filesystem imgx cannot browse.  A restore this tool does
    not do (an MBR logical partition moved) is a TargetError."""

    exit_code = 7


class TargetChangedError(DiskImageError):
    """A restore (or another write to a target) that failed after its first
    write: the target was changed and must not be trusted.  The message says
    the cause and the state the target was left in (a restore wipes the
    partition table first, so such a disk has no valid table)."""

    exit_code = 8


class BusyError(DiskImageError):
    """Another process holds the file: a second capture to the same image,
    or a second edit of one image while the first is running."""

    exit_code = 9


class TableError(InputError):
    """A partition table that cannot be parsed."""


class ToolError(DiskImageError):
    """An external tool (mkfs, sfdisk, losetup, qemu-img ...) that exited
    non-zero, or did not finish in time: the message names the command and
    ends with what it said; `returncode` (None when it was stopped) and
    `output` (its stdout and stderr) are kept for callers that judge it."""

    exit_code = 1

    def __init__(self, message, returncode=None, output=""):
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class MissingToolError(ToolError):
    """An external tool that is not installed: one line naming it and the
    Debian package that provides it (diskimage.host.tools.PACKAGES).
    `what`, when given, says what needed it."""

    exit_code = 10

    def __init__(self, tool, package=None, what=None):
        if package is None:
            from .host.tools import package_of
            package = package_of(tool)
        self.tool = tool
        self.package = package
        self.what = what
        where = f"{what}: " if what else ""
        source = f" (it comes with the Debian package {package})" \
            if package else ""
        super().__init__(f"{where}{tool}: not installed{source}")


class PassphraseError(DiskImageError):
    """An encrypted image opened without its passphrase, or with another
    one ("IMAGE: wrong passphrase"): raised before anything is written."""

    exit_code = 12


class IncompleteTargetError(DiskImageError):
    """A target that holds an interrupted restore (its restore marker,
    diskimage.restoremark): `rdeploy verify-target` names the image and how
    far it got; `rdeploy restore ... --resume` finishes it."""

    exit_code = 13


class TargetDiffersError(DiskImageError):
    """A target whose bytes differ from the image it is compared with
    (`rdeploy verify-target TARGET IMAGE`): names the first differing disk
    offset."""

    exit_code = 14
class SignatureError(DiskImageError):
    """A signature that is required and not good: an unsigned image (no
    IMAGE.sig), a bad or damaged signature, one by a key that is not
    trusted, a signature for another image, a format 1.0 image (which
    cannot be signed) or a pipe where a signature is required."""

    exit_code = 11


class NetworkError(DiskImageError):
    """A network source or session that failed: a URL that could not be
    read after its retries, an HTTP status that refuses it, a TLS
    certificate that does not verify, a resource that changed while it
    was read; a multicast session that did not start, or that dropped
    this receiver (its disk is left marked incomplete)."""

    exit_code = 15


class LayoutDiffersError(TargetError):
    """A delta restore refused before any write: the target's partition
    layout (table, partition places, filesystems) is not the image's, so
    its bytes cannot be compared chunk by chunk; restore without --delta."""

    exit_code = 16
