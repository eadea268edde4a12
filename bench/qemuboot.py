"""Boot an artifact in QEMU (``-accel tcg``, serial console on stdio) and
time it: when a line shows on the console, and when QEMU exits.  For
bench/bootdisk_times.py, which measures boot media through the bootdisk
command only (the boot tests have their own harness)."""

import os
import shutil
import subprocess
import threading
import time

QEMU = "qemu-system-x86_64"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def base_args(memory=1024, uefi_vars_dir=None):
    """TCG, one vCPU, no screen, serial on stdio, no reboot; OVMF with a
    scratch copy of its variable store in `uefi_vars_dir` when given."""
    if shutil.which(QEMU) is None:
        raise SystemExit(f"{QEMU} is missing (install qemu-system-x86)")
    args = [QEMU, "-accel", "tcg", "-m", str(memory), "-nographic",
            "-no-reboot", "-smp", "1"]
    if uefi_vars_dir:
        if not os.path.exists(OVMF_CODE):
            raise SystemExit(f"{OVMF_CODE} is missing (install ovmf)")
        uefi_vars = os.path.join(uefi_vars_dir, "OVMF_VARS.fd")
        shutil.copyfile(OVMF_VARS, uefi_vars)
        args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,"
                           f"file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={uefi_vars}"]
    return args


def timed_boot(args, line, timeout=300):
    """Run QEMU with `args` until it exits: (seconds until `line` showed
    on the console, or None; seconds until QEMU ended; the console
    text).  QEMU is killed after `timeout` seconds for each of the two."""
    started = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks, seen = [], {}

    def read():
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                return
            chunks.append(chunk)
            if "at" not in seen and line.encode() in b"".join(chunks):
                seen["at"] = time.monotonic() - started

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(2 * timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    total = time.monotonic() - started
    reader.join(5)
    return seen.get("at"), total, b"".join(chunks).decode(errors="replace")
