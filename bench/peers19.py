"""Issue 19's peers: the pipes users pick today, beside rdeploy.

- Clonezilla's default pipe, ``partclone.<fs> -c | zstd -1 -T0`` per
  partition (the table by ``sgdisk --backup``), and its restore
  ``zstd -d | partclone.<fs> -r`` into loop devices over a new disk file;
- ``rdeploy capture --compress=zstd`` (its default level, 3) from the same
  loop device, and its restore; and ``--level=1`` beside it (zstd -1's);
- bmaptool: ``bmaptool create`` of the disk file (its map of the file's
  data, with SHA-256 of every mapped range), then ``bmaptool copy`` of the
  raw disk file onto a new file (it writes only mapped ranges, checking
  them against the map).  bmaptool maps the file's holes, not the
  filesystems' free space: it copies what was ever written.

Rows are dicts as in contenders.py.  ``targets`` checks the issue's:
the zstd image no larger than partclone | zstd -1's, in no more than half
its time; and the codec question (zstd against lz4, rdeploy's default).
"""

import shutil

from measure import Pipe, fsync_paths

import contenders
from contenders import PARTCLONE, RDEPLOY

PC_ZSTD = "partclone.<fs> -c | zstd -1 -T0, per partition"
PC_UNZSTD = "zstd -d | partclone.<fs> -r, per partition"
ZSTD_CAP = "rdeploy capture --compress=zstd"
ZSTD1_CAP = "rdeploy capture --compress=zstd --level=1 (loop)"
ZSTD_REST = "rdeploy restore (zstd image)"
BMAP_CREATE = "bmaptool create (map + SHA-256 of the data)"
BMAP_COPY = "bmaptool copy --bmap (raw disk file)"


def missing():
    """The tools these rows need that are not installed (names)."""
    return [t for t in ("bmaptool",) if not shutil.which(t)]


def captures(disk, devs, out):
    rows = []
    fs_parts = [p for p in disk["partitions"] if p["fs"]]
    for kind, src in (("file", disk["path"]), ("loop", devs["disk"])):
        img = out(f"rdeploy-zstd-{kind}.rdi")
        rows.append(contenders._cap(
            f"{ZSTD_CAP} ({kind})", kind,
            [Pipe([RDEPLOY + ["capture", src, img, "--compress=zstd",
                              "-q"]])], [img],
            f"rdeploy capture ({kind})",
            restore="rdeploy-zstd" if kind == "file" else None))
    # Level 1, like for like with zstd -1 (rdeploy's default level is 3).
    img = out("rdeploy-zstd1-loop.rdi")
    rows.append(contenders._cap(
        ZSTD1_CAP, "loop", [Pipe([RDEPLOY + [
            "capture", devs["disk"], img, "--compress=zstd", "--level=1",
            "-q"]])], [img], "rdeploy capture (loop)"))
    if fs_parts:
        steps, imgs = [], []
        table = out("pczstd-table.sgdisk")
        steps.append(Pipe([["sgdisk", f"--backup={table}", devs["disk"]]]))
        for p in fs_parts:
            img = out(f"pczstd-p{p['number']}.pc.zst")
            steps.append(Pipe([[PARTCLONE[p["fs"]], "-c", "-q", "-f", "0",
                                "-L", out("partclone.log"), "-s",
                                devs[f"p{p['number']}"], "-o", "-"],
                               ["zstd", "-1", "-T0", "-q", "-c"]],
                              stdout=img))
            imgs.append(img)
        steps.append(fsync_paths(*imgs))
        rows.append(contenders._cap(PC_ZSTD, "loop partitions", steps,
                                    imgs + [table], f"{ZSTD_CAP} (loop)",
                                    restore="partclone-zstd"))
    if not missing():
        # The "image" is the raw disk file itself (no size column); the
        # map is what this row makes.
        bmap = out("disk.bmap")
        rows.append(dict(contenders._cap(BMAP_CREATE, "file", [Pipe([[
            "bmaptool", "-q", "create", "-o", bmap, disk["path"]]])],
            [], "rdeploy capture (file)", restore="bmap", bmap=bmap),
            setup=contenders._remove(bmap)))
    return rows


def restores(disk, captured, out):
    target = out("target.img")
    rows = []
    for row in captured:
        how = row.get("restore")
        if how == "rdeploy-zstd":
            rows.append(dict(name=ZSTD_REST, op="restore", source="file",
                             outputs=[target], versus="rdeploy restore",
                             setup=contenders._remove(target),
                             steps=[Pipe([RDEPLOY + [
                                 "restore", row["outputs"][0], target,
                                 "--yes", "-q"]])]))
        elif how == "partclone-zstd":
            rows.append(_partclone_zstd_restore(disk, row, target, out))
        elif how == "bmap":
            rows.append(dict(name=BMAP_COPY, op="restore", source="file",
                             outputs=[target], versus="rdeploy restore",
                             setup=contenders._remove(target),
                             warm=[disk["path"]],
                             steps=[Pipe([["bmaptool", "-q", "copy",
                                           "--bmap", row["bmap"],
                                           disk["path"], target]]),
                                    fsync_paths(target)]))
    return rows


def _partclone_zstd_restore(disk, row, target, out):
    return contenders.partclone_restore(
        disk, row, target, ZSTD_REST, PC_UNZSTD, "zstd",
        lambda p: out(f"pczstd-p{p['number']}.pc.zst"), out("partclone.log"))


def _get(results, name):
    return next((r for r in results if r.name == name and r.samples), None)


def targets(all_results):
    """(ok, text) per disk that has the rows; ok None for what is only
    reported."""
    out = []
    for name, results in all_results.items():
        ours, peer = _get(results, f"{ZSTD_CAP} (loop)"), \
            _get(results, PC_ZSTD)
        if ours and peer and ours.size and peer.size:
            ratio = ours.median("wall") / peer.median("wall")
            out.append((ratio <= 0.5 and ours.size <= peer.size,
                        f"--compress=zstd on disk ({name}) from the loop: "
                        f"{ratio:.2f}x the wall time of partclone | zstd -1 "
                        f"-T0 (target <= 0.5x), image {ours.size / 1e6:.0f} "
                        f"MB vs {peer.size / 1e6:.0f} MB (target: no "
                        f"larger)"))
        ours, peer = _get(results, ZSTD1_CAP), _get(results, PC_ZSTD)
        if ours and peer and ours.size and peer.size:
            ratio = ours.median("wall") / peer.median("wall")
            out.append((None, f"--compress=zstd --level=1 on disk ({name}) "
                        f"from the loop: {ratio:.2f}x the wall time of "
                        f"partclone | zstd -1 -T0, image "
                        f"{ours.size / 1e6:.0f} MB vs {peer.size / 1e6:.0f} "
                        f"MB (reported)"))
        ours, peer = _get(results, ZSTD_REST), _get(results, PC_UNZSTD)
        if ours and peer:
            out.append((None, f"restore of the zstd image of disk ({name}):"
                        f" {ours.median('wall') / peer.median('wall'):.2f}x"
                        f" the wall time of zstd -d | partclone -r "
                        f"(reported)"))
        ours, peer = _get(results, "rdeploy restore"), \
            _get(results, BMAP_COPY)
        if ours and peer:
            out.append((None, f"restore of disk ({name}): "
                        f"{ours.median('wall') / peer.median('wall'):.2f}x"
                        f" the wall time of bmaptool copy (reported)"))
        out += codec(name, results)
    return out


def codec(name, results):
    """The default codec question on one disk: zstd (rdeploy's
    --compress=zstd) against lz4 (rdeploy's default), measured."""
    lz4c, zc = _get(results, "rdeploy capture (file)"), \
        _get(results, f"{ZSTD_CAP} (file)")
    lz4r, zr = _get(results, "rdeploy restore"), _get(results, ZSTD_REST)
    if not (lz4c and zc and lz4r and zr and lz4c.size and zc.size):
        return []
    cap = zc.median("wall") / lz4c.median("wall")
    rest = zr.median("wall") / lz4r.median("wall")
    size = zc.size / lz4c.size
    better = size < 1 and cap <= 1.0 and rest <= 1.0
    return [(None, f"codec on disk ({name}): zstd against lz4 gives "
             f"{size:.2f}x the image size, {cap:.2f}x the capture time, "
             f"{rest:.2f}x the restore time: "
             + ("zstd is smaller at no more time (the case for making it "
                "the default)" if better else
                "zstd is not smaller at no more time here (lz4 stays the "
                "default)"))]


def lines(name, results):
    """A line under the disk's table: the zstd and bmaptool rows' sizes."""
    ours, peer = _get(results, f"{ZSTD_CAP} (loop)"), _get(results, PC_ZSTD)
    if not (ours and peer and ours.size and peer.size):
        return []
    return [f"zstd on disk ({name}): rdeploy --compress=zstd "
            f"{ours.size / 1e6:.0f} MB in {ours.median('wall'):.2f} s from "
            f"the loop device; partclone | zstd -1 -T0 {peer.size / 1e6:.0f}"
            f" MB in {peer.median('wall'):.2f} s.", ""]

