"""rdeploy demo: the whole loop on a disk it builds, with real filesystems.

Builds a GPT disk file with ext4, FAT32 and NTFS partitions full of files
(with mkfs.ext4, mkfs.fat + mtools, mkntfs + ntfs-3g), captures it, restores
it onto a second disk file, verifies the image, then checks the copy with
each filesystem's fsck and every file's SHA-256.  Prints what it did, with
sizes, times and throughput, on stdout.
"""

import os
import time

import demodisk
from diskimage import sighold
from diskimage.capture import capture
from diskimage.image.compression import Compressor
from diskimage.errors import DiskImageError, InputError
from diskimage.image.reader import RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.sizes import format_size
from diskimage.image.verify import verify
from diskimage.image.volumes import VolumeInput
from diskimage.image.volumeout import VolumeOutput


def _step(label, seconds, nbytes=None):
    rate = f", {format_size(nbytes / seconds)}/s" if nbytes and seconds \
        else ""
    print(f"  {label:<34} {seconds:6.2f} s{rate}", flush=True)


#: The only names the demo makes in its directory (a --keep run leaves them).
NAMES = ("demo-disk.img", "demo.rdi", "restored-disk.img")


def _prepare(directory):
    """Make `directory`, or check that an existing one holds nothing but an
    earlier demo's files (which are removed).  Refuses anything else before
    a byte is written.  Returns whether the demo made the directory."""
    if not os.path.lexists(directory):
        os.makedirs(directory)
        return True
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: not a directory; give --dir a new "
                         f"or empty directory")
    others = sorted(set(os.listdir(directory)) - set(NAMES))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise InputError(f"{directory}: holds files the demo did not make "
                         f"({shown}); give --dir a new or empty directory")
    for name in NAMES:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            raise InputError(f"{path}: a directory where the demo puts a "
                             f"file; give --dir a new or empty directory")
    for name in NAMES:
        path = os.path.join(directory, name)
        if os.path.lexists(path):
            os.unlink(path)
    return False


def _clean(directory, made, mine):
    """Remove the files this run made (`mine`: path -> its stat, so never
    a file another process put under one of its names), and the directory
    when the demo made it and it is empty; never anything else."""
    for path, st in mine.items():
        try:
            if os.path.samestat(os.lstat(path), st):
                os.unlink(path)
        except FileNotFoundError:
            pass
    if made:
        try:
            os.rmdir(directory)
        except OSError:
            pass


def run(directory, keep=False):
    made = _prepare(directory)
    print(f"rdeploy demo in {os.path.abspath(directory)}")
    mine = {}
    try:
        _run(directory, mine)
    except BaseException:
        # An interrupt (or a failure) at any stage: the demo's files are
        # removed as at the end, unless --keep; the image, whole once the
        # capture committed, is then no longer said to be.
        if not keep:
            _clean(directory, made, mine)
            sighold.withdrawn(os.path.join(directory, NAMES[1]))
        raise
    if not keep:
        _clean(directory, made, mine)
        sighold.withdrawn(os.path.join(directory, NAMES[1]))
    return 0


def _mine(path, mine):
    """Note `path` as made by this run (its identity, for _clean)."""
    mine[path] = os.lstat(path)


def _run(directory, mine):
    """The stages.  Each after the capture is new work begun after its
    commit (sighold.started): a signal there stops the demo (128+N), as it
    does during the capture.  Each file is noted in `mine` as it is made
    (the disk created here, exclusively, before the build writes it)."""
    disk, image, copy = (os.path.join(directory, name) for name in NAMES)

    started = time.monotonic()
    with sighold.held():
        os.close(os.open(disk, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        _mine(disk, mine)
    manifest = demodisk.make_gpt_demo(disk)
    files = sum(len(p["files"]) for p in manifest["partitions"].values())
    _step(f"build GPT disk ({files} files)", time.monotonic() - started)
    for number, part in sorted(manifest["partitions"].items()):
        print(f"    partition {number}: {part['fs']:<5} "
              f"{format_size(part['size'])}, {len(part['files'])} files")

    summary = capture(disk, VolumeOutput(image), compressor=Compressor("lz4"),
                      description="rdeploy demo disk")
    _mine(image, mine)      # a signal since its commit is raised below
    _step("capture", summary["seconds"], summary["read_bytes"])

    sighold.started()
    with VolumeInput(image) as source:
        checked = verify(source, threads=os.cpu_count())
    _step("verify", checked["seconds"], checked["data_bytes"])

    sighold.started()
    with VolumeInput(image) as source:
        plan = plan_restore(RecordStream(source), copy)
        restored = run_restore(plan, threads=os.cpu_count(), verify=True,
                               committed=lambda: _mine(copy, mine))
    _step("restore (with read-back)", restored["seconds"],
          restored["written_bytes"])

    sighold.started()
    started = time.monotonic()
    problems = demodisk.check_disk(copy, manifest)
    _step("fsck + SHA-256 of every file", time.monotonic() - started)

    disk_size = os.path.getsize(disk)
    print(f"  disk {format_size(disk_size)}: "
          f"{format_size(summary['data_bytes'])} data, "
          f"{format_size(summary['zero_bytes'])} zero chunks skipped; "
          f"image {format_size(summary['image_bytes'])} "
          f"({100 * summary['image_bytes'] / disk_size:.1f}% of the disk)")
    if problems:
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        raise DiskImageError(f"demo: the restored disk differs "
                             f"({len(problems)} problems)")
    print(f"  OK: {files} files match and every filesystem is clean")
