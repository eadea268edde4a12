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
    """name -> path of small real disks to capture: tables by sfdisk and
    sgdisk, a FAT by mkfs.fat, a partition of bytes, holes; fixed ids."""
    made = {}
    mbr = os.path.join(tmp, "mbr.img")
    _disk(mbr, 256 * KiB, "label: dos\nlabel-id: 0x1234abcd\n"
          "start=8, size=120, type=c, bootable\n"
          "start=128, size=380, type=5\n"
          "start=136, size=100, type=83\n"
          "start=244, size=100, type=82\n"
          "start=352, size=150, type=7\n")
    _run("mkfs.fat", "--invariant", "-F", "12", "-S", "512", "--offset", "8",
         "-n", "SEEDFAT", "-i", "5EEDFA75", mbr, "60")
    _put(mbr, 136 * 512, b"partition five " * 300)
    made["mbr"] = mbr
    gpt = os.path.join(tmp, "gpt.img")
    ids = "uuid=%s-2222-3333-4444-555555555555"
    _disk(gpt, 256 * KiB, "label: gpt\nlabel-id: EEEEEEEE-2222-3333-4444-"
          "555555555555\nfirst-lba: 34\n"
          f"start=34, size=100, name=\"EFI system\", type=U, "
          f"{ids % '11111111'}\n"
          f"start=134, size=200, name=data, type=L, {ids % '22222222'}\n"
          f"start=334, size=100, name=\"\\x00odd name\", "
          f"{ids % '33333333'}\n")
    _put(gpt, 134 * 512, bytes(range(256)) * 40)
    made["gpt"] = gpt
    sg = os.path.join(tmp, "sgdisk.img")
    with open(sg, "wb") as f:
        f.truncate(192 * KiB)
    _run("sgdisk", "-a", "1", "-U", "FFFFFFFF-2222-3333-4444-555555555555",
         "-n", "1:34:133", "-t", "1:ef00", "-c", "1:ESP", "-u",
         "1:44444444-2222-3333-4444-555555555555", "-n", "2:134:300",
         "-t", "2:8300", "-u", "2:55555555-2222-3333-4444-555555555555",
         "-A", "2:set:2", sg)
    made["sgdisk"] = sg
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


def table_disks(tmp):
    """Disks of 32 to 64 KiB (the tables target's MAX_LEN) with every kind
    of table the readers meet, fixed ids so a rerun writes the same
    bytes."""
    ids = "uuid=%s-2222-3333-4444-555555555555"
    made = {}
    path = os.path.join(tmp, "t-gpt4.disk")
    _disk(path, 32 * KiB, "label: gpt\nlabel-id: AAAAAAAA-2222-3333-4444-"
          "555555555555\nfirst-lba: 3\ntable-length: 4\n"
          f"start=3, size=20, name=one, {ids % '11111111'}\n"
          f"start=23, size=30, name=two, type=U, {ids % '22222222'}, "
          "attrs=\"RequiredPartition,GUID:60\"\n")
    made["gpt4"] = path
    path = os.path.join(tmp, "t-gpt128.disk")
    _disk(path, 48 * KiB, "label: gpt\nlabel-id: BBBBBBBB-2222-3333-4444-"
          "555555555555\nfirst-lba: 34\n"
          f"start=34, size=10, name=\"EFI system\", type=U, "
          f"{ids % '33333333'}\n"
          f"start=44, size=18, name=data, {ids % '44444444'}\n")
    made["gpt128"] = path
    path = os.path.join(tmp, "t-mbr.disk")
    _disk(path, 64 * KiB, "label: dos\nlabel-id: 0x1234abcd\n"
          "start=2, size=20, type=c, bootable\n"
          "start=22, size=4, type=ef\n"
          "start=26, size=100, type=5\n"
          "start=28, size=20, type=83\n"
          "start=50, size=20, type=82\n"
          "start=72, size=50, type=7\n")
    made["mbr"] = path
    path = os.path.join(tmp, "t-sgdisk.disk")
    with open(path, "wb") as f:
        f.truncate(48 * KiB)
    _run("sgdisk", "-a", "1", "-U", "CCCCCCCC-2222-3333-4444-555555555555",
         "-n", "1:34:43", "-t", "1:ef00", "-c", "1:ESP", "-u",
         "1:55555555-2222-3333-4444-555555555555", "-n", "2:44:60",
         "-t", "2:8300", "-u", "2:66666666-2222-3333-4444-555555555555",
         "-A", "2:set:2", path)
    made["sgdisk"] = path
    hybrid = os.path.join(tmp, "t-hybrid.disk")
    with open(path, "rb") as src, open(hybrid, "wb") as dst:
        dst.write(src.read())
    _run("sgdisk", "-h", "1:EE", hybrid)
    made["hybrid"] = hybrid
    # sfdisk 2.38 and sgdisk write 4096-byte sectors only on such a device
    # (none here): this one is the project's own GPT writer's.
    path = os.path.join(tmp, "t-gpt4k.disk")
    with open(path, "wb") as f:
        f.truncate(64 * KiB)
    parts = [dict(number=1, start=6 * 4096, size=2 * 4096, name="one",
                  type="c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                  uuid="77777777-2222-3333-4444-555555555555"),
             dict(number=3, start=8 * 4096, size=3 * 4096, name="three",
                  type="0fc63daf-8483-4772-8e79-3d69d8477de4",
                  uuid="88888888-2222-3333-4444-555555555555", attrs=4)]
    for offset, data in gpt_writes(parts, 64 * KiB, 4096,
                                   "dddddddd-2222-3333-4444-555555555555",
                                   bytes(512)):
        _put(path, offset, data)
    made["gpt4k"] = path
    return made


def table_seeds(tmp):
    for name, path in table_disks(tmp).items():
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
        if "image" in wanted:
            image_seeds(tmp, disks(tmp))
        if "tables" in wanted:
            table_seeds(tmp)
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
