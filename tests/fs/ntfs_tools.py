"""What the NTFS used-map tests share: making volumes with mkntfs, filling
them through ntfs-3g, reading them with ntfsinfo, checking a map by a
map-only restore."""

import hashlib
import os
import re
import subprocess

import demodisk
from diskimage.host import fuse
from diskimage.fs.ntfs import used as ntfs
from tests.fsmaps import map_only_restore

KiB, MiB = 1 << 10, 1 << 20


def run(*args):
    return subprocess.run([str(a) for a in args], check=True, text=True,
                          capture_output=True,
                          stdin=subprocess.DEVNULL).stdout


def mkntfs(path, size, *extra):
    with open(path, "wb") as f:
        f.truncate(size)
    run("mkntfs", "-F", "-Q", "-L", "test-ntfs", *extra, path)
    return path


def mounted(image, tmp_path):
    return fuse.ntfs_mount(image, os.fspath(tmp_path / "mnt"), "rw")


def file_reader(path):
    fd = os.open(path, os.O_RDONLY)
    return lambda offset, length: os.pread(fd, length, offset)


def bytes_reader(data):
    return lambda offset, length: bytes(data[offset:offset + length])


def map_image(path):
    return ntfs.open_volume(file_reader(path), os.path.getsize(path))


def ntfsinfo(path):
    """ntfsinfo -m's own numbers, and ntfscluster --info's size of the
    volume (the clusters' bytes)."""
    out = run("ntfsinfo", "-m", path) + run("ntfscluster", "--info", path)
    number = lambda label: int(re.search(rf"^\s*{label}\s*:\s*(\d+)", out,
                                         re.M).group(1))
    # ntfscluster mislabels its counts ("sectors per volume" is the
    # cluster count) but agrees on the free clusters.
    assert number("clusters of free space") == number("Free Clusters")
    return {"cluster": number("Cluster Size"),
            "sector": number("Sector Size"),
            "clusters": number("Volume Size in Clusters"),
            "free": number("Free Clusters"),
            "bytes": number("bytes per volume"),
            "record": number("MFT Record Size"),
            "mft_lcn": number("LCN of Data Attribute for FILE_MFT")}


def mft_runlist(path, inode=0):
    """(vcn, lcn, count) of the $DATA of `inode` as `ntfsinfo -v` prints
    it, all extents."""
    out = run("ntfsinfo", "-i", inode, "-v", path)
    runs, in_data = [], False
    for line in out.splitlines():
        if line.startswith("Dumping attribute"):
            in_data = line.startswith("Dumping attribute $DATA")
        elif in_data and re.match(r"\t\t\t0x", line):
            vcn, lcn, count = line.split()
            if lcn == "<RL_NOT_MAPPED>":    # VCNs held by another extent
                continue
            runs.append((int(vcn, 16), None if lcn == "<HOLE>"
                         else int(lcn, 16), int(count, 16)))
    return runs, out


def check_restore(image, used, expected, tmp_path):
    target = map_only_restore(image, tmp_path / "target.img", used.runs)
    size = os.path.getsize(target)
    clean, output = demodisk.fsck(target, 0, size, "ntfs")
    assert clean, output
    assert demodisk.read_files(target, 0, size, "ntfs") == expected


def write(path, data, expected, root):
    with open(path, "wb") as f:
        f.write(data)
    expected[os.path.relpath(path, root)] = hashlib.sha256(data).hexdigest()


def interleave_until_full(mnt, names, chunk, rng):
    """Append `chunk` bytes to each file in turn until the volume is full:
    on a fresh volume every file ends up in runs of one chunk.  Returns
    {name: sha256} of what the files hold."""
    files = [os.open(os.path.join(mnt, n), os.O_CREAT | os.O_WRONLY)
             for n in names]
    try:
        while all(os.write(fd, rng.randbytes(chunk)) for fd in files):
            pass
    except OSError:
        pass
    finally:
        for fd in files:
            os.close(fd)
    result = {}
    for name in names:
        with open(os.path.join(mnt, name), "rb") as f:
            result[name] = hashlib.sha256(f.read()).hexdigest()
    return result
