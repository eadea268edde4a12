"""A filesystem added through the registry alone: one new module and one
entry in diskimage.fs.registry.MODULES, nothing else.

The test writes a made-up filesystem ("dummyfs": a header with a magic, a
block bitmap, data blocks, and a CRC-32 of the used blocks in the header),
its module (detection, used map, checker, grow) and its checker, a small
script that verifies the magic and the CRC and notes that it ran.  A disk
holding it is captured and restored (grown, verified) with the library's
capture and restore: only the used blocks are stored, restore's grow and
checker run on the restored copy, and the used blocks come back byte for
byte.  Without the registry entry the same disk is copied whole."""

import os
import random
import struct
import sys
import zlib

import pytest

from diskimage.capture import capture
from diskimage.fs import registry
from diskimage.image.compression import Compressor
from diskimage.image.reader import ImageReader, RecordStream
from diskimage.image.volumeout import VolumeOutput
from diskimage.image.volumes import VolumeInput
from diskimage.restore import plan_restore, run_restore
from tests.fsmaps import MiB, run

pytestmark = pytest.mark.needs("sfdisk", "losetup", root=True)

BLOCK = 4096
HEADER = struct.Struct("<8sIII16s16s")     # magic, block size, blocks, crc,
MAGIC = b"DUMMYFS1"                         # uuid, label
PART_START, PART_BLOCKS = MiB, 2048         # an 8 MiB partition

MODULE = '''\
"""dummyfs, a made-up filesystem: block 0 the header, block 1 the bitmap
of used blocks, then data blocks."""

import struct

from diskimage.fs.record import Filesystem
from diskimage.fs.usedmap import MapError, UsedMap, bitmap_runs, scaled

HEADER = struct.Struct("<8sIII16s16s")
MAGIC = b"DUMMYFS1"


def detect(read):
    return "dummyfs" if read(0, 8) == MAGIC else None


def open_map(read, size):
    magic, block, blocks, _, uuid, label = HEADER.unpack(
        read(0, HEADER.size))
    if magic != MAGIC or block * blocks > size or blocks > 8 * block:
        raise MapError("dummyfs header does not fit its volume")
    runs = list(scaled(bitmap_runs(read(block, block), blocks), block,
                       size))
    return UsedMap("dummyfs", block, block * blocks,
                   sum(n for _, n in runs), runs,
                   label.rstrip(b"\\0").decode(), uuid.hex())


def grow(path, size, what):
    with open(path, "r+b") as dev:
        fields = list(HEADER.unpack(dev.read(HEADER.size)))
        fields[2] = min(size // fields[1], 8 * fields[1])
        dev.seek(0)
        dev.write(HEADER.pack(*fields))
    return fields[1] * fields[2]


FILESYSTEM = Filesystem(
    kinds=("dummyfs",), family="dummyfs", title="dummyfs", detect=detect,
    open_map=open_map, check=(CHECKER,), grow=grow)
'''

CHECKER = '''\
#!{python}
"""dummyfs's checker: the magic, and the CRC-32 of the used blocks."""
import struct, sys, zlib

with open({marker!r}, "a") as note:
    note.write(sys.argv[1] + "\\n")
with open(sys.argv[1], "rb") as dev:
    magic, block, blocks, crc, _, _ = struct.unpack("<8sIII16s16s",
                                                    dev.read(52))
    if magic != b"DUMMYFS1":
        sys.exit("bad magic")
    dev.seek(block)
    bitmap = int.from_bytes(dev.read(block), "little")
    found = 0
    for number in range(2, blocks):
        if bitmap >> number & 1:
            dev.seek(number * block)
            found = zlib.crc32(dev.read(block), found)
if found != crc:
    sys.exit(f"used blocks' CRC 0x{{found:08x}}, header says 0x{{crc:08x}}")
print("dummyfs clean")
'''


def make_dummyfs(path, seed=12):
    """Write a dummyfs volume at PART_START of `path`: used blocks in runs,
    every free block full of random bytes (so a copy that ignores the map
    stores them).  Returns the used block numbers."""
    rng = random.Random(seed)
    used = {0, 1}
    while len(used) < 300:
        first = rng.randrange(2, PART_BLOCKS - 8)
        used.update(range(first, first + rng.randint(1, 8)))
    data = bytearray(rng.randbytes(PART_BLOCKS * BLOCK))
    bitmap = sum(1 << n for n in used).to_bytes(BLOCK, "little")
    data[BLOCK:2 * BLOCK] = bitmap
    crc = 0
    for number in sorted(used - {0, 1}):
        crc = zlib.crc32(data[number * BLOCK:(number + 1) * BLOCK], crc)
    data[:BLOCK] = HEADER.pack(MAGIC, BLOCK, PART_BLOCKS, crc,
                               bytes(range(16)), b"dummy-label").ljust(
                                   BLOCK, b"\0")
    with open(path, "r+b") as f:
        f.seek(PART_START)
        f.write(data)
    return sorted(used)


def make_disk(path):
    with open(path, "wb") as f:
        f.truncate(PART_START + PART_BLOCKS * BLOCK + MiB)
    run("sfdisk", "-q", path, input="label: gpt\nunit: sectors\n"
        f"start={PART_START // 512}, size={PART_BLOCKS * BLOCK // 512}\n")
    return make_dummyfs(path)


def used_ranges(used):
    return [(PART_START + n * BLOCK, BLOCK) for n in used]


@pytest.fixture
def dummyfs(tmp_path, monkeypatch):
    """The one new module and the one registry entry; the checker's
    marker file, one line per run."""
    modules, marker = tmp_path / "modules", tmp_path / "checker-ran"
    modules.mkdir()
    checker = tmp_path / "dummyfs-check"
    checker.write_text(CHECKER.format(python=sys.executable,
                                      marker=str(marker)))
    checker.chmod(0o755)
    (modules / "h1_dummyfs.py").write_text(
        f"CHECKER = {str(checker)!r}\n" + MODULE)
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setattr(registry, "MODULES",
                        registry.MODULES + ("h1_dummyfs",))
    return marker


def captured(disk, image):
    """The partition's area in the metadata, and the blocks stored for it:
    {block number: bytes} of the non-zero blocks of its chunks (gaps
    between used runs shorter than 16 KiB are stored as zeros)."""
    capture(str(disk), VolumeOutput(str(image)),
            compressor=Compressor("lz4", None))
    stored = {}
    with ImageReader(str(image)) as reader:
        areas = reader.metadata["areas"]
        number, = [i for i, a in enumerate(areas) if a["partition"] == 1]
        for index, entry in enumerate(reader.entries):
            if entry.area != number:
                continue
            data = reader.read_entry(index)
            for at in range(0, entry.length, BLOCK):
                block = data[at:at + BLOCK]
                if block.count(0) != len(block):
                    stored[(entry.disk_offset + at - PART_START)
                           // BLOCK] = block
    return areas[number], stored


def test_dummy_filesystem_captured_and_restored_by_its_map(tmp_path,
                                                           dummyfs):
    disk, image = tmp_path / "disk.img", tmp_path / "disk.rdi"
    used = make_disk(disk)
    area, stored = captured(disk, image)
    assert (area["filesystem"], area["method"]) == ("dummyfs", "used-blocks")
    assert (area["label"], area["uuid"]) == ("dummy-label",
                                             bytes(range(16)).hex())
    assert area["used_bytes"] == len(used) * BLOCK
    # only the used blocks were stored, each as it is on the disk
    assert sorted(stored) == used
    with open(disk, "rb") as src:
        for number, block in stored.items():
            src.seek(PART_START + number * BLOCK)
            assert src.read(BLOCK) == block, number

    # restored onto a larger disk full of garbage, grown, verified: the
    # checker runs through the registry on the restored copy, and passes
    target = tmp_path / "target.img"
    target.write_bytes(os.urandom(os.path.getsize(disk) + 4 * MiB))
    with VolumeInput(str(image)) as source:
        plan = plan_restore(RecordStream(source), str(target), mode="grow")
        run_restore(plan, verify=True)
    part, = plan.placements
    assert part.fs == "dummyfs" and part.new_size > PART_BLOCKS * BLOCK
    assert dummyfs.read_text().count("\n") == 1, "restore ran no checker"
    clean, output = registry.fsck_region(str(target), part.new_start,
                                         part.new_size, "dummyfs")
    assert clean and output == "dummyfs clean", output
    with open(disk, "rb") as src, open(target, "rb") as dst:
        for offset, length in used_ranges(used[1:]):   # the header grew
            src.seek(offset)
            dst.seek(offset - PART_START + part.new_start)
            assert dst.read(length) == src.read(length), offset
        dst.seek(part.new_start)
        blocks = HEADER.unpack(dst.read(HEADER.size))[2]
    assert blocks == part.new_size // BLOCK


def test_without_its_registry_entry_it_is_copied_whole(tmp_path, dummyfs,
                                                       monkeypatch):
    """The same disk, the module on the path but not in the registry: no
    map, every block stored (what the test above would then see)."""
    monkeypatch.setattr(registry, "MODULES", registry.MODULES[:-1])
    disk, image = tmp_path / "disk.img", tmp_path / "disk.rdi"
    make_disk(disk)
    area, stored = captured(disk, image)
    assert area["filesystem"] is None and area["method"] == "zero-skip"
    assert sorted(stored) == list(range(PART_BLOCKS))


def test_every_tool_of_a_record_has_its_package_in_the_one_table():
    """The records name their tools; the package of each comes from the one
    tool -> package table (diskimage.host.tools.PACKAGES), so a missing one
    is reported with its package."""
    from diskimage.host.tools import PACKAGES
    for record in registry.filesystems():
        for tool in record.tools + tuple(record.check or ())[:1]:
            assert tool in PACKAGES, (record.kinds, tool)


def test_the_recipe_in_the_docs_makes_a_record_the_registry_takes():
    """docs/filesystems.md "Adding a filesystem": its example module, run
    as a module of diskimage.fs, declares a record whose tools are names
    (their packages go into the one table, which the recipe names), so
    that following it literally passes the test above."""
    import re
    import types
    from pathlib import Path
    from diskimage.fs.record import Filesystem
    text = (Path(__file__).resolve().parents[2] / "docs" /
            "filesystems.md").read_text()
    recipe = text.split("### Adding a filesystem", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", recipe, re.S)[1]
    module = types.ModuleType("diskimage.fs._recipe")
    module.__package__ = "diskimage.fs"
    exec(compile(re.sub(r"(?m)^   ", "", code), "recipe", "exec"),
         module.__dict__)
    record = module.FILESYSTEM
    assert isinstance(record, Filesystem)
    assert isinstance(record.tools, tuple) and \
        all(isinstance(tool, str) for tool in record.tools), record.tools
    assert "diskimage/host/tools.py" in recipe and "PACKAGES" in recipe
    assert record.detect(lambda offset, length: b"\x10\x20\xf5\xf2"
                         if offset == 1024 else b"") == "f2fs"


def test_a_filesystem_imgx_edits_needs_a_checker(tmp_path, monkeypatch):
    """imgx checks every edit before it keeps it: a record that says how
    to edit but has no checker is refused when the registry is read, not
    at the first edit (an unpacking of None, exit 70)."""
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "uncheckedfs.py").write_text(
        "from diskimage.fs.record import Filesystem\n"
        "FILESYSTEM = Filesystem(kinds=('uncheckedfs',), family='x',\n"
        "                        title='x', edit='mount')\n")
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setattr(registry, "MODULES",
                        registry.MODULES + ("uncheckedfs",))
    with pytest.raises(TypeError, match="needs a checker"):
        registry.filesystems()
