"""What runs on each benchmark disk: rdeploy and its peers, each given the
same input, as lists of timed steps (see measure.py).

A contender is a dict: name, op ("capture" or "restore"), source (what it
reads: "file", "loop" or "loop partitions"), steps, outputs (the image
files, for the size column), versus (the rdeploy row it is compared with),
and optional setup/teardown callables that are not timed.
"""

import os
import subprocess
import sys

from measure import Pipe, fsync_paths

from diskimage.host.tools import tool_env

RDEPLOY = [sys.executable, "-m", "rdeploy"]
# -f 0: partclone's progress thread otherwise sleeps 2 s before it exits,
# a fixed 2 s per partition that would flatter rdeploy.
PARTCLONE = {"fat32": "partclone.fat32", "ext4": "partclone.ext4",
             "ntfs": "partclone.ntfs"}


def _sh(*argv):
    subprocess.run([str(a) for a in argv], check=True, env=tool_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def losetup(path, start=0, size=None, read_only=True):
    args = ["losetup", "--find", "--show", "-o", str(start)]
    if size:
        args += ["--sizelimit", str(size)]
    if read_only:
        args.append("--read-only")
    return subprocess.run(args + [path], check=True, capture_output=True,
                          text=True, env=tool_env()).stdout.strip()


def detach(*devices):
    for dev in devices:
        subprocess.run(["losetup", "-d", dev], env=tool_env(),
                       stderr=subprocess.DEVNULL)


def _remove(*paths):
    def step():
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)
    return step


def _cap(name, source, steps, outputs, versus, **extra):
    return dict(name=name, op="capture", source=source, steps=steps,
                outputs=outputs, versus=versus, setup=_remove(*outputs),
                **extra)


def captures(disk, devs, out, full=False):
    """The capture contenders of `disk` (a recipe with path and
    partitions); `devs` holds the loop devices ("disk" and "p<N>"),
    `out(name)` names an output file."""
    path, kind = disk["path"], disk["disk"]
    fs_parts = [p for p in disk["partitions"] if p["fs"]]
    src = {"file": path, "loop": devs["disk"]}
    ours = {k: f"rdeploy capture ({k})" for k in src}
    rows = []
    for k, s in src.items():
        img = out(f"rdeploy-{k}.rdi")
        rows.append(_cap(ours[k], k, [Pipe([RDEPLOY + ["capture", s, img,
                                                        "-q"]])],
                         [img], None))
    if kind == "c":
        rows.append(_cap("rdeploy capture to a pipe (/dev/null)", "file",
                         [Pipe([RDEPLOY + ["capture", path, "-", "-q"]],
                               stdout="/dev/null")], [], ours["file"]))
        img = out("cat.raw")
        rows.append(_cap("cat > file (write limit)", "file",
                         [Pipe([["cat", path]], stdout=img),
                          fsync_paths(img)], [img], ours["file"]))
    if fs_parts:
        steps, imgs = [], []
        table = out("partclone-table.sgdisk")
        steps.append(Pipe([["sgdisk", f"--backup={table}", devs["disk"]]]))
        for p in fs_parts:
            img = out(f"partclone-p{p['number']}.pc.lz4")
            steps.append(Pipe([[PARTCLONE[p["fs"]], "-c", "-q", "-f", "0",
                                "-L",
                                out("partclone.log"), "-s",
                                devs[f"p{p['number']}"], "-o", "-"],
                               ["lz4", "-1", "-q", "-c"]], stdout=img))
            imgs.append(img)
        steps.append(fsync_paths(*imgs))
        rows.append(_cap("partclone.<fs> -c | lz4 -1, per partition",
                         "loop partitions", steps, imgs + [table],
                         ours["loop"], restore="partclone"))
    whole = ("file", "loop") if kind != "b" or full else ()
    for k in whole:
        for tool, argv, ext in (("lz4 -1", ["lz4", "-1", "-q", "-c"], "lz4"),
                                ("zstd -1 -T0", ["zstd", "-1", "-T0", "-q",
                                                 "-c"], "zst")):
            img = out(f"{ext}-{k}.{ext}")
            rows.append(_cap(f"{tool} (whole disk)", k,
                             [Pipe([argv], stdin=src[k], stdout=img),
                              fsync_paths(img)], [img], ours[k],
                             restore=ext if k == "file" else None))
    ext4 = [p for p in fs_parts if p["fs"] == "ext4"]
    if ext4:
        number = ext4[0]["number"]
        mine = f"rdeploy capture --partitions={number} (loop)"
        img = out("rdeploy-ext4.rdi")
        rows.append(_cap(mine, "loop", [Pipe([RDEPLOY + [
            "capture", devs["disk"], img, f"--partitions={number}", "-q"]])],
            [img], None))
        img = out("e2image.lz4")
        rows.append(_cap("e2image -ra | lz4 -1 (ext4 only)",
                         "loop partitions",
                         [Pipe([["e2image", "-ra", devs[f"p{number}"], "-"],
                                ["lz4", "-1", "-q", "-c"]], stdout=img),
                          fsync_paths(img)], [img], mine))
    for k in ("file", "loop") if kind != "b" or full else ("file",):
        if kind == "c":
            break
        img = out(f"qemu-{k}.qcow2")
        rows.append(_cap("qemu-img convert -O qcow2", k,
                         [Pipe([["qemu-img", "convert", "-f", "raw", "-O",
                                 "qcow2", src[k], img]]), fsync_paths(img)],
                         [img], ours[k], restore="qcow2" if k == "file"
                         else None))
    return rows


def paired_captures(disks, devs, out):
    """rdeploy capture of disks (a) and (b), from the file and from a loop
    device over it, as rows to run in alternation: the two disks measured
    in the same rounds, under the same machine load."""
    rows = []
    for kind in ("file", "loop"):
        for name, disk in disks.items():
            src = disk["path"] if kind == "file" else devs[name]
            img = out(f"paired-{name}-{kind}.rdi")
            rows.append(_cap(f"rdeploy capture of disk ({name})", kind,
                             [Pipe([RDEPLOY + ["capture", src, img, "-q"]])],
                             [img], None, input=disk["path"]))
    return rows


def restores(disk, captured, out):
    """Restore contenders for the images the capture rows left (file
    source), each onto a new disk file."""
    target = out("target.img")
    ours = "rdeploy restore"
    rows = [dict(name=ours, op="restore", source="file",
                 outputs=[target], versus=None, setup=_remove(target),
                 steps=[Pipe([RDEPLOY + ["restore", out("rdeploy-file.rdi"),
                                         target, "--yes", "-q"]])])]
    for row in captured:
        how = row.get("restore")
        if how in ("lz4", "zst"):
            img = row["outputs"][0]
            argv = ["lz4", "-d", "-q", img, target] if how == "lz4" else \
                ["zstd", "-d", "-q", img, "-o", target]
            rows.append(dict(name=f"{argv[0]} -d (whole disk)", op="restore",
                             source="file", outputs=[target], versus=ours,
                             setup=_remove(target),
                             steps=[Pipe([argv]), fsync_paths(target)]))
        elif how == "qcow2":
            rows.append(dict(name="qemu-img convert -O raw", op="restore",
                             source="file", outputs=[target], versus=ours,
                             setup=_remove(target),
                             steps=[Pipe([["qemu-img", "convert", "-f",
                                           "qcow2", "-O", "raw",
                                           row["outputs"][0], target]]),
                                    fsync_paths(target)]))
        elif how == "partclone":
            rows.append(_partclone_restore(disk, row, target, out, ours))
    return rows


def _partclone_restore(disk, row, target, out, ours):
    return partclone_restore(disk, row, target, ours, "lz4 -d | partclone."
                             "<fs> -r, per partition", "lz4",
                             lambda p: out(f"partclone-p{p['number']}"
                                           f".pc.lz4"), out("partclone.log"))


def partclone_restore(disk, row, target, versus, name, decompressor,
                      image_of, log):
    """DECOMPRESSOR -d | partclone.<fs> -r into loop devices over
    partitions of a new disk file whose table sgdisk loads from the
    captured backup (`image_of(partition)`: its compressed partclone
    image)."""
    parts = [p for p in disk["partitions"] if p["fs"]]
    devs = []
    steps = [Pipe([["sgdisk", f"--load-backup={row['outputs'][-1]}",
                    target]])]

    def setup():
        _remove(target)()
        with open(target, "wb") as f:
            f.truncate(disk["size"])
        for p in parts:
            devs.append(losetup(target, p["start"], p["size"],
                                read_only=False))
        for p, dev in zip(parts, devs):
            steps.append(Pipe([[decompressor, "-d", "-q", "-c", image_of(p)],
                               [PARTCLONE[p["fs"]], "-r", "-q", "-f", "0",
                                "-L", log, "-s", "-", "-o", dev]]))
        steps.append(fsync_paths(*devs, target))

    def teardown():
        detach(*devs)
        devs.clear()
        del steps[1:]

    return dict(name=name, op="restore", source="file", outputs=[target],
                versus=versus, setup=setup, teardown=teardown, steps=steps)
