"""pxeconf init's boot root: the loaders copied whole from the installed
Debian packages, each recorded with its package, version and sha256."""

import hashlib
import json
import os
import re
import subprocess

import pytest

from diskimage.errors import InputError, MissingToolError
from diskimage.netboot import bootroot, site as sitemodel

PACKAGES = ("pxelinux", "syslinux-common", "ipxe", "shim-signed",
            "grub-efi-amd64-signed")
NAMES = ("pxelinux.0", "ldlinux.c32", "menu.c32", "vesamenu.c32",
         "libutil.c32", "libcom32.c32", "chain.c32", "undionly.kpxe",
         "ipxe.efi", "snponly.efi", "shimx64.efi", "grubnetx64.efi",
         "grubx64.efi")


def dpkg_version(package):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                          capture_output=True, text=True,
                          check=True).stdout


def dpkg_owner(path):
    """The package dpkg says owns `path` (its own word, not our table)."""
    out = subprocess.run(["dpkg", "-S", path], capture_output=True,
                         text=True, check=True).stdout
    return out.split(":")[0]


def test_init_copies_every_loader_with_its_package_and_digest(tmp_path):
    site_dir = tmp_path / "site"
    record = bootroot.init(site_dir)
    root = site_dir / "boot"
    assert sorted(record) == sorted(NAMES)
    on_disk = json.loads((root / "loaders.json").read_text())
    assert on_disk == record
    for name in NAMES:
        entry = record[name]
        data = (root / name).read_bytes()
        assert data == open(entry["source"], "rb").read(), name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["package"] == dpkg_owner(entry["source"]), name
        assert entry["version"] == dpkg_version(entry["package"])
        assert not (root / name).is_symlink()
    assert {record[n]["package"] for n in NAMES} == set(PACKAGES)
    # shim loads grubx64.efi beside it: the signed GRUB network image
    assert (root / "grubx64.efi").read_bytes() == \
        (root / "grubnetx64.efi").read_bytes()
    for sub in ("pxelinux.cfg", "grub", "ipxe"):
        assert (root / sub).is_dir()
    assert (site_dir / "state").is_dir()
    site = sitemodel.load(site_dir / "pxeconf.site")
    assert site.settings.root == os.fspath(root)


def test_the_signed_grub_reads_grub_cfg_under_prefix_grub():
    """Where configs.build puts GRUB's menu: the image's embedded config
    sources $prefix/grub.cfg and its prefix is /grub."""
    data = open(bootroot.LOADERS["grubx64.efi"][1], "rb").read()
    assert b"source $prefix/grub.cfg" in data
    # grub-mkimage's objects: type 2 the embedded config, type 3 the prefix
    assert re.search(rb"normal \(memdisk\)/grub\.cfg\n\x00*"
                     rb"\x03\x00\x00\x00.\x00\x00\x00/grub\x00", data)


def test_a_directory_not_empty_is_refused_unless_forced(tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty.*--force"):
        bootroot.init(site_dir)
    assert sorted(os.listdir(site_dir)) == ["notes.txt"]
    bootroot.init(site_dir, force=True)
    assert (site_dir / "boot" / "pxelinux.0").is_file()


def test_force_keeps_the_admins_site_file_and_renews_loaders(tmp_path):
    site_dir = tmp_path / "site"
    bootroot.init(site_dir)
    site_file = site_dir / "pxeconf.site"
    edited = site_file.read_text() + "\n# my own note\n"
    site_file.write_text(edited)
    (site_dir / "boot" / "pxelinux.0").write_bytes(b"damaged")
    bootroot.init(site_dir, force=True)
    assert site_file.read_text() == edited
    assert (site_dir / "boot" / "pxelinux.0").read_bytes() == \
        open("/usr/lib/PXELINUX/pxelinux.0", "rb").read()


def test_a_package_not_installed_is_named(tmp_path):
    table = dict(bootroot.LOADERS)
    table["extra.efi"] = ("pxeconf-test-no-such-package", "/nonexistent",
                          "a loader from a package this machine lacks")
    with pytest.raises(MissingToolError) as caught:
        bootroot.init(tmp_path / "site", loaders=table)
    assert caught.value.exit_code == 10
    assert "pxeconf-test-no-such-package" in str(caught.value)
    assert not (tmp_path / "site").exists()      # nothing written first


def test_a_loader_file_missing_from_its_package_is_named(tmp_path):
    table = {"pxelinux.0": ("pxelinux", "/usr/lib/PXELINUX/gone.0", "x")}
    with pytest.raises(MissingToolError, match="gone.0.*pxelinux"):
        bootroot.init(tmp_path / "site", loaders=table)


def test_a_symlink_in_the_site_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "boot").symlink_to(outside)
    with pytest.raises(InputError, match="symlink"):
        bootroot.init(site_dir, force=True)
    assert os.listdir(outside) == []


def test_a_file_where_a_folder_goes_is_refused_by_name(tmp_path):
    site_dir = tmp_path / "site"
    (site_dir / "boot").mkdir(parents=True)
    (site_dir / "boot" / "grub").write_bytes(b"a file")
    with pytest.raises(InputError, match=r"/boot/grub: not a directory; the "
                       r"site's folders must be directories of their own$"):
        bootroot.init(site_dir, force=True)
    assert (site_dir / "boot" / "grub").read_bytes() == b"a file"
