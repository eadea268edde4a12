"""The btrfs chunk map: logical addresses to device offsets, from the
sys_chunk_array (enough to read the chunk tree) and then the chunk tree
itself, checked against the device item and the device tree's extents.

Only what one device holds in the single and DUP profiles is mapped: a
chunk of another profile, a second device or a stripe on another device is
a MapError.
"""

import bisect
import struct

from ...errors import TableError
from ..usedmap import MapError
from .super import CHUNK_ITEM_KEY, DEV_ITEM, DUP, parse_chunk, sys_chunks
from .tree import Trees

DEV_ITEM_KEY = 216
DEV_EXTENT_KEY = 204
DEV_ITEMS_OBJECTID = 1
FIRST_CHUNK_TREE_OBJECTID = 256
DEV_TREE_OBJECTID = 4
#: struct btrfs_dev_extent: chunk_tree, chunk_objectid, chunk_offset,
#: length (then chunk_tree_uuid[16])
_DEV_EXTENT = struct.Struct("<QQQQ")


class ChunkMap:
    """Chunks sorted by logical address; `physical()` maps through them."""

    def __init__(self, chunks, devid):
        self.devid = devid
        self.chunks = sorted(chunks, key=lambda c: c.logical)
        self.starts = [c.logical for c in self.chunks]
        for before, after in zip(self.chunks, self.chunks[1:]):
            if before.logical + before.length > after.logical:
                raise MapError(f"btrfs chunks at {before.logical} and "
                               f"{after.logical} overlap")
        for chunk in self.chunks:
            _check_profile(chunk, devid)

    def find(self, logical, length):
        """The chunk holding [logical, logical+length), or MapError."""
        i = bisect.bisect_right(self.starts, logical) - 1
        if i >= 0:
            chunk = self.chunks[i]
            if logical + length <= chunk.logical + chunk.length:
                return chunk
        raise MapError(f"btrfs logical range {logical}+{length} is in no "
                       f"chunk")

    def physical(self, logical, length):
        """The device offset of the first stripe's copy of the range."""
        chunk = self.find(logical, length)
        return chunk.stripes[0][1] + logical - chunk.logical


def _check_profile(chunk, devid):
    profile = chunk.profile()
    if profile not in ("single", "DUP"):
        raise MapError(f"btrfs {chunk.kind()} chunk at {chunk.logical} is "
                       f"{profile}: only single and DUP are mapped")
    want = 2 if chunk.type & DUP else 1
    if len(chunk.stripes) != want:
        raise MapError(f"btrfs {profile} chunk at {chunk.logical} has "
                       f"{len(chunk.stripes)} stripes")
    for stripe_devid, _offset in chunk.stripes:
        if stripe_devid != devid:
            raise MapError(f"btrfs chunk at {chunk.logical} has a stripe on "
                           f"device {stripe_devid}: multi-device btrfs: "
                           f"copied whole")


def read_chunks(read, sb):
    """(ChunkMap of the chunk tree, the device item, Trees reading through
    it), cross-checked against the superblock's sys_chunk_array and its
    copy of the device item."""
    sb_dev = DEV_ITEM.unpack(sb.dev_item)
    boot = ChunkMap(sys_chunks(sb), sb_dev.devid)
    trees = Trees(read, sb, boot.physical)
    chunks, devs = [], []
    try:
        for key, data in trees.items(sb.chunk_root, sb.chunk_root_level):
            if key[1] == CHUNK_ITEM_KEY:
                if key[0] != FIRST_CHUNK_TREE_OBJECTID:
                    raise MapError(f"btrfs chunk item with objectid {key[0]}")
                chunks.append(parse_chunk(key[2], data, key[2]))
            elif key[1] == DEV_ITEM_KEY:
                devs.append(DEV_ITEM.unpack(data))
    except TableError as err:
        raise MapError(str(err)) from None
    if len(devs) != 1:
        raise MapError(f"btrfs chunk tree lists {len(devs)} devices: "
                       f"multi-device btrfs: copied whole")
    dev = devs[0]
    if (dev.devid, dev.total_bytes, dev.uuid) != \
            (sb_dev.devid, sb_dev.total_bytes, sb_dev.uuid):
        raise MapError("btrfs device item of the chunk tree differs from the "
                       "superblock's")
    full = ChunkMap(chunks, dev.devid)
    for chunk in boot.chunks:
        same = full.find(chunk.logical, chunk.length)
        if (same.logical, same.length, same.type, same.stripes) != \
                (chunk.logical, chunk.length, chunk.type, chunk.stripes):
            raise MapError(f"btrfs sys_chunk_array chunk {chunk.logical} "
                           f"differs from the chunk tree's")
    return full, dev, Trees(read, sb, full.physical)


def dev_extents(trees, root, level, chunk_map, dev, size):
    """The device extents [(physical, length, chunk)] sorted by physical
    offset, each checked against a stripe of its chunk; every stripe of
    every chunk has exactly one, they do not overlap, they lie inside the
    device and the partition, and their sum is the device item's
    bytes_used."""
    found = []
    stripes = {(chunk.logical, offset): chunk for chunk in chunk_map.chunks
               for _devid, offset in chunk.stripes}
    try:
        for key, data in trees.items(root, level, (dev.devid, DEV_EXTENT_KEY,
                                                   0),
                                     (dev.devid, DEV_EXTENT_KEY + 1, 0)):
            if len(data) < _DEV_EXTENT.size:
                raise MapError(f"btrfs device extent at {key[2]} is short "
                               f"({len(data)} bytes)")
            chunk_tree, objectid, logical, length = \
                _DEV_EXTENT.unpack_from(data)
            chunk = stripes.pop((logical, key[2]), None)
            if chunk is None or chunk.length != length:
                raise MapError(f"btrfs device extent at {key[2]} (chunk "
                               f"{logical}) matches no stripe of the chunk "
                               f"tree")
            found.append((key[2], length, chunk))
    except TableError as err:
        raise MapError(str(err)) from None
    if stripes:
        logical, offset = min(stripes)
        raise MapError(f"btrfs chunk {logical} stripe at {offset} has no "
                       f"device extent")
    found.sort()
    end = 0
    for physical, length, chunk in found:
        if physical < end:
            raise MapError(f"btrfs device extents overlap at {physical}")
        end = physical + length
    if end > min(dev.total_bytes, size):
        raise MapError(f"btrfs device extents reach byte {end}, past the "
                       f"device ({dev.total_bytes}) or partition ({size})")
    used = sum(length for _p, length, _c in found)
    if used != dev.bytes_used:
        raise MapError(f"btrfs device item says {dev.bytes_used} bytes "
                       f"allocated, its device extents hold {used}")
    return found

