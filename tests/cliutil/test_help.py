"""Every command's --help runs, versions print, usage errors exit 2."""

import subprocess
import sys

import pytest

from diskimage import __version__
from rdeploy.cli import main as rdeploy_main

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], cwd=ROOT,
                          capture_output=True, text=True, **kw)


def test_rdeploy_help_lists_commands_and_exit_codes():
    result = run("-m", "rdeploy", "--help")
    assert result.returncode == 0
    for word in ("capture", "restore", "verify", "info", "list", "demo",
                 "Exit codes", "--split=SIZE"):
        assert word in result.stdout


def test_rdeploy_version():
    result = run("-m", "rdeploy", "--version")
    assert result.stdout.strip() == f"rdeploy {__version__}"


@pytest.mark.parametrize("argv", [["capture"], ["bogus"], ["info"],
                                  ["capture", "a", "b", "--threads=x"],
                                  ["capture", "a", "b", "--split=12Q"],
                                  ["capture", "a", "b", "--compress=rar"]])
def test_usage_errors_exit_2(argv):
    assert rdeploy_main(argv) == 2


def test_multicall_dispatches_by_first_argument():
    result = run("-m", "deploytool.multicall", "rdeploy", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rdeploy {__version__}"
    unknown = run("-m", "deploytool.multicall", "nosuch")
    assert unknown.returncode == 2
    assert "unknown command" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_list_json_is_a_list():
    result = run("-m", "rdeploy", "list", "--json")
    assert result.returncode == 0
    import json
    assert isinstance(json.loads(result.stdout), list)
