"""NTFS used-cluster maps (diskimage.fs.ntfs.used) of volumes with
inconsistent structures: boot sector, fixups, record signatures, $Bitmap
and runlists edited in the bytes of a fresh mkntfs volume; each is refused
with a MapError that says what is wrong, or mapped with a warning."""

import struct

import pytest

from diskimage.fs.ntfs import used as ntfs
from diskimage.fs.usedmap import MapError
from tests.fs.ntfs_tools import bytes_reader, mkntfs, ntfsinfo

KiB, MiB = 1 << 10, 1 << 20


pytestmark = pytest.mark.needs("mkntfs", "ntfs-3g", "ntfsinfo", "ntfsfix",
                               "losetup")


# --- inconsistent structures -------------------------------------------------
@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh 8 MiB volume as bytes, and where its records lie (from
    ntfsinfo, not from the code under test)."""
    path = mkntfs(tmp_path_factory.mktemp("ntfs") / "fresh.img", 8 * MiB)
    info = ntfsinfo(path)
    mft = info["mft_lcn"] * info["cluster"]
    data = open(path, "rb").read()
    return {"data": data, "info": info,
            "record": lambda n: mft + n * info["record"]}


def attribute(data, record, wanted):
    """Offset of the first attribute of type `wanted` in a FILE record."""
    pos = record + struct.unpack_from("<H", data, record + 0x14)[0]
    while True:
        kind, length = struct.unpack_from("<II", data, pos)
        assert kind != 0xFFFFFFFF
        if kind == wanted:
            return pos
        pos += length


def open_bytes(data, size=None):
    return ntfs.open_volume(bytes_reader(data),
                            len(data) if size is None else size)


def test_fresh_volume_maps(fresh):
    used = open_bytes(fresh["data"])
    info = fresh["info"]
    assert used.total_bytes == info["bytes"]
    assert used.used_bytes == (info["clusters"] - info["free"]) \
        * info["cluster"] + info["sector"]


def test_not_ntfs_is_none(fresh):
    data = bytearray(fresh["data"])
    data[3:11] = b"MSWIN4.1"
    assert open_bytes(data) is None
    assert open_bytes(bytes(4096)) is None


def corrupt(fresh, offset, value):
    data = bytearray(fresh["data"])
    data[offset:offset + len(value)] = value
    return data


@pytest.mark.parametrize("offset,value,message", [
    (510, b"\x55\x00", "end marker"),
    (0x0D, b"\x03", "power of two"),
    (0x0B, b"\x00\x03", "power of two"),
    (0x30, struct.pack("<q", 1 << 40), "mft_lcn"),
    (0x38, struct.pack("<q", -3), "mftmirr_lcn"),
    (0x28, struct.pack("<q", 1 << 20), "does not fit"),
    (0x40, b"\x00", "record size"),
    (0x44, b"\x7f", "clusters_per_index_record"),
])
def test_bad_boot_sector(fresh, offset, value, message):
    with pytest.raises(MapError, match=message):
        open_bytes(corrupt(fresh, offset, value))


def test_volume_larger_than_partition(fresh):
    with pytest.raises(MapError, match="does not fit"):
        open_bytes(fresh["data"], len(fresh["data"]) - 4096)


@pytest.mark.parametrize("record", [0, 3, 6])
def test_fixup_mismatch(fresh, record):
    tail = fresh["record"](record) + 510
    with pytest.raises(MapError, match=f"record {record} .*fixup"):
        open_bytes(corrupt(fresh, tail, b"\xde\xad"))


def test_no_file_signature(fresh):
    with pytest.raises(MapError, match="record 6 .*FILE"):
        open_bytes(corrupt(fresh, fresh["record"](6), b"BAAD"))


def bitmap_attribute(fresh):
    return attribute(fresh["data"], fresh["record"](6), 0x80)


def test_bitmap_too_small(fresh):
    pos = bitmap_attribute(fresh)
    data = corrupt(fresh, pos + 0x30, struct.pack("<qq", 8, 8))
    with pytest.raises(MapError, match="too small"):
        open_bytes(data)


def test_runlist_outside_volume(fresh):
    pos = bitmap_attribute(fresh)
    pairs = pos + struct.unpack_from("<H", fresh["data"], pos + 0x20)[0]
    header = fresh["data"][pairs]
    length_size, offset_size = header & 15, header >> 4
    start = pairs + 1 + length_size
    far = b"\xff" * (offset_size - 1) + b"\x7f"
    with pytest.raises(MapError, match="outside the volume"):
        open_bytes(corrupt(fresh, start, far))
    # and a runlist that claims fewer clusters than the attribute's VCNs
    with pytest.raises(MapError, match="covers VCNs"):
        open_bytes(corrupt(fresh, pos + 0x18, struct.pack("<q", 99)))


def test_bitmap_marking_metadata_free(fresh):
    """A $Bitmap that says the MFT's own clusters are free is not this
    volume's bitmap: refuse it rather than drop the MFT."""
    pos = bitmap_attribute(fresh)
    data = fresh["data"]
    pairs = pos + struct.unpack_from("<H", data, pos + 0x20)[0]
    length_size, offset_size = data[pairs] & 15, data[pairs] >> 4
    start = pairs + 1 + length_size
    lcn = int.from_bytes(data[start:start + offset_size], "little")
    mft_lcn = fresh["info"]["mft_lcn"]
    where = lcn * fresh["info"]["cluster"] + mft_lcn // 8
    with pytest.raises(MapError, match=r"\$MFT free"):
        open_bytes(corrupt(fresh, where, bytes([data[where]
                                                & ~(1 << mft_lcn % 8)])))


def test_dirty_volume_warns(fresh):
    record = fresh["record"](3)
    pos = attribute(fresh["data"], record, 0x70)
    value = pos + struct.unpack_from("<H", fresh["data"], pos + 0x14)[0]
    flags = struct.unpack_from("<H", fresh["data"], value + 10)[0]
    used = open_bytes(corrupt(fresh, value + 10, struct.pack("<H", flags | 1)))
    assert used.warnings and "dirty" in used.warnings[0]
