"""loaders on a real FAT32 at an offset: the signed chain from the host's
packages (or a bundle's), the standalone GRUB, syslinux's boot record;
checked with mdir, mtype and fsck.fat."""

import hashlib
import os

import pytest

from diskimage.errors import InputError
from diskimage.service import bundle, fatfs, loaders
from tests.service.fatdisk import (TOOLS, fsck, make_bundle, make_disk,
                                   mdir_names, mtype)

pytestmark = pytest.mark.needs(*TOOLS)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_signed_chain_from_host(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    make_bundle(str(tmp_path / "b"))
    with fatfs.open_fat(service) as fat:
        path = loaders.install_efi(fat, bundle.load(str(tmp_path / "b")))
    assert path == "/EFI/rdeploy/shimx64.efi"
    assert mdir_names(service, "/EFI") == ["rdeploy"]       # no /EFI/BOOT
    for name, (host, _) in loaders.HOST_SIGNED.items():
        with open(host, "rb") as f:
            assert sha(mtype(service, f"/EFI/rdeploy/{name}")) == \
                sha(f.read())
    assert fsck(service, str(tmp_path))[0] == 0


def test_signed_chain_from_bundle(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    extra = {n: b"MZ" + n.encode() for n in loaders.HOST_SIGNED}
    make_bundle(str(tmp_path / "b"), extra=extra)
    with fatfs.open_fat(service) as fat:
        loaders.install_efi(fat, bundle.load(str(tmp_path / "b")), "shim")
        with pytest.raises(InputError, match="not shim or grub"):
            loaders.install_efi(fat, None, "other")
    for name, data in extra.items():
        assert mtype(service, f"/EFI/rdeploy/{name}") == data


@pytest.mark.needs("grub-mkstandalone")
def test_standalone_grub(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    with fatfs.open_fat(service) as fat:
        assert loaders.install_efi(fat, None, "grub") == \
            "/EFI/rdeploy/grubx64.efi"
    assert mdir_names(service, "/EFI/rdeploy") == ["grubx64.efi"]
    assert mtype(service, "/EFI/rdeploy/grubx64.efi")[:2] == b"MZ"
    config = loaders.standalone_config().decode()
    assert "source /EFI/debian/grub.cfg" in config
    assert "source /EFI/rdeploy/grub.cfg" in config


@pytest.mark.needs("grub-script-check")
def test_standalone_config_parses(tmp_path):
    cfg = tmp_path / "embedded.cfg"
    cfg.write_bytes(loaders.standalone_config())
    fatfs.tools.run(["grub-script-check", str(cfg)])


@pytest.mark.needs("syslinux")
def test_bios_boot_record(tmp_path):
    service = make_disk(str(tmp_path / "disk.img"))
    with open(service.disk, "rb") as f:
        f.seek(service.start)
        before = f.read(512)
    loaders.install_bios(service)
    with open(service.disk, "rb") as f:
        f.seek(service.start)
        vbr = f.read(512)
        f.seek(service.tail_offset)
        assert f.read(fatfs.TAIL_SIZE) == bytes(fatfs.TAIL_SIZE)
    assert vbr[510:512] == b"\x55\xaa"
    # syslinux's code and OEM name; mkfs.fat's BPB (bytes 11-89) kept.
    assert vbr[3:11] == b"SYSLINUX" and before[3:11] == b"mkfs.fat"
    assert vbr[11:90] == before[11:90] and vbr[90:510] != before[90:510]
    names = [n.lower() for n in mdir_names(service, "/syslinux")]
    assert names == ["ldlinux.c32", "ldlinux.sys"]
    # the installer's own ldlinux.c32 (it matches its ldlinux.sys) kept
    assert mtype(service, "/syslinux/ldlinux.c32")[:4] == b"\x7fELF"
    assert fsck(service, str(tmp_path))[0] == 0


def test_bios_boot_record_on_a_terminal(tmp_path):
    """install_bios under a real pty (the way `bwpart install` hung on a
    terminal: mcopy asked on /dev/tty before overwriting the read-only
    ldlinux.c32 syslinux had written): it finishes, nothing asked."""
    import pty
    import select
    import sys
    service = make_disk(str(tmp_path / "disk.img"))
    code = ("import sys; from tests.service.fatdisk import Service; "
            "from diskimage.service import loaders; "
            f"loaders.install_bios(Service(*{tuple(service)!r})); "
            "print('DONE')")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code])
    out = b""
    while b"DONE" not in out:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail(f"install_bios hung on a terminal: {out!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert status == 0 and b"DONE" in out, out
    assert b"(y/n)" not in out
    names = [n.lower() for n in mdir_names(service, "/syslinux")]
    assert names == ["ldlinux.c32", "ldlinux.sys"]
    assert fsck(service, str(tmp_path))[0] == 0
