"""Damaged images: every flipped byte, random corruption, truncation and a
future format version are caught by verify and restore, with the exit code
and one-line message a user sees.

The disks are built with sfdisk and mkfs.ext4; rdeploy runs as a subprocess
(except for the byte-by-byte sweeps, which call diskimage.image.verify and
a restore into a scratch file in-process, for speed).  Format 1.1 checks the
stored bytes of every chunk (CRC-32) besides its content (BLAKE3-256), so
no flip at all may pass: not even one inside an lz4 block that decodes to
the very same bytes, which format 1.0 could not see.
"""

import io
import os
import random
import re
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from diskimage.image import format as fmt
from diskimage.image.compression import decompress
from diskimage.errors import (CorruptImageError, DiskImageError, InputError,
                              UnsupportedError)
from diskimage.image.reader import RecordStream
from diskimage.restore import plan_restore, run_restore
from diskimage.image.verify import verify
from diskimage.image.volumes import PipeInput
from tests.smalldisk import (DISK_SIZE, GPT_BACKUP, SECTOR, KiB, MiB,
                             has_partitions, marked, read_at, sfdisk,
                             sha256)

ROOT = Path(__file__).resolve().parents[2]
TRUNCATED = re.compile(r"truncated|ends early|incomplete", re.I)

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4")


# --- helpers -----------------------------------------------------------------
def rdeploy(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("RDEPLOY_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                          env=env, cwd=ROOT, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def run_all(calls):
    """Run rdeploy argument lists three at a time; results in order."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda args: rdeploy(*args), calls))


def error_line(result):
    """The single line rdeploy printed on stderr."""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr.decode()
    assert lines[0].startswith("rdeploy: error: "), lines[0]
    return lines[0]


def build_other_disk(path):
    """Another 64 MiB disk, other layout, with bytes all over its first MiB."""
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    sfdisk(path, "label: gpt\nstart=4096, size=20000, name=one\n"
                 "start=30000, size=40000, name=two\n"
                 "start=80000, size=40000, name=three\n")
    with open(path, "r+b") as f:
        for offset in (600 * KiB, 3 * MiB, 40 * MiB):
            f.seek(offset)
            f.write(b"OTHER DISK " * 4000)
    assert has_partitions(path)
    return path


def layout(data):
    """[(start, end, what, fields)] for every structure in image `data`."""
    stream = RecordStream(PipeInput(io.BytesIO(data)))
    meta_end = stream.position
    regions = [(0, fmt.FILE_HEADER.size, "header", None),
               (fmt.FILE_HEADER.size, meta_end, "meta", None)]
    for _, fields, _, offset in stream.records():
        payload = offset + fmt.RECORD_HEADER.size
        regions.append((offset, payload, "record header", fields))
        if fields["stored_size"]:
            regions.append((payload, payload + fields["stored_size"],
                            "payload", fields))
    trailer = len(data) - fmt.TRAILER.size
    regions.append((fmt.unpack_trailer(data[trailer:], trailer)
                    ["index_offset"], trailer, "index", None))
    regions.append((trailer, len(data), "trailer", None))
    return regions


def region_of(regions, offset):
    return next(r for r in regions if r[0] <= offset < r[1])


def flipped(data, offset):
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


def expected_error(offset):
    """What a flip at `offset` must raise: the magic is 'not an image', the
    major version 'unsupported', anything else 'damaged'."""
    if offset < len(fmt.MAGIC):
        return InputError, 3
    if offset < len(fmt.MAGIC) + 2:
        return UnsupportedError, 7
    return CorruptImageError, 4


def decodes_the_same(data, bad, region):
    """True when a flip inside an lz4 payload decodes to the original bytes
    (a match offset pointing into a run of equal bytes, say)."""
    start, end, what, fields = region
    if what != "payload" or fields["codec"] != fmt.CODEC_LZ4:
        return False
    length = fields["length"]
    try:
        return decompress(fmt.CODEC_LZ4, bad[start:end], length) == \
            decompress(fmt.CODEC_LZ4, data[start:end], length)
    except CorruptImageError:
        return False


def _verify(damaged, scratch):
    verify(PipeInput(io.BytesIO(damaged)), threads=1)


def _restore(damaged, scratch):
    """Restore `damaged` from a stream into the new file `scratch`, as
    `rdeploy restore - FILE` does; a failed restore must leave no file."""
    try:
        run_restore(plan_restore(RecordStream(PipeInput(io.BytesIO(
            damaged))), str(scratch)), threads=1)
    except BaseException:
        assert not scratch.exists(), "a restore that failed left its target"
        raise
    scratch.unlink()


def sweep(data, offsets, check=_verify, scratch=None):
    """Run `check` (verify, or a restore into the file `scratch`) on `data`
    with each byte of `offsets` flipped, in-process; return the offsets
    that passed.  Every failure must be the expected class, and a
    CorruptImageError must name the image offset."""
    passed = []
    for offset in offsets:
        cls, _ = expected_error(offset)
        try:
            check(flipped(data, offset), scratch)
        except cls as exc:
            if cls is CorruptImageError:
                assert "image offset" in str(exc), (offset, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - say which byte
            pytest.fail(f"flip at {offset}: {type(exc).__name__}: {exc}")
        passed.append(offset)
    return passed


# --- fixtures ----------------------------------------------------------------
@pytest.fixture
def scratch(tmp_path):
    """The path of a scratch restore target: in memory (/dev/shm) where
    there is one, since a sweep creates and removes it thousands of times
    (4 ms an unlink on this disk, 0.1 ms in tmpfs)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile
        with tempfile.TemporaryDirectory(dir=shm) as d:
            yield Path(d) / "scratch.img"
    else:
        yield tmp_path / "scratch.img"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 256 KiB GPT disk (4-entry table): partition 1 holds 4 KiB of data,
    partition 2 is all zeros; captured with lz4 and with none."""
    d = tmp_path_factory.mktemp("small")
    disk = d / "small.img"
    with open(disk, "wb") as f:
        f.truncate(256 * KiB)
    sfdisk(disk, "label: gpt\ntable-length: 4\nfirst-lba: 4\n"
                 "start=4, size=8, name=a\nstart=12, size=400, name=b\n")
    with open(disk, "r+b") as f:
        f.seek(4 * SECTOR)
        f.write(random.Random(7).randbytes(1024) + b"rdeploy " * 384)
    images = {}
    for codec in ("lz4", "none"):
        image = d / f"small-{codec}.rdi"
        result = rdeploy("capture", disk, image, f"--compress={codec}", "-q")
        assert result.returncode == 0, result.stderr
        images[codec] = image.read_bytes()
    return images


@pytest.fixture(scope="module")
def big(tmp_path_factory, small_disk_ro, small_images_ro):
    """A 64 MiB disk and its lz4 image (a few MiB; the session's, read-only),
    plus another disk of the same size to restore over, in a directory of
    their own for the damaged copies."""
    d = tmp_path_factory.mktemp("big")
    disk, image = small_disk_ro, small_images_ro["image"]
    data = image.read_bytes()
    regions = layout(data)
    codecs = {r[3]["codec"] for r in regions if r[2] == "payload"}
    assert fmt.CODEC_LZ4 in codecs
    assert 1 * MiB < len(data) < 8 * MiB
    return {"dir": d, "disk": disk, "image": image, "data": data,
            "regions": regions, "other": build_other_disk(d / "other.img")}


# --- every byte of a small image ---------------------------------------------
@pytest.mark.parametrize("codec", ["lz4", "none"])
def test_every_flipped_byte_is_caught_by_verify(small, codec):
    data = small[codec]
    regions = layout(data)
    tags = {r[3]["tag"] for r in regions if r[3] is not None}
    assert tags == {fmt.TAG_DATA, fmt.TAG_ZERO}
    assert 2 * KiB < len(data) < 16 * KiB
    verify(PipeInput(io.BytesIO(data)), threads=1)   # the clean image passes
    assert sweep(data, range(len(data))) == []


def test_every_flipped_byte_is_caught_by_restore(small, scratch):
    data = small["lz4"]
    _restore(data, scratch)                 # the clean image restores
    assert sweep(data, range(len(data)), _restore, scratch) == []


def test_no_flip_in_an_lz4_payload_passes(small, scratch):
    """The case 1.0 let through: flips inside an lz4 block that decode to
    the very same bytes.  The image has some; each is reported."""
    data = small["lz4"]
    regions = layout(data)
    same = [o for o in range(len(data))
            if decodes_the_same(data, flipped(data, o), region_of(regions, o))]
    assert same, "the image has no flip that decodes the same"
    assert sweep(data, same) == []
    assert sweep(data, same, _restore, scratch) == []


# --- random corruption of a larger image -------------------------------------
def _offsets(big):
    """1,000 seeded random offsets, plus one in each kind of structure."""
    data, regions = big["data"], big["regions"]
    rng = random.Random(2024)
    chosen = rng.sample(range(len(data)), 1000)
    lz4 = [r for r in regions if r[2] == "payload"
           and r[3]["codec"] == fmt.CODEC_LZ4][1]
    in_lz4 = next(o for o in range(lz4[0] + 100, lz4[1])
                  if not decodes_the_same(data, flipped(data, o), lz4))
    fixed = [3, 9, 30,                                   # magic, version, CRC
             fmt.FILE_HEADER.size + 20,                  # META record header
             regions[1][1] - 5,                          # META payload
             regions[2][0] + 10,                         # first record header
             in_lz4,                                     # an lz4 payload
             regions[-2][0] + fmt.RECORD_HEADER.size + 7,  # index entries
             len(data) - 40]                             # trailer
    return fixed, chosen


def test_random_corruption_caught_by_verify_in_process(big):
    fixed, chosen = _offsets(big)
    assert sweep(big["data"], fixed + chosen) == []


def test_random_corruption_caught_by_restore_in_process(big, scratch):
    fixed, chosen = _offsets(big)
    _restore(big["data"], scratch)          # the clean image restores
    assert sweep(big["data"], fixed + chosen, _restore, scratch) == []


def _sample(big, count=20):
    """The offsets checked through the command: every fixed one, then
    random ones that change decoded bytes."""
    data, regions = big["data"], big["regions"]
    fixed, chosen = _offsets(big)
    extra = [o for o in chosen if not decodes_the_same(
        data, flipped(data, o), region_of(regions, o))]
    return fixed + extra[:count - len(fixed)]


def _write_corrupt(big, offset):
    path = big["dir"] / f"bad-{offset}.rdi"
    path.write_bytes(flipped(big["data"], offset))
    return path


def test_random_corruption_caught_by_verify_command(big):
    sample = _sample(big)
    results = run_all([("verify", _write_corrupt(big, o)) for o in sample])
    for offset, result in zip(sample, results):
        _, code = expected_error(offset)
        assert result.returncode == code, (offset, result.stderr)
        line = error_line(result)
        if code == 4:
            assert "chunk" in line or "image offset" in line, line
        elif code == 7:
            assert "version" in line, line
        assert result.stdout == b""


def test_random_corruption_fails_restore_into_new_file(big):
    sample = _sample(big)
    targets = [big["dir"] / f"new-{o}.img" for o in sample]
    results = run_all([("restore", _write_corrupt(big, o), t, "--yes")
                       for o, t in zip(sample, targets)])
    for offset, target, result in zip(sample, targets, results):
        assert result.returncode == expected_error(offset)[1], \
            (offset, result.stderr)
        error_line(result)
        assert not target.exists(), f"flip at {offset} left {target}"


def test_random_corruption_leaves_existing_target_without_table(big):
    sample = _sample(big)
    meta_end = big["regions"][1][1]
    index = next(r for r in big["regions"] if r[2] == "index")[0]
    trailer = len(big["data"]) - fmt.TRAILER.size
    # Read before the target is touched: the header and metadata, and what
    # names the image in the restore marker (the trailer, the index's
    # record header).
    first = [(0, meta_end), (index, index + fmt.RECORD_HEADER.size),
             (trailer, len(big["data"]))]
    before = sha256(big["other"])
    targets = []
    for offset in sample:
        target = big["dir"] / f"old-{offset}.img"
        subprocess.run(["cp", "--sparse=always", big["other"], target],
                       check=True)
        targets.append(target)
    results = run_all([("restore", _write_corrupt(big, o), t, "--yes")
                       for o, t in zip(sample, targets)])
    for offset, target, result in zip(sample, targets, results):
        if any(start <= offset < end for start, end in first):
            # Refused before the first write: nothing written.
            assert result.returncode == expected_error(offset)[1], \
                (offset, result.stderr)
            error_line(result)
            assert sha256(target) == before, offset
            continue
        # Found after the first write: exit 8, the cause and the state.
        assert result.returncode == 8, (offset, result.stderr)
        line = error_line(result)
        assert "chunk" in line or "image offset" in line or \
            TRUNCATED.search(line), line
        assert "the target was changed" in line, line
        assert target.stat().st_size == DISK_SIZE
        # No valid table: the guard zone holds the restore marker (the
        # target says it is incomplete), zeros after it, no backup GPT.
        assert marked(target), offset
        assert read_at(target, DISK_SIZE - GPT_BACKUP, GPT_BACKUP) == \
            bytes(GPT_BACKUP), offset
        assert not has_partitions(target), offset


# --- truncation --------------------------------------------------------------
def _cuts(big):
    data, regions = big["data"], big["regions"]
    payload = next(r for r in regions if r[2] == "payload")
    return {"in the header": 30,
            "in the metadata": regions[1][1] - 10,
            "in a chunk": payload[0] + (payload[1] - payload[0]) // 2,
            "before the index": regions[-2][0],
            "before the trailer": len(data) - fmt.TRAILER.size,
            "in the trailer": len(data) - 1}


def test_truncated_image_fails_verify_and_restore(big):
    cuts = _cuts(big)
    calls, targets = [], []
    for name, size in cuts.items():
        image = big["dir"] / f"cut-{size}.rdi"
        image.write_bytes(big["data"][:size])
        target = big["dir"] / f"cut-target-{size}.img"
        targets.append(target)
        calls += [("verify", image), ("restore", image, target, "--yes")]
    results = run_all(calls)
    for i, (name, size) in enumerate(cuts.items()):
        for result in results[2 * i:2 * i + 2]:
            assert result.returncode == 4, (name, result.stderr)
            assert TRUNCATED.search(error_line(result)), (name, result.stderr)
        assert not targets[i].exists(), name


def test_truncated_image_fails_info(big):
    image = big["dir"] / "cut-info.rdi"
    image.write_bytes(big["data"][:len(big["data"]) - fmt.TRAILER.size])
    result = rdeploy("info", image)
    assert result.returncode == 4, result.stderr
    assert TRUNCATED.search(error_line(result))


def test_truncated_stream_through_a_pipe_fails_restore(big):
    def restore_piped(size, target):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run(
            ["bash", "-c", 'head -c "$1" "$2" | "$3" -m rdeploy restore - '
             '"$4" --yes', "_", str(size), str(big["image"]), sys.executable,
             str(target)], env=env, cwd=ROOT, capture_output=True, timeout=60)

    cuts = _cuts(big)
    targets = [big["dir"] / f"pipe-target-{size}.img"
               for size in cuts.values()]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(restore_piped, cuts.values(), targets))
    for (name, _), target, result in zip(cuts.items(), targets, results):
        assert result.returncode == 4, (name, result.stderr)
        assert TRUNCATED.search(error_line(result)), (name, result.stderr)
        assert not target.exists(), name


# --- a future format version -------------------------------------------------
def test_version_2_image_is_refused(big):
    header = fmt.FILE_HEADER.unpack(big["data"][:fmt.FILE_HEADER.size])
    header.update(version_major=2, version_minor=0, header_crc32=0)
    raw = fmt.FILE_HEADER.pack(**header)
    raw = raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))
    image = big["dir"] / "v2.rdi"
    image.write_bytes(raw + big["data"][fmt.FILE_HEADER.size:])
    target = big["dir"] / "v2-target.img"
    results = run_all([("verify", image), ("info", image),
                       ("restore", image, target, "--yes")])
    for result in results:
        assert result.returncode == 7, result.stderr
        line = error_line(result)
        assert "version 2.0" in line, line
    assert not target.exists()


def test_a_newer_minor_version_is_refused_naming_it(big):
    header = fmt.FILE_HEADER.unpack(big["data"][:fmt.FILE_HEADER.size])
    header.update(version_minor=2, header_crc32=0)
    raw = fmt.FILE_HEADER.pack(**header)
    raw = raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))
    image = big["dir"] / "v12.rdi"
    image.write_bytes(raw + big["data"][fmt.FILE_HEADER.size:])
    target = big["dir"] / "v12-target.img"
    results = run_all([("verify", image), ("info", image),
                       ("restore", image, target, "--yes")])
    for result in results:
        assert result.returncode == 7, result.stderr
        assert "format 1.2 is newer than this tool reads (1.0 and 1.1); " \
            "use a newer rdeploy" in error_line(result)
    assert not target.exists()
