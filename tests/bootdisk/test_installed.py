"""Installed as a user installs it (issue 12): a fresh venv, `pip install`
of the project with the [freeze] extra (from a copy of the tree, so the
project's own build/ stays clean), no dist/, HOME and XDG_CACHE_HOME in
tmp.  Its `bootdisk iso --job=FILE -o OUT` freezes the toolkit into the
per-version cache (said in one line) and makes an ISO that boots in QEMU
(TCG, SeaBIOS, as a CD) to the job's result.  Slow: pip, PyInstaller and a
boot, several minutes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootdisk import qemu
from diskimage import __version__

from tests.bootdisk_helpers import console_tail, host_kernel

ROOT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 300
JOB = "echo job-ran-$((6 * 7)); rdeploy --version\n"


def _copy_of_the_tree(dest):
    """The files git tracks, as a user's download of the project holds."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    assert not (dest / "dist").exists()


@pytest.mark.boot
@pytest.mark.needs("git", "qemu-system-x86_64")
def test_a_pip_installed_bootdisk_makes_a_bootable_iso(tmp_path):
    host_kernel()
    src = tmp_path / "src"
    _copy_of_the_tree(src)
    venv = tmp_path / "venv"
    python = os.path.join(sys.base_prefix, "bin", "python3")
    subprocess.run([python, "-m", "venv", venv], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CACHE_HOME", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(tmp_path / "home"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    installed = subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "-q",
         "--disable-pip-version-check", f"{src}[freeze]"],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]

    work = tmp_path / "work"        # not the tree: nothing of it is seen
    work.mkdir()
    (work / "job.sh").write_text(JOB)
    result = subprocess.run(
        [venv / "bin/bootdisk", "iso", "--job=job.sh", "-o", "boot.iso",
         "--timeout=1", "--on-failure=reboot"],
        cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "cache" / "rdeploy-toolkit" / __version__ / \
        "deploytool"
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"bootdisk: no frozen toolkit found; building it with PyInstaller "
        f"into {cache} (minutes, once per version; `bootdisk toolkit` "
        f"does this step alone)")
    assert lines[-1].startswith("bootdisk: wrote ISO boot.iso: kernel ")
    assert len(lines) == 2, result.stderr
    assert os.access(cache, os.X_OK)

    with qemu.Boot(qemu.base_args() + ["-cdrom", work / "boot.iso"]) as boot:
        code = boot.wait(BOOT_TIMEOUT)
    out = boot.output
    assert "bootdisk: job finished: exit 0" in out, console_tail(boot)
    assert "job-ran-42" in out and f"rdeploy {__version__}" in out
    assert code == 0
