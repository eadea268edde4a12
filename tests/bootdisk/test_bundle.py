"""`bootdisk bundle`: the environment as vmlinuz, initrd.img (and with
--secure-boot the signed loaders) with bundle.json, its fields and every
sha256 checked against sha256sum; `bootdisk pxe` writes the same
description; `bootdisk info` shows a bundle and names a file that no
longer matches; the directory rules of pxe; --help."""

import datetime
import json
import re
import shutil
import subprocess
import uuid

import pytest

from bootdisk import kernel as kernels
from bootdisk.cli import main as bootdisk_main
from diskimage import __version__

from tests.bootdisk_helpers import host_kernel, toolkit

SIGNED = {"shimx64.efi": "/usr/lib/shim/shimx64.efi.signed",
          "grubx64.efi":
              "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
          "mmx64.efi": "/usr/lib/shim/mmx64.efi.signed"}
CMDLINE = "console=ttyS0,115200 panic=10 quiet"

pytestmark = pytest.mark.needs("sha256sum")


def _sha256sum(directory):
    """{name: sha256} of every file in `directory`, by sha256sum."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    out = subprocess.run(["sha256sum", *names], cwd=directory,
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    toolkit()
    host_kernel()
    tmp = tmp_path_factory.mktemp("bundle")
    made = {"secure": tmp / "secure", "plain": tmp / "plain",
            "pxe": tmp / "tftp"}
    assert bootdisk_main(["bundle", "-o", str(made["secure"]),
                          "--secure-boot", f"--cmdline={CMDLINE}"]) == 0
    assert bootdisk_main(["bundle", "-o", str(made["plain"]), "-q"]) == 0
    assert bootdisk_main(["pxe", "-o", str(made["pxe"]), "-q"]) == 0
    made["tmp"] = tmp
    return made


def _info(directory):
    return json.loads((directory / "bundle.json").read_text())


def test_a_secure_boot_bundle_describes_its_files(bundles):
    directory = bundles["secure"]
    info = _info(directory)
    assert sorted(info) == ["built", "cmdline", "files", "format", "id",
                            "kernel_release", "secure_boot", "version"]
    assert info["format"] == 1 and info["version"] == __version__
    assert info["secure_boot"] is True
    assert info["cmdline"] == CMDLINE
    assert re.fullmatch(r"[0-9a-f]{32}", info["id"])
    assert uuid.UUID(hex=info["id"]).version == 4
    built = datetime.datetime.fromisoformat(info["built"])
    assert built.utcoffset() == datetime.timedelta(0)
    age = datetime.datetime.now(datetime.timezone.utc) - built
    assert datetime.timedelta(0) <= age < datetime.timedelta(hours=1)
    # the release as the host names the kernel file: /boot/vmlinuz-RELEASE
    assert info["kernel_release"] == \
        str(host_kernel()).rpartition("/vmlinuz-")[2]
    digests = _sha256sum(directory)
    assert sorted(digests) == sorted([*info["files"], "bundle.json"])
    assert {n: digests[n] for n in info["files"]} == info["files"]
    for name, source in SIGNED.items():
        with open(source, "rb") as f:
            assert (directory / name).read_bytes() == f.read()
    assert (directory / "vmlinuz").read_bytes() == \
        open(host_kernel(), "rb").read()
    assert kernels.kernel_release(directory / "vmlinuz") == \
        info["kernel_release"]


def test_a_plain_bundle_has_kernel_and_initrd_and_its_own_id(bundles):
    info = _info(bundles["plain"])
    assert info["secure_boot"] is False
    assert sorted(info["files"]) == ["initrd.img", "vmlinuz"]
    assert sorted(p.name for p in bundles["plain"].iterdir()) == \
        ["bundle.json", "initrd.img", "vmlinuz"]
    assert info["files"] == {n: d for n, d in
                             _sha256sum(bundles["plain"]).items()
                             if n != "bundle.json"}
    assert info["id"] != _info(bundles["secure"])["id"]
    assert info["cmdline"] == "console=tty0 console=ttyS0,115200 panic=10"


def test_a_pxe_directory_is_a_bundle_too(bundles):
    info = _info(bundles["pxe"])
    assert sorted(info["files"]) == ["initrd.img", "vmlinuz"]
    assert info["secure_boot"] is False
    digests = _sha256sum(bundles["pxe"])
    assert {n: digests[n] for n in info["files"]} == info["files"]


def test_info_shows_a_bundle(bundles, capsys):
    directory = bundles["secure"]
    assert bootdisk_main(["info", str(directory), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "bundle"
    assert report["bundle"]["id"] == _info(directory)["id"]
    assert report["bundle"]["mismatched"] == []
    assert sorted(report["boot_files"]) == sorted(SIGNED)
    assert report["cmdline"] == CMDLINE
    assert bootdisk_main(["info", str(directory)]) == 0
    text = capsys.readouterr().out
    assert f"artifact     {directory} (bundle, " in text
    assert f"bundle       id {_info(directory)['id']}, toolkit " \
        f"{__version__}," in text and "secure boot yes" in text
    assert "bundle files 5, every sha256 matches bundle.json" in text


def test_info_names_a_file_that_no_longer_matches(bundles, capsys):
    copy = bundles["tmp"] / "tampered"
    shutil.copytree(bundles["secure"], copy)
    data = bytearray((copy / "mmx64.efi").read_bytes())
    data[4096] ^= 1
    (copy / "mmx64.efi").write_bytes(bytes(data))
    assert bootdisk_main(["info", str(copy)]) == 0
    assert "bundle files 5, sha256 MISMATCH or missing: mmx64.efi" in \
        capsys.readouterr().out
    (copy / "shimx64.efi").unlink()
    assert bootdisk_main(["info", str(copy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bundle"]["mismatched"] == ["mmx64.efi", "shimx64.efi"]


def test_a_bundle_directory_follows_the_pxe_rules(bundles, tmp_path, capsys):
    before = (bundles["plain"] / "bundle.json").read_bytes()
    assert bootdisk_main(["bundle", "-o", str(bundles["plain"])]) == 3
    assert capsys.readouterr().err.strip() == (
        f"bootdisk: error: {bundles['plain']}: exists and is not empty "
        f"(give --force to write into it)")
    assert (bundles["plain"] / "bundle.json").read_bytes() == before
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert bootdisk_main(["bundle", "-o", str(afile)]) == 3
    assert "exists and is not a directory" in capsys.readouterr().err
    assert bootdisk_main(["bundle", "-o", str(tmp_path / "no" / "dir")]) \
        == 3
    assert "no such directory for the output" in capsys.readouterr().err


def test_force_rewrites_a_bundle_with_a_new_id(bundles, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(bundles["plain"], copy)
    old = _info(copy)
    assert bootdisk_main(["bundle", "-o", str(copy), "--force", "-q"]) == 0
    new = _info(copy)
    assert new["id"] != old["id"]
    assert not [p for p in copy.iterdir() if p.name.endswith(".partial")]
    digests = _sha256sum(copy)
    assert {n: digests[n] for n in new["files"]} == new["files"]


@pytest.mark.parametrize("command, words", [
    ("bundle", ["bootdisk bundle -o DIR [--secure-boot]", "bundle.json",
                "--secure-boot"]),
    ("usb", ["--secure-boot", "shim"]),
    ("iso", ["--secure-boot"]),
    ("pxe", ["--secure-boot", "bundle.json"]),
])
def test_help_names_bundle_and_secure_boot(command, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        bootdisk_main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out, word


def test_secure_boot_is_not_an_initrd_option(tmp_path, capsys):
    assert bootdisk_main(["initrd", "-o", str(tmp_path / "x"),
                          "--secure-boot"]) == 2
    assert capsys.readouterr().err.startswith("bootdisk: error: initrd: ")
    assert list(tmp_path.iterdir()) == []
