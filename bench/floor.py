"""The copy floor of issue 19: what copying the bytes at all costs.

For a capture: read the used ranges of the disk (the bytes rdeploy must
read: the table areas, and of each partition the ranges its filesystem's
allocation maps name, or the whole partition where rdeploy copies it
whole) and write those same bytes, one after the other, to a new file,
fsync at the end.  For a restore: read that file and write its bytes at
their disk offsets into a new sparse disk file of the disk's size, fsync
at the end.  No compression, no checksum, one 4 MiB buffer reused.

The ranges come from rdeploy's own plan (diskimage.capture.plan_areas),
computed once per disk before the timed runs and kept in a JSON file; the
timed copy is this file run as a script (``python -S floor.py capture
RANGES SOURCE OUT`` / ``restore RANGES COPY TARGET SIZE``), so it pays an
interpreter start (about 20 ms with -S) as rdeploy's rows do (more: about
0.1-0.2 s), and GNU time measures it like every other row.

On disk (c) (random bytes, stored raw) the floor copies exactly what
rdeploy must: capture and restore are judged against it (within 1.25x).
On compressible disks rdeploy writes (capture) or reads (restore) fewer
bytes than the floor (the image is compressed), so a ratio below 1 is
possible there; those ratios are reported, not judged.
"""

import json
import os
import sys

BUF = 4 << 20


def used_ranges(path):
    """[(offset, length)] of the bytes a capture of disk file `path`
    reads, sorted and merged."""
    from diskimage.capture import plan_areas
    from diskimage.host.device import open_source
    from diskimage.tables.partitions import read_table
    with open_source(path) as disk:
        table = read_table(disk.read, disk.size, 512, truncated=True)
        planned, _ = plan_areas(disk, table)
        return _merged(planned)     # the runs are read as they are iterated


def _merged(planned):
    out = []
    for area, runs in planned:
        start, end = area["start"], area["start"] + area["size"]
        if runs is None:
            runs = [(0, area["size"])]
        for offset, length in runs:
            a, b = start + offset, min(start + offset + length, end)
            if b <= a:
                continue
            if out and out[-1][0] + out[-1][1] >= a:
                last = out[-1]
                out[-1] = (last[0], max(last[0] + last[1], b) - last[0])
            else:
                out.append((a, b - a))
    return out


def ranges_file(disk, work):
    """The JSON file of disk `disk`'s used ranges (a recipe with "path"),
    made once next to the disk; returns (path, total bytes)."""
    path = os.path.join(work, os.path.basename(disk["path"]) +
                        ".ranges.json")
    stamp = os.stat(disk["path"]).st_mtime_ns
    try:
        with open(path) as f:
            kept = json.load(f)
        if kept["stamp"] == stamp:
            return path, sum(n for _, n in kept["ranges"])
    except (OSError, ValueError, KeyError):
        pass
    ranges = used_ranges(disk["path"])
    with open(path + ".partial", "w") as f:
        json.dump({"stamp": stamp, "ranges": ranges}, f)
    os.replace(path + ".partial", path)
    return path, sum(n for _, n in ranges)


def _load(path):
    with open(path) as f:
        return json.load(f)["ranges"]


def copy_capture(ranges, source, out):
    """Read `ranges` of `source`, write them in order to the new file
    `out`, fsync; the bytes copied."""
    buf = bytearray(BUF)
    view = memoryview(buf)
    done = 0
    src = os.open(source, os.O_RDONLY)
    try:
        os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for offset, length in ranges:
                while length:
                    n = os.preadv(src, [view[:min(length, BUF)]], offset)
                    if n <= 0:
                        raise OSError(f"{source}: short read at {offset}")
                    _write_all(dst, view[:n])
                    offset, length, done = offset + n, length - n, done + n
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return done


def copy_restore(ranges, copy, target, size):
    """Read file `copy` (made by copy_capture) and write its bytes at
    `ranges` into the new sparse file `target` of `size` bytes, fsync."""
    buf = bytearray(BUF)
    view = memoryview(buf)
    done = 0
    src = os.open(copy, os.O_RDONLY)
    try:
        os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(dst, size)
            for offset, length in ranges:
                while length:
                    n = os.readv(src, [view[:min(length, BUF)]])
                    if n <= 0:
                        raise OSError(f"{copy}: ends early")
                    _pwrite_all(dst, view[:n], offset)
                    offset, length, done = offset + n, length - n, done + n
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return done


def _write_all(fd, view):
    while len(view):
        view = view[os.write(fd, view):]


def _pwrite_all(fd, view, offset):
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


ME = os.path.abspath(__file__)
CAPTURE = "copy floor: read the used ranges, write them to a file"
RESTORE = "copy floor: read that file, write at the disk offsets"


def captures(disk, devs, out, work):
    """The floor's capture rows, from the disk file and from the loop
    device over it (as rdeploy's two capture rows), each beside the
    rdeploy row of the same source."""
    ranges, _ = ranges_file(disk, work)
    rows = []
    for kind, source in (("file", disk["path"]), ("loop", devs["disk"])):
        copy = out(f"floor-{kind}.bin")
        rows.append(dict(
            name=CAPTURE, op="capture", source=kind, outputs=[copy],
            versus=f"rdeploy capture ({kind})", restore="floor" if
            kind == "file" else None, setup=_remove(copy),
            steps=[_pipe([sys.executable, "-S", ME, "capture", ranges,
                          source, copy])]))
    return rows


def restores(disk, out, work):
    ranges, _ = ranges_file(disk, work)
    target = out("target.img")
    return [dict(name=RESTORE, op="restore", source="file",
                 outputs=[target], versus="rdeploy restore",
                 setup=_remove(target),
                 steps=[_pipe([sys.executable, "-S", ME, "restore", ranges,
                               out("floor-file.bin"), target,
                               str(disk["size"])])])]


def _pipe(argv):
    from measure import Pipe
    return Pipe([argv])


def _remove(*paths):
    def step():
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)
    return step


def _median(results, name, source=None):
    for r in results:
        if r.name == name and r.samples and (source is None or
                                             r.source == source):
            return r.median("wall")
    return None


def ratios(results):
    """[(what, rdeploy's wall / the floor's wall)] measured on one disk."""
    out = []
    for kind in ("file", "loop"):
        ours = _median(results, f"rdeploy capture ({kind})")
        floor = _median(results, CAPTURE, kind)
        if ours and floor:
            out.append((f"capture from the {kind}", ours / floor))
    ours, floor = _median(results, "rdeploy restore"), \
        _median(results, RESTORE)
    if ours and floor:
        out.append(("restore", ours / floor))
    return out


def lines(name, disk, results, work):
    """The copy floor paragraph of one disk's section."""
    _, total = ranges_file(disk, work)
    found = ratios(results)
    if not found:
        return []
    return [f"Copy floor of disk ({name}): {total / 1e6:.0f} MB of used "
            f"ranges read and written (fsync at the end), same cache state "
            f"as rdeploy's rows.  rdeploy against it: " + "; ".join(
                f"{what} {ratio:.2f}x" for what, ratio in found) + ".", ""]


def targets(all_results):
    """(ok, text): on disk (c) capture and restore within 1.25x of the
    floor; on (a) and (b) the ratios are reported (ok None: no target)."""
    out = []
    for name, results in all_results.items():
        for what, ratio in ratios(results):
            if name == "c":
                out.append((ratio <= 1.25, f"{what} of disk (c): "
                            f"{ratio:.2f}x the copy floor (issue 19; "
                            f"target <= 1.25x)"))
            else:
                out.append((None, f"{what} of disk ({name}): {ratio:.2f}x "
                            f"the copy floor (issue 19; reported)"))
    return out


def main(argv):
    if len(argv) == 4 and argv[0] == "capture":
        copy_capture(_load(argv[1]), argv[2], argv[3])
        return 0
    if len(argv) == 5 and argv[0] == "restore":
        copy_restore(_load(argv[1]), argv[2], argv[3], int(argv[4]))
        return 0
    print("usage: floor.py capture RANGES SOURCE OUT | "
          "restore RANGES COPY TARGET SIZE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
