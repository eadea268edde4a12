"""biosboot.identify on sector 0 of real disks: syslinux's MBR codes
written as syslinux's docs say (dd of the file), GRUB's boot.img by its
text, zero code, and an unknown code."""

import hashlib
import os
import subprocess

import pytest

from diskimage.errors import TargetError
from diskimage.service import biosboot

MBR_DIR = "/usr/lib/syslinux/mbr"


def disk_with(tmp_path, table, code_file=None, code=None):
    path = str(tmp_path / "d.img")
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["sfdisk", "--quiet", path], check=True,
                   input=f"label: {table}\nstart=2048\n".encode())
    if code_file:
        subprocess.run(["dd", f"if={code_file}", f"of={path}", "bs=440",
                        "count=1", "conv=notrunc"], check=True,
                       capture_output=True)
    if code is not None:
        with open(path, "r+b") as f:
            f.write(code)
    with open(path, "rb") as f:
        return f.read(512)


@pytest.mark.needs("sfdisk")
def test_syslinux_codes(tmp_path):
    s0 = disk_with(tmp_path, "dos", f"{MBR_DIR}/mbr.bin")
    assert biosboot.identify(s0, "mbr") == ("syslinux mbr.bin",
                                             "active-flag")
    # The table and the disk signature are not part of the match.
    other = s0[:440] + os.urandom(4) + s0[444:]
    assert biosboot.identify(other, "mbr", host_dir="/nonexistent")[0] == \
        "syslinux mbr.bin"
    with pytest.raises(TargetError, match=r"made for an MBR disk, on a GPT "
                       r"disk: .* \(syslinux's gptmbr.bin could\)"):
        biosboot.identify(s0, "gpt")
    s0 = disk_with(tmp_path, "gpt", f"{MBR_DIR}/gptmbr.bin")
    assert biosboot.identify(s0, "gpt", host_dir="/nonexistent") == \
        ("syslinux gptmbr.bin", "legacy-attr")


def test_table_matches_debian_files():
    # KNOWN is what Debian 12's syslinux-common ships (read from its files).
    for name in ("mbr.bin", "gptmbr.bin"):
        path = os.path.join(MBR_DIR, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                assert biosboot.code_sha256(f.read()) in biosboot.KNOWN


@pytest.mark.needs("sfdisk")
def test_refusals(tmp_path):
    s0 = disk_with(tmp_path, "gpt")
    with pytest.raises(TargetError, match="no BIOS boot code: this disk "
                       "does not boot by BIOS"):
        biosboot.identify(s0, "gpt")
    # GRUB's boot.img carries these strings at 0x17c on (i386-pc).
    grub = bytearray(440)
    grub[0:2] = b"\xeb\x63"
    grub[0x17c:0x17c + 28] = b"GRUB \0Geom\0Hard Disk\0Read\0 "
    s0 = disk_with(tmp_path, "dos", code=bytes(grub))
    with pytest.raises(TargetError, match="GRUB's boot.img"):
        biosboot.identify(s0, "mbr")
    code = os.urandom(440)
    s0 = disk_with(tmp_path, "dos", code=code)
    with pytest.raises(TargetError, match=hashlib.sha256(code).hexdigest()
                       [:16]):
        biosboot.identify(s0, "mbr")
