"""bwpart's usage: every subcommand's --help, `help COMMAND`, and the
usage errors (exit 2) found before any disk is opened."""

import pytest

from tests.bwpart.cli_helpers import bwpart, check

SUBCOMMANDS = ("install", "boot-next", "status", "update", "remove",
               "store", "service-boot")


def test_help_names_every_command_and_the_exit_codes():
    result = bwpart("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("bwpart - ")
    for word in SUBCOMMANDS + ("Exit codes:", "Internal:"):
        assert word in result.stdout
    assert bwpart("--version").stdout.startswith("bwpart ")


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_has_its_help(command):
    for argv in ((command, "--help"), ("help", command)):
        result = bwpart(*argv)
        assert result.returncode == 0 and result.stderr == ""
        assert f"bwpart {command} " in result.stdout
        assert "Usage:" in result.stdout


@pytest.mark.parametrize("argv, words", [
    (("install", "d.img"), ["missing --env=BUNDLE"]),
    (("install", "d.img", "--env=e", "--size=100M"), ["--size", "256M"]),
    (("install", "d.img", "--env=e", "--size=300.5M"), ["multiple of 1M"]),
    (("install", "d.img", "--env=e", "--firmware=arm"), ["bios or uefi"]),
    (("install", "d.img", "--env=e", "--efi-loader=refind"),
     ["shim or grub"]),
    (("install", "d.img", "--env=e", "--shrink=0"), ["--shrink"]),
    (("boot-next", "d.img", "--job=j.sh", "--tries=0"), ["--tries"]),
    (("boot-next", "d.img"), ["missing --job=FILE"]),
    (("remove", "d.img", "--grow=x"), ["--grow"]),
    (("store", "add", "d.img"), []),
    (("frobnicate",), []),
])
def test_usage_errors_exit_2_before_the_disk_is_opened(argv, words):
    # d.img does not exist: a usage error comes first
    check(bwpart(*argv), 2, *words)
