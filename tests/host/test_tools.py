"""The one runner of external tools (diskimage.host.tools): a missing tool is
one line naming it and its Debian package with exit 10, a failing one a
ToolError of the hierarchy; and the project has no other runner."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.toolless import run_in, toolless_root

ROOT = Path(__file__).resolve().parents[2]

@pytest.mark.parametrize("kept, tool, package", [
    ((), "sfdisk", "fdisk"),                 # the demo's first tool
    (("sfdisk",), "mkfs.ext4", "e2fsprogs"),  # issue 12: exit 70 before
])
def test_missing_tool_in_demo_is_one_line_naming_tool_and_package(
        tmp_path, kept, tool, package):
    """`rdeploy demo` of the frozen toolkit in a root that holds copies of
    `kept` only (tests/toolless.py): the other tools (every mkfs.*) are
    really gone, whatever PATH says."""
    root = toolless_root(tmp_path, kept)
    result = run_in(root, "rdeploy", "demo", "--dir=/tmp/demo")
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 10, result.stderr
    assert errors == [f"rdeploy: error: {tool}: not installed (it comes "
                      f"with the Debian package {package})"], result.stderr
    assert not os.path.exists(os.path.join(root, "tmp", "demo"))


def test_missing_tool_raises_the_hierarchy_error():
    from diskimage.errors import DiskImageError, MissingToolError, ToolError
    from diskimage.host import tools
    with pytest.raises(MissingToolError) as caught:
        tools.run(["no-such-tool-r12", "--help"])
    exc = caught.value
    assert isinstance(exc, ToolError) and isinstance(exc, DiskImageError)
    assert exc.exit_code == 10 and exc.tool == "no-such-tool-r12"
    assert "\n" not in str(exc) and "no-such-tool-r12" in str(exc)
    with pytest.raises(MissingToolError):
        tools.start(["no-such-tool-r12"])


def test_package_is_named_for_a_known_tool():
    from diskimage.errors import MissingToolError
    from diskimage.host import tools
    exc = MissingToolError("mkfs.ext4")
    assert exc.package == "e2fsprogs"
    assert "mkfs.ext4" in str(exc) and "e2fsprogs" in str(exc)
    assert tools.package_of("/usr/bin/qemu-system-x86_64") == \
        "qemu-system-x86"


def test_failing_tool_is_a_tool_error_with_its_words():
    from diskimage.errors import DiskImageError, ToolError
    from diskimage.host import tools
    with pytest.raises(ToolError) as caught:
        tools.run(["sh", "-c", "echo first >&2; echo last words >&2; exit 3"])
    exc = caught.value
    assert isinstance(exc, DiskImageError) and exc.returncode == 3
    assert exc.exit_code == 1 and "last words" in str(exc)
    assert tools.run(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_modes_input_env_cwd_and_timeout(tmp_path, monkeypatch):
    from diskimage.errors import ToolError
    from diskimage.host import tools
    assert tools.run(["cat"], input="héllo").stdout == "héllo"
    assert tools.run(["cat"], input=b"\xff\x00", text=False).stdout == \
        b"\xff\x00"
    assert tools.run(["sh", "-c", 'echo "$R12"'],
                     env={"R12": "x"}).stdout == "x\n"
    assert tools.run(["pwd"], cwd=tmp_path).stdout.strip() == str(tmp_path)
    monkeypatch.setenv("R12_OUTER", "y")
    echo = ["sh", "-c", 'echo "${R12_OUTER-unset} ${R12-unset}"']
    assert tools.run(echo).stdout == "y unset\n"
    assert tools.run(echo, inherit=False, env={"R12": "x"}).stdout == \
        "unset x\n"
    with pytest.raises(FileNotFoundError):      # not a missing tool
        tools.run(["true"], cwd=tmp_path / "gone")
    with pytest.raises(ToolError, match="did not finish within"):
        tools.run(["sleep", "5"], timeout=0.2)


@pytest.mark.needs("dpkg")
def test_package_table_is_what_dpkg_says():
    """Each installed tool of the table belongs to the package it names
    (dpkg -S; /bin and /sbin are links into /usr on merged-usr systems, so
    the tool's name is looked up in any bin directory)."""
    from diskimage.host import tools
    checked = 0
    for tool, package in sorted(tools.PACKAGES.items()):
        if not shutil.which(tool, path=tools.SYSTEM_PATH):
            continue
        found = subprocess.run(["dpkg", "-S", f"bin/{tool}"],
                               capture_output=True, text=True).stdout
        owners = {owner.strip() for line in found.splitlines()
                  for owner, path in [line.split(": ", 1)]
                  if re.search(rf"/s?bin/{re.escape(tool)}$", path)
                  for owner in owner.split(",")}
        assert package in owners, (tool, package, owners)
        checked += 1
    assert checked >= 10


PACKAGES = ("diskimage", "demodisk", "imgx", "rdeploy", "bootdisk",
            "cliutil", "deploytool")


def test_one_subprocess_runner():
    users = sorted(str(path.relative_to(ROOT)) for package in PACKAGES
                   for path in (ROOT / package).rglob("*.py")
                   if re.search(r"^\s*(import subprocess|from subprocess )",
                                path.read_text(), re.M))
    assert users == ["diskimage/host/tools.py"]


def test_every_exception_class_is_of_the_hierarchy():
    import importlib
    import pkgutil

    from diskimage.errors import DiskImageError
    outside = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)],
                                          f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, type) and \
                        issubclass(value, BaseException) and \
                        value.__module__ == module.__name__ and \
                        not issubclass(value, (DiskImageError,
                                               KeyboardInterrupt)):
                    outside.append(f"{info.name}.{name}")
    assert outside == []


PARENT = """
import sys, threading, time
from diskimage.host import tools
die = sys.argv[1] == "die"
kept = []
if sys.argv[2] == "thread":         # started by a thread that ends
    t = threading.Thread(target=lambda: kept.append(
        tools.start(["sleep", "300"], die_with_parent=die)))
    t.start(); t.join()
    proc = kept[0]
else:
    proc = tools.start(["sleep", "300"], die_with_parent=die)
print(proc.pid, flush=True)
time.sleep(300)
"""


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("die, where, survives", [
    ("die", "main", False), ("keep", "main", True),
    ("die", "thread", False)])
def test_die_with_parent(die, where, survives):
    """A parent SIGKILLed: its child started with die_with_parent gets
    SIGTERM from the kernel; one started without it runs on (so the test
    can tell).  Started from a thread that ends, the child goes with the
    thread, before the parent is killed (PR_SET_PDEATHSIG's rule)."""
    import sys
    from tests.signals import wait_for
    parent = subprocess.Popen([sys.executable, "-c", PARENT, die, where],
                              stdout=subprocess.PIPE, cwd=ROOT)
    child = int(parent.stdout.readline())
    try:
        if where == "thread":
            wait_for(lambda: not _running(child), 30, "the child's end")
        assert _running(parent.pid)
        parent.kill()
        parent.wait(30)
        if survives:
            assert _running(child)
        else:
            wait_for(lambda: not _running(child), 30, "the child's end")
    finally:
        parent.stdout.close()
        if _running(child):
            os.kill(child, 15)
