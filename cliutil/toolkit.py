"""The frozen toolkit (the multi-call binary ``deploytool``) that boot media
and self-restoring images carry: where it is found, and how an installed
toolkit freezes it itself.

Found, in this order: this program when it is the frozen binary; the source
tree's ``dist/deploytool`` (``make freeze``); the per-version cache
``${XDG_CACHE_HOME:-~/.cache}/rdeploy-toolkit/<version>/deploytool``, which
:func:`freeze` fills with PyInstaller (the ``[freeze]`` extra) from the
recipe installed with the package (deploytool/recipe/deploytool.spec, the
one build/freeze.sh uses too).
"""

import importlib.util
import os
import shutil
import sys
import tempfile

from diskimage import __version__
from diskimage.errors import (DiskImageError, InputError, MissingToolError,
                              ToolError)
from diskimage.host import tools
from diskimage.host.partial import partial_file, refuse_existing

NAME = "deploytool"
CACHE_DIR = "rdeploy-toolkit"
# The recipe is data of the multi-call entry's package, installed beside
# cliutil by the same distribution: found by its path, never imported
# (cliutil imports no command and not deploytool).
RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "deploytool", "recipe", "deploytool.spec")
#: What a user installs to be able to freeze.
FREEZE_EXTRA = "pip install 'rdeploy-toolkit[freeze]'"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FreezeFailed(DiskImageError):
    """PyInstaller failed to freeze the toolkit; exit code 1."""


def cache_path():
    """Where the frozen toolkit of this version is cached."""
    base = os.environ.get("XDG_CACHE_HOME") or \
        os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_DIR, __version__, NAME)


def source_tree_build():
    """dist/deploytool of the source tree this runs from (`make freeze`);
    in an installed toolkit there is none."""
    return os.path.join(_ROOT, "dist", NAME)


def find():
    """The frozen toolkit to use, or None when there is none yet."""
    if getattr(sys, "frozen", False):
        return sys.executable
    for path in (source_tree_build(), cache_path()):
        if os.path.isfile(path):
            return path
    return None


def can_freeze():
    """Whether PyInstaller is installed here (and this is not frozen)."""
    return not getattr(sys, "frozen", False) and \
        importlib.util.find_spec("PyInstaller") is not None


class NoPyInstaller(MissingToolError):
    """PyInstaller, which freezes the toolkit, is not installed: exit 10 as
    for any tool that is missing, naming the extra that installs it."""

    def __init__(self, message):
        ToolError.__init__(self, message)
        self.tool, self.package, self.what = "PyInstaller", FREEZE_EXTRA, None


def cannot_freeze_error(option):
    """The one-line error when there is no toolkit and none can be built."""
    return NoPyInstaller(f"no frozen toolkit binary ({cache_path()} does not "
                      f"exist) and PyInstaller is not installed to build it: "
                      f"{FREEZE_EXTRA}, then `bootdisk toolkit`; or give "
                      f"{option}")


def not_found_error(option):
    """The one-line error of a command that uses a toolkit but does not
    build one (imgx sfx) when there is none: bad input, exit 3."""
    return InputError(f"no frozen toolkit binary ({cache_path()} does not "
                      f"exist): `bootdisk toolkit` builds it (with "
                      f"{FREEZE_EXTRA}); or give {option}")


def freeze(out=None, force=False, warnings=None):
    """Freeze the toolkit with PyInstaller into `out` (default: the cache
    path) by way of OUT.partial (diskimage.host.partial: locked, exclusive,
    never through a symlink), over an existing file only with `force`.
    Returns the path written.  Takes minutes."""
    if getattr(sys, "frozen", False):
        raise InputError(f"{sys.executable} is the frozen toolkit itself; "
                         f"give it as --toolkit instead of freezing one")
    if not can_freeze():
        raise NoPyInstaller(f"PyInstaller is not installed, which freezes the "
                         f"toolkit: {FREEZE_EXTRA}")
    out = out or cache_path()
    if out == cache_path():
        os.makedirs(os.path.dirname(out), exist_ok=True)
    out = refuse_existing(out, force)       # a link: its file, or refused
    with partial_file(out, replace=force, warnings=warnings,
                      mode=0o755) as f, \
            tempfile.TemporaryDirectory(prefix="bootdisk-freeze-") as work:
        built = _pyinstaller(work)
        _smoke_test(built)
        with open(built, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)
    return out


def _pyinstaller(work):
    env = dict(os.environ)
    env.pop("PYTHONOPTIMIZE", None)     # docopt needs the docstrings
    args = [sys.executable, "-m", "PyInstaller", "--noconfirm",
            "--log-level", "WARN", "--distpath", os.path.join(work, "dist"),
            "--workpath", os.path.join(work, "build"), RECIPE]
    proc = tools.run(args, check=False, env=env, inherit=False, cwd=work)
    built = os.path.join(work, "dist", NAME)
    if proc.returncode != 0 or not os.path.isfile(built):
        said = [line for line in proc.stderr.strip().splitlines()
                if "ERROR" in line or "Error" in line] or \
            proc.stderr.strip().splitlines()
        tail = " | ".join(said[-2:])[:400]
        raise FreezeFailed(f"PyInstaller failed to freeze the toolkit "
                           f"(exit {proc.returncode}): {tail}")
    return built


def _smoke_test(path):
    """The new binary runs with an empty environment, as on boot media."""
    proc = tools.run([path, "--list"], check=False, env={}, inherit=False)
    if proc.returncode != 0 or "bootdisk" not in proc.stdout.split():
        raise FreezeFailed(f"{path}: the frozen toolkit does not run "
                           f"(exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-200:]})")
