"""Demo disks built with sfdisk, mkfs.* , mcopy and ntfs-3g, checked against
the reference tools' own view (sfdisk --json, blkid -p) and round-tripped
through check_disk, which must also be able to fail."""

import json
import os
import re
import subprocess

import pytest

import demodisk
from diskimage.fs.fat.mtools import mtools_env
from diskimage.host import fuse
from diskimage.errors import InputError, UsageError

MiB = 1 << 20
TOOLS = ("sfdisk", "blkid", "losetup", "mkfs.ext4", "debugfs", "e2fsck",
         "mkfs.fat", "fsck.fat", "mcopy", "mkntfs", "ntfs-3g", "ntfsfix")
needs_tools = pytest.mark.needs(*TOOLS, root=True, fuse=True)
MTOOLS_ENV = mtools_env()


def run(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True,
                          **kwargs).stdout


@pytest.fixture(scope="module")
def gpt(gpt_demo_ro):
    path, manifest = gpt_demo_ro
    return str(path), manifest


@pytest.fixture(scope="module")
def mbr(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mbr") / "mbr.img")
    return path, demodisk.make_mbr_extended(path)


def writable(disk, tmp_path):
    """A per-test copy of a session disk, kept sparse."""
    path, manifest = disk
    copy = str(tmp_path / os.path.basename(path))
    run("cp", "--sparse=always", path, copy)
    return copy, manifest


def sfdisk_parts(path):
    table = json.loads(run("sfdisk", "--json", path))["partitiontable"]
    return table, {int(re.search(r"(\d+)$", p["node"]).group(1)): p
                   for p in table["partitions"]}


def blkid(path, part):
    out = run("blkid", "-p", "-O", str(part["start"]), "-S",
              str(part["size"]), "-o", "export", path)
    return dict(line.split("=", 1) for line in out.splitlines())


# -- make_tree: pure, no tools needed


def test_make_tree_is_deterministic(tmp_path):
    first = demodisk.make_tree(tmp_path / "a", 120, seed=5)
    again = demodisk.make_tree(tmp_path / "b", 120, seed=5)
    other = demodisk.make_tree(tmp_path / "c", 120, seed=6)
    assert first == again
    assert first != other
    assert len(first) == 120


def test_make_tree_digests_and_names(tmp_path):
    tree = demodisk.make_tree(tmp_path, 200, seed=3)
    on_disk = {}
    for dirpath, _, filenames in os.walk(tmp_path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, tmp_path).replace(os.sep, "/")
            on_disk[rel] = demodisk.sha256_file(full)
    assert on_disk == tree
    sizes = [os.path.getsize(tmp_path / rel) for rel in tree]
    assert 0 in sizes
    assert max(sizes) >= MiB
    assert "Ünïcode ファイル.txt" in tree
    assert any(not rel.isascii() for rel in tree)
    assert any(len(rel.rsplit("/", 1)[-1]) > 100 for rel in tree)
    assert any(rel.count("/") >= 2 for rel in tree)
    assert len({rel.casefold() for rel in tree}) == len(tree)


def test_make_tree_plain_names(tmp_path):
    tree = demodisk.make_tree(tmp_path, 80, seed=2, max_size=1024,
                              names=False)
    assert all(rel.isascii() and " " not in rel for rel in tree)
    assert all(len(rel.rsplit("/", 1)[-1]) < 20 for rel in tree)


def test_make_tree_refuses_a_full_directory(tmp_path):
    (tmp_path / "old").write_text("x")
    with pytest.raises(UsageError):
        demodisk.make_tree(tmp_path, 3, seed=1)


# -- GPT demo disk


@needs_tools
def test_gpt_layout_matches_sfdisk(gpt):
    path, manifest = gpt
    table, parts = sfdisk_parts(path)
    assert table["label"] == "gpt"
    assert sorted(parts) == [1, 2, 3] == sorted(manifest["partitions"])
    assert table["sectorsize"] == 512
    ends = []
    for number, part in manifest["partitions"].items():
        assert parts[number]["start"] * 512 == part["start"]
        assert parts[number]["size"] * 512 == part["size"]
        assert len(part["files"]) == 300
        ends.append((part["start"], part["start"] + part["size"]))
    for (_, end), (start, _) in zip(ends, ends[1:]):
        assert start > end                      # free space between
    assert ends[-1][1] < manifest["size"] - MiB  # and after
    assert os.stat(path).st_blocks * 512 < manifest["size"] // 2  # sparse


@needs_tools
def test_gpt_filesystems_seen_by_blkid(gpt):
    path, manifest = gpt
    seen = [blkid(path, part) for part in manifest["partitions"].values()]
    assert [(s["TYPE"], s["LABEL"]) for s in seen] == [
        ("ext4", "demo-ext4"), ("vfat", "DEMOFAT"), ("ntfs", "demo-ntfs")]
    assert seen[1]["VERSION"] == "FAT32"


@needs_tools
@pytest.mark.parametrize("number", [1, 2, 3])
def test_read_files_equals_manifest(gpt, number):
    path, manifest = gpt
    part = manifest["partitions"][number]
    found = demodisk.read_files(path, part["start"], part["size"], part["fs"])
    assert found == part["files"]
    assert any(not rel.isascii() for rel in found)
    assert any(len(rel.rsplit("/", 1)[-1]) > 100 for rel in found)


@needs_tools
def test_gpt_fresh_disk_checks_clean(gpt):
    path, manifest = gpt
    for part in manifest["partitions"].values():
        clean, output = demodisk.fsck(path, part["start"], part["size"],
                                      part["fs"])
        assert clean, output
    assert demodisk.check_disk(path, manifest) == []


@needs_tools
def test_changed_fat_file_is_reported(gpt, tmp_path):
    path, manifest = writable(gpt, tmp_path)
    part = manifest["partitions"][2]
    victim = sorted(part["files"])[0]
    other = tmp_path / "other"
    other.write_bytes(b"not the original content\n")
    run("mcopy", "-o", "-i", f"{path}@@{part['start']}", str(other),
        f"::/{victim}", env=MTOOLS_ENV)
    problems = demodisk.check_disk(path, manifest)
    assert len(problems) == 1
    assert problems[0].startswith(f"partition 2 (fat32): {victim}: sha256 ")


@needs_tools
def test_changed_ext4_bytes_are_reported(gpt, tmp_path):
    path, manifest = writable(gpt, tmp_path)
    part = manifest["partitions"][1]
    source = f"{path}?offset={part['start']}"
    stats = run("debugfs", "-R", "stats", source)
    block_size = int(re.search(r"Block size:\s+(\d+)", stats).group(1))
    victim = next(rel for rel in sorted(part["files"])
                  if re.fullmatch(r"[\w./-]+", rel)
                  and part["files"][rel] != demodisk.sha256_file("/dev/null"))
    blocks = run("debugfs", "-R", f"blocks /{victim}", source).split()
    with open(path, "r+b") as f:
        f.seek(part["start"] + int(blocks[0]) * block_size)
        f.write(b"\xa5" * 16)
    problems = demodisk.check_disk(path, manifest)
    assert problems == [problems[0]]
    assert problems[0].startswith(f"partition 1 (ext4): {victim}: sha256 ")


@needs_tools
def test_extra_ntfs_file_is_reported(gpt, tmp_path):
    path, manifest = writable(gpt, tmp_path)
    part = manifest["partitions"][3]
    with demodisk.loop_device(path, part["start"], part["size"],
                              read_only=False) as dev, \
            fuse.ntfs_mount(dev, str(tmp_path / "mnt"), "rw") as mnt:
        with open(os.path.join(mnt, "stowaway ñ.txt"), "w") as f:
            f.write("extra")
    assert demodisk.check_disk(path, manifest) == [
        "partition 3 (ntfs): stowaway ñ.txt: not in the manifest"]


@needs_tools
def test_too_small_disk_is_refused(tmp_path):
    path = tmp_path / "small.img"
    with pytest.raises(UsageError):
        demodisk.make_gpt_demo(path, size=64 * MiB)
    assert not path.exists()


@needs_tools
def test_unknown_filesystem(gpt):
    with pytest.raises(InputError):
        demodisk.read_files(gpt[0], MiB, MiB, "zfs")


# -- MBR disk with an extended partition


@needs_tools
def test_mbr_layout_matches_sfdisk(mbr):
    path, manifest = mbr
    table, parts = sfdisk_parts(path)
    assert table["label"] == "dos"
    assert sorted(parts) == [1, 2, 3, 5, 6, 7]
    assert sorted(manifest["partitions"]) == [1, 2, 5, 6, 7]
    assert parts[3]["type"] == "5"
    extended = (parts[3]["start"], parts[3]["start"] + parts[3]["size"])
    for number, part in manifest["partitions"].items():
        assert parts[number]["start"] * 512 == part["start"]
        assert parts[number]["size"] * 512 == part["size"]
        inside = extended[0] < parts[number]["start"] < extended[1]
        assert inside == (number >= 5)
    assert extended[1] * 512 < manifest["size"]
    seen = [blkid(path, part) for part in manifest["partitions"].values()]
    assert [(s["TYPE"], s.get("VERSION")) for s in seen] == [
        ("ext4", "1.0"), ("vfat", "FAT16"), ("ext3", "1.0"),
        ("vfat", "FAT32"), ("ext2", "1.0")]


@needs_tools
def test_mbr_checks_clean_also_after_json(mbr):
    path, manifest = mbr
    assert demodisk.check_disk(path, manifest) == []
    # a manifest stored as JSON comes back with string keys
    assert demodisk.check_disk(path, json.loads(json.dumps(manifest))) == []


@needs_tools
def test_broken_superblock_fails_fsck(mbr, tmp_path):
    path, manifest = writable(mbr, tmp_path)
    part = manifest["partitions"][7]
    with open(path, "r+b") as f:
        f.seek(part["start"] + 1024 + 56)        # s_magic
        f.write(b"\0\0")
    clean, output = demodisk.fsck(path, part["start"], part["size"], "ext2")
    assert not clean and output
    problems = demodisk.check_disk(path, manifest)
    assert problems
    assert all(p.startswith("partition 7 (ext2): ") for p in problems)
    assert any("fsck reports errors" in p for p in problems)
