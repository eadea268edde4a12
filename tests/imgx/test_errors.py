"""Bad paths, missing partitions, unsupported filesystems and damaged
images: one line on stderr and the documented exit code."""

import os
import subprocess

import pytest

import demodisk
from diskimage.image.reader import ImageReader

from tests.imgx_helpers import capture_disk, demo_image, imgx, ok, one_line_error


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_image(tmp_path_factory, "imgx-errors", 40)


def test_help_runs():
    out = ok("--help").decode()
    assert "Exit codes" in out and "IMAGE:N/path" in out


@pytest.mark.parametrize("args, code, words", [
    (["ls", "{image}"], 2, "IMAGE:N/path"),
    (["ls", "{image}:/"], 2, "3 filesystems"),
    (["ls", "{tmp}/missing.rdi:1/"], 3, "no such file"),
    (["ls", "{image}:9/"], 3, "no partition 9"),
    (["ls", "{image}:1/no/such/dir"], 3, "no such file or directory"),
    (["cat", "{image}:1/lost+found"], 3, "not a regular file"),
    (["get", "{image}:1/lost+found", "{tmp}/x"], 3, "use -R"),
    (["ls", "{disk}:1/"], 3, "not"),                  # not an image
    (["diff", "{image}", "{image}", "x"], 2, "partition number"),
    (["recompress", "{image}", "--compress=brotli"], 2, "unknown"),
    (["convert", "{image}", "{image}", "--to=raw"], 5, "exists"),
    (["convert", "{image}", "{tmp}/o.img", "--to=vmdk"], 2, "--to"),
])
def test_one_line_errors(demo, args, code, words):
    disk, image, _, tmp = demo
    args = [a.format(image=image, tmp=tmp, disk=disk) for a in args]
    assert words in one_line_error(imgx(*args), code)


def test_not_a_directory(demo):
    _, image, manifest, _ = demo
    top_file = next(r for r in manifest["partitions"][1]["files"]
                    if "/" not in r)
    one_line_error(imgx("ls", f"{image}:1/{top_file}/x"), 3)


def test_partition_not_captured(tmp_path):
    disk = tmp_path / "demo.img"
    demodisk.make_gpt_demo(disk, files=10)
    from diskimage.capture import capture
    from diskimage.image.compression import Compressor
    from diskimage.image.volumeout import VolumeOutput
    image = tmp_path / "part.rdi"
    capture(str(disk), VolumeOutput(str(image)), compressor=Compressor(),
            partitions=[1])
    assert "not captured" in one_line_error(imgx("ls", f"{image}:2/"), 3)
    ok("ls", f"{image}:/")        # the one filesystem it holds


def test_unsupported_filesystem(tmp_path):
    disk = tmp_path / "swap.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["sfdisk", "-q", disk], input=b"label: gpt\n,8M\n,\n",
                   check=True)
    swap = tmp_path / "swap.part"
    with open(swap, "wb") as f:
        f.truncate(7 << 20)
    subprocess.run(["mkswap", swap], check=True, capture_output=True)
    with open(disk, "r+b") as f:
        f.seek(1 << 20)
        f.write(swap.read_bytes())
    image = tmp_path / "swap.rdi"
    capture_disk(disk, image)
    err = one_line_error(imgx("ls", f"{image}:1/"), 7)
    assert "swap" in err
    one_line_error(imgx("ls", f"{image}:2/"), 7)     # nothing recognised


def _flip_chunk_of(image, start):
    """Flip a byte in the stored payload of the first data chunk at or
    after disk offset `start`."""
    with ImageReader(str(image)) as reader:
        entry = next(e for e in reader.entries
                     if not e.is_zero and e.disk_offset >= start)
    with open(image, "r+b") as f:
        at = entry.record_offset + 48 + entry.stored_size // 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_damaged_image(demo, tmp_path):
    _, golden, manifest, _ = demo
    image = tmp_path / "bad.rdi"
    image.write_bytes(golden.read_bytes())
    _flip_chunk_of(image, manifest["partitions"][2]["start"])
    err = one_line_error(imgx("ls", "-R", f"{image}:2/"), 4)
    assert "chunk" in err
    before = image.read_bytes()
    one_line_error(imgx("mkdir", f"{image}:2/newdir"), 4)
    assert image.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p != "bad.rdi"]
    one_line_error(imgx("verify", image), 4)


def test_truncated_image(demo, tmp_path):
    _, golden, _, _ = demo
    image = tmp_path / "cut.rdi"
    image.write_bytes(golden.read_bytes()[:-100])
    one_line_error(imgx("ls", f"{image}:1/"), 4)
