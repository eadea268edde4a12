"""Image operations: describe, verify, split, join, recompress, convert to
raw/qcow2/vhd (checked with qemu-img compare) and import back."""

import json
import os
import shutil
import subprocess

import pytest

import demodisk
from diskimage.image.reader import ImageReader

from tests.imgx_helpers import demo_image, ok, tool

needs_qemu_img = pytest.mark.needs("qemu-img")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    _, image, manifest, tmp = demo_image(tmp_path_factory, "imgx-ops", 60)
    raw = tmp / "reference.raw"
    ok("convert", image, raw, "--to=raw")
    return image, manifest, raw


def _volumes(image):
    with ImageReader(str(image)) as reader:
        return list(reader.source.paths)


def test_convert_raw_is_sparse_and_checks_out(demo):
    image, manifest, raw = demo
    st = os.stat(raw)
    assert st.st_size == manifest["size"]
    assert st.st_blocks * 512 < st.st_size // 2
    assert demodisk.check_disk(raw, manifest) == []


def test_describe_split_join_recompress_keep_the_disk(demo, tmp_path):
    golden, _, raw = demo
    image = tmp_path / "work.rdi"
    shutil.copy(golden, image)
    ok("describe", image, "lab image, Nov 2026")
    info = json.loads(ok("info", image, "--json"))
    assert info["description"] == "lab image, Nov 2026"

    ok("split", image, "1M")
    volumes = _volumes(image)
    assert len(volumes) > 3
    assert all(os.path.getsize(v) <= 1 << 20 for v in volumes)
    ok("verify", image)
    assert ok("ls", f"{image}:1/")                # browsing split volumes

    ok("join", image, f"--output={tmp_path / 'joined.rdi'}")
    assert _volumes(tmp_path / "joined.rdi") == [str(tmp_path /
                                                     "joined.rdi")]
    ok("recompress", tmp_path / "joined.rdi", "--compress=zstd",
       "--level=5")
    info = json.loads(ok("info", tmp_path / "joined.rdi", "--json"))
    assert set(info["chunk_codecs"]) <= {"zstd", "none"}
    assert info["compression"] == {"codec": "zstd", "level": 5}
    assert info["description"] == "lab image, Nov 2026"
    ok("convert", tmp_path / "joined.rdi", tmp_path / "back.raw",
       "--to=raw")
    assert demodisk.sha256_file(tmp_path / "back.raw") == demodisk.sha256_file(raw)


@needs_qemu_img
@pytest.mark.parametrize("kind, qemu_format", [("qcow2", "qcow2"),
                                               ("vhd", "vpc")])
def test_convert_and_import_with_qemu_img(demo, tmp_path, kind,
                                          qemu_format):
    image, manifest, raw = demo
    out = tmp_path / f"disk.{kind}"
    ok("convert", image, out, f"--to={kind}")
    info = json.loads(tool("qemu-img", "info", "--output=json", out))
    assert info["format"] == qemu_format
    tool("qemu-img", "compare", "-f", "raw", "-F", qemu_format, raw, out)
    back = tmp_path / "imported.rdi"
    ok("import", out, back, "--description=from qemu")
    assert ok("diff", image, back) == b""
    ok("convert", back, tmp_path / "again.raw", "--to=raw")
    # VHD rounds the disk up to its CHS geometry; the bytes that matter
    # (the whole source disk) must be the same.
    result = subprocess.run(["cmp", "-n", str(manifest["size"]), raw,
                             tmp_path / "again.raw"], capture_output=True)
    assert result.returncode == 0, result.stdout
