"""What the network boots of pxeconf share: the disk that boots by itself
to a serial marker (the local-boot check), a plain dnsmasq as a site's DHCP
server, and VMs (QEMU, TCG) on a tap of a tests.netns.Lan.

A VM is one machine: its disk file, its MAC and (UEFI) its NVRAM stay the
same across boots; each boot is one QEMU process started with -no-reboot,
so a reboot of the guest (or `system_reset` on its monitor) ends that
boot, and the test starts the next one.  Every wait is bounded and fails
with the tail of the serial log and of the servers' logs.
"""

import hashlib
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bootdisk import media, qemu

MiB = 1 << 20
SECTOR = 512
DISK_SIZE = 64 * MiB
FAT_START, FAT_SIZE = 1 * MiB, 36 * MiB
EXT_START = FAT_START + FAT_SIZE
EXT_SIZE = DISK_SIZE - EXT_START
MARKER = "LOCALDISK-MARKER"
DATA_FILE = "data.bin"
DATA_SIZE = 3 * MiB
CONSOLE = "console=ttyS0,115200 panic=10"


def _run(args, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    return subprocess.run([os.fspath(a) for a in args], **kw)


def local_disk(path, scratch, seed=13):
    """A 64 MiB MBR disk that boots by itself, under SeaBIOS (syslinux's
    mbr.bin and syslinux on partition 1) and under OVMF (a standalone GRUB
    as EFI/BOOT/BOOTX64.EFI on it), to the line "LOCALDISK-MARKER booted
    (bios|efi)" on the serial port; partition 2 is ext4 holding data.bin
    (3 MiB of random bytes from `seed`).  Returns the sha256 of data.bin."""
    scratch = Path(scratch)
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    table = (f"label: dos\nstart={FAT_START // SECTOR}, "
             f"size={FAT_SIZE // SECTOR}, type=c, bootable\n"
             f"start={EXT_START // SECTOR}, type=83\n")
    _run(["sfdisk", "--quiet", path], input=table.encode())
    with open(media.loader("mbr.bin"), "rb") as f:
        code = f.read(440)
    with open(path, "r+b") as f:
        f.write(code)
    _run(["mkfs.fat", "-F", "32", "-s", "1", "-n", "LOCALDISK", "--offset",
          str(FAT_START // SECTOR), path, str(FAT_SIZE // 1024)])
    fat = f"{path}@@{FAT_START}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for directory in ("/syslinux", "/EFI", "/EFI/BOOT"):
        _run(["mmd", "-i", fat, f"::{directory}"], env=env)
    _run(["syslinux", "--offset", str(FAT_START), "--install", "--directory",
          "/syslinux", path], env=env)
    cfg = scratch / "syslinux.cfg"
    cfg.write_text("SERIAL 0 115200\nPROMPT 1\nTIMEOUT 0\n"
                   f"SAY {MARKER} booted (bios)\n")
    grub = scratch / "BOOTX64.EFI"
    media.grub_standalone(os.fspath(grub), (
        "serial --unit=0 --speed=115200\n"
        "terminal_output serial console\n"
        f"echo '{MARKER} booted (efi)'\n"
        "sleep 600\n").encode(), os.fspath(scratch))
    _run(["mcopy", "-o", "-i", fat, cfg, "::/syslinux/syslinux.cfg"], env=env)
    _run(["mcopy", "-o", "-i", fat, grub, "::/EFI/BOOT/BOOTX64.EFI"], env=env)
    data = random.Random(seed).randbytes(DATA_SIZE)
    tree = scratch / "ext"
    tree.mkdir(exist_ok=True)
    (tree / DATA_FILE).write_bytes(data)
    _run(["mkfs.ext4", "-q", "-F", "-L", "data", "-d", tree, "-E",
          f"offset={EXT_START}", path, f"{EXT_SIZE // 1024}k"])
    return hashlib.sha256(data).hexdigest()


def check_restored(disk, digest, scratch):
    """What is wrong with a restored local disk ([] when nothing): fsck of
    both filesystems (read-only) and data.bin's digest."""
    problems = []
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    fat = scratch / "fat.part"
    ext = scratch / "ext.part"
    with open(disk, "rb") as src:
        for out, start, size in ((fat, FAT_START, FAT_SIZE),
                                 (ext, EXT_START, EXT_SIZE)):
            src.seek(start)
            out.write_bytes(src.read(size))
    r = _run(["fsck.fat", "-n", fat], check=False)
    if r.returncode != 0:
        problems.append(f"fsck.fat: {r.stdout.decode()[-300:]}")
    r = _run(["e2fsck", "-fn", ext], check=False)
    if r.returncode != 0:
        problems.append(f"e2fsck: {r.stdout.decode()[-300:]}")
    r = _run(["debugfs", "-R", f"cat /{DATA_FILE}", ext], check=False)
    if hashlib.sha256(r.stdout).hexdigest() != digest:
        problems.append(f"{DATA_FILE}: digest differs "
                        f"({len(r.stdout)} bytes read)")
    mbr = Path(disk).read_bytes()[:512]
    if mbr[510:] != b"\x55\xaa":
        problems.append("no MBR signature")
    return problems


def blank_disk(path):
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    return path


class Logged:
    """A server process whose output lines are kept (for failure messages
    and for waiting on a line)."""

    def __init__(self, proc, name):
        self.proc, self.name = proc, name
        self.lines = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self._lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def text(self):
        with self._lock:
            return "\n".join(self.lines)

    def tail(self, n=25):
        with self._lock:
            return "\n".join(f"  {self.name}| {line}"
                             for line in self.lines[-n:])

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.text():
                return
            if self.proc.poll() is not None:
                self._thread.join(2)
                if text in self.text():
                    return
                raise AssertionError(f"{self.name} ended (exit "
                                     f"{self.proc.returncode}) before "
                                     f"{text!r}:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: no {text!r} in {timeout} s:\n"
                             f"{self.tail()}")


def site_dhcp(lan, ns, scratch, first=100, last=150, extra=()):
    """A plain dnsmasq in `ns` as the site's DHCP server: addresses only,
    no PXE options, DNS off (port=0).  `extra`: more options (the full
    DHCP + TFTP server of the harness test)."""
    scratch = Path(scratch)
    args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--log-facility=-", "--port=0", "--interface=eth0",
            "--bind-interfaces", "--user=root", "--group=root",
            f"--dhcp-range={lan.address(first)},{lan.address(last)},"
            "255.255.255.0,10m",
            f"--dhcp-leasefile={scratch / 'leases'}",
            f"--pid-file={scratch / 'dnsmasq.pid'}", "--log-dhcp", *extra]
    proc = lan.start(ns, args, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
    logged = Logged(proc, "site-dhcp")
    logged.wait_for("DHCP, IP range", 20)
    return logged


def http_files(lan, ns, address, port, root):
    """Python's http.server on ADDRESS:PORT inside `ns`, serving `root`."""
    proc = lan.start(ns, [shutil.which("python3") or "python3", "-u", "-m",
                          "http.server", str(port), "--bind", address,
                          "--directory", root],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    logged = Logged(proc, "http")
    logged.wait_for("Serving HTTP", 20)
    return logged


class VM:
    """One machine on the Lan's tap: a disk, a MAC, a firmware."""

    def __init__(self, lan, tap, firmware, disk, mac, scratch, memory=384):
        self.lan, self.tap, self.firmware = lan, tap, firmware
        self.disk, self.mac, self.memory = disk, mac, memory
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.vars = (qemu.ovmf_vars(os.fspath(self.scratch))
                     if firmware == "uefi" else None)
        # BIOS: e1000, whose ROM is iPXE (SeaBIOS has no PXE of its own).
        # UEFI: virtio-net without a ROM, so that OVMF's own PXE (arch 7)
        # boots, not the iPXE of an option ROM.
        self.nic = "e1000" if firmware == "bios" else \
            "virtio-net-pci,romfile="
        # OVMF offers PXE over IPv6 and HTTP boot on the NIC as well; each
        # waits for its own DHCP before the disk's turn: IPv4 PXE only, as
        # on a lab's PCs set up for it.
        self.firmware_args = [] if firmware == "bios" else [
            "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
        self.boots = []
        self.servers = []        # Logged: their tails go into failures
        self.boot = None

    def args(self, monitor, disk_first=False):
        args = qemu.base_args(memory=self.memory, uefi_vars=self.vars)
        net, disk = (1, 0) if disk_first else (0, 1)
        return self.lan.argv(self.lan.bridge_ns, args + [
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,"
                       f"downscript=no",
            "-device", f"{self.nic},netdev=n0,mac={self.mac},"
                       f"bootindex={net}",
            "-drive", f"file={self.disk},if=none,id=d0,format=raw",
            "-device", f"virtio-blk-pci,drive=d0,bootindex={disk}",
            *self.firmware_args, *qemu.monitor_args(monitor)])

    def start(self, disk_first=False):
        """Power on: a new boot (the previous one must have ended); the
        network first (PXE), or with `disk_first` the disk."""
        assert self.boot is None or self.boot.proc.poll() is not None
        monitor = self.scratch / f"monitor{len(self.boots)}.sock"
        self.monitor = os.fspath(monitor)
        self.boot = qemu.Boot(self.args(self.monitor, disk_first))
        self.lan.adopt(self.boot.proc)
        self.boots.append(self.boot)
        return self.boot

    def why(self, lines=60):
        """The tail of this boot's serial log and the servers' logs."""
        whole = self.scratch / f"serial{len(self.boots)}.log"
        whole.write_text(self.boot.output)
        out = "\n".join(f"  serial| {line[:300]}" for line in
                        self.boot.output.splitlines()[-lines:])
        return "\n".join([f"{self.firmware} VM {self.mac}, boot "
                          f"{len(self.boots)} (whole log: {whole}):", out] +
                         [s.tail() for s in self.servers])

    def wait_for(self, text, timeout):
        """Seconds into this boot when `text` showed on its serial port."""
        try:
            return self.boot.wait_for(text, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.why()}") from None

    def wait_end(self, timeout):
        """The boot ends by itself (poweroff or reboot, with -no-reboot)."""
        try:
            return self.boot.wait(timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.why()}") from None

    def reset(self):
        """QEMU's monitor `system_reset`: with -no-reboot the boot ends."""
        qemu.monitor(self.monitor, "system_reset")
        return self.wait_end(30)

    def off(self):
        if self.boot is not None:
            self.boot.kill()
