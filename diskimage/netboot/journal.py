"""The journal: an append-only file of JSON lines, one per state change.

    {"journal": "pxeconf", "version": 1}                   the first line
    {"ev": "lease", "mac": "52:54:00:12:34:56", "at": 1764606600.5, ...}
    ...

Each record is written whole and fsync'd before the change it records is
made (jobs.Machines), so what the journal holds is what a restarted server
replays.  A power cut can leave the last line cut short: open() drops that
one line (the file is truncated back to the last whole line) and says so
through `log`; any other line that does not parse, or a first line that is
not the header above, means the file is not ours: InputError, and the
file is left as it is.  One server holds the journal at a time (an
exclusive lock; another holder is BusyError).  rewrite() replaces it
with fewer records of the same state (jobs.Machines compacts a long
journal when it opens it).
"""

import fcntl
import json
import os

from ..errors import (NO_SPACE_ERRNOS, BusyError, DiskImageError,
                      InputError, NoSpaceError, no_space_left)

HEADER = {"journal": "pxeconf", "version": 1}
#: A line longer than this is not one of ours (a record is a few hundred
#: bytes; progress with a log tail stays well under it).
MAX_LINE = 1 << 20


def _parse(path, data, log):
    """The records of `data` (the whole file), and the byte length of its
    whole lines (where a cut-short tail starts)."""
    lines = data.split(b"\n")
    tail = lines.pop()          # b"" when the file ends with a newline
    good = len(data) - len(tail)
    records = []
    for number, line in enumerate(lines, 1):
        try:
            if len(line) > MAX_LINE:
                raise ValueError("too long")
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == 1:
                raise InputError(f"{path}: not a pxeconf journal (its first "
                                 f"line is not the journal header)") from None
            raise InputError(f"{path}:{number}: not a journal record (the "
                             f"file is damaged or not ours)") from None
        if number == 1:
            if record.get("journal") != HEADER["journal"]:
                raise InputError(f"{path}: not a pxeconf journal (its first "
                                 f"line is not the journal header)")
            if record.get("version") != HEADER["version"]:
                raise InputError(f"{path}: journal version "
                                 f"{record.get('version')!r}, this pxeconf "
                                 f"reads version {HEADER['version']}")
            continue
        if not isinstance(record.get("ev"), str):
            raise InputError(f"{path}:{number}: a journal record without "
                             f"its event (\"ev\")")
        records.append(record)
    if tail:
        if not lines:
            # A header cut short: a file of ours only if it is a prefix.
            if not json.dumps(HEADER).encode().startswith(tail):
                raise InputError(f"{path}: not a pxeconf journal (its first "
                                 f"line is not the journal header)")
        if log:
            log(f"journal {path}: the last line ({len(tail)} bytes) was cut "
                f"short (a power cut?); dropped it")
    return records, good, bool(lines)


def read(path, log=None):
    """The records of the journal at `path` (a missing file: none), without
    locking or repairing it: for readers such as `pxeconf status`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"{path}: cannot read the journal: "
                         f"{exc.strerror}") from None
    return _parse(path, data, log)[0]


class Journal:
    """The journal at `path`, opened for appending (made, with its
    directory, when missing).  .records: what it held when opened."""

    def __init__(self, path, log=None):
        self.path = str(path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)),
                        exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot make the journal's "
                             f"directory: {exc.strerror}") from None
        while True:
            self._file = self._locked(os.O_RDWR | os.O_CREAT, self.path)
            if self._same_file():
                break
            self._file.close()      # replaced by a compaction meanwhile
        try:
            data = self._file.read()
            self.records, good, has_header = _parse(self.path, data, log)
            if good != len(data):
                self._file.truncate(good)
                os.fsync(self._file.fileno())
            self._file.seek(0, os.SEEK_END)
            if not has_header:
                self._write(HEADER)
        except BaseException:
            self._file.close()
            raise

    def _locked(self, flags, path):
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise InputError(f"{path}: cannot open the journal: "
                             f"{exc.strerror}") from None
        f = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise BusyError(f"{self.path}: another pxeconf serve holds "
                            f"this journal") from None
        return f

    def _same_file(self):
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        st = os.fstat(self._file.fileno())
        return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)

    def rewrite(self, records):
        """Replace the journal by `records` (a compaction: each machine's
        state as one record): written to PATH.partial, fsync'd, locked and
        renamed over the journal, so a cut leaves the old one whole."""
        partial = self.path + ".partial"
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise InputError(f"{partial}: cannot remove it: "
                             f"{exc.strerror}") from None
        new = self._locked(os.O_RDWR | os.O_CREAT | os.O_EXCL, partial)
        old, self._file = self._file, new
        try:
            for record in [HEADER, *records]:
                self._write(record)
            os.rename(partial, self.path)
            dirfd = os.open(os.path.dirname(os.path.abspath(self.path)),
                            os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except BaseException as exc:
            self._file = old
            new.close()
            try:
                os.unlink(partial)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise DiskImageError(f"{self.path}: cannot compact the "
                                     f"journal: {exc.strerror}") from None
            raise
        old.close()

    def _write(self, record):
        line = json.dumps(record, sort_keys=True,
                          separators=(",", ":")).encode() + b"\n"
        view = memoryview(line)
        while view:
            view = view[self._file.write(view):]
        os.fsync(self._file.fileno())

    def append(self, record):
        """Write one record and fsync it; only then may the change be
        made.  A write that fails leaves the file as it was (NoSpaceError,
        or DiskImageError with the system's words)."""
        size = self._file.tell()
        try:
            self._write(record)
        except OSError as exc:
            try:
                self._file.truncate(size)
                self._file.seek(size)
            except OSError:
                pass
            if exc.errno in NO_SPACE_ERRNOS:
                raise NoSpaceError(f"{self.path}: cannot write the journal: "
                                   f"{no_space_left(exc)}") from None
            raise DiskImageError(f"{self.path}: cannot write the journal: "
                                 f"{exc.strerror}") from None

    def close(self):
        self._file.close()


class ReadOnly:
    """The journal as readers see it: its records, no lock, nothing
    written (the changes a sync would make stay in memory)."""

    def __init__(self, path, log):
        self.records = read(path, log)

    def append(self, record):
        pass

    def rewrite(self, records):
        pass

    def close(self):
        pass
