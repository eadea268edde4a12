"""What the rdeploy tests (and the tests of other commands that run rdeploy)
share: running rdeploy as a subprocess and reading its one error line."""

import os
import subprocess
import sys
from pathlib import Path

from tests.smalldisk import DISK_SIZE, KiB, sfdisk

ROOT = Path(__file__).resolve().parents[1]


def env():
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("RDEPLOY_DEBUG", None)
    return e


def command(*args):
    return [sys.executable, "-m", "rdeploy", *map(str, args)]


def rdeploy(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE):
    return subprocess.run(command(*args), env=env(), cwd=ROOT, stdin=stdin,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=60)


def error_line(result):
    """The single line rdeploy printed on stderr."""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, result.stderr.decode()
    return lines[0]


def check(result, code, *words):
    """Exit `code` and one error line holding every word (any case)."""
    assert result.returncode == code, result.stderr.decode()
    line = error_line(result)
    assert line.startswith("rdeploy: error: "), line
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def run(*cmd):
    return subprocess.run(list(map(str, cmd)), check=True, capture_output=True,
                          text=True).stdout.strip()


def leftovers(image):
    """Files next to `image` that could pass for it or its partial."""
    image = Path(image)
    return sorted(p.name for p in image.parent.iterdir()
                  if p.name.startswith(image.name))


def build_other_disk(path):
    """Another 64 MiB disk with another table and bytes in its first MiB."""
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    sfdisk(path, "label: gpt\nstart=4096, size=20000, name=one\n"
                 "start=30000, size=40000, name=two\n")
    with open(path, "r+b") as f:
        f.seek(600 * KiB)
        f.write(b"OTHER DISK " * 4000)
    return path


def slow_capture(source, image, *options):
    """`rdeploy capture` at lz4 level 12 on one thread (of the slow_source
    fixture: seconds), as a running process."""
    return subprocess.Popen(command("capture", source, image, "--level=12",
                                    "--threads=1", *options),
                            env=env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def install_trusted_key(tmp_path, monkeypatch):
    """What bootdisk --trust media hold: a public key in the trusted
    directory (made by the real `rdeploy keygen`), found through the
    environment variable the policy reads."""
    from diskimage.trust import keys as keyfiles, policy
    assert rdeploy("keygen", tmp_path / "k", "-q").returncode == 0
    key = keyfiles.load_public(tmp_path / "k.pub")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / f"{key.key_id}.pub").write_text(key.line())
    monkeypatch.setenv(policy.ENV, str(trusted))
