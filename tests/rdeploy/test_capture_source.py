"""rdeploy capture of awkward sources: a disk file cut short (its table
runs past the end), 4096-byte sectors recorded from a disk file, a
partition mounted read-write, and option combinations that used to be
ignored (issue 11 items 11, 12, 14, 19).

The disks are made by sfdisk and mkfs; rdeploy runs as a subprocess.
"""

import json
import subprocess
from pathlib import Path

import pytest

from tests.smalldisk import MiB, sfdisk
from tests.rdeploy_helpers import check, rdeploy

needs_root = pytest.mark.needs("losetup", root=True)


def info(image):
    result = rdeploy("info", image, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def restored(tmp_path, image, name="back.img"):
    target = tmp_path / name
    result = rdeploy("restore", image, target, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    return target


# --- item 11: a table that runs past the end of a truncated disk file -------
@pytest.fixture(params=["gpt", "dos"])
def truncated(request, tmp_path):
    """A 64 MiB disk with partition 2 from 33 MiB to the end, cut to
    48 MiB: 16 MiB of partition 2 (and the backup GPT) are missing."""
    path = tmp_path / f"cut-{request.param}.img"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    sfdisk(path, f"label: {request.param}\nstart=2048, size=65536\n"
                 f"start=67584\n")
    with open(path, "r+b") as f:
        f.seek(34 * MiB)
        f.write(b"DATA NEAR THE CUT " * 1000)
        f.truncate(48 * MiB)
    return path


def test_truncated_disk_is_captured_with_a_warning(truncated, tmp_path):
    image = tmp_path / "cut.rdi"
    result = rdeploy("capture", truncated, image)
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert "partition 2" in err and "past the end" in err, err
    assert "missing" in err, err
    area = [a for a in info(image)["areas"] if a["partition"] == 2][0]
    assert area["start"] + area["size"] == 48 * MiB
    back = restored(tmp_path, image)
    assert back.read_bytes() == truncated.read_bytes()


def test_truncated_disk_raw(truncated, tmp_path):
    image = tmp_path / "raw.rdi"
    result = rdeploy("capture", truncated, image, "--raw", "-q")
    assert result.returncode == 0, result.stderr.decode()
    back = restored(tmp_path, image)
    assert back.read_bytes() == truncated.read_bytes()


@pytest.mark.parametrize("raw", [[], ["--raw"]])
def test_truncated_disk_warns_only_of_what_is_copied(truncated, tmp_path,
                                                     raw):
    """--partitions=1 of a disk whose partition 2 is cut: no warning about
    partition 2, which is not copied (issue 11 round 3, volmsg item 4);
    --partitions=2 still warns about it."""
    image = tmp_path / "one.rdi"
    result = rdeploy("capture", truncated, image, "--partitions=1", *raw)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "partition 2" not in err, err
    assert "partition 2" not in rdeploy("info", image).stdout.decode()
    result = rdeploy("capture", truncated, tmp_path / "two.rdi",
                     "--partitions=2", *raw)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "partition 2 runs past the end" in err, err


def test_raw_needs_no_sane_table(tmp_path):
    """A GPT whose entry array CRC is broken (and no backup): --raw copies
    every byte; the default mode refuses with the table's fault."""
    path = tmp_path / "bad.img"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
    sfdisk(path, "label: gpt\nstart=2048\n")
    with open(path, "r+b") as f:
        f.seek(1024 + 10)       # inside the first entry
        f.write(b"\xff\xff")
        f.truncate(6 * MiB)     # the backup GPT is gone too
    check(rdeploy("capture", path, tmp_path / "used.rdi"), 3, "GPT")
    image = tmp_path / "raw.rdi"
    result = rdeploy("capture", path, image, "--raw")
    assert result.returncode == 0, result.stderr.decode()
    assert "partition table" in result.stderr.decode()
    assert restored(tmp_path, image).read_bytes() == path.read_bytes()


# --- item 19: option combinations -------------------------------------------
@pytest.fixture(scope="module")
def small(small_disk_ro):
    return small_disk_ro


@pytest.mark.parametrize("split", ["0", "1", "4095", "0.001K"])
def test_split_below_the_smallest_size(small, tmp_path, split):
    """--split=0 and --split=1 get the same usage error, naming the
    smallest size allowed."""
    image = tmp_path / "out.rdi"
    check(rdeploy("capture", small, image, f"--split={split}"), 2,
          "--split", "at least 4K", repr(split))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("level", ["0", "5"])
def test_level_with_no_compression(small, tmp_path, level):
    image = tmp_path / "out.rdi"
    check(rdeploy("capture", small, image, "--compress=none",
                  f"--level={level}"), 2, "--level", "--compress=none")
    assert not list(tmp_path.iterdir())


def test_raw_honours_partitions(small, tmp_path):
    """--raw --partitions=1: the table areas and partition 1, every sector
    of it, and not partition 2."""
    image = tmp_path / "raw1.rdi"
    result = rdeploy("capture", small, image, "--raw", "--partitions=1",
                     "-q")
    assert result.returncode == 0, result.stderr.decode()
    areas = info(image)["areas"]
    parts = [a for a in areas if a["kind"] == "partition"]
    assert [(a["partition"], a["method"]) for a in parts] == [(1, "raw")]
    assert parts[0]["size"] == 65536 * 512
    assert {a["kind"] for a in areas} == {"head", "gpt-backup", "partition"}


# --- item 12: 4096-byte sectors captured from a disk file ------------------
def losetup(*args):
    return subprocess.run(["losetup", *map(str, args)], check=True,
                          capture_output=True, text=True).stdout.strip()


def disk_4k(path, label, fs="fat16"):
    """A 32 MiB disk file laid out with 4096-byte sectors (sfdisk through a
    4K loop device): partition 1 at 1 MiB, 20 MiB, FAT16 made by mkfs.fat
    on a 4K loop device, so its boot sector says 4096 bytes per sector."""
    with open(path, "wb") as f:
        f.truncate(32 * MiB)
    dev = losetup("-b", 4096, "--find", "--show", path)
    try:
        subprocess.run(["sfdisk", "-q", dev], input=f"label: {label}\n"
                       f"start=256, size=5120, type="
                       f"{'L' if label == 'gpt' else 'c'}\n".encode(),
                       check=True, capture_output=True)
    finally:
        losetup("-d", dev)
    dev = losetup("-b", 4096, "-o", MiB, "--sizelimit", 20 * MiB, "--find",
                  "--show", path)
    try:
        mkfs = ["mkfs.fat", "-F", "16", "-s", "1"] if fs == "fat16" else \
            ["mkfs.ext4", "-q", "-b", "4096"]
        subprocess.run(mkfs + [dev], check=True, capture_output=True)
    finally:
        losetup("-d", dev)
    return path


@pytest.fixture
def loop_disk(tmp_path):
    """loop_disk(sector_size): a 32 MiB loop device over a new file."""
    made = []

    def make(sector_size):
        backing = tmp_path / f"target-{len(made)}.img"
        with open(backing, "wb") as f:
            f.truncate(32 * MiB)
        dev = losetup("-b", sector_size, "--find", "--show", backing)
        made.append(dev)
        return dev, backing

    try:
        yield make
    finally:
        for dev in made:
            subprocess.run(["losetup", "-d", dev], capture_output=True)


@needs_root
def test_gpt_4k_file_records_4096_byte_sectors(tmp_path, loop_disk):
    source = disk_4k(tmp_path / "g4.img", "gpt")
    image = tmp_path / "g4.rdi"
    result = rdeploy("capture", source, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    meta = info(image)
    assert meta["source"]["logical_sector_size"] == 4096
    assert meta["table"]["sector_size"] == 4096
    # onto a 4K device: restored as it is
    dev, backing = loop_disk(4096)
    result = rdeploy("restore", image, dev, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    with open(source, "rb") as a, open(backing, "rb") as b:
        assert a.read(21 * MiB) == b.read(21 * MiB)
    # onto a 512-byte device: FAT records its sector size, so refused
    dev, backing = loop_disk(512)
    line = check(rdeploy("restore", image, dev, "--yes"), 5,
                 "512-byte sectors", "4096-byte sectors", "partition 1",
                 "fat16")
    assert "records its sector size" in line
    assert set(backing.read_bytes()) == {0}


@needs_root
def test_gpt_4k_file_sector_size_is_a_note_not_a_warning(tmp_path):
    """The sectors found from a disk file's GPT are said in the summary
    line, not warned about; a --sector-size that disagrees is warned about
    (issue 11 round 3, volmsg item 6)."""
    source = disk_4k(tmp_path / "g4.img", "gpt")
    result = rdeploy("capture", source, tmp_path / "a.rdi")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "warning" not in err, err
    assert "4096-byte sectors (found from its GPT)" in err, err
    result = rdeploy("capture", source, tmp_path / "b.rdi",
                     "--sector-size=4096")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "warning" not in err and "found from its GPT" not in err, err
    result = rdeploy("capture", source, tmp_path / "c.rdi",
                     "--sector-size=512")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "warning: GPT found with 4096-byte sectors, not the 512 of " \
        "--sector-size" in err, err
    assert info(tmp_path / "c.rdi")["source"]["logical_sector_size"] == 4096


@needs_root
def test_mbr_4k_file_needs_sector_size(tmp_path):
    """An MBR does not say its sector size: --sector-size=4096 reads it in
    4096-byte sectors (partition 1 at 1 MiB, not at 128 KiB)."""
    source = disk_4k(tmp_path / "m4.img", "dos")
    image = tmp_path / "m4.rdi"
    result = rdeploy("capture", source, image, "--sector-size=4096", "-q")
    assert result.returncode == 0, result.stderr.decode()
    meta = info(image)
    assert meta["source"]["logical_sector_size"] == 4096
    part = [a for a in meta["areas"] if a["partition"] == 1][0]
    assert (part["start"], part["size"]) == (MiB, 20 * MiB)
    assert part["filesystem"] == "fat16"


def test_sector_size_values(small, tmp_path):
    check(rdeploy("capture", small, tmp_path / "o.rdi", "--sector-size=1000"),
          2, "--sector-size", "4096")
    assert not list(tmp_path.iterdir())


@needs_root
def test_sector_size_of_a_block_device_is_its_own(small, tmp_path, loop_disk):
    dev, _ = loop_disk(512)
    check(rdeploy("capture", dev, tmp_path / "o.rdi", "--sector-size=4096"),
          3, dev, "512-byte")


# --- item 14: a partition mounted read-write -------------------------------
@pytest.fixture
def mounted(small_disk, tmp_path):
    """The small disk's ext4 (partition 1) mounted through a loop device
    with an offset: mounted(options) -> (disk file, mount point)."""
    disk = small_disk
    undo = []

    def mount(options):
        dev = losetup("-o", MiB, "--sizelimit", 32 * MiB, "--find", "--show",
                      disk)
        undo.append(["losetup", "-d", dev])
        point = tmp_path / "mnt"
        point.mkdir()
        subprocess.run(["mount", "-o", options, dev, point], check=True)
        undo.append(["umount", point])
        if "rw" in options:
            (point / "new.txt").write_text("written while mounted\n")
        return disk, point, dev

    try:
        yield mount
    finally:
        for command in reversed(undo):
            subprocess.run(command, capture_output=True)


@needs_root
def test_capture_refuses_a_partition_mounted_read_write(mounted, tmp_path,
                                                        loop_disk):
    disk, point, dev = mounted("rw")
    image = tmp_path / "out.rdi"
    line = check(rdeploy("capture", disk, image), 3, "partition 1", dev,
                 "mounted read-write", str(point), "inconsistent", "--yes")
    assert "journal" not in line
    assert not image.exists() and not list(tmp_path.glob("*.partial*"))
    # the same through a loop device over the whole disk
    whole = losetup("--find", "--show", disk)
    try:
        check(rdeploy("capture", whole, image), 3, "partition 1",
              str(point))
    finally:
        losetup("-d", whole)
    # imgx import has no --yes: its refusal does not offer one
    from tests.imgx_helpers import imgx
    result = imgx("import", disk, tmp_path / "imported.rdi")
    err = result.stderr.decode()
    assert result.returncode == 3 and "mounted read-write" in err, err
    assert "--yes" not in err
    # --yes: captured, with a warning that names it
    result = rdeploy("capture", disk, image, "--yes")
    assert result.returncode == 0, result.stderr.decode()
    err = result.stderr.decode()
    assert "partition 1" in err and "mounted read-write" in err and \
        "inconsistent" in err, err
    # only partition 2 is wanted: nothing mounted is read
    other = tmp_path / "two.rdi"
    result = rdeploy("capture", disk, other, "--partitions=2", "-q")
    assert result.returncode == 0, result.stderr.decode()


@needs_root
def test_capture_of_a_partition_mounted_read_only(mounted, tmp_path):
    disk, point, _ = mounted("ro")
    result = rdeploy("capture", disk, tmp_path / "out.rdi")
    assert result.returncode == 0, result.stderr.decode()
    assert "mounted" not in result.stderr.decode()


@needs_root
def test_imgx_edit_keeps_4096_byte_sectors(tmp_path):
    """imgx put recaptures a scratch disk file: an MBR image with 4096-byte
    sectors must stay one (it was read back with 512-byte sectors: the
    partition at 128 KiB, no filesystem)."""
    from tests.imgx_helpers import imgx
    source = disk_4k(tmp_path / "m4.img", "dos")
    image = tmp_path / "m4.rdi"
    assert rdeploy("capture", source, image, "--sector-size=4096",
                   "-q").returncode == 0
    new = tmp_path / "hello.txt"
    new.write_text("hello\n")
    result = imgx("put", new, f"{image}:1/hello.txt")
    assert result.returncode == 0, result.stderr.decode()
    meta = info(image)
    assert meta["source"]["logical_sector_size"] == 4096
    part = [a for a in meta["areas"] if a["partition"] == 1][0]
    assert (part["start"], part["size"], part["filesystem"]) == \
        (MiB, 20 * MiB, "fat16")
    assert imgx("cat", f"{image}:1/hello.txt").stdout == b"hello\n"


@needs_root
def test_gpt_4k_ext4_converts_onto_512_byte_sectors(tmp_path, loop_disk):
    """The reverse of 512 -> 4096 (docs/rdeploy.md, Sector sizes): a GPT
    disk file with 4096-byte sectors and ext4 restored whole onto a
    512-byte-sector device is converted; e2fsck finds it clean."""
    source = disk_4k(tmp_path / "e4.img", "gpt", fs="ext4")
    image = tmp_path / "e4.rdi"
    assert rdeploy("capture", source, image, "-q").returncode == 0
    dev, backing = loop_disk(512)
    result = rdeploy("restore", image, dev, "--yes")
    assert result.returncode == 0, result.stderr.decode()
    table = json.loads(subprocess.run(["sfdisk", "--json", backing],
                                      capture_output=True, check=True,
                                      text=True).stdout)["partitiontable"]
    assert table["sectorsize"] == 512
    part = table["partitions"][0]
    assert (part["start"] * 512, part["size"] * 512) == (MiB, 20 * MiB)
    check_dev = losetup("-o", MiB, "--sizelimit", 20 * MiB, "--find",
                        "--show", backing)
    try:
        subprocess.run(["e2fsck", "-fn", check_dev], check=True,
                       capture_output=True)
    finally:
        losetup("-d", check_dev)
