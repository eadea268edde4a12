"""Build the seed corpus of D1's fuzz targets from real structures:
images captured by the project's own capture from disks partitioned by
sfdisk and sgdisk (with a FAT made by mkfs.fat, an unknown partition of
bytes, holes), the partition tables of such disks, TFTP packets as
clients send them, HTTP requests as browsers, curl and firmware send
them, and site files as pxeconf writes them.  Rerunnable: each seed is
rewritten in place (same name, same bytes for the same tools), nothing
else in the corpus is touched.

    .venv/bin/python tests/fuzz/seeds.py [TARGET...]

Images are written by the current writer; seeds of an older format
version (corpus/image/v1.0-*) were made by the writer of that version and
are kept, committed, since today's writer no longer makes them.
"""

import io
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from diskimage.capture import capture                       # noqa: E402
from diskimage.image import format as fmt                   # noqa: E402
from diskimage.image.compression import Compressor          # noqa: E402
from diskimage.image.volumeout import StreamOutput          # noqa: E402
from diskimage.tables.write import gpt_writes               # noqa: E402
from tests.fuzz import targets_index as index               # noqa: E402

KiB = 1024


def _run(*argv, stdin=None):
    subprocess.run(argv, input=stdin, check=True, capture_output=True)


def _disk(path, size, script):
    with open(path, "wb") as f:
        f.truncate(size)
    _run("sfdisk", "-q", "--no-reread", "--no-tell-kernel", path,
         stdin=script.encode())


def _put(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _save(name, target, data):
    folder = os.path.join(index.CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def _version():
    return f"v{fmt.VERSION_MAJOR}.{fmt.VERSION_MINOR}"


# -- disks ---------------------------------------------------------------

def disks(tmp):
    """name -> path of small real disks: tables by sfdisk and sgdisk."""
    made = {}
    mbr = os.path.join(tmp, "mbr.img")
    _disk(mbr, 256 * KiB, "label: dos\nlabel-id: 0x1234abcd\n"
          "start=8, size=120, type=c, bootable\n"
          "start=128, size=380, type=5\n"
          "start=136, size=100, type=83\n"
          "start=244, size=100, type=82\n"
          "start=352, size=150, type=7\n")
    _run("mkfs.fat", "-F", "12", "-S", "512", "--offset", "8", "-n", "SEEDFAT",
         mbr, "60")
    _put(mbr, 136 * 512, b"partition five " * 300)
    made["mbr"] = mbr
    gpt = os.path.join(tmp, "gpt.img")
    _disk(gpt, 256 * KiB, "label: gpt\nfirst-lba: 34\n"
          "start=34, size=100, name=\"EFI system\", type=U\n"
          "start=134, size=200, name=data, type=L\n"
          "start=334, size=100, name=\"\\x00odd name\"\n")
    _put(gpt, 134 * 512, bytes(range(256)) * 40)
    made["gpt"] = gpt
    # sfdisk 2.38 and sgdisk write 4096-byte sectors only on such a device
    # (none here): this one is the project's own GPT writer's.
    gpt4k = os.path.join(tmp, "gpt4k.img")
    with open(gpt4k, "wb") as f:
        f.truncate(192 * KiB)
    parts = [dict(number=1, start=6 * 4096, size=20 * 4096, name="one",
                  type="c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                  uuid="11111111-2222-3333-4444-555555555555"),
             dict(number=3, start=26 * 4096, size=10 * 4096, name="three",
                  type="0fc63daf-8483-4772-8e79-3d69d8477de4",
                  uuid="66666666-2222-3333-4444-555555555555", attrs=4)]
    for offset, data in gpt_writes(parts, 192 * KiB, 4096,
                                   "aaaaaaaa-2222-3333-4444-555555555555",
                                   bytes(512)):
        _put(gpt4k, offset, data)
    made["gpt4k"] = gpt4k
    sg = os.path.join(tmp, "sgdisk.img")
    with open(sg, "wb") as f:
        f.truncate(192 * KiB)
    _run("sgdisk", "-a", "1", "-n", "1:34:133", "-t", "1:ef00", "-c",
         "1:ESP", "-n", "2:134:300", "-t", "2:8300", "-A", "2:set:2", sg)
    made["sgdisk"] = sg
    hybrid = os.path.join(tmp, "hybrid.img")
    with open(sg, "rb") as src, open(hybrid, "wb") as dst:
        dst.write(src.read())
    _run("sgdisk", "-h", "1:EE", hybrid)
    made["hybrid"] = hybrid
    return made


# -- targets -------------------------------------------------------------

def image_seeds(tmp, made):
    runs = [("mbr", "lz4", 16 * KiB, False), ("gpt", "zstd", 32 * KiB, False),
            ("sgdisk", "none", 4 * KiB, True), ("gpt", "lz4", 4 * KiB, True)]
    for disk, codec, chunk, raw in runs:
        out = io.BytesIO()
        capture(made[disk], StreamOutput(out), compressor=Compressor(codec),
                raw=raw, threads=1, chunk_size=chunk,
                source_label=f"/dev/{disk}", description="fuzz seed")
        data = _fixed_time(out.getvalue())
        _save(f"{_version()}-{disk}-{codec}-{chunk // KiB}k"
              f"{'-raw' if raw else ''}.rdi", "image", data)


def _fixed_time(data):
    """The same image whatever the day: the capture time in the metadata
    replaced, and the checks made right again."""
    from tests.fuzz.targets import image
    stamp = data.find(b'"created":"')
    if stamp < 0:
        return data
    start = stamp + len(b'"created":"')
    data = data[:start] + b"2026-12-01T00:00:00+00:00" + data[start + 25:]
    return image.resealed(data, rebuild=False)


def table_seeds(made):
    for name, path in made.items():
        with open(path, "rb") as f:
            _save(f"{name}.disk", "tables", f.read())


def tftp_seeds():
    sep = b"|#|"
    ack = [b"\0\4" + n.to_bytes(2, "big") for n in range(8)]
    seeds = {
        "rrq-plain": b"\0\1pxelinux.0\0octet\0" + sep + sep.join(ack),
        "rrq-options": b"\0\1/pxelinux.0\0octet\0blksize\0001468\0tsize\0"
                       b"0\0windowsize\0004\0" + sep + sep.join(ack),
        "rrq-netascii": b"\0\1pxelinux.cfg/default\0netascii\0timeout\0001"
                        b"\0" + sep + sep.join(ack[:3]),
        "rrq-error": b"\0\1pxelinux.0\0octet\0" + sep + b"\0\5\0\1gone\0",
        "rrq-missing": b"\0\1nothing/here\0octet\0",
        "rrq-dir": b"\0\1pxelinux.cfg\0OCTET\0",
        "rrq-symlink": b"\0\1out\0octet\0",
        "rrq-empty": b"\0\1empty\0octet\0tsize\0000\0" + sep + ack[0] + sep
                     + ack[1],
        "rrq-traversal": b"\0\1../etc/passwd\0octet\0",
        "wrq": b"\0\2upload\0octet\0",
        "ack": ack[1],
        "error": b"\0\5\0\4no\0",
    }
    for name, data in seeds.items():
        _save(name, "tftp", data)


SEEDERS = {"image": "image", "tables": "tables", "tftp": "tftp",
           "http": "http", "site": "site"}


def main(argv):
    wanted = argv or list(SEEDERS)
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as tmp:
        made = disks(tmp) if {"image", "tables"} & set(wanted) else {}
        if "image" in wanted:
            image_seeds(tmp, made)
        if "tables" in wanted:
            table_seeds(made)
    if "tftp" in wanted:
        tftp_seeds()
    if "http" in wanted:
        from tests.fuzz import seeds_net
        seeds_net.http_seeds(_save)
    if "site" in wanted:
        from tests.fuzz import seeds_net
        seeds_net.site_seeds(_save)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
