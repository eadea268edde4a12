"""The initramfs as built, read back by the field's tools: GNU cpio unpacks
it, the unpacked tree runs the frozen toolkit and busybox under chroot with
an empty environment (so the library closure is complete), kmod's modinfo
confirms every module's dependencies load first and match the kernel; bad
input gives one-line errors and no output file."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from bootdisk import cpio, kernel as kernels
from bootdisk.cli import main as bootdisk_main

from tests.bootdisk_helpers import ROOT, host_kernel, toolkit


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_cpio_writer_read_by_gnu_cpio(tmp_path):
    archive = tmp_path / "a.cpio"
    payloads = {"d/one.bin": os.urandom(1001), "d/e/two": b"", "three":
                os.urandom(4096 * 3 + 3)}
    with open(archive, "wb") as f:
        writer = cpio.Writer(f)
        writer.directory("d")
        writer.directory("d/e", 0o700)
        for name, data in payloads.items():
            writer.file(name, data, 0o750 if name == "three" else 0o644)
        writer.symlink("d/link", "../three")
        writer.close()
    assert archive.stat().st_size % 512 == 0
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(
        archive, "rb"), capture_output=True, text=True, check=True)
    assert listing.stdout.split() == ["d", "d/e", "d/one.bin", "d/e/two",
                                      "three", "d/link"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], stdin=open(archive, "rb"),
                   cwd=out, check=True)
    for name, data in payloads.items():
        assert _sha((out / name).read_bytes()) == _sha(data)
    assert os.stat(out / "three").st_mode & 0o777 == 0o750
    assert os.stat(out / "d/e").st_mode & 0o777 == 0o700
    assert os.readlink(out / "d/link") == "../three"
    # and our own reader agrees
    members = cpio.read(archive.read_bytes())
    assert {n: d for n, m, d in members if n in payloads} == payloads


def test_cpio_reader_refuses_garbage():
    with pytest.raises(Exception, match="not a newc cpio member at offset 0"):
        cpio.read(b"070707" + b"0" * 200)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    toolkit()
    host_kernel()
    tmp = tmp_path_factory.mktemp("initrd")
    job = tmp / "job.sh"
    job.write_text("echo job\n")
    extra = tmp / "extra"
    extra.mkdir()
    (extra / "note.txt").write_text("an added file\n")
    out = tmp / "env.initrd"
    assert bootdisk_main(["initrd", "-o", str(out), f"--job={job}",
                          f"--add={extra}:/opt/extra", "--on-success=reboot"]
                         ) == 0
    tree = tmp / "tree"
    tree.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"],
                   input=gzip.decompress(out.read_bytes()), cwd=tree,
                   check=True)
    return {"out": out, "tree": tree, "job": job}


def test_tree_holds_init_busybox_toolkit_job(built):
    tree = built["tree"]
    assert os.access(tree / "init", os.X_OK)
    assert (tree / "bin/busybox").read_bytes() == \
        open("/bin/busybox", "rb").read()
    assert _sha((tree / "usr/bin/deploytool").read_bytes()) == \
        _sha(toolkit().read_bytes())
    assert os.readlink(tree / "usr/bin/rdeploy") == "deploytool"
    assert os.readlink(tree / "usr/bin/bootdisk") == "deploytool"
    assert os.readlink(tree / "bin/sh") == "/bin/busybox"
    assert os.readlink(tree / "usr/bin/wget") == "/bin/busybox"
    # udpcast's receiver, for `rdeploy multicast receive` (bootdisk/udpcast.py)
    assert _sha((tree / "usr/bin/udp-receiver").read_bytes()) == \
        _sha(open(shutil.which("udp-receiver"), "rb").read())
    assert os.access(tree / "usr/bin/udp-receiver", os.X_OK)
    assert (tree / "etc/bootdisk/job").read_text() == "echo job\n"
    assert (tree / "opt/extra/note.txt").read_text() == "an added file\n"
    config = (tree / "etc/bootdisk/config").read_text()
    assert "ON_SUCCESS=reboot" in config and "ON_FAILURE=shell" in config


def test_toolkit_and_busybox_run_in_the_tree_alone(built):
    """chroot with an empty environment: any library left out of the
    closure makes the frozen binary fail to start."""
    tree = built["tree"]
    for argv, expect in ((["/usr/bin/rdeploy", "--version"], "rdeploy 0."),
                         (["/usr/bin/deploytool", "--list"], "bootdisk"),
                         (["/bin/sh", "-c", "echo $((6 * 7))"], "42"),
                         # it prints its licence on stderr
                         (["/usr/bin/udp-receiver", "--license"],
                          "udpcast and its FEC code are free software")):
        result = subprocess.run([shutil.which("chroot"), tree, *argv], env={},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert expect in result.stdout + result.stderr


def test_modules_load_after_their_dependencies(built):
    tree = built["tree"]
    release = kernels.kernel_release(host_kernel())
    base = tree / "lib/modules" / release
    order = (tree / "etc/bootdisk/modules").read_text().split()
    names = [kernels.module_name(p) for p in order]
    for wanted in ("virtio_blk", "virtio_net", "ahci", "nvme", "usb_storage",
                   "e1000", "e1000e", "igb", "r8169", "ext4", "vfat",
                   "isofs"):
        assert wanted in names
    for position, path in enumerate(order):
        info = subprocess.run(["modinfo", "-F", "depends", base / path],
                              capture_output=True, text=True, check=True)
        for dep in filter(None, info.stdout.strip().split(",")):
            assert dep.replace("-", "_") in names[:position], (path, dep)
        magic = subprocess.run(["modinfo", "-F", "vermagic", base / path],
                               capture_output=True, text=True, check=True)
        assert magic.stdout.split()[0] == release


def test_info_reports_the_initrd(built, capsys):
    assert bootdisk_main(["info", str(built["out"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "initrd"
    assert report["job"] == "job.sh" and report["job_text"] == "echo job\n"
    assert "bin/busybox" in report["binaries"]
    assert "ext4" in report["modules"]
    assert report["initramfs_size"] == built["out"].stat().st_size
    receiver = report["udp_receiver"]
    size = os.path.getsize(shutil.which("udp-receiver"))
    assert receiver["binary"] == "/usr/bin/udp-receiver"
    assert receiver["size"] == size
    # its libraries (the C library family) are the toolkit's already
    assert set(receiver["libraries"]) <= set(report["libraries"])
    assert receiver["added"] == size
    assert receiver["started"].startswith("udpcast and its FEC code")
    assert bootdisk_main(["info", str(built["out"])]) == 0
    out = capsys.readouterr().out
    assert "job          job.sh" in out
    assert "multicast    /usr/bin/udp-receiver (" in out


def test_missing_udpcast_names_the_package(tmp_path):
    """A host without udpcast cannot make media that receive multicast:
    MissingToolError (exit 10) naming the Debian package."""
    from bootdisk import udpcast
    from diskimage.errors import MissingToolError
    (tmp_path / "busybox").symlink_to("/bin/busybox")   # a PATH without it
    with pytest.raises(MissingToolError) as caught:
        udpcast.find(str(tmp_path))
    assert caught.value.exit_code == 10
    assert str(caught.value) == (
        "the environment's multicast receiver: udp-receiver: not installed "
        "(it comes with the Debian package udpcast)")
    assert udpcast.find() == shutil.which("udp-receiver")


def _err(capsys):
    return capsys.readouterr().err.strip()


def test_refuses_existing_output_without_force(built, capsys):
    before = built["out"].read_bytes()
    assert bootdisk_main(["initrd", "-o", str(built["out"])]) == 3
    assert _err(capsys) == (f"bootdisk: error: {built['out']}: exists "
                            f"(give --force to replace it)")
    assert built["out"].read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--kernel=/nonexistent/vmlinuz"], "/nonexistent/vmlinuz: no such kernel"),
    (["--modules=/nonexistent/mods"],
     "/nonexistent/mods: no such module directory"),
    (["--job=/nonexistent/job.sh"], "/nonexistent/job.sh: no such job file"),
    (["--add=/nonexistent/x:/x"], "/nonexistent/x: no such file"),
    (["--kernel=/etc/passwd"], "/etc/passwd: not a bzImage kernel"),
])
def test_bad_input_one_line_exit_3(tmp_path, capsys, args, message):
    host_kernel()
    out = tmp_path / "out.initrd"
    assert bootdisk_main(["initrd", "-o", str(out), *args]) == 3
    err = _err(capsys)
    assert message in err and "\n" not in err
    assert not out.exists() and not (tmp_path / "out.initrd.partial").exists()


def test_modules_of_another_kernel_are_refused(tmp_path, capsys):
    """A real module whose vermagic names another release."""
    release = kernels.kernel_release(host_kernel())
    tree = kernels.ModuleTree(f"/lib/modules/{release}")
    other = release.replace(release.split("-")[1], "999", 1)
    assert len(other) != len(release) or other != release
    mods = tmp_path / other
    rel = tree.files["ext4"]
    (mods / os.path.dirname(rel)).mkdir(parents=True)
    data = tree.read("ext4").replace(f"vermagic={release}".encode(),
                                     f"vermagic={other}".encode())
    (mods / rel).write_bytes(data)
    (mods / "modules.dep").write_text(f"{rel}:\n")
    out = tmp_path / "out.initrd"
    assert bootdisk_main(["initrd", "-o", str(out),
                          f"--modules={mods}"]) == 3
    err = _err(capsys)
    assert f"modules are for kernel {other}, the kernel is {release}" in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["initrd"], ["bogus"], ["info"],
                                  ["initrd", "-o", "x", "--on-success=dance"],
                                  ["initrd", "-o", "x", "--compress=rar"],
                                  ["iso", "-o", "x", "--timeout=soon"]])
def test_usage_errors_exit_2(argv):
    assert bootdisk_main(argv) == 2


def test_help_teaches_commands_and_exit_codes():
    result = subprocess.run([sys.executable, "-m",
                             "bootdisk", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    for word in ("initrd", "iso", "usb", "pxe", "info", "--job=FILE",
                 "rd.job=URL", "Exit codes", "--on-failure=ACTION"):
        assert word in result.stdout


def test_frozen_binary_carries_bootdisk():
    result = subprocess.run([toolkit(), "bootdisk", "--version"], env={},
                            capture_output=True, text=True)
    assert result.stdout.strip().startswith("bootdisk ")


def test_frozen_bootdisk_builds_the_same_environment(built, tmp_path):
    """`bootdisk` inside the frozen binary (no Python, no PyInstaller) finds
    the same library closure, from its own unpacked directory."""
    out = tmp_path / "frozen.initrd"
    result = subprocess.run(
        [toolkit(), "bootdisk", "initrd", "-o", out, f"--job={built['job']}"],
        env={}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    frozen = json.loads(subprocess.run(
        [toolkit(), "bootdisk", "info", out, "--json"], env={},
        capture_output=True, text=True, check=True).stdout)
    assert frozen["libraries"] == json.loads(
        subprocess.run([sys.executable, "-m", "bootdisk", "info",
                        built["out"], "--json"], cwd=ROOT,
                       capture_output=True, text=True).stdout)["libraries"]
    assert frozen["modules"] and frozen["job_text"] == "echo job\n"


def test_zstd_without_zstandard_is_unsupported_exit_7(monkeypatch):
    """As rdeploy's --compress=zstd without the package: 7, unsupported
    (it was a usage error, exit 2, before issue 12)."""
    from bootdisk.initramfs import compress
    from diskimage.errors import UnsupportedError
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    with pytest.raises(UnsupportedError, match="zstandard") as caught:
        compress(b"data", "zstd")
    assert caught.value.exit_code == 7


def test_reading_a_zstd_initramfs_without_zstandard_is_unsupported_exit_7(
        monkeypatch):
    """`bootdisk info` of a zstd medium where zstandard is missing: the
    same exit 7 as building one, not an ImportError (internal error, 70)."""
    from bootdisk.initramfs import decompress
    from diskimage.errors import UnsupportedError
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    with pytest.raises(UnsupportedError, match="zstandard") as caught:
        decompress(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    assert caught.value.exit_code == 7
