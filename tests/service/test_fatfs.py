"""fatfs: the service FAT through mtools on a real disk file (mkfs.fat at
an offset), checked with mdir, mtype and fsck.fat; the mount backend only
by how it is chosen (vfat does not mount on this host)."""

import os
import subprocess

import pytest

from diskimage.errors import InputError
from diskimage.service import fatfs
from tests.service.fatdisk import TOOLS, fsck, make_disk, mdir_names, mtype

pytestmark = pytest.mark.needs(*TOOLS, "mmove", "mdel", "mdeltree")


@pytest.fixture
def service(tmp_path):
    return make_disk(str(tmp_path / "disk.img"), fmt=False)


def test_format_then_files_round_trip(service, tmp_path):
    fatfs.format(service)
    # The tail is not touched by mkfs.fat.
    with open(service.disk, "rb") as f:
        f.seek(service.tail_offset)
        assert f.read(fatfs.TAIL_SIZE) == bytes(fatfs.TAIL_SIZE)
    blkid = fatfs.tools.run(["blkid", "-p", "-O", str(service.start),
                             service.disk]).stdout
    assert 'LABEL="RDSERVICE"' in blkid and 'VERSION="FAT32"' in blkid
    local = tmp_path / "kernel"
    local.write_bytes(b"K" * 100000)
    with fatfs.open_fat(service) as fat:
        assert fat.__class__.__name__ == "MtoolsFat"
        before = fat.free()
        fat.makedirs("/bwpart/env/e1")
        fat.put(str(local), "/bwpart/env/e1/vmlinuz")
        fat.put(b"hello\n", "/bwpart/env/e1/bundle.json")
        assert fat.get("/bwpart/env/e1/bundle.json") == b"hello\n"
        fat.get_to("/bwpart/env/e1/vmlinuz", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == b"K" * 100000
        assert sorted(fat.ls("/bwpart/env/e1")) == [
            ("bundle.json", 6, False), ("vmlinuz", 100000, False)]
        assert fat.ls("/bwpart/env") == [("e1", 0, True)]
        assert fat.exists("/bwpart/env/e1/VMLINUZ")
        assert not fat.exists("/bwpart/env/e2")
        assert fat.free() < before
        fat.put(b"a long name, made of spaces", "/a long name.bin.new")
        fat.put(b"old", "/a long name.bin")
        fat.rename("/a long name.bin.new", "/a long name.bin")
        assert fat.get("/a long name.bin") == b"a long name, made of spaces"
        assert not fat.exists("/a long name.bin.new")
    assert mtype(service, "/bwpart/env/e1/bundle.json") == b"hello\n"
    assert mdir_names(service, "/bwpart/env/e1") == ["bundle.json",
                                                     "vmlinuz"]
    assert fsck(service, str(tmp_path))[0] == 0


def bpb(service):
    """(bytes per sector, sectors per cluster, hidden sectors, total
    sectors) of the FAT's boot sector."""
    with open(service.disk, "rb") as f:
        f.seek(service.start)
        boot = f.read(512)
    return (int.from_bytes(boot[11:13], "little"), boot[13],
            int.from_bytes(boot[28:32], "little"),
            int.from_bytes(boot[32:36], "little"))


@pytest.mark.parametrize("part_mib", [256, 300])
def test_format_minimum_size_is_fat32(tmp_path, part_mib):
    """A 256 MiB partition (MIN_SIZE) is a FAT32 with enough clusters for
    mtools and fsck.fat, and its hidden sectors are the partition's
    start (syslinux's boot record adds them)."""
    service = make_disk(str(tmp_path / "disk.img"), size_mib=part_mib + 2,
                        part_mib=part_mib, fmt=False)
    fatfs.format(service)
    sector, spc, hidden, total = bpb(service)
    assert hidden == service.start // 512
    # mkfs.fat ends the filesystem on a whole track (63 sectors), inside
    # the FAT area: never in the tail.
    assert service.fs_size - 63 * 512 < total * sector <= service.fs_size
    assert total // spc > fatfs.FAT32_MIN_CLUSTERS
    code, out = fsck(service, str(tmp_path))
    assert code == 0, out
    with fatfs.open_fat(service) as fat:
        for n in range(40):                  # directory slots to spare
            fat.put(b"x", f"/file-with-a-long-name-{n:03d}.txt")
        assert len(fat.ls("/")) == 40


def test_cluster_sizes():
    MiB, GiB = 1 << 20, 1 << 30
    assert fatfs.sectors_per_cluster(255 * MiB) == 4
    assert fatfs.sectors_per_cluster(1023 * MiB) == 8
    assert fatfs.sectors_per_cluster(12 * GiB) == 16
    assert fatfs.sectors_per_cluster(100 * GiB) == 64


def test_rm_and_missing(service, tmp_path):
    fatfs.format(service)
    with fatfs.open_fat(service) as fat:
        fat.makedirs("/store/sub")
        fat.put(b"x", "/store/sub/a")
        fat.put(b"y", "/store/b")
        fat.rm("/store/b")
        fat.rm("/store", recursive=True)
        assert fat.ls("/") == []
        with pytest.raises(InputError, match="no file /nothing"):
            fat.get("/nothing")
        with pytest.raises(InputError, match="no directory /nothing"):
            fat.ls("/nothing")
    assert fsck(service, str(tmp_path))[0] == 0


@pytest.mark.parametrize("path", [
    "relative", "/a/../b", "/./a", "/a//b", "/-o", "/a/-n", "/*.rdi",
    "/a?b", "/c:d", "/x\\y", "/tab\there", "/ trailing "])
def test_unsafe_paths_refused(service, path):
    with pytest.raises(InputError):
        fatfs.safe_path(path)
    with fatfs.open_fat(service) as fat:
        with pytest.raises(InputError):
            fat.put(b"x", path)


def test_backend_choice():
    assert fatfs.choose_backend(lambda tool, path: "/usr/bin/mcopy") == \
        "mtools"
    assert fatfs.choose_backend(lambda tool, path: None) == "mount"
    assert fatfs.safe_path("/") == "/"
    assert fatfs.safe_path("/store/img.r01") == "/store/img.r01"


@pytest.mark.needs("mkfs.ext4", "blockdev", root=True)
def test_mount_backend_over_its_loop(tmp_path):
    """The environment's backend: the loop device made by ioctl covers the
    FAT area exactly, and MountFat's API over the mounted tree (ext4 here:
    vfat does not mount on this host; the boot tests mount vfat)."""
    from diskimage.service import fatmount
    service = make_disk(str(tmp_path / "disk.img"), fmt=False)
    subprocess.run(["mkfs.ext4", "-q", "-E", f"offset={service.start}",
                    service.disk, str(service.fs_size // 1024)], check=True)
    with fatmount.loop_over(service.disk, service.start,
                            service.fs_size) as dev:
        size = subprocess.run(["blockdev", "--getsize64", dev], check=True,
                              capture_output=True, text=True).stdout
        assert int(size) == service.fs_size
        with open(dev, "rb") as f:
            f.seek(1024 + 56)
            assert f.read(2) == b"\x53\xef"       # ext4's s_magic
    assert not os.path.exists(f"/sys/block/{os.path.basename(dev)}/loop")
    fat = fatmount.MountFat(service, fstype="ext4")
    with fat:
        fat.makedirs("/bwpart/env/e1")
        fat.put(b"k" * 5000, "/bwpart/env/e1/vmlinuz")
        fat.put(b"new", "/x.new")
        fat.put(b"old", "/x")
        fat.rename("/x.new", "/x")
        assert fat.get("/x") == b"new" and not fat.exists("/x.new")
        assert ("vmlinuz", 5000, False) in fat.ls("/bwpart/env/e1")
        assert fat.free() > 0
        fat.rm("/bwpart", recursive=True)
        assert not fat.exists("/bwpart")
        with pytest.raises(InputError, match="no file /nothing"):
            fat.get("/nothing")
    assert not os.path.ismount(fat._dir) and not os.path.exists(fat._dir)
