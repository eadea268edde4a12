"""Real fault layers for the fault tests (tests/faults/): a disk file whose
reads or writes fail, one whose unflushed writes are lost at a power cut,
and small filesystems that fill up.

How they are made here (this kernel has neither device-mapper nor the nbd
module, so no `error`/`flakey` targets and no /dev/nbdN):

- nbdkit (Debian `nbdkit`) serves a plain file on a Unix socket through
  one of its filters, and nbdfuse (Debian `libnbd-bin`, with `fuse3`)
  mounts that export as a file, DIR/disk, that the commands open like any
  disk file.  nbdfuse passes writes straight through (no FUSE writeback
  cache): a write the server fails is an EIO of that write(), and fsync is
  an NBD flush.
- `ddrescue` filter: reads of the sectors a GNU ddrescue map file marks bad
  fail with EIO, everywhere else the file's bytes: read errors at a known
  offset.
- `error` filter: every pread (or pwrite, zero, trim) fails with EIO (or
  ENOSPC) while a trigger file exists; the test creates the trigger when
  the command is known to be in the middle of its work.
- `cache` filter in writeback mode: writes stay in nbdkit's cache until the
  client flushes (fsync); SIGKILL of nbdkit then drops every unflushed
  write, which is what a power cut does to a disk's volatile cache.
  Measured here: a write closed without fsync is lost, one followed by
  fsync is kept.
- `small_tmpfs` / `small_ext4`: a filesystem of a few MiB (the ext4 one on
  a loop device of a small file) that a capture fills up.
- `VolatileExt4`: ext4 on a loop device over the nbdfuse file of a
  writeback cache: an output filesystem whose power is cut under a
  capture (the journal replayed at the next mount shows what survived).

Every layer is a context manager that stops what it started (nbdfuse
unmounted, nbdkit killed by its pid, the loop device it made detached).
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.signals import wait_for

SECTOR = 512


class NbdFile:
    """`backing` served by nbdkit through `filters` (with their `params`)
    and mounted by nbdfuse as `self.path` (workdir/mnt/disk)."""

    def __init__(self, backing, workdir, filters=(), params=(),
                 plugin=("file",), tmpdir=None):
        self.backing = Path(backing)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket = self.workdir / "nbd.sock"
        self.mountpoint = self.workdir / "mnt"
        self.path = self.mountpoint / "disk"
        self.filters, self.params, self.plugin = filters, params, plugin
        self.server = self.fuse = None
        self.tmpdir = tmpdir

    # --- life -------------------------------------------------------------
    def start(self):
        self.mountpoint.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = ["nbdkit", "-f", "--exit-with-parent", "-U", str(self.socket)]
        args += [f"--filter={f}" for f in self.filters]
        args += [*self.plugin, f"file={self.backing}", *self.params]
        env = dict(os.environ)
        if self.tmpdir:
            env["TMPDIR"] = str(self.tmpdir)
        # Its log (one line per injected error) goes to a file: a pipe
        # nobody reads would fill and stall it.
        self.log = self.workdir / "nbdkit.log"
        with open(self.log, "wb") as log:
            self.server = subprocess.Popen(args, env=env,
                                           stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log)
        wait_for(lambda: self.socket.exists() or self.server.poll()
                 is not None, 20, "nbdkit's socket")
        if self.server.poll() is not None:
            raise AssertionError(f"nbdkit failed: {self.log.read_text()}")
        # nbdfuse stays in the foreground until unmounted; its complaints
        # (a failed NBD command) go to its stderr, not the test's.
        self.fuse = subprocess.Popen(
            ["nbdfuse", str(self.path), "--unix", str(self.socket)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_for(lambda: self.path.exists() or self.fuse.poll() is not None,
                 20, "nbdfuse's file")
        if self.fuse.poll() is not None:
            raise AssertionError("nbdfuse failed to mount")
        return self

    def power_loss(self):
        """SIGKILL nbdkit: whatever its cache filter holds unflushed is
        gone; every later read, write or flush of self.path fails (EIO), as
        of a disk without power.  (The mount stays until stop(): a command
        with the file open would keep an unmount waiting.)"""
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGKILL)
            self.server.wait(timeout=20)

    def stop(self):
        """Unmount, then end nbdkit (SIGTERM: a clean stop; the cache
        filter's unflushed writes are not written by it either)."""
        self._unmount()
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=20)

    def _unmount(self):
        """fusermount3 -u, else a lazy one (a process still holds the file
        open); nbdfuse ends with its mount.  A mount whose nbdfuse had to be
        killed is detached lazily (a dead FUSE mount would stop pytest
        from removing the test's directory)."""
        if self.fuse is None:
            return
        where = str(self.mountpoint)
        for cmd in (["fusermount3", "-u", where],
                    ["fusermount3", "-uz", where]):
            if not _mounted(where):
                break
            subprocess.run(cmd, capture_output=True)
        try:
            self.fuse.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.fuse.kill()
            self.fuse.wait(timeout=20)
        if _mounted(where):
            subprocess.run(["umount", "-l", where], capture_output=True)
        self.fuse = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _mounted(where):
    """Whether `where` is a mount point now (from /proc/self/mounts: a
    dead FUSE mount fails stat, so os.path.ismount says no)."""
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == where for line in f)


class Trigger:
    """A file whose existence turns the error filter's faults on."""

    def __init__(self, path):
        self.path = Path(path)

    def on(self):
        self.path.touch()

    def off(self):
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def bad_sectors(backing, workdir, bad):
    """`backing` whose reads fail (EIO) in the byte ranges `bad` [(offset,
    length), ...] (sector multiples), through nbdkit's ddrescue filter: a
    map file in GNU ddrescue's format, '+' finished and '-' bad-sector
    blocks covering the whole size."""
    size = os.path.getsize(backing)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lines, pos = ["# made by tests/faultlayers.py", "0x0 +"], 0
    for offset, length in sorted(bad):
        assert offset % SECTOR == 0 and length % SECTOR == 0
        if offset > pos:
            lines.append(f"0x{pos:x} 0x{offset - pos:x} +")
        lines.append(f"0x{offset:x} 0x{length:x} -")
        pos = offset + length
    if pos < size:
        lines.append(f"0x{pos:x} 0x{size - pos:x} +")
    mapfile = workdir / "bad.map"
    mapfile.write_text("\n".join(lines) + "\n")
    return NbdFile(backing, workdir, ["ddrescue"],
                   [f"ddrescue-mapfile={mapfile}"])


#: nbdkit's sh plugin, serving a file whose reads that touch [START, END)
#: wait until RELEASE exists (and say so by creating REACHED).
_HOLD_SCRIPT = """#!/bin/sh
case "$1" in
  config|config_complete|open|close) exit 0 ;;
  get_size) stat -L -c %s '{backing}' ;;
  can_write|can_flush|can_trim|can_zero|can_fua) exit 3 ;;
  pread)
    if [ $(( $4 + $3 )) -gt {start} ] && [ "$4" -lt {end} ]; then
      : > '{reached}'
      while [ ! -e '{release}' ]; do sleep 0.02; done
    fi
    exec dd if='{backing}' bs=65536 iflag=skip_bytes,count_bytes \
        skip="$4" count="$3" status=none ;;
  *) exit 2 ;;
esac
"""


class Held(NbdFile):
    """`backing` read-only, whose reads of bytes in `hold` (start, end)
    block until release(): a command reading it stops there,
    deterministically, for as long as the test wants (a SIGKILL in the
    middle of a capture).  `reached` exists once a read has arrived
    there."""

    def __init__(self, backing, workdir, hold):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.reached = workdir / "reached"
        self._release = workdir / "release"
        script = workdir / "hold.sh"
        script.write_text(_HOLD_SCRIPT.format(
            backing=backing, start=hold[0], end=hold[1], reached=self.reached,
            release=self._release))
        script.chmod(0o755)
        super().__init__(backing, workdir, plugin=("sh", str(script)))

    def release(self):
        self._release.touch()

    def stop(self):
        self.release()
        super().stop()


def failing_reads(backing, workdir):
    """(layer, trigger): every read of `backing` fails with EIO while the
    trigger is on (nbdkit's error filter)."""
    trigger = Trigger(Path(workdir) / "fail-reads")
    trigger.off()
    layer = NbdFile(backing, workdir, ["error"],
                    ["error-pread=EIO", "error-pread-rate=100%",
                     f"error-pread-file={trigger.path}"])
    return layer, trigger


def failing_writes(backing, workdir, errno_name="EIO"):
    """(layer, trigger): every write, zero and trim of `backing` fails
    (EIO, or ENOSPC) while the trigger is on; reads keep working."""
    trigger = Trigger(Path(workdir) / "fail-writes")
    trigger.off()
    params = []
    for op in ("pwrite", "zero", "trim"):
        params += [f"error-{op}={errno_name}", f"error-{op}-rate=100%",
                   f"error-{op}-file={trigger.path}"]
    return NbdFile(backing, workdir, ["error"], params), trigger


def volatile(backing, workdir):
    """`backing` behind a writeback cache that only a flush empties into
    it: power_loss() drops every write not yet flushed."""
    cache = Path(workdir) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    # The cache's own file lives in $TMPDIR: in the test's tree.
    return NbdFile(backing, workdir, ["cache"], ["cache=writeback"],
                   tmpdir=cache)


def _run(*cmd):
    return subprocess.run(list(map(str, cmd)), check=True,
                          capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def small_tmpfs(where, size_kib=2048):
    """A tmpfs of `size_kib` KiB mounted at `where` (needs root)."""
    where = Path(where)
    where.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", where)
    try:
        yield where
    finally:
        _run("umount", where)


@contextlib.contextmanager
def small_ext4(backing, where, size_mib=4):
    """ext4 made by mkfs.ext4 on a loop device over a `size_mib` MiB file,
    mounted at `where`: a small device that fills up (needs root)."""
    backing, where = Path(backing), Path(where)
    with open(backing, "wb") as f:
        f.truncate(size_mib << 20)
    dev = _run("losetup", "--find", "--show", backing)
    try:
        _run("mkfs.ext4", "-q", "-F", "-m", "0", dev)
        where.mkdir(parents=True, exist_ok=True)
        _run("mount", dev, where)
        try:
            yield where
        finally:
            _run("umount", where)
    finally:
        _detach(dev)


class VolatileExt4:
    """ext4 (mkfs.ext4) in a `size_mib` MiB file, used through a loop
    device over the file nbdfuse makes of nbdkit's writeback cache: an
    output filesystem whose power can be cut (power_loss(): nbdkit
    SIGKILLed, every write the kernel did not flush is gone).  `where` is
    its mount point; after power_loss() and the end of the block, mount()
    shows what the medium kept (ext4's journal replayed)."""

    def __init__(self, backing, workdir, size_mib=16):
        self.backing, self.workdir = Path(backing), Path(workdir)
        self.where = self.workdir / "fs"
        with open(self.backing, "wb") as f:
            f.truncate(size_mib << 20)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", self.backing)
        self.layer = volatile(self.backing, self.workdir / "nbd")
        self.dev = None

    def __enter__(self):
        self.layer.start()
        try:
            self.dev = _run("losetup", "--find", "--show", self.layer.path)
            self.where.mkdir(parents=True, exist_ok=True)
            _run("mount", self.dev, self.where)
        except BaseException:
            self.__exit__()
            raise
        return self

    def power_loss(self):
        self.layer.power_loss()

    def __exit__(self, *exc):
        if _mounted(str(self.where)):
            if subprocess.run(["umount", self.where],
                              capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", self.where],
                               capture_output=True)
        if self.dev:
            _detach(self.dev)
            self.dev = None
        self.layer.stop()

    @contextlib.contextmanager
    def mount(self):
        """The medium itself mounted (on a loop device of the file), as a
        machine would find it after the power came back."""
        dev = _run("losetup", "--find", "--show", self.backing)
        try:
            _run("mount", dev, self.where)
            try:
                yield self.where
            finally:
                _run("umount", self.where)
        finally:
            _detach(dev)


def _detach(dev):
    for _ in range(50):
        if subprocess.run(["losetup", "-d", dev],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
