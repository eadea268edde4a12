"""Text from an image (its description, filesystem labels, edit history) is
shown with control characters escaped, so that it cannot clear the screen,
move the cursor, rewrite a line or add lines of its own; `--json` keeps the
exact text (issue 11 round 2 item 2)."""

import json
import os
import pty
import subprocess
import sys

import pytest

from cliutil.text import safe
from tests import needs
from tests.imgx_helpers import imgx, one_line_error
from tests.smalldisk import MiB, sfdisk
from tests.rdeploy_helpers import ROOT, env, rdeploy

EVIL = "fine\x1b[2J\rGONE\nextra line\x07\x9b31m"
LABEL = "L\x1b[31mX\rY"    # 10 bytes: fits ext4's 16
DIRNAME = "d\x1b[2J\rx"


def test_safe_escapes_what_a_terminal_acts_on():
    assert safe("plain name.txt") == "plain name.txt"
    assert safe("a\nb\rc\x1b[2J\x07\x7f") == "a\\x0ab\\x0dc\\x1b[2J\\x07\\x7f"
    assert safe("C1 \x9b31m") == "C1 \\x9b31m"
    assert safe("not utf-8 \udcff") == "not utf-8 \\xff"
    # Unicode line breaks and bidirectional overrides reorder or split
    # what the terminal shows; a lone surrogate could not be printed.
    assert safe("a\u2028b\u202ec\u2066d\ud800") == \
        "a\\u2028b\\u202ec\\u2066d\\ud800"
    assert safe("Grüße, 日本") == "Grüße, 日本"


@pytest.fixture(scope="module")
def evil_image(tmp_path_factory):
    """An ext4 disk whose label holds ESC and CR, captured with a
    description holding ESC, CR, a newline, BEL and a C1 CSI."""
    tmp = tmp_path_factory.mktemp("evil")
    disk = tmp / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(40 * MiB)
    sfdisk(disk, "label: gpt\nstart=2048, size=75776, name=sys\n")
    root = tmp / "root"
    (root / DIRNAME).mkdir(parents=True)
    (root / DIRNAME / "inner.txt").write_bytes(b"inner\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", LABEL, "-d", str(root),
                    "-E", f"offset={MiB}", str(disk), "37M"], check=True,
                   capture_output=True)
    image = tmp / "evil.rdi"
    result = rdeploy("capture", disk, image, "-q", f"--description={EVIL}")
    assert result.returncode == 0, result.stderr.decode()
    return image


def assert_inert(text):
    """No byte a terminal acts on, other than the line ends."""
    for char in text:
        assert char == "\n" or not (ord(char) < 0x20 or
                                    0x7f <= ord(char) < 0xa0), repr(text)


def lines_with(text, word):
    return [line for line in text.splitlines() if word in line]


@pytest.mark.parametrize("prog", ["rdeploy", "imgx"])
def test_info_escapes_description_and_label(evil_image, prog):
    result = subprocess.run([sys.executable, "-m", prog, "info",
                             str(evil_image)], capture_output=True, env=env(),
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert_inert(out)
    [description] = lines_with(out, "description:")
    assert description.endswith(safe(EVIL)), description
    assert "extra line" not in out.replace(description, "")
    assert lines_with(out, safe(LABEL)), out


@pytest.mark.parametrize("prog", ["rdeploy", "imgx"])
def test_info_json_keeps_the_exact_text(evil_image, prog):
    result = subprocess.run([sys.executable, "-m", prog, "info", "--json",
                             str(evil_image)], capture_output=True, env=env(),
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode()
    info = json.loads(result.stdout)
    assert info["description"] == EVIL
    assert [a.get("label") for a in info["areas"] if a.get("label")] == \
        [LABEL]


def test_imgx_info_escapes_the_edit_history(evil_image, tmp_path):
    image = tmp_path / "edited.rdi"
    image.write_bytes(evil_image.read_bytes())
    (tmp_path / "f").write_bytes(b"x")
    name = "a\x1b]0;title\x07\rb"
    result = imgx("put", tmp_path / "f", f"{image}:1/{name}")
    assert result.returncode == 0, result.stderr.decode()
    result = imgx("info", image)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert_inert(out)
    [edited] = lines_with(out, "edited:")
    assert safe(name) in edited
    history = json.loads(imgx("info", "--json", image).stdout)["history"]
    assert name in history[-1]



def test_errors_naming_an_entry_of_the_image_escape_it(evil_image):
    """imgx cat of a directory: the one error line names it escaped."""
    result = imgx("cat", f"{evil_image}:1/{DIRNAME}")
    err = one_line_error(result, 3)
    assert_inert(err)
    assert safe(DIRNAME) in err and "not a regular file" in err
    for path in [f"{DIRNAME}/inner.txt/x", f"{DIRNAME}/missing"]:
        err = one_line_error(imgx("ls", f"{evil_image}:1/{path}"), 3)
        assert_inert(err)
        assert safe(DIRNAME) in err


@pytest.fixture
def loop_over_evil_name(tmp_path):
    """A loop device whose backing file's name holds ESC and CR: its
    "model" is `loop over PATH`."""
    needs.require("losetup", root=True)
    backing = tmp_path / "disk\x1b[2J\rx.img"
    with open(backing, "wb") as f:
        f.truncate(48 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)],
                         check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev, str(backing)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_list_escapes_what_the_kernel_reports(loop_over_evil_name,
                                              tmp_path):
    """A mount point's name is shown escaped in the MOUNTED column."""
    dev, _ = loop_over_evil_name
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True,
                   capture_output=True)
    point = tmp_path / "mnt\x1b[2J\rx"
    point.mkdir()
    subprocess.run(["mount", dev, str(point)], check=True)
    try:
        result = rdeploy("list")
        listed = json.loads(rdeploy("list", "--json").stdout)
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert_inert(out)
    assert safe(str(point)) in out
    assert {d["path"]: d for d in listed}[dev]["mounted_at"] == [str(point)]


def test_restore_prompt_escapes_the_target_model(evil_image,
                                                 loop_over_evil_name):
    """The question asked on a terminal names the target and its model."""
    dev, backing = loop_over_evil_name
    main, tty = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "rdeploy", "restore",
                                 str(evil_image), dev], stdin=tty,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env(), cwd=ROOT)
        os.write(main, b"no\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(main)
        os.close(tty)
    assert proc.returncode == 5, err.decode()
    assert_inert(err.decode())
    assert safe(f"loop over {backing}") in err.decode()


@pytest.fixture(scope="module")
def crafted_image(evil_image, tmp_path_factory):
    """The evil image's disk captured again with metadata an adversary
    wrote: the partition's filesystem kind holds ESC, CR and a newline."""
    from diskimage.capture import capture
    from diskimage.image.compression import Compressor
    from diskimage.image.reader import ImageReader
    from diskimage.image.volumeout import VolumeOutput

    with ImageReader(str(evil_image)) as reader:
        areas = reader.metadata["areas"]
    for area in areas:
        if area["kind"] == "partition":
            area["filesystem"] = EVIL
    image = tmp_path_factory.mktemp("crafted") / "crafted.rdi"
    capture(str(evil_image.parent / "disk.img"), VolumeOutput(str(image)),
            compressor=Compressor("lz4"), extra_metadata={"areas": areas})
    return image


def test_restore_dry_run_escapes_the_plan(crafted_image, tmp_path):
    result = rdeploy("restore", crafted_image, tmp_path / "t.img",
                     "--dry-run")
    assert result.returncode == 0, result.stderr.decode()
    assert_inert(result.stdout.decode())
    assert safe(EVIL) in result.stdout.decode()


def test_diff_escapes_why_it_could_not_compare(crafted_image):
    result = imgx("diff", crafted_image, crafted_image)
    assert result.returncode == 2, result.stderr.decode()
    err = result.stderr.decode()
    assert_inert(err)
    assert safe(EVIL) in err
