"""btrfs used-block maps (diskimage.fs.btrfs) against btrfs-progs on volumes
made by mkfs.btrfs and filled through the kernel's driver: subvolumes, a
snapshot, zstd-compressed files, a fragmented file written into the holes
of deleted ones, a sparse file.

The map's runs are checked equal to the extents `btrfs inspect-internal
dump-tree -t extent` lists, mapped through the stripes of `dump-tree -t
chunk` (both copies of DUP), plus the first MiB and the superblock
mirrors; their bytes against `btrfs filesystem usage -b`'s raw Used.  The
map is checked complete by a map-only restore into random bytes followed
by `btrfs check --readonly` and every file's sha256.  Damage that the
cross-checks must catch is made by flipping bytes and recomputing
checksums the way btrfs does.
"""

import os
import re
import struct

import pytest

from diskimage.fs import registry
from diskimage.fs.btrfs.super import SUPER_OFFSET, SUPERBLOCK, checksum
from diskimage.fs.usedmap import MapError, merge_runs
from tests.fs.btrfs_tools import (check, dump_tree_runs, make_btrfs,
                                  make_small, mounted, read_files,
                                  usage_used)
from tests.fsbuild import extents
from tests.fsmaps import MiB, blkid, map_only_restore, run

pytestmark = pytest.mark.needs("mkfs.btrfs", "btrfs", "blkid", "losetup",
                               root=True)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("btrfs")
    image, files = make_btrfs(tmp)
    return image, files


def open_map(image, size=None):
    size = os.path.getsize(image) if size is None else size
    with open(image, "rb") as f:
        umap = registry.used_map(lambda o, n: os.pread(f.fileno(), n, o),
                                 0, size, "btrfs")
        umap.runs = list(umap.runs)
    return umap


def fixed(size):
    return [(0, MiB)] + [(at, 4096) for at in (64 * MiB, 256 << 30)
                         if at + 4096 <= size]


def test_the_volume_has_what_the_map_must_keep(volume, tmp_path):
    image, files = volume
    assert {"snap/log.txt", "snap/random.bin", "home/after.bin",
            "var/cache.txt", "fragmented.bin", "sparse.bin"} <= set(files)
    assert "home/random.bin" not in files
    with mounted(image, tmp_path / "m") as mnt:
        assert extents(os.path.join(mnt, "fragmented.bin")) > 20
        listed = run("btrfs", "subvolume", "list", mnt).stdout
        assert {"home", "var", "snap"} <= {line.split()[-1]
                                           for line in listed.splitlines()}
    # zstd is compression type 3 in a file extent item
    assert "compression 3" in run("btrfs", "inspect-internal", "dump-tree",
                                  image).stdout


def test_runs_are_the_extents_dump_tree_lists(volume):
    image, _ = volume
    umap = open_map(image)
    size = os.path.getsize(image)
    assert umap.runs == merge_runs(fixed(size) + dump_tree_runs(image))
    assert umap.kind == "btrfs" and umap.block_size == 4096
    assert umap.total_bytes == size


def test_used_bytes_are_what_filesystem_usage_says(volume, tmp_path):
    image, _ = volume
    umap = open_map(image)
    size = os.path.getsize(image)
    assert umap.used_bytes - sum(n for _, n in fixed(size)) == \
        usage_used(image, tmp_path)
    assert umap.used_bytes < size // 2


def test_file_references_are_checked_with_snapshots_sharing_leaves(volume):
    """The snapshot "snap" shares leaves with "home": each is counted once
    (diskimage.fs.btrfs.refs), as the extent items' refs count them."""
    from diskimage.fs.btrfs.refs import referenced
    from diskimage.fs.btrfs.used import _Volume
    image, _ = volume
    with open(image, "rb") as f:
        vol = _Volume(lambda o, n: os.pread(f.fileno(), n, o),
                      os.path.getsize(image))
        tally = referenced(vol.trees, vol.sb)[0]
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              image).stdout
    assert tally.count == sum(int(n) for n in re.findall(
        r"refs (\d+) gen \d+ flags DATA", out))
    assert re.search(r"refs [2-9] gen \d+ flags DATA", out)   # shared


def test_label_and_uuid_are_what_blkid_shows(volume):
    image, _ = volume
    umap = open_map(image)
    tags = blkid(image)
    assert (umap.label, umap.uuid) == (tags["LABEL"], tags["UUID"])


def test_map_only_restore_is_clean_with_every_file(volume, tmp_path):
    image, files = volume
    target = map_only_restore(image, tmp_path / "target.img",
                              open_map(image).runs, seed=9)
    clean, output = check(target)
    assert clean, output
    assert read_files(target, tmp_path) == files


# --- damage the cross-checks catch --------------------------------------------
def damaged(image, tmp_path, change):
    copy = tmp_path / "damaged.img"
    run("cp", "--sparse=always", image, copy)
    with open(copy, "r+b") as f:
        change(f)
    return copy


def rewrite_super(f, **fields):
    f.seek(SUPER_OFFSET)
    sb = SUPERBLOCK.unpack(f.read(4096))._replace(**fields)
    raw = bytearray(SUPERBLOCK.pack(**sb._asdict()))
    raw[:32] = checksum(sb.csum_type, bytes(raw[32:])).ljust(32, b"\0")
    f.seek(SUPER_OFFSET)
    f.write(raw)


def test_a_wrong_bytes_used_is_refused(volume, tmp_path):
    image, _ = volume
    sb = SUPERBLOCK.unpack(open(image, "rb").read(SUPER_OFFSET + 4096),
                           SUPER_OFFSET)
    copy = damaged(image, tmp_path, lambda f: rewrite_super(
        f, bytes_used=sb.bytes_used - 4096))
    with pytest.raises(MapError, match="bytes used, the extent tree holds"):
        open_map(copy)


def test_a_flipped_byte_in_the_extent_tree_is_refused(volume, tmp_path):
    image, _ = volume
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "extent",
              image).stdout
    logical = int(out.split("leaf ", 1)[1].split()[0])
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
              image).stdout
    physical = None
    for chunk in out.split("CHUNK_ITEM ")[1:]:
        start, length = int(chunk.split(")")[0]), \
            int(chunk.split("length ")[1].split()[0])
        if start <= logical < start + length:
            physical = int(chunk.split("stripe 0 devid 1 offset ")[1]
                           .split()[0]) + logical - start

    def flip(f):
        f.seek(physical + 200)
        byte = f.read(1)
        f.seek(physical + 200)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(MapError, match="checksum mismatch"):
        open_map(damaged(image, tmp_path, flip))


def test_a_superblock_checksum_mismatch_is_refused(volume, tmp_path):
    image, _ = volume

    def flip(f):
        f.seek(SUPER_OFFSET + 0x12b)
        f.write(b"X")
    with pytest.raises(MapError, match="superblock at 64 KiB: checksum"):
        open_map(damaged(image, tmp_path, flip))


def test_a_log_tree_to_replay_is_refused(volume, tmp_path):
    image, _ = volume
    copy = damaged(image, tmp_path, lambda f: rewrite_super(
        f, log_root=1 << 30))
    with pytest.raises(MapError, match="log tree"):
        open_map(copy)


def test_a_partition_smaller_than_the_device_extents_is_refused(volume):
    image, _ = volume
    extents = dump_tree_runs(image)
    end = max(offset + n for offset, n in extents)
    with pytest.raises(MapError, match="past the device"):
        open_map(image, size=end - MiB)


def test_multi_device_btrfs_is_copied_whole(tmp_path):
    disks = []
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(160 * MiB)
        disks.append(tmp_path / name)
    run("mkfs.btrfs", "-q", "-f", "-d", "raid1", "-m", "raid1", *disks)
    with pytest.raises(MapError, match="multi-device btrfs"):
        open_map(disks[0])


def test_a_struct_of_the_superblock_reads_its_own_offsets():
    """The declared fields land where btrfs_tree.h puts them."""
    offsets = {}
    pos = 0
    for code, name in zip(SUPERBLOCK.codes, SUPERBLOCK.names):
        offsets[name] = pos
        pos += struct.calcsize("<" + code)
    assert (offsets["magic"], offsets["num_devices"], offsets["csum_type"],
            offsets["dev_item"], offsets["label"], offsets["metadata_uuid"],
            offsets["sys_chunk_array"]) == (0x40, 0x88, 0xc4, 0xc9, 0x12b,
                                            0x23b, 0x32b)


# --- what mkfs.btrfs can make on one device ----------------------------------
VARIANTS = {
    # name: (mkfs options, volume size)
    "mixed-block-groups": (["--mixed"], 120 * MiB),
    "no-skinny-metadata": (["-O", "^skinny-metadata"], 120 * MiB),
    "data-dup-metadata-single": (["-m", "single", "-d", "dup"], 180 * MiB),
    "sha256": (["--csum", "sha256"], 120 * MiB),
    "blake2": (["--csum", "blake2"], 120 * MiB),
    "nodesize-4k": (["-n", "4096", "-s", "4096"], 120 * MiB),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_maps_exactly_and_restores(tmp_path, name):
    options, size = VARIANTS[name]
    image, files = make_small(tmp_path, options, size)
    umap = open_map(image)
    assert umap.runs == merge_runs(fixed(size) + dump_tree_runs(image))
    target = map_only_restore(image, tmp_path / "target.img", umap.runs,
                              seed=2)
    clean, output = check(target)
    assert clean, output
    assert read_files(target, tmp_path) == files


def test_xxhash_checksums_are_not_guessed(tmp_path):
    image, _ = make_small(tmp_path, ["--csum", "xxhash"])
    with pytest.raises(MapError, match="xxhash64 is not read here"):
        open_map(image)


def patch_item(image, tree, key_type, change):
    """A copy of `image` whose first item of `key_type` in `tree` (as
    dump-tree names them) had its data changed by change(bytearray), the
    leaf's checksum recomputed as btrfs does, in every copy of the leaf."""
    out = run("btrfs", "inspect-internal", "dump-tree", "-t", tree,
              image).stdout
    leaf = None
    for line in out.splitlines():
        if line.startswith("leaf "):
            leaf = int(line.split()[1])
        found = re.search(rf"key \(\d+ {key_type} \d+\) itemoff (\d+) "
                          rf"itemsize (\d+)", line)
        if found:
            break
    offset, size = map(int, found.groups())
    sb = SUPERBLOCK.unpack(open(image, "rb").read(SUPER_OFFSET + 4096),
                           SUPER_OFFSET)
    chunks = run("btrfs", "inspect-internal", "dump-tree", "-t", "chunk",
                 image).stdout
    places = []
    for chunk in chunks.split("CHUNK_ITEM ")[1:]:
        start = int(chunk.split(")")[0])
        length = int(chunk.split("length ")[1].split()[0])
        if start <= leaf < start + length:
            places = [int(s) + leaf - start for s in
                      re.findall(r"stripe \d+ devid 1 offset (\d+)", chunk)]

    def patch(f):
        for place in places:
            f.seek(place)
            block = bytearray(f.read(sb.nodesize))
            data = bytearray(block[101 + offset:101 + offset + size])
            change(data)
            block[101 + offset:101 + offset + size] = data
            block[:32] = checksum(sb.csum_type, bytes(block[32:])).ljust(
                32, b"\0")
            f.seek(place)
            f.write(block)
    return patch


def test_a_block_group_used_count_that_disagrees_is_refused(volume, tmp_path):
    image, _ = volume

    def more(data):
        data[0:8] = struct.pack("<Q", struct.unpack_from("<Q", data)[0]
                                + 4096)
    copy = damaged(image, tmp_path, patch_item(image, "extent",
                                               "BLOCK_GROUP_ITEM", more))
    clean, _ = check(copy)
    assert not clean                    # btrfs check agrees it is damaged
    with pytest.raises(MapError, match="block group .* says"):
        open_map(copy)


def test_a_device_extent_off_its_stripe_is_refused(volume, tmp_path):
    image, _ = volume

    def elsewhere(data):                # chunk_offset at 16
        data[16:24] = struct.pack("<Q", struct.unpack_from("<Q", data, 16)[0]
                                  + 65536)
    copy = damaged(image, tmp_path, patch_item(image, "dev", "DEV_EXTENT",
                                               elsewhere))
    with pytest.raises(MapError, match="matches no stripe"):
        open_map(copy)
