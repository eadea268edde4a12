"""What the bwpart boot tests build and boot: "production" disks that boot
by themselves, the control disk that tells a production boot what to run,
the service environment's bundles, and a Machine that boots one disk again
and again with the same devices (and the same OVMF variable store).

A production disk is a bootdisk USB image (`bootdisk usb --job=JOB
--timeout=0`: MBR with syslinux's mbr.bin, one active FAT32 partition from
1 MiB, syslinux for BIOS, a standalone GRUB as \\EFI\\BOOT\\BOOTX64.EFI for
UEFI) made bigger afterwards, so that the service partition finds free
space at the end.  Its JOB prints PRODUCTION_MARK, then, when the control
disk (/dev/vdb: a raw tar the test writes before each boot) holds run.sh,
runs it (in /tmp/control, where the tar's other files are too), then powers
off.  The GPT variant is the same image converted by `sgdisk -g`, with
syslinux's gptmbr.bin as its first 440 bytes and partition 1's legacy
BIOS bootable attribute (bit 2) set: SeaBIOS boots it through gptmbr.bin,
OVMF through its fallback \\EFI\\BOOT\\BOOTX64.EFI.  The Secure Boot variant
is `bootdisk usb --secure-boot` (shim -> Debian's signed GRUB -> kernel).

Each base image (disk or bundle) is built once per session (Bases: in
pytest's base temporary directory, whichever test module asks first) and
copied per test.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bootdisk import qemu
from tests.bootdisk_helpers import ROOT, toolkit

MiB = 1 << 20
PRODUCTION_MARK = "PRODUCTION-BOOTED"
#: what run.sh printing ends with, so that a test sees it ran
RUN_DONE = "CONTROL-RUN-EXIT"
#: what a service job of these tests prints first, and last on success
JOB_MARK = "SERVICE-JOB"
JOB_DONE = "SERVICE-JOB-DONE"
#: the production partition's size (bootdisk's files need about 38 MiB,
#: 66 with --secure-boot, since the toolkit carries libtorrent)
PROD_SIZE = 96 * MiB
#: free space left after it: the service partition plus room for GPT's
#: backup copy and 1 MiB alignment.  Not bwpart's minimum of 256 MiB: its
#: FAT32 of 255 MiB with 4 KiB clusters has fewer than 65525 clusters,
#: which mtools takes for FAT16 ("No directory slots")
FREE = 324 * MiB
SERVICE_SIZE = "320M"
CONTROL_SIZE = 4 * MiB
GPTMBR = "/usr/lib/syslinux/mbr/gptmbr.bin"
OVMF_SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
OVMF_MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
#: one boot of the environment under TCG, with room for a slow machine
BOOT_TIMEOUT = 400

PRODUCTION_JOB = f"""\
echo {PRODUCTION_MARK}
mkdir -p /tmp/control
if tar -xf /dev/vdb -C /tmp/control 2>/dev/null && [ -f /tmp/control/run.sh ]; then
    echo "production: running the control disk's run.sh"
    (cd /tmp/control && sh ./run.sh)
    echo "{RUN_DONE} $?"
fi
sync
exit 0
"""


def python_m(*args, check=True, **kw):
    """`.venv/bin/python -m ...` from the worktree root (the tree under
    test, whatever the editable install maps)."""
    return subprocess.run([sys.executable, "-m", *map(os.fspath, args)],
                          cwd=ROOT, check=check, text=True,
                          capture_output=True, **kw)


def bwpart(*args, check=True, **kw):
    proc = python_m("bwpart", *args, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"bwpart {' '.join(map(str, args))}: exit "
                             f"{proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def rdeploy(*args, check=True):
    proc = python_m("rdeploy", *args, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rdeploy {' '.join(map(str, args))}: exit "
                             f"{proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def bootdisk(*args):
    proc = python_m("bootdisk", *args, f"--toolkit={toolkit()}", "--quiet",
                    check=False)
    if proc.returncode != 0:
        raise AssertionError(f"bootdisk {' '.join(map(str, args))}: exit "
                             f"{proc.returncode}\n{proc.stderr}")


# ---- production disks -------------------------------------------------

def build_production_mbr(out, secure_boot=False):
    """The MBR production disk at `out`: PROD_SIZE of bootdisk USB image,
    then FREE bytes of free space (a hole)."""
    out = Path(out)
    job = out.with_suffix(".job.sh")
    job.write_text(PRODUCTION_JOB)
    extra = ["--secure-boot"] if secure_boot else []
    bootdisk("usb", "-o", out, f"--size={PROD_SIZE // MiB}M", f"--job={job}",
             "--timeout=0", "--on-failure=poweroff", "--force", *extra)
    with open(out, "r+b") as f:
        f.truncate(PROD_SIZE + FREE)
    return out


def convert_to_gpt(path):
    """The MBR production disk at `path` made GPT in place: `sgdisk -g`,
    gptmbr.bin in the first 440 bytes, partition 1 legacy BIOS bootable."""
    subprocess.run(["sgdisk", "-g", os.fspath(path)], check=True,
                   capture_output=True)
    with open(GPTMBR, "rb") as f:
        code = f.read(440)
    with open(path, "r+b") as f:
        f.write(code)
    subprocess.run(["sgdisk", "-A", "1:set:2", os.fspath(path)], check=True,
                   capture_output=True)
    return Path(path)


def build_production_gpt(out, secure_boot=False):
    return convert_to_gpt(build_production_mbr(out, secure_boot))


# ---- bundles ----------------------------------------------------------

def build_bundle(out, marker=None, secure_boot=False):
    """`bootdisk bundle -o OUT`; with `marker`, the file /etc/bwpart-test
    holds it (so two bundles differ, and a job can tell which booted)."""
    out = Path(out)
    extra = ["--secure-boot"] if secure_boot else []
    if marker:
        mark = out.parent / f"{out.name}.marker"
        mark.write_text(marker + "\n")
        extra.append(f"--add={mark}:/etc/bwpart-test")
    bootdisk("bundle", "-o", out, "--force", *extra)
    return out


# ---- the control disk -------------------------------------------------

def write_control(path, files=None):
    """The control disk: a raw tar of `files` ({name: text}), zero-padded
    to CONTROL_SIZE; without files, an empty archive (no run.sh: the
    production job only prints its mark)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w",
                      format=tarfile.USTAR_FORMAT) as tar:
        for name, text in (files or {}).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    assert len(data) <= CONTROL_SIZE
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(CONTROL_SIZE)


# ---- the machine ------------------------------------------------------

class Machine:
    """One PC: the disk (virtio, /dev/vda), the control disk (/dev/vdb),
    no NIC, and the firmware: "bios" (SeaBIOS), "uefi" (OVMF) or
    "secboot" (OVMF with Secure Boot on and Microsoft's keys).  Every boot
    has the same devices and, for OVMF, the same variable store."""

    def __init__(self, directory, disk, firmware):
        self.directory = Path(directory)
        self.disk = Path(disk)
        self.firmware = firmware
        self.control = self.directory / "control.tar"
        write_control(self.control)
        self.vars = None
        if firmware == "uefi":
            self.vars = Path(qemu.ovmf_vars(self.directory))
        elif firmware == "secboot":
            self.vars = self.directory / "OVMF_VARS.ms.fd"
            shutil.copyfile(OVMF_MS_VARS, self.vars)
        self.boots = []          # console output of each boot

    def args(self):
        if self.firmware == "secboot":
            args = [qemu.QEMU, "-accel", "tcg", "-m", "1024", "-nographic",
                    "-no-reboot", "-smp", "1", "-machine", "q35,smm=on",
                    "-global", "driver=cfi.pflash01,property=secure,value=on",
                    "-drive", f"if=pflash,format=raw,unit=0,readonly=on,"
                              f"file={OVMF_SECBOOT_CODE}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={self.vars}"]
        else:
            args = qemu.base_args(memory=1024, uefi_vars=self.vars)
        return args + [
            "-nic", "none",
            "-drive", f"file={self.disk},if=virtio,format=raw",
            "-drive", f"file={self.control},if=virtio,format=raw"]

    def boot(self, files=None, timeout=BOOT_TIMEOUT):
        """One boot until QEMU ends (a poweroff, or a reboot: -no-reboot);
        `files` ({name: text}, run.sh among them) go on the control disk.
        Returns the console's text."""
        write_control(self.control, files)
        with qemu.Boot(self.args()) as boot:
            try:
                boot.wait(timeout)
            except TimeoutError:
                self.boots.append(boot.plain())
                raise AssertionError(
                    f"boot {len(self.boots)} did not end within {timeout} s:"
                    f"\n{tail(boot.plain())}") from None
            out = boot.plain()
        self.boots.append(out)
        return out

    def log(self):
        """Every boot's console, for a failure message."""
        return "\n".join(f"==== boot {n}\n{tail(out, 60)}"
                         for n, out in enumerate(self.boots, 1))


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def is_production(out):
    """The console of a production boot: its job's mark and no service job
    before it."""
    return PRODUCTION_MARK in out and JOB_MARK not in out


# ---- built once per session -------------------------------------------

class Bases:
    """Production disks and bundles built once per session, in pytest's
    base temporary directory (shared by every test module), made
    read-only; `disk(kind, target)` gives a test its own copy."""

    BUILDERS = {
        "mbr": lambda out: build_production_mbr(out),
        "gpt": lambda out: build_production_gpt(out),
        "gpt-secure": lambda out: build_production_gpt(out, secure_boot=True),
    }

    def __init__(self, tmp_path_factory):
        self.root = tmp_path_factory.getbasetemp() / "bwpart-bases"
        self.root.mkdir(exist_ok=True)

    def _built(self, name, build):
        path = self.root / name
        if not path.exists():
            partial = self.root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            build(partial / name)
            for item in partial.rglob("*"):
                if item.is_file():
                    item.chmod(0o444)
            partial.rename(path)
        return path / name

    def disk(self, kind, target):
        from tests.shared import copy
        return copy(self._built(kind, self.BUILDERS[kind]), target)

    def bundle(self, marker, secure_boot=False):
        """A bundle whose /etc/bwpart-test holds `marker` (read-only: the
        install only reads it)."""
        name = f"bundle-{marker}{'-sb' if secure_boot else ''}"
        return self._built(name, lambda out: build_bundle(
            out, marker=marker, secure_boot=secure_boot))


# ---- the service partition seen by the field's tools ------------------

def partitions(disk):
    """sfdisk --json's partitions of `disk`, each with its number."""
    proc = subprocess.run(["sfdisk", "--json", os.fspath(disk)], check=True,
                          capture_output=True, text=True)
    table = json.loads(proc.stdout)["partitiontable"]
    for part in table["partitions"]:
        part["number"] = int(part["node"][len(os.fspath(disk)):])
    return table


SERVICE_TYPES = ("1c", "b10262f8-ab25-4a01-be00-a2803022d1bf")


def service_area(disk):
    """(start, size) in bytes of the service partition, found by its type
    in sfdisk's view of the table."""
    table = partitions(disk)
    sector = table.get("sectorsize", 512)
    found = [p for p in table["partitions"]
             if p["type"].lower() in SERVICE_TYPES]
    assert len(found) == 1, f"{disk}: service partitions {found}"
    return found[0]["start"] * sector, found[0]["size"] * sector


def mtools_image(disk):
    start, _ = service_area(disk)
    return f"{disk}@@{start}"


def mtools_env():
    from diskimage.fs.fat.mtools import MTOOLS_ENV
    return {**os.environ, **MTOOLS_ENV}


def fat_names(disk, directory):
    """Names in `directory` of the service FAT, by mdir."""
    proc = subprocess.run(["mdir", "-b", "-i", mtools_image(disk),
                           f"::{directory}"], capture_output=True, text=True,
                          env=mtools_env())
    if proc.returncode != 0:
        return []
    return sorted(line.rstrip("/").rsplit("/", 1)[-1]
                  for line in proc.stdout.split("\n") if line.strip())


def copy_out_of_store(disk, name, target_dir):
    """The store's image `name` (NAME.rdi and its volumes) copied out of
    the service FAT by mcopy; the path of its first volume."""
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stem = name[:-4] if name.endswith(".rdi") else name
    volumes = [n for n in fat_names(disk, "/store")
               if n.rsplit(".", 1)[0] == stem]
    assert f"{stem}.rdi" in volumes, \
        f"/store holds {fat_names(disk, '/store')}"
    for vol in volumes:
        subprocess.run(["mcopy", "-n", "-i", mtools_image(disk),
                        f"::/store/{vol}", os.fspath(target_dir / vol)],
                       check=True, env=mtools_env())
    return target_dir / f"{stem}.rdi"


def cmp_outside(before, after, hole):
    """`cmp` of two disk files everywhere but the byte range `hole`
    (start, end); the list of differing ranges named."""
    size = os.path.getsize(before)
    assert os.path.getsize(after) == size
    differ = []
    for start, end in ((0, hole[0]), (hole[1], size)):
        if end <= start:
            continue
        proc = subprocess.run(["cmp", f"--ignore-initial={start}",
                               f"--bytes={end - start}", os.fspath(before),
                               os.fspath(after)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            differ.append(f"[{start}, {end}): {proc.stdout.strip()}")
    return differ


# ---- jobs -------------------------------------------------------------

#: the service job of the capture scenario: the production partition into
#: the local store
CAPTURE_JOB = f"""\
set -e
echo "{JOB_MARK} try $BWPART_TRY of $BWPART_TRIES on $BWPART_DISK"
mkdir -p "$BWPART_STORE"
rdeploy capture "$BWPART_DISK" --partitions=1 "$BWPART_STORE/prod.rdi" \\
    --split=4000M --yes --quiet
ls -l "$BWPART_STORE"
echo {JOB_DONE}
"""


def service_ran(out):
    """The console of a service boot whose job ran (and no production
    boot in it)."""
    return JOB_MARK in out and PRODUCTION_MARK not in out
