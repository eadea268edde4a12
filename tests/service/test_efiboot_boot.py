"""The real path under OVMF: Boot####, BootOrder and BootNext written through
the guest kernel's efivarfs, read back from OVMF's variable store file after
poweroff (tests/ovmfvars.py), and honoured by the firmware.

One VM, its devices the same in every boot (OVMF's entries follow them)
and none with a bootindex (with one, QEMU hands OVMF a boot order and OVMF
DELETES every Boot#### that it does not match, ours too): a
bootdisk USB image (the job below) and a GPT "service" disk whose
partition 1 (the service type and attributes, FAT32) holds a standalone
GRUB at /EFI/rdeploy/grubx64.efi that prints a marker and halts.

  boot 1  the job lists the guest's Boot* variables (efivarfs, hex) and
          writes nothing: the reader must see the same in the vars file
  host    efiboot.ensure_entry + arm on a directory holding those
          variables; the files they changed go onto the service FAT
  boot 2  the job writes each with one dd write (python-free: busybox)
  check   the vars file holds exactly what efiboot wrote in the directory
  boot 3  the firmware starts BootNext: our entry, our GRUB's marker; it
          deleted BootNext, and disarm on the host puts the rest back

Until `bwpart boot-next` lands (parts E and G) the guest writes the bytes
this module built on the host, not the toolkit."""

import os
import re
import subprocess
import types

import pytest

from bootdisk import qemu
from bootdisk.cli import main as bootdisk_main
from diskimage.service import efiboot, efivars, loadoption
from tests import ovmfvars
from tests.bootdisk_helpers import console_tail, host_kernel, need_qemu, \
    toolkit

pytestmark = [pytest.mark.boot,
              pytest.mark.needs("qemu-system-x86_64", "sgdisk", "sfdisk",
                                "mkfs.fat", "mcopy", "grub-mkstandalone",
                                root=True)]

WAIT = 300
GUID = efiboot.EFI_GLOBAL_VARIABLE
SERVICE_TYPE = "b10262f8-ab25-4a01-be00-a2803022d1bf"
PART_GUID = "3f0e1d2c-4b5a-4c6d-8e7f-90a1b2c3d4e5"
LOADER = "/EFI/rdeploy/grubx64.efi"
MARK = "bwefi: the service entry started"
START, SIZE = 2048, 131072          # sectors: 64 MiB at 1 MiB

JOB = r"""
V=/sys/firmware/efi/efivars
G=8be4df61-93ca-11d2-aa0d-00e098032b8c
grep -q efivarfs /proc/filesystems || insmod /efivarfs.ko || exit 11
grep -q " $V " /proc/mounts || mount -t efivarfs efivarfs $V || exit 12
i=0
while [ ! -b /dev/vdb1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /mnt/svc && mount -t vfat -o iocharset=utf8 /dev/vdb1 /mnt/svc || exit 13
for f in /mnt/svc/bwefi/*-$G; do
    [ -f "$f" ] || continue
    n=${f##*/}
    # efivarfs takes attributes + data in ONE write
    dd if="$f" of="$V/$n" bs=$(wc -c < "$f") count=1 conv=notrunc \
        2>/dev/null || { echo "bwefi-write-failed $n"; exit 14; }
    echo "bwefi-wrote $n"
done
for f in $V/Boot*-$G; do
    echo "bwefi-var ${f##*/} $(od -An -tx1 -v "$f" | tr -d ' \n')"
done
umount /mnt/svc
"""


def _run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True,
                          capture_output=True, text=True, **kw)


def _efivarfs_ko():
    """The booted kernel's efivarfs.ko (a module in Debian's kernel)."""
    release = host_kernel()[len("/boot/vmlinuz-"):]
    for base, _, files in os.walk(f"/lib/modules/{release}/kernel/fs"):
        if "efivarfs.ko" in files:
            return os.path.join(base, "efivarfs.ko")
    raise AssertionError(f"no efivarfs.ko for {release} (linux-image-amd64)")


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    need_qemu()
    tmp = tmp_path_factory.mktemp("efiboot")
    job = tmp / "job.sh"
    job.write_text(JOB)
    usb = tmp / "usb.img"
    assert bootdisk_main([
        "usb", "-o", str(usb), f"--job={job}", f"--toolkit={toolkit()}",
        f"--add={_efivarfs_ko()}:/efivarfs.ko", "--timeout=1",
        "--on-success=poweroff", "--on-failure=poweroff", "--quiet"]) == 0
    disk = tmp / "service.img"
    with open(disk, "wb") as f:
        f.truncate((START + SIZE + 2048) * 512)
    _run("sgdisk", f"-n1:{START}:{START + SIZE - 1}", f"-t1:{SERVICE_TYPE}",
         f"-u1:{PART_GUID}", "-c1:rdeploy service", "-A1:set:0",
         "-A1:set:62", "-A1:set:63", disk)
    _run("mkfs.fat", "-F", "32", "-n", "RDSERVICE", "--offset", START,
         disk, SIZE // 2)
    cfg = tmp / "grub.cfg"
    cfg.write_text(f'echo "{MARK}"\nhalt\n')
    grub = tmp / "grubx64.efi"
    _run("grub-mkstandalone", "-O", "x86_64-efi", "-o", grub,
         "--modules=echo halt", f"boot/grub/grub.cfg={cfg}")
    fat = f"{disk}@@{START * 512}"
    _run("mmd", "-i", fat, "::/EFI", "::/EFI/rdeploy", "::/bwefi")
    _run("mcopy", "-i", fat, grub, f"::{LOADER}")
    return types.SimpleNamespace(tmp=tmp, usb=usb, disk=disk, fat=fat,
                                 vars=qemu.ovmf_vars(str(tmp)))


def _boot(vm, expect):
    args = qemu.base_args(uefi_vars=vm.vars) + [
        "-nic", "none",
        "-drive", f"file={vm.usb},format=raw,if=none,id=d0,readonly=on",
        "-device", "virtio-blk-pci,drive=d0",
        "-drive", f"file={vm.disk},format=raw,if=none,id=d1",
        "-device", "virtio-blk-pci,drive=d1"]
    with qemu.Boot(args) as boot:
        boot.wait(WAIT)
    out = boot.plain()
    assert expect in out, console_tail(boot)
    return out


def _guest_vars(out):
    """{name: bytes} of the job's bwefi-var lines (the guest's efivarfs)."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"^bwefi-var (Boot\w+)-" + GUID + r" ([0-9a-f]+)",
                         line.strip())
        if match:
            found[match.group(1)] = bytes.fromhex(match.group(2))
    return found


def _file_vars(path):
    return {name: bytes(attrs.to_bytes(4, "little")) + data
            for (name, guid), (attrs, data) in ovmfvars.variables(path).items()
            if guid == GUID and name.startswith("Boot")}


def test_entry_and_boot_next_through_efivarfs(vm, tmp_path):
    # boot 1: OVMF makes its entries; the guest lists them
    out = _boot(vm, "bootdisk: job finished: exit 0")
    guest = _guest_vars(out)
    assert "BootCurrent" in guest                 # volatile: not stored
    nonvolatile = {n: d for n, d in guest.items()
                   if d[0] & efivars.EFI_VARIABLE_NON_VOLATILE}
    assert "BootOrder" in nonvolatile and nonvolatile == _file_vars(vm.vars), \
        "tests/ovmfvars.py reads what the guest's efivarfs shows"
    before = ovmfvars.boot_entries(vm.vars)

    # host: efiboot on a directory holding the same variables
    root = tmp_path / "efivars"
    root.mkdir()
    store = efivars.Efivars(str(root), firmware=str(tmp_path / "none"))
    for (name, guid), (attrs, data) in ovmfvars.variables(vm.vars).items():
        if guid == GUID:
            store.write(name, guid, data, attrs)
    stamp = {n: open(root / n, "rb").read() for n in os.listdir(root)}
    service = types.SimpleNamespace(
        disk=str(vm.disk), number=1, start=START * 512, size=SIZE * 512,
        table_kind="gpt", part_id=PART_GUID)
    entry = efiboot.ensure_entry(store, service, LOADER)
    saved = efiboot.arm(store, entry)
    number = efiboot.entry_number(entry)
    used = {efiboot.entry_number(n) for n in before if n.startswith("Boot0")}
    assert number == min(set(range(len(used) + 1)) - used)
    changed = sorted(n for n in os.listdir(root)
                     if stamp.get(n) != open(root / n, "rb").read())
    assert changed == sorted(f"{n}-{GUID}" for n in
                             (entry, "BootNext", "BootOrder"))
    for name in changed:
        _run("mcopy", "-i", vm.fat, root / name, f"::/bwefi/{name}")

    # boot 2: the guest writes them, one write each
    out = _boot(vm, "bootdisk: job finished: exit 0")
    assert sorted(re.findall(r"bwefi-wrote (\S+)", out)) == changed
    after = ovmfvars.boot_entries(vm.vars)
    assert after[entry] == loadoption.build("rdeploy service", service,
                                            LOADER)
    assert after["BootNext"] == number
    assert after["BootOrder"] == [number] + before["BootOrder"]
    _run("mdeltree", "-i", vm.fat, "::/bwefi")
    _run("mmd", "-i", vm.fat, "::/bwefi")

    # boot 3: the firmware honours BootNext and deletes it
    out = _boot(vm, MARK)
    # the firmware's own reading of our device path: partition, start, size
    shown = re.search(rf'BdsDxe: loading {entry} "rdeploy service" from '
                      r'(\S+)', out)
    assert shown, out[-3000:]
    assert shown.group(1).lower() == (
        f"hd(1,gpt,{PART_GUID},0x{START:x},0x{SIZE:x})/"
        f"{LOADER.replace('/', chr(92))}").lower()
    final = ovmfvars.boot_entries(vm.vars)
    assert final["BootNext"] is None
    assert final[entry] == after[entry]

    # disarm (on the directory, as the firmware left the store) puts the
    # BootOrder back; delete_entry leaves what OVMF made alone
    root2 = tmp_path / "final"
    root2.mkdir()
    store2 = efivars.Efivars(str(root2), firmware=str(tmp_path / "none"))
    for (name, guid), (attrs, data) in ovmfvars.variables(vm.vars).items():
        if guid == GUID and name.startswith("Boot"):
            store2.write(name, guid, data, attrs)
    efiboot.disarm(store2, saved)
    efiboot.delete_entry(store2, entry)
    assert {n: open(root2 / n, "rb").read() for n in os.listdir(root2)
            if n.startswith("Boot")} == {
        n: d for n, d in stamp.items() if n.startswith("Boot")}
