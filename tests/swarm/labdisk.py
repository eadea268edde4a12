"""The swarm tests' disk: a GPT disk made by sfdisk with an EFI system
partition (FAT16, mkfs.fat + mcopy) and an ext4 root (mkfs.ext4 -d), both
holding random files (so the image is as big as the data: the swarm
carries raw bytes, unicast the lz4 image, and neither gets a head start
from compression), its image captured by rdeploy, and the manifest
demodisk.check_disk compares a restored disk with.

    disk = build(folder, data_mib=64)   {"disk", "image", "manifest",
                                         "size", "data"}
"""

import os
import random
import subprocess

import demodisk
from diskimage.fs.fat.mtools import MTOOLS_ENV
from tests.rdeploy_helpers import rdeploy

MiB = 1 << 20
SECTOR = 512


def _files(folder, total, rng, prefix):
    """Random files of `total` bytes in all (4 MiB each at most) and a
    small text one, under `folder`."""
    os.makedirs(os.path.join(folder, "etc"), exist_ok=True)
    with open(os.path.join(folder, "etc", "hostname"), "w") as f:
        f.write("lab-pc\n")
    left, n = total, 0
    while left > 0:
        size = min(left, 4 * MiB)
        with open(os.path.join(folder, f"{prefix}{n}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
        left -= size
        n += 1


def build(folder, data_mib=64, seed=18):
    """A quarter of `data_mib` MiB of file data in the ESP, the rest in the
    ext4 root; each filesystem about 1.3 times its data."""
    folder = os.fspath(folder)
    rng = random.Random(seed)
    fat_data = max(1, data_mib // 4) * MiB
    ext_data = data_mib * MiB - fat_data
    fat_size = max(12 * MiB, fat_data * 4 // 3 // MiB * MiB + 2 * MiB)
    ext_size = ext_data * 4 // 3 // MiB * MiB + 8 * MiB
    parts = [(1, "fat16", "LABESP", MiB, fat_size),
             (2, "ext4", "lab-root", 2 * MiB + fat_size, ext_size)]
    size = parts[-1][3] + ext_size + 2 * MiB
    disk = os.path.join(folder, "lab-disk.img")
    with open(disk, "wb") as f:
        f.truncate(size)
    subprocess.run(
        ["sfdisk", "-q", disk], check=True, capture_output=True,
        input=("label: gpt\n" + "".join(
            f"start={start // SECTOR}, size={psize // SECTOR}, "
            f"type={'uefi' if fs == 'fat16' else 'linux'}, name={label}\n"
            for _, fs, label, start, psize in parts)).encode())
    manifest = {"table": "gpt", "size": size, "partitions": {}}
    for number, fs, label, start, psize in parts:
        tree = os.path.join(folder, f"tree{number}")
        _files(tree, fat_data if fs == "fat16" else ext_data, rng,
               f"blob{number}-")
        if fs == "fat16":
            subprocess.run(["mkfs.fat", "-F", "16", "-n", label, "--offset",
                            str(start // SECTOR), disk, str(psize // 1024)],
                           check=True, capture_output=True)
            subprocess.run(["mcopy", "-s", "-Q", "-i", f"{disk}@@{start}",
                            *[os.path.join(tree, e)
                              for e in sorted(os.listdir(tree))], "::/"],
                           check=True, capture_output=True, env=MTOOLS_ENV)
        else:
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", tree,
                            "-E", f"offset={start}", disk,
                            f"{psize // 1024}k"],
                           check=True, capture_output=True)
        manifest["partitions"][number] = {
            "fs": fs, "label": label, "start": start, "size": psize,
            "files": demodisk.digest_tree(tree)}
    image = os.path.join(folder, "lab.rdi")
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    return {"disk": disk, "image": image, "manifest": manifest,
            "size": size, "data": data_mib * MiB}


def fsck_clean(target, manifest):
    """Problems fsck (e2fsck -fn, fsck.fat -n) finds on each partition of
    `target`, as a list (empty: clean)."""
    problems = []
    for number, part in manifest["partitions"].items():
        clean, output = demodisk.fsck(target, part["start"], part["size"],
                                      part["fs"])
        if not clean:
            problems.append(f"{target} partition {number}: {output[-300:]}")
    return problems
