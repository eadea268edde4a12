"""Images to and from other disk formats: raw disk files (sparse), qcow2
and VHD through qemu-img, the field's converter.

``convert`` restores the image's disk (every chunk checked) into a sparse
raw file, then has qemu-img turn that into qcow2 or VHD.  ``import_disk``
captures a raw file or a block device directly, and anything qemu-img
recognises (qcow2, VHD, VMDK, VDI) through a sparse raw scratch file.
Outputs appear under their name only when complete; a convert never
replaces a file that appeared under its name meanwhile, and an import
replaces an existing image only when forced.
"""

import contextlib
import errno
import json
import os
import tempfile

from diskimage import sighold
from diskimage.capture import capture
from diskimage.image.compression import Compressor
from diskimage.host.links import what_is_there
from diskimage.errors import DiskImageError, InputError, TargetError
from diskimage.host.identity import refuse_image_over_source
from diskimage.image.lock import image_lock
from diskimage.image.reader import RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.host import tools
from diskimage.image.volumes import VolumeInput, find_volumes
from diskimage.image.volumeout import VolumeOutput


FORMATS = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc"}


class ConvertError(DiskImageError):
    """qemu-img failed (a missing one is MissingToolError, exit 10)."""

    exit_code = 1


def _qemu_img(*args):
    proc = tools.run(["qemu-img", *args], check=False)
    if proc.returncode:
        raise ConvertError(f"qemu-img {args[0]} failed: "
                           f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


def _restore_raw(image_path, raw_path, threads, passphrase=None):
    # Shared: no edit may replace the volumes while they are read.
    with image_lock(image_path, shared=True), VolumeInput(image_path) \
            as volumes:
        stream = RecordStream(volumes, passphrase=passphrase)
        run_restore(plan_restore(stream, raw_path), threads=threads)


def convert(image_path, out, to, *, threads=None, passphrase=None):
    """Write the disk of `image_path` to `out` as raw, qcow2 or vhd.

    The output is made in a private scratch directory beside `out` and
    published with link(2), which fails when `out` exists: a second
    convert to the same name (or a file made there meanwhile) is never
    overwritten, and a failed convert removes only its own scratch."""
    if to not in FORMATS:
        raise InputError(f"--to must be raw, qcow2 or vhd, not {to!r}")
    if out == "-":
        return _raw_to_stdout(image_path, threads or os.cpu_count(),
                              passphrase)
    if os.path.lexists(out):
        raise TargetError(f"{out}: {what_is_there(out)}; not overwritten")
    threads = threads or os.cpu_count()
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise InputError(f"{out}: directory {directory} does not exist")
    # Written in a directory of its own (mkdtemp: no other writer, no
    # planted symlink) and linked to OUT when whole: link(2) never
    # replaces what is there, a file that appeared meanwhile included.
    with tempfile.TemporaryDirectory(prefix=".imgx-convert-",
                                     dir=directory) as scratch:
        raw = os.path.join(scratch, "disk.raw")
        _restore_raw(image_path, raw, threads, passphrase)
        done = raw
        if to != "raw":
            done = os.path.join(scratch, f"disk.{to}")
            _qemu_img("convert", "-q", "-f", "raw", "-O", FORMATS[to],
                      raw, done)
        with sighold.held():        # the commit step (diskimage.sighold)
            _publish(done, out)
            sighold.committed(out)


def _publish(done, out):
    try:
        os.link(done, out)
    except FileExistsError:
        raise TargetError(f"{out}: exists; not overwritten (made "
                          f"while this convert ran)") from None
    except OSError as exc:      # a filesystem without hard links
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        if os.path.lexists(out):
            raise TargetError(f"{out}: exists; not overwritten") \
                from None
        os.rename(done, out)


def _raw_to_stdout(image_path, threads, passphrase=None):
    """OUT "-": the raw disk written to stdout (a pipe or a file, never a
    terminal, never the image itself), by way of a sparse scratch file in
    $TMPDIR that is removed afterwards; holes are written as zeros."""
    import sys
    stdout = sys.stdout.buffer
    stdout.flush()
    fd = stdout.fileno()
    if os.isatty(fd):
        raise InputError("stdout is a terminal; redirect the disk to a "
                         "file or a pipe")
    for volume in find_volumes(image_path):
        refuse_image_over_source(volume, fd, "stdout",
                                 why="the disk cannot be written over the "
                                     "image it comes from")
    with tempfile.TemporaryDirectory(prefix=".imgx-convert-") as scratch:
        raw = os.path.join(scratch, "disk.raw")
        _restore_raw(image_path, raw, threads, passphrase)
        with open(raw, "rb") as f:
            while True:
                data = f.read(1 << 20)
                if not data:
                    break
                stdout.write(data)
        stdout.flush()


def _format(source):
    """qemu-img's name for the format of a regular file (raw for devices)."""
    if not os.path.isfile(source):
        return "raw"
    # Absolute: qemu-img reads a relative "json:{...}" or "nbd:..." as an
    # option string or protocol, naming another file than this one.
    info = json.loads(_qemu_img("info", "--output=json",
                                os.path.abspath(source)))
    return info.get("format", "raw")


def import_disk(source, out, *, codec="lz4", level=None, description="",
                threads=None, force=False):
    """Capture `source` (raw file, block device, or a qemu-img format)
    into the image `out`.  An existing `out` is refused unless `force`,
    and then replaced only once the new image is whole.  Returns
    capture's summary."""
    if not os.path.exists(source):
        raise InputError(f"{source}: no such file or device")
    refuse_image_over_source(source, out)   # also a qcow2 read via scratch
    if not force and os.path.lexists(out):
        raise InputError(f"{out}: {what_is_there(out)}; not replaced without "
                         f"--force")
    with contextlib.ExitStack() as held:
        if os.path.isfile(out):
            # An image there is replaced: not while imgx edits it.
            held.enter_context(image_lock(out))
        return _import(source, out, Compressor(codec, level), description,
                       threads, force)


def _import(source, out, compressor, description, threads, force):
    kind = _format(source)
    if kind == "raw":
        return capture(source, VolumeOutput(out, replace=force),
                       compressor=compressor,
                       description=description, threads=threads)
    directory = os.path.dirname(os.path.abspath(out))
    with tempfile.TemporaryDirectory(prefix=".imgx-import-",
                                     dir=directory) as scratch:
        raw = os.path.join(scratch, "disk.raw")
        _qemu_img("convert", "-q", "-f", kind, "-O", "raw", "-S", "64k",
                  os.path.abspath(source), raw)
        return capture(raw, VolumeOutput(out, replace=force),
                       compressor=compressor,
                       description=description, threads=threads,
                       source_label=f"{os.path.abspath(source)} ({kind})")
