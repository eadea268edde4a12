"""Item 4 of issue 11 round 4: the runner's `PROG: error:` line shows the
exception's text escaped (cliutil.text.safe), as every other human line
does: an error naming a file or an entry read from an image must not
split the line, clear the screen or retitle the terminal.  The JSON error
event keeps the exact text."""

import json
import os
import subprocess
import sys

from diskimage.host.tools import tool_env

from tests.imgx_helpers import ROOT, tool

NAME = "evil\x1b]0;pwned\x07\x1b[2J\nimgx: ok.rdi"


def run(*args):
    return subprocess.run([sys.executable, "-m", *map(os.fspath, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env=tool_env(None))


def test_error_line_escapes_control_characters_of_a_name(tmp_path):
    result = run("imgx", "info", tmp_path / NAME)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0aimgx: ok.rdi" in \
        result.stderr, result.stderr


def test_error_line_escapes_an_entry_name_from_the_image(tmp_path):
    """A name read from inside the image (an ext4 directory made by
    mkfs.ext4 -d), named in the error of an edit that refuses it."""
    from tests.fsmaps import partitioned_disk
    from tests.imgx_helpers import capture_disk, imgx
    tree = tmp_path / "tree"
    (tree / "a\x1b[2Jb").mkdir(parents=True)
    fs = tmp_path / "fs.img"
    with open(fs, "wb") as f:
        f.truncate(8 << 20)
    tool("mkfs.ext4", "-q", "-F", "-d", tree, fs)
    disk = tmp_path / "disk.img"
    partitioned_disk(disk, [(fs, "ext4")])
    image = tmp_path / "x.rdi"
    capture_disk(disk, image)
    listing = imgx("ls", f"{image}:1/").stdout
    assert b"a\\x1b[2Jb" in listing, listing
    result = imgx("cat", f"{image}:1/a\x1b[2Jb")
    err = result.stderr.decode()
    assert result.returncode != 0 and err.count("\n") == 1, err
    assert "\x1b" not in err and "a\\x1b[2Jb" in err, err


def test_json_error_event_keeps_the_exact_text(tmp_path):
    result = run("rdeploy", "verify", tmp_path / NAME, "--progress=json")
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert event["event"] == "error" and NAME in event["message"], event


def test_sfx_warning_escapes_the_name_it_names(small_disk, tmp_path):
    """imgx sfx's warnings (a stale OUT.partial taken over) name OUT,
    which holds control characters here: shown escaped."""
    from tests.imgx_helpers import capture_disk, imgx
    disk = small_disk
    image = tmp_path / "x.rdi"
    capture_disk(disk, image)
    out = tmp_path / "o\x1b[2J.sfx"
    (tmp_path / "o\x1b[2J.sfx.partial").write_bytes(b"stale")
    binary = tmp_path / "bin"
    binary.write_bytes(open("/bin/true", "rb").read())
    result = imgx("sfx", image, "-o", out, f"--binary={binary}")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "warning" in err and "\x1b" not in err, err
    assert "o\\x1b[2J.sfx.partial" in err, err
