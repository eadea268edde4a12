"""An installed toolkit (no source tree, no `make freeze`) builds its frozen
binary itself: `bootdisk toolkit` freezes it with PyInstaller, from the
recipe installed with the package, into the per-version cache, and media
builds find it there; without PyInstaller the error names the extra to
install (issue 12).  Run from a copy of the packages, without dist/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools

from diskimage import __version__

from tests.bootdisk.test_closure import _python_without_pyinstaller
from tests.bootdisk_helpers import host_kernel

ROOT = Path(__file__).resolve().parents[2]
# The top-level packages an install has, found as setup.cfg finds them.
PACKAGES = sorted({name.split(".")[0] for name in setuptools.find_packages(
    ROOT, exclude=["tests", "tests.*", "bench", "bench.*", "build",
                   "build.*"])})


def _installed_like(tmp):
    """The packages alone, as an install has them: no dist/, no build/."""
    src = tmp / "src"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _env(tmp):
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(HOME=str(tmp / "home"), XDG_CACHE_HOME=str(tmp / "cache"))
    return env


def test_without_a_toolkit_or_pyinstaller_the_error_names_the_extra(
        tmp_path):
    host_kernel()
    python = _python_without_pyinstaller(tmp_path)
    src = _installed_like(tmp_path)
    job = tmp_path / "job.sh"
    job.write_text("true\n")
    out = tmp_path / "boot.iso"
    result = subprocess.run(
        [python, "-m", "bootdisk", "iso", f"--job={job}", "-o", out],
        cwd=src, env=_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 10, result.stderr      # a tool is missing
    cache = tmp_path / "cache" / "rdeploy-toolkit" / __version__ / \
        "deploytool"
    assert result.stderr == (
        f"bootdisk: error: no frozen toolkit binary ({cache} does not "
        f"exist) and PyInstaller is not installed to build it: pip install "
        f"'rdeploy-toolkit[freeze]', then `bootdisk toolkit`; or give "
        f"--toolkit\n")
    assert not out.exists() and not os.path.exists(f"{out}.partial")


def test_bootdisk_toolkit_freezes_into_the_per_version_cache(tmp_path):
    pytest.importorskip("PyInstaller")
    host_kernel()
    src, env = _installed_like(tmp_path), _env(tmp_path)

    def bootdisk(*args):
        return subprocess.run([sys.executable, "-m", "bootdisk", *args],
                              cwd=src, env=env, capture_output=True,
                              text=True)

    result = bootdisk("toolkit")
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "cache" / "rdeploy-toolkit" / __version__ / \
        "deploytool"
    assert result.stderr == (f"bootdisk: wrote toolkit {cache} "
                             f"({result.stderr.split('(')[-1]}")
    assert sorted(os.listdir(cache.parent)) == ["deploytool"]
    assert os.access(cache, os.X_OK)
    version = subprocess.run([cache, "bootdisk", "--version"], env={},
                             capture_output=True, text=True)
    assert version.stdout == f"bootdisk {__version__}\n"

    again = bootdisk("toolkit")
    assert again.returncode == 3
    assert again.stderr == (f"bootdisk: error: {cache}: exists (give "
                            f"--force to replace it)\n")

    # A medium build finds the cached toolkit: nothing frozen, nothing said
    out = tmp_path / "env.initrd"
    built = bootdisk("initrd", "-o", out)
    assert built.returncode == 0, built.stderr
    assert "building" not in built.stderr
    assert built.stderr.startswith(f"bootdisk: wrote initramfs {out}:")
    shown = bootdisk("info", out)
    assert "started      deploytool " in shown.stdout
