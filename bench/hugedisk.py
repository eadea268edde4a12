"""Scale with the disk (issue 19): cost and memory follow the data, not
the disk.

1. A sparse disk file of 1 TiB with one ext4 partition spanning it,
   holding DATA bytes of real files (copies of /usr/lib and /usr/share, in
   as many passes as it takes), against a small disk (DATA plus 2 GiB)
   whose ext4 holds the same files: rdeploy capture and restore of both,
   in alternation in the same rounds, with peak memory.  The issue speaks
   of "the 4 GiB disk holding the same"; 10 GiB does not fit in 4 GiB, so
   the small disk is the smallest that holds it with room (12 GiB).
   The ext4 of the 1 TiB disk is made with lazy inode tables and mounted
   with noinit_itable (the kernel would otherwise zero 16 GiB of inode
   tables in the background); its 1 GiB journal (mke2fs's choice for that
   size) is allocated, so a capture reads it (it is a hole: zeros).
2. The used maps of a sparse 4 TiB ext4 and a 4 TiB NTFS (mkfs on a
   sparse file, empty), against the same filesystems at 4 GiB: the map
   built by rdeploy's own code (diskimage.fs.registry.used_map) in a
   process of its own, under GNU time: wall time and peak RSS.
"""

import json
import os
import sys

if __name__ == "__main__":     # run as a script: the worktree's library
    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [HERE, os.path.dirname(HERE)]

from measure import Pipe, run_steps, StepFailed  # noqa: E402

import disks as diskbuild  # noqa: E402
from contenders import RDEPLOY, _cap, _remove  # noqa: E402

from diskimage.host.loop import loop_device  # noqa: E402

BEGIN = "<!-- bench-scale:begin (written by bench/run.py; do not edit) -->"
END = "<!-- bench-scale:end -->"
GiB = 1 << 30
MiB = 1 << 20
TiB = 1 << 40
FULL = {"big": TiB, "data": 10 * GiB, "maps": 4 * TiB}
QUICK = {"big": 64 * GiB, "data": 96 * MiB, "maps": 64 * GiB}
SMALL_MAPS = 4 * GiB
# Issue 6's memory target for rdeploy, whatever the disk: a used map must
# stay under it on the largest filesystem.
MEMORY_KIB = 150 * 1024
ME = os.path.abspath(__file__)


def _fill(path, size, data, seed):
    """A GPT disk file of `size` bytes, one ext4 partition from 1 MiB to
    the end but 1 MiB, holding `data` bytes of system files."""
    layout = [(1, "ext4", "bench-scale", MiB, size - 2 * MiB, data)]
    with open(path, "wb") as f:
        f.truncate(size)
    diskbuild._sfdisk(path, layout)
    files = diskbuild.system_files(seed)
    mnt = path + ".mnt"
    os.makedirs(mnt, exist_ok=True)
    total = count = 0
    with loop_device(path, MiB, size - 2 * MiB, read_only=False) as dev:
        diskbuild._run("mkfs.ext4", "-q", "-F", "-L", "bench-scale", "-E",
                       "lazy_itable_init=1,lazy_journal_init=1", dev)
        diskbuild._run("mount", "-t", "ext4", "-o", "noinit_itable", dev,
                       mnt)
        try:
            npass = 0
            while total < data:
                pool = list(files)
                chosen, got = diskbuild._take(pool, min(data - total,
                                                        4 * GiB))
                if not chosen:
                    break
                diskbuild._copy_into(chosen, os.path.join(
                    mnt, f"pass{npass}"))
                total, count, npass = total + got, count + len(chosen), \
                    npass + 1
        finally:
            diskbuild._run("umount", mnt)
    os.rmdir(mnt)
    return [{"number": 1, "fs": "ext4", "start": MiB, "size": size - 2 * MiB,
             "files": count, "file_bytes": total}]


def build(work, quick, seed, data=None):
    """{"big": recipe, "small": recipe}, built or reused."""
    spec = QUICK if quick else dict(FULL, data=data or FULL["data"])
    tag = "quick" if quick else f"full-{spec['data'] >> 30}g"
    out = {}
    for name, size in (("big", spec["big"]),
                       ("small", spec["data"] + 2 * GiB)):
        path = os.path.join(work, f"disk-scale-{name}-{tag}.img")
        recipe = {"version": 1, "disk": f"scale-{name}", "size": size,
                  "data": spec["data"], "seed": seed}
        cached = diskbuild._cached(path, recipe)
        if not cached:
            partial = path + ".partial"
            recipe["partitions"] = _fill(partial, size, spec["data"], seed)
            diskbuild._commit(partial, path, recipe)
            cached = recipe
        out[name] = dict(cached, path=path)
    return out


def _label(disk):
    return f"{disk['size'] / GiB:,.0f} GiB disk"


def capture_rows(pair, out):
    return [_cap(f"rdeploy capture, {_label(d)}", "file", [Pipe([
        RDEPLOY + ["capture", d["path"], out(f"scale-{n}.rdi"), "-q"]])],
        [out(f"scale-{n}.rdi")], None, input=d["path"])
        for n, d in pair.items()]


def restore_rows(pair, out):
    target = out("scale-target.img")
    return [dict(name=f"rdeploy restore, {_label(d)}", op="restore",
                 source="file", outputs=[target], versus=None,
                 input=out(f"scale-{n}.rdi"), setup=_remove(target),
                 steps=[Pipe([RDEPLOY + ["restore", out(f"scale-{n}.rdi"),
                                         target, "--yes", "-q"]])])
            for n, d in pair.items()]


def make_fs(path, fs, size):
    """An empty `fs` (ext4 or ntfs) over the whole sparse file `path`."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path + ".partial", "wb") as f:
        f.truncate(size)
    if fs == "ext4":
        diskbuild._run("mkfs.ext4", "-q", "-F", "-E",
                       "lazy_itable_init=1,lazy_journal_init=1",
                       path + ".partial")
    else:
        diskbuild._run("mkntfs", "-F", "-Q", "-q", path + ".partial")
    os.replace(path + ".partial", path)


def map_rows(work, quick, say):
    """(fs, size, wall s, peak RSS KiB, runs, used bytes) of the used map
    of each filesystem, small and huge."""
    spec = QUICK if quick else FULL
    rows = []
    log = os.path.join(work, "scale-map.log")
    for fs in ("ext4", "ntfs"):
        for size in (SMALL_MAPS, spec["maps"]):
            path = os.path.join(work, f"disk-map-{fs}-{size >> 30}g.img")
            make_fs(path, fs, size)
            report = path + ".out.json"
            try:
                sample = run_steps([Pipe([[sys.executable, ME, "usedmap",
                                           path]], stdout=report)], log)
                with open(report) as f:
                    found = json.load(f)
            except (StepFailed, OSError, ValueError) as exc:
                say(f"  used map of {fs} {size >> 30} GiB failed: {exc}")
                continue
            finally:
                if os.path.exists(report):
                    os.unlink(report)
            say(f"  used map of {fs}, {size >> 30} GiB: {sample.wall:.2f} s,"
                f" {sample.rss_kib / 1024:.0f} MB")
            rows.append((fs, size, sample.wall, sample.rss_kib,
                         found["runs"], found["used"],
                         os.stat(path).st_blocks * 512))
    if os.path.exists(log):
        os.unlink(log)
    return rows


def usedmap(path):
    """Build the used map of the filesystem over file `path` as capture
    does; print {"runs", "used"} as JSON."""
    from diskimage.fs import registry
    from diskimage.host.device import open_source
    from diskimage.pipeline import paused_gc
    with open_source(path) as disk, paused_gc():
        kind = registry.detect(disk.read, 0, disk.size)
        used = registry.used_map(disk.read, 0, disk.size, kind)
        runs = list(used.runs)
    print(json.dumps({"kind": kind, "runs": len(runs),
                      "used": sum(n for _, n in runs)}))


def run(work, args, measure_rows, say):
    """Both parts; (results, targets, section lines)."""
    quick = args["--quick"]
    say("scale: the 1 TiB sparse disk against the small one")
    pair = build(work, quick, int(args["--seed"]),
                 int(float(args.get("--scale-data") or 10) * GiB))
    made = []

    def out(name):
        made.append(os.path.join(work, name))
        return made[-1]
    warm = None
    if args["--warm"]:
        def warm(row):
            return [(row["input"], 1 << 62)]
    try:
        results = measure_rows(capture_rows(pair, out), args["rounds"],
                               warm, out("scale.log"))
        results += measure_rows(restore_rows(pair, out), args["rounds"],
                                warm, out("scale.log"))
    finally:
        for path in made:
            if os.path.exists(path):
                os.unlink(path)
    say("scale: used maps of huge filesystems")
    maps = map_rows(work, quick, say)
    return results, targets(pair, results, maps), \
        section(pair, results, maps, args["rounds"])


def run_and_write(args, work, command, measure_rows, say, root, report):
    """run(), printed and written into --out between BEGIN and END (after
    the main results' end marker); the targets."""
    os.makedirs(work, exist_ok=True)
    _, found, lines = run(work, args, measure_rows, say)
    text = "\n".join(lines[:2] + [f"Command: `{command}`", ""] + [
        f"- {'PASS' if ok else 'FAIL'}: {t}" for ok, t in found] + [""] +
        lines[2:]) + "\n"
    print(text)
    if args["--out"] != "-":
        out = args["--out"] if os.path.isabs(args["--out"]) else \
            os.path.join(root, args["--out"])
        report.write(out, text, BEGIN, END, after=report.END)
        say(f"written into {out}")
    return found


def _pair_of(results, op):
    """(big, small): the rows are made big first."""
    found = [r for r in results if r.op == op and r.samples]
    return (found[0], found[1]) if len(found) == 2 else (None, None)


def targets(pair, results, maps):
    out = []
    for op in ("capture", "restore"):
        big, small = _pair_of(results, op)
        if big and small:
            t = big.median("wall") / small.median("wall")
            mb, ms = big.median("rss_kib") / 1024, \
                small.median("rss_kib") / 1024
            out.append((t <= 1.2 and mb <= ms * 1.1 + 5,
                        f"{op} of the {_label(pair['big'])}, sparse, holding "
                        f"{pair['big']['data'] / GiB:.1f} GiB: {t:.2f}x "
                        f"the time of the {pair['small']['size'] / GiB:.0f}"
                        f" GiB disk (target <= 1.2x), peak memory {mb:.0f} "
                        f"MB vs {ms:.0f} MB (target: the same)"))
    for fs in ("ext4", "ntfs"):
        got = [m for m in maps if m[0] == fs]
        if len(got) == 2:
            small, huge = got
            out.append((huge[3] < MEMORY_KIB,
                        f"used map of a {huge[1] / GiB:,.0f} GiB {fs}: "
                        f"peak RSS {huge[3] / 1024:.0f} MB against "
                        f"{small[3] / 1024:.0f} MB at {small[1] / GiB:.0f} "
                        f"GiB (target: bounded, under the toolkit's "
                        f"{MEMORY_KIB // 1024} MB)"))
    return out


def section(pair, results, maps, rounds):
    import report
    big = pair["big"]
    lines = [BEGIN, "", f"### Scale with the disk: {_label(big)} (sparse) "
             "against "
             f"{_label(pair['small'])}, the same data", "",
             f"Both disks: GPT, one ext4 partition spanning the disk, "
             f"holding {big['partitions'][0]['file_bytes'] / 1e6:.0f} MB in "
             f"{big['partitions'][0]['files']} files (the same on both); "
             f"{rounds} rounds in alternation, medians.", "",
             "| op | contender | source | wall s | CPU s | peak RSS MB | "
             "image MB | rdeploy/peer wall | rdeploy/peer size |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [report._row(r, {}) for r in results]
    lines += ["", "### Used maps of huge empty filesystems (mkfs on a "
              "sparse file)", "",
              "rdeploy's used-map code alone (diskimage.fs.registry."
              "used_map) in a process of its own, under GNU time; peak RSS "
              "includes Python and the library (about 30 MB).", "",
              "| filesystem | size | allocated in the file MB | wall s | "
              "peak RSS MB | used runs | used MB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {fs} | {size / GiB:,.0f} GiB | {alloc / 1e6:.0f} | "
              f"{wall:.2f} | {rss / 1024:.0f} | {runs} | {used / 1e6:.0f} |"
              for fs, size, wall, rss, runs, used, alloc in maps]
    return lines + ["", END]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "usedmap":
        usedmap(sys.argv[2])
        sys.exit(0)
    print("usage: hugedisk.py usedmap PATH", file=sys.stderr)
    sys.exit(2)
