"""/init's ``rd.bwpart=ID``: the job becomes ``bwpart service-boot ID``,
before rd.pxeconf= and rd.job=, and its exit status is the job's.

/init's own text is run by busybox ash from its command-line loop to the
end of main() (the mounts before and the power-off after cut away), with
/proc/cmdline, /run and /etc/bootdisk/config moved into the test's
directory and `bwpart`, `wget` and `pxeconf` as stand-ins on PATH that note
how they were called (busybox runs its own wget applet before one on
PATH: the test without rd.bwpart= gives no rd.job=).  The boot itself is part H's QEMU tests'."""

import os
import subprocess

import pytest

from bootdisk import initscript

pytestmark = pytest.mark.needs("busybox")


def tool(bin_dir, name, code):
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >>"$CALLS"\nexit {code}\n')
    path.chmod(0o755)


def run_init(tmp_path, cmdline):
    text = initscript.INIT
    body = text[text.index("ON_SUCCESS=poweroff"):
                text.index("main 2>&1 | tee")]
    run = tmp_path / "run"
    run.mkdir()
    body = (body.replace("/proc/cmdline", str(tmp_path / "cmdline"))
            .replace("/etc/bootdisk/config", str(tmp_path / "config"))
            .replace("/run/", f"{run}/"))
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool(bin_dir, "bwpart", 7)
    tool(bin_dir, "wget", 1)
    tool(bin_dir, "pxeconf", 1)
    script = tmp_path / "init"
    script.write_text(body + 'setup() { :; }\nsay() { echo "say: $*"; }\n'
                      'uptime_s() { echo 0; }\nmain\n'
                      'echo "ON_FAILURE=$ON_FAILURE"\n')
    calls = tmp_path / "calls"
    calls.write_text("")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)}
    result = subprocess.run(["busybox", "sh", str(script)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return (calls.read_text().splitlines(),
            (run / "bootdisk.rc").read_text().strip(), result.stdout)


def test_rd_bwpart_runs_the_service_boot_and_takes_its_status(tmp_path):
    calls, rc, out = run_init(
        tmp_path, "quiet rd.bwpart=0a1b2c3d-02 rd.job=http://x/job "
        "rd.pxeconf=http://x rd.on_failure=reboot")
    assert calls == ["bwpart service-boot 0a1b2c3d-02"]
    assert rc == "7"
    assert "say: service partition 0a1b2c3d-02 (up 0 s)" in out
    assert "ON_FAILURE=reboot" in out


def test_without_rd_bwpart_the_job_is_looked_for_as_before(tmp_path):
    calls, rc, out = run_init(tmp_path, "quiet rd.on_failure=reboot")
    assert calls == []
    assert "say: no job given (--job or rd.job=URL)" in out
    assert rc == "1"


def test_busybox_ash_parses_init(tmp_path):
    script = tmp_path / "init"
    script.write_text(initscript.INIT)
    result = subprocess.run(["busybox", "sh", "-n", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


def test_efivarfs_and_loop_are_default_modules_of_the_debian_kernel():
    """bwpart inside the environment writes NVRAM through efivarfs (UEFI)
    and mounts the service FAT over a loop device (fatfs.mounted); Debian's
    kernel has both as modules, not built in, and /init runs no modprobe."""
    from bootdisk import kernel
    assert {"efivarfs", "loop"} <= set(kernel.DEFAULT_MODULES)
    release = kernel.kernel_release(kernel.default_kernel())
    tree = kernel.ModuleTree(kernel.module_dir_for(release))
    order, builtin, missing = tree.resolve(["efivarfs", "loop"])
    assert order == ["efivarfs", "loop"] and missing == []
