"""Boot an artifact in QEMU (``-accel tcg``, serial console on stdio) and
collect what the console shows: for the boot tests and bench/bootdisk_times.py.

Firmware: SeaBIOS is QEMU's default; UEFI uses OVMF from the ``ovmf``
package, with a scratch copy of its variable store; Secure Boot uses
OVMF's secboot build with a copy of the store that enrolls Microsoft's keys
(secure_boot_args).
"""

import os
import re
import shutil
import threading
import time

from diskimage.errors import InputError, MissingToolError
from diskimage.host import tools

QEMU = "qemu-system-x86_64"
#: CSI sequences (cursor moves, colours, clears) a console may carry
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
#: Secure Boot: the SMM build, and a store with Microsoft's keys enrolled
#: (PK/KEK, db holding the UEFI CA that signed shim) and Secure Boot on.
OVMF_SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
OVMF_MS_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"


def base_args(memory=1024, uefi_vars=None):
    """The common command line: TCG, no screen, serial on stdio, no reboot
    (a reboot ends QEMU), and OVMF when `uefi_vars` (a writable copy of
    the variable store, see ovmf_vars) is given."""
    if shutil.which(QEMU, path=tools.tool_env()["PATH"]) is None:
        raise MissingToolError(QEMU)
    args = [QEMU, "-accel", "tcg", "-m", str(memory), "-nographic",
            "-no-reboot", "-smp", "1"]
    if uefi_vars:
        args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,"
                           f"file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={uefi_vars}"]
    return args


def ovmf_vars(directory):
    """A writable copy of OVMF's variable store in `directory`."""
    if not os.path.exists(OVMF_CODE):
        raise InputError(f"{OVMF_CODE} is missing (install ovmf)")
    path = os.path.join(directory, "OVMF_VARS.fd")
    shutil.copyfile(OVMF_VARS, path)
    return path


def secure_boot_args(directory, memory=1024):
    """base_args for OVMF with Secure Boot on and Microsoft's keys: q35
    with SMM, the secure flash, a copy of the key-enrolled store in
    `directory`."""
    for path in (OVMF_SECBOOT_CODE, OVMF_MS_VARS):
        if not os.path.exists(path):
            raise InputError(f"{path} is missing (install ovmf)")
    variables = os.path.join(directory, "OVMF_VARS.ms.fd")
    shutil.copyfile(OVMF_MS_VARS, variables)
    return base_args(memory) + [
        "-machine", "q35,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,"
                  f"file={OVMF_SECBOOT_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}"]


class Boot:
    """A running QEMU whose console output is collected as it comes."""

    def __init__(self, args):
        self.args = list(args)
        self.started = time.monotonic()
        # die_with_parent: a test (or bench) killed outright leaves no
        # QEMU behind (the start is in the caller's thread; `ip netns
        # exec` keeps the death signal, it execs QEMU)
        self.proc = tools.start(self.args, stdin=tools.PIPE,
                                stdout=tools.PIPE, stderr=tools.STDOUT,
                                die_with_parent=True)
        self._chunks = []
        self._lock = threading.Lock()
        self.marks = {}          # text -> seconds after start it was seen
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self):
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace")

    def wait_for(self, text, timeout):
        """Seconds after start when `text` showed on the console; raises
        TimeoutError (QEMU stopped or the time ran out) otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.plain():
                self.marks.setdefault(text, time.monotonic() - self.started)
                return self.marks[text]
            if self.proc.poll() is not None:
                self._reader.join(5)
                if text in self.plain():
                    continue
                raise TimeoutError(f"QEMU ended (exit {self.proc.returncode})"
                                   f" before {text!r} showed")
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} did not show within {timeout} s")

    def plain(self):
        """The console's text without terminal escape sequences: a menu
        drawn on the serial port before (iPXE's) leaves cursor moves in
        the middle of later lines ("LOCAL\\x1b[25;05HDISK-MARKER")."""
        return _ESCAPES.sub("", self.output)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait(self, timeout):
        """QEMU's exit code; kills it and raises TimeoutError when it does
        not end in time."""
        try:
            code = self.proc.wait(timeout)
        except tools.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"QEMU still running after {timeout} s") \
                from None
        self._reader.join(5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


VGA_TEXT = 0xB8000
VGA_COLUMNS = 80
VGA_TEXT_SIZE = 0x8000  # Linux's vgacon scrolls by moving the display
                        # origin through all 32 KiB of text memory


def monitor_args(path):
    """QEMU's human monitor on a unix socket at `path` (see monitor)."""
    return ["-monitor", f"unix:{path},server=on,wait=off"]


def monitor(path, command, timeout=30):
    """Run one human-monitor command on the socket at `path`; its output."""
    import socket
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        data = b""
        while not data.rstrip().endswith(b"(qemu)"):
            data += sock.recv(65536) or b"(qemu)"
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.rstrip().endswith(b"(qemu)"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    text = data.decode(errors="replace").replace("\r", "")
    return text.rsplit("(qemu)", 1)[0]


def screen_text(path):
    """The characters in VGA text memory (0xB8000, 32 KiB: the screen and
    what vgacon scrolled through), one string per 80 columns, read through
    the monitor at `path`."""
    dump = monitor(path, f"xp /{VGA_TEXT_SIZE}bx {VGA_TEXT:#x}")
    cells = bytes(int(token, 16) for line in dump.splitlines()
                  if ":" in line and line.split(":")[0].strip().startswith(
                      ("00000000000b", "0x00000000000b"))
                  for token in line.split(":", 1)[1].split())
    chars = cells[0::2].decode("cp437")
    return [chars[i:i + VGA_COLUMNS].rstrip()
            for i in range(0, len(chars), VGA_COLUMNS)]
