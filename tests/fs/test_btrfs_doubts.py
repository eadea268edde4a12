"""Where a btrfs map could drop used data, each on a real volume changed by
the kernel's driver and btrfs-progs: the v1 free-space cache (its cache
inodes keep their data in data chunks, owned by the root tree), the
free-space tree, quota trees, a balance that relocated every chunk (with a
relocation tree's leftovers), defragmentation with recompression,
preallocated extents with holes punched, nodatacow files, inline extents,
a subvolume deleted and not yet cleaned, and a log tree that a crash
leaves.  Each map must equal dump-tree's extents and survive a map-only
restore onto garbage with `btrfs check --readonly` clean and every
file's sha256; a log tree to replay is refused, and maps once replayed."""

import hashlib
import os
import re

import pytest

from diskimage.fs.btrfs.refs import referenced
from diskimage.fs.btrfs.used import _Volume
from diskimage.fs.usedmap import MapError, merge_runs
from tests.fs.btrfs_tools import (check, dump_tree_runs, make_small,
                                  mounted, read_files)
from tests.fs.test_btrfs import fixed, open_map
from tests.fsbuild import write_file
from tests.fsmaps import KiB, MiB, copy_runs, map_only_restore, run

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "losetup",
                               "fallocate", "chattr", root=True)


def chunk_garbage_restore(image, target, runs):
    """`target`, sparse, with garbage in the first MiB and in every device
    extent of `image` (all a reader of the volume looks at), then the runs
    copied in: a volume of a GiB costs its few hundred MiB of chunks."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "dev",
              image).stdout
    areas = [(0, MiB)] + [(int(at), int(n)) for at, n in re.findall(
        r"DEV_EXTENT (\d+)\).*? length (\d+)", out, re.S)]
    assert len(areas) > 3
    garbage = os.urandom(MiB)
    with open(target, "wb") as f:
        f.truncate(os.path.getsize(image))
        for at, n in areas:
            for pos in range(at, at + n, MiB):
                os.pwrite(f.fileno(), garbage[:min(MiB, at + n - pos)], pos)
    copy_runs(image, target, runs)
    return target


def references_checked(image):
    """The count of file extent references diskimage.fs.btrfs.refs
    compared with the extent tree (None: not compared)."""
    with open(image, "rb") as f:
        vol = _Volume(lambda o, n: os.pread(f.fileno(), n, o),
                      os.path.getsize(image))
        found = referenced(vol.trees, vol.sb)
    return None if found is None else found[0].count


def maps_exactly_and_restores(image, files, tmp_path, large=False):
    assert references_checked(image) > 0
    umap = open_map(image)
    size = os.path.getsize(image)
    assert umap.runs == merge_runs(fixed(size) + dump_tree_runs(image))
    target = tmp_path / "target.img"
    if large:
        chunk_garbage_restore(image, target, umap.runs)
    else:
        map_only_restore(image, target, umap.runs, seed=11)
    clean, output = check(target)
    assert clean, output
    # a v1 cache overwritten with garbage still checks clean (exit 0): only
    # these lines tell
    assert "failed to load free space cache" not in output, output
    assert "mismatch" not in output, output
    assert read_files(target, tmp_path) == files
    return umap


def test_v1_space_cache_quota_prealloc_nodatacow_and_a_deleted_subvolume(
        tmp_path):
    """The kernel writes a v1 cache only for block groups of 100 MiB or
    more: a sparse 1100 MiB volume, whose next data chunk is 112 MiB."""
    image, files = make_small(tmp_path, ["-R", "^free-space-tree"],
                              size=1100 * MiB)
    with mounted(image, tmp_path / "mnt",
                 options="rw,space_cache=v1,commit=5") as root:
        write_file(root, "large.bin", os.urandom(12 * MiB), files)
        run("btrfs", "quota", "enable", root)
        run("btrfs", "subvolume", "create", os.path.join(root, "gone"))
        write_file(root, "gone/data.bin", os.urandom(900 * KiB), {})
        run("btrfs", "subvolume", "create", os.path.join(root, "kept"))
        write_file(root, "kept/data.bin", os.urandom(300 * KiB), files)
        pre = os.path.join(root, "kept/prealloc.bin")
        run("fallocate", "-l", str(6 * MiB), pre)
        with open(pre, "r+b") as f:            # written into its middle
            f.seek(2 * MiB)
            f.write(os.urandom(100 * KiB))
        run("fallocate", "-p", "-o", str(4 * MiB), "-l", str(MiB), pre)
        run("fallocate", "-l", str(2 * MiB), os.path.join(root, "empty.bin"))
        os.mkdir(os.path.join(root, "nocow"))
        run("chattr", "+C", os.path.join(root, "nocow"))
        write_file(root, "nocow/db.bin", os.urandom(700 * KiB), files)
        write_file(root, "tiny.txt", b"inline\n" * 20, files)
        run("btrfs", "quota", "rescan", "-w", root)
        run("sync")
        run("btrfs", "subvolume", "delete", os.path.join(root, "gone"))
        run("btrfs", "subvolume", "sync", root)     # dropped: refs checked
    files.update(read_files(image, tmp_path))   # prealloc.bin, empty.bin
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "root",
              image).stdout
    assert "FREE_SPACE UNTYPED" in out         # the v1 cache's headers
    assert "QUOTA_TREE ROOT_ITEM" in out
    every = run("btrfs", "inspect-internal", "dump-tree", image).stdout
    assert "type 2 (prealloc)" in every
    assert "inline extent" in every
    maps_exactly_and_restores(image, files, tmp_path, large=True)


def test_after_a_full_balance_and_a_recompressing_defrag(tmp_path):
    # room for a new chunk of each kind: on 160 MiB a balance can end
    # in ENOSPC
    image, files = make_small(tmp_path, [], size=320 * MiB)
    chunks_before = set(re.findall(r"CHUNK_ITEM (\d+)", run(
        "btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
        image).stdout))
    with mounted(image, tmp_path / "mnt", options="rw,compress=lzo") as root:
        run("btrfs", "quota", "enable", root)
        for i in range(8):
            write_file(root, f"big/b{i}.bin", os.urandom(2 * MiB), files)
        for i in range(0, 8, 2):
            os.unlink(os.path.join(root, f"big/b{i}.bin"))
            del files[f"big/b{i}.bin"]
        run("btrfs", "filesystem", "defragment", "-r", "-czstd", root)
        done = run("btrfs", "balance", "start", "--full-balance", root,
                   check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        run("sync")
    chunks_after = set(re.findall(r"CHUNK_ITEM (\d+)", run(
        "btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
        image).stdout))
    assert not chunks_before & chunks_after    # every chunk relocated
    roots = run("btrfs", "inspect-internal", "dump-tree", "-t", "root",
                image).stdout
    assert "FREE_SPACE_TREE ROOT_ITEM" in roots  # space_cache=v2
    assert "QUOTA_TREE ROOT_ITEM" in roots
    assert read_files(image, tmp_path) == files
    maps_exactly_and_restores(image, files, tmp_path)


def test_a_log_tree_a_crash_leaves_is_refused_until_replayed(tmp_path):
    """A file fsync'd on a mount whose transactions commit only every 300
    seconds: its data is reachable only through the log tree, whose blocks
    no extent tree lists.  The image is copied while still mounted (what
    a power cut leaves)."""
    image, files = make_small(tmp_path, [])
    crashed = tmp_path / "crashed.img"
    with mounted(image, tmp_path / "mnt", options="rw,commit=300") as root:
        run("sync")
        path = os.path.join(root, "fsynced.bin")
        data = os.urandom(200 * KiB)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        run("cp", "--sparse=always", image, crashed)
    with pytest.raises(MapError, match="log tree to replay"):
        open_map(crashed)
    with mounted(crashed, tmp_path / "replay", options="rw") as root:
        with open(os.path.join(root, "fsynced.bin"), "rb") as f:
            assert f.read() == data
    files["fsynced.bin"] = hashlib.sha256(data).hexdigest()
    maps_exactly_and_restores(crashed, files, tmp_path)
