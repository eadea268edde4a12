"""The toolkit's library closure is complete wherever bootdisk runs, or
the build fails: a bootdisk without PyInstaller (a pip install without the
[freeze] extra) given a frozen toolkit with --toolkit built a medium whose
toolkit failed at boot ("Failed to load Python shared library ...
libm.so.6", job exit 255), because the closure silently left out what the
unpacked libpython needs (issue 12).  And the build proves the toolkit
starts: it runs it in a root made of what the medium holds (chroot)."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bootdisk import initramfs, startcheck
from bootdisk.closure import library_closure
from diskimage.errors import InputError

from tests.bootdisk_helpers import host_kernel, toolkit

ROOT = Path(__file__).resolve().parents[2]


def _python_without_pyinstaller(tmp):
    """A venv that sees every package of this one but PyInstaller (links
    to them, no copies), and not the editable install: run with cwd=ROOT,
    it runs this tree."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        low = entry.name.lower()
        if low.startswith(("pyinstaller", "_pyinstaller", "__editable__")) \
                or low.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry.resolve())
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv],
                   check=True)
    purelib = subprocess.run(
        [venv / "bin/python", "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "deps.pth").write_text(f"{deps}\n")
    python = venv / "bin/python"
    probe = subprocess.run([python, "-c", "import PyInstaller"], cwd=ROOT,
                           capture_output=True)
    assert probe.returncode != 0, "PyInstaller is still importable"
    return python


@pytest.mark.needs("chroot", root=True)  # the start check chroots
def test_bootdisk_without_pyinstaller_puts_what_libpython_needs(tmp_path):
    host_kernel()
    python = _python_without_pyinstaller(tmp_path)
    other = tmp_path / "toolkit"      # not the binary running bootdisk
    shutil.copy2(toolkit(), other)
    out = tmp_path / "env.initrd"
    result = subprocess.run(
        [python, "-m", "bootdisk", "initrd", "-o", out, f"--toolkit={other}"],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(f"gzip -dc {out} | cpio -idm --quiet", shell=True,
                   cwd=tree, check=True)
    started = subprocess.run(
        [shutil.which("chroot"), tree, "/usr/bin/deploytool", "--version"],
        env={}, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("deploytool ")


@pytest.mark.needs("chroot", root=True)  # the start check chroots
def test_the_build_fails_when_the_toolkit_cannot_start_on_the_medium(
        tmp_path):
    """The start check on the real toolkit and its real closure, less one
    library (libm, what the unpacked libpython needs): refused in one
    line; with the whole closure it starts."""
    binary = toolkit()
    closure = library_closure(binary)
    libm = next(p for p in closure if os.path.basename(p) == "libm.so.6")
    tree = initramfs.Tree()
    tree.add_host(binary, "usr/bin/deploytool")
    for loaded, real in closure.items():
        tree.add_host(real, loaded)
    assert startcheck.toolkit_starts(
        tree, "/usr/bin/deploytool", sorted(closure), binary) \
        .startswith("deploytool ")
    del tree.entries[libm.strip("/")]
    with pytest.raises(InputError) as caught:
        startcheck.toolkit_starts(tree, "/usr/bin/deploytool",
                                  sorted(closure), binary)
    message = str(caught.value)
    assert message.startswith(f"{binary}: the toolkit does not start in "
                              f"the medium's root")
    assert "libm.so.6" in message and "\n" not in message


def test_a_toolkit_whose_archive_lacks_its_libpython_is_refused(tmp_path):
    """An archive that names a libpython it does not hold: the closure
    cannot be computed, so nothing is built."""
    host_kernel()
    writers = pytest.importorskip("PyInstaller.archive.writers")
    archive = tmp_path / "archive"
    writers.CArchiveWriter(
        str(archive), [("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1",
                        True, "b")], "libpython3.11.so.1.0")
    bad = tmp_path / "toolkit"
    bad.write_bytes(open("/bin/true", "rb").read() + archive.read_bytes())
    bad.chmod(0o755)
    out = tmp_path / "env.initrd"
    result = subprocess.run(
        [sys.executable, "-m", "bootdisk", "initrd", "-o", out,
         f"--toolkit={bad}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"bootdisk: error: {bad}: a PyInstaller binary whose archive cannot "
        f"be read: it loads libpython3.11.so.1.0, which its archive does "
        f"not hold; not a toolkit to use\n")
    assert not out.exists() and not os.path.exists(f"{out}.partial")


def test_a_symlink_in_the_archive_is_not_taken_for_a_library(tmp_path):
    """PyInstaller 6 keeps a wheel's library symlinks as members of their
    own (typecode n, the data the target's name): google-crc32c's
    libcrc32c-*.so.1.1.0 at the top, to google_crc32c.libs/.  ldd on the
    name's text failed ("not a dynamic executable", exit 3) and no medium
    could be built from a toolkit that carried google-crc32c; the closure
    now steps over the link and finds what its target loads."""
    writers = pytest.importorskip("PyInstaller.archive.writers")
    libz = "/lib/x86_64-linux-gnu/libz.so.1"
    archive = tmp_path / "archive"
    writers.CArchiveWriter(str(archive), [
        ("zlib.libs/libz.so.1", libz, True, "b"),
        ("libz.so.1", "zlib.libs/libz.so.1", True, "n"),
        # a stand-in for the libpython every toolkit archive holds
        ("libpython3.11.so.1.0", libz, True, "b"),
    ], "libpython3.11.so.1.0")
    binary = tmp_path / "toolkit"
    binary.write_bytes(open("/bin/true", "rb").read() + archive.read_bytes())
    binary.chmod(0o755)
    closure = library_closure(binary)
    names = {os.path.basename(p) for p in closure}
    assert "libc.so.6" in names         # what libz.so.1 loads
    assert not any(p.startswith(str(tmp_path)) for p in closure)
