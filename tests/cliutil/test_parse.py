"""Option values are read strictly and before any file is touched (issue 11
round 3, parser items 1-4 and 7): an empty value is a usage error, every
value is converted up front, an abbreviated long option is refused, and
the JSON error event says what the text line says."""

import json
import os
import subprocess
import sys

import pytest

from cliutil.usage import Usage

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
PROGS = ("rdeploy", "imgx", "bootdisk")


def run(prog, *argv, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", prog, *map(str, argv)],
                          cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def usage_of(prog):
    return Usage(__import__(f"{prog}.cli", fromlist=["cli"]).__doc__)


def main_of(prog):
    return __import__(f"{prog}.cli", fromlist=["cli"]).main


def one_error_line(result, prog):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


def minimal_argv(usage, name, skip=None):
    """A command line the usage accepts for command `name`: its first
    pattern's required positionals and options, with dummy values."""
    command = usage.commands[name]
    argv = [name] + [f"p{i}.rdi:1/x" for i in range(command.least)]
    for option in command.required:
        if option is not skip:
            argv.append(f"{option.long or option.short}=out"
                        if option.long else option.short)
            if not option.long:
                argv.append("out")
    return argv


def value_cases():
    for prog in PROGS:
        usage = usage_of(prog)
        for name, command in usage.commands.items():
            for option in usage.options:
                if option.takes_value and set(option.names) & \
                        command.options and option.long:
                    yield prog, name, option.long


@pytest.mark.parametrize("prog, name, option", list(value_cases()),
                         ids=lambda v: str(v))
def test_an_empty_value_is_a_usage_error_naming_the_option(
        prog, name, option, tmp_path, monkeypatch, capsys):
    # Every option that takes a value, of every command: `--opt=` is
    # refused before the command does anything (run in an empty cwd).
    monkeypatch.chdir(tmp_path)
    usage = usage_of(prog)
    skip = usage.by_name[option]
    argv = minimal_argv(usage, name, skip) + [f"{option}="]
    code = main_of(prog)(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert f"option {option} has an empty value" in err, err
    assert err.endswith(f"; see '{prog} {name} --help'\n"), err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["rdeploy", "capture", "a", "b", "--split="],
    ["rdeploy", "restore", "a", "x", "--threads=", "--dry-run"],
    ["rdeploy", "restore", "a", "x", "--threads", ""],
    ["imgx", "sfx", "a.rdi", "-o", ""],
    ["imgx", "sfx", "a.rdi", "--output="],
    ["bootdisk", "iso", "-o", "x.iso", "--job", ""],
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_an_empty_value_given_any_way_is_refused(argv, tmp_path):
    result = run(*argv, cwd=tmp_path)
    line = one_error_line(result, argv[0])
    assert "has an empty value" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, phrase", [
    (["rdeploy", "restore", "a", "b", "--threads=abc"],
     "--threads takes a whole number, not 'abc'"),
    (["rdeploy", "capture", "a", "b", "--split=1"], "--split must be at"),
    (["rdeploy", "restore", "a", "b", "--partitions=x"],
     "--partitions takes numbers"),
    (["rdeploy", "restore", "a", "b", "--threads=0", "--dry-run"],
     "--threads must be at least 1"),
    (["rdeploy", "verify", "a", "--threads=x"], "--threads takes"),
    (["rdeploy", "capture", "a", "b", "--threads=x"], "--threads takes"),
    # Sweep: values the library refused only once the files were open.
    (["rdeploy", "capture", "a", "b", "--sector-size=1000"],
     "--sector-size must be 512, 1024, 2048 or 4096, not 1000"),
    (["rdeploy", "restore", "a", "b", "--size=0=1G"],
     "--size takes N=SIZE like 2=20G, not '0=1G'"),
    (["imgx", "verify", "a", "--threads=x"], "--threads takes"),
    (["imgx", "import", "a", "b", "--compress=bogus"],
     "unknown compression 'bogus'"),
    (["imgx", "import", "a", "b", "--level=x"], "--level takes"),
    (["imgx", "convert", "a", "b", "--to=bogus"],
     "--to takes raw, qcow2 or vhd, not 'bogus'"),
    (["imgx", "split", "a", "x"], "not a size: 'x'"),
    (["imgx", "split", "a", "1"], "SIZE must be at least 4K"),
    (["imgx", "recompress", "a", "--compress=none", "--level=3"],
     "--level does not go with --compress=none"),
    (["imgx", "import", "a", "b", "--compress=none", "--level=3"],
     "--level does not go with --compress=none"),
    (["bootdisk", "iso", "-o", "x", "--add=nocolon"],
     "--add takes SRC:/ABSOLUTE/DEST"),
    (["bootdisk", "iso", "-o", "x", "--on-success=bogus"],
     "--on-success takes"),
    (["bootdisk", "usb", "-o", "x", "--size=x"], "not a size"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_values_are_checked_before_any_file(argv, phrase, tmp_path):
    # The files do not exist: a usage error must come first (exit 2),
    # never "a: no such file" (3).
    result = run(*argv, cwd=tmp_path)
    line = one_error_line(result, argv[0])
    assert phrase in line, line
    assert line.endswith(f"; see '{argv[0]} {argv[1]} --help'"), line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, given, meant", [
    (["rdeploy", "restore", "a", "b", "--dry"], "--dry", "--dry-run"),
    (["rdeploy", "capture", "a", "b", "--comp=zstd"], "--comp",
     "--compress"),
    (["rdeploy", "verify", "a", "--pro=json"], "--pro", "--progress"),
    (["rdeploy", "capture", "a", "b", "--p"], "--p",
     "--partitions, --passphrase-file, --passphrase-env or --progress"),
    (["imgx", "put", "a", "b:1/c", "--forc"], "--forc", "--force"),
    (["imgx", "recompress", "a", "--out=b"], "--out", "--output"),
    (["bootdisk", "iso", "-o", "x", "--on-s=reboot"], "--on-s",
     "--on-success"),
    (["bootdisk", "iso", "--out", "x"], "--out", "--output"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_an_abbreviated_long_option_is_refused(argv, given, meant, tmp_path):
    result = run(*argv, cwd=tmp_path)
    line = one_error_line(result, argv[0])
    assert line == (f"{argv[0]}: error: unknown option {given} (did you "
                    f"mean {meant}?); see '{argv[0]} {argv[1]} --help'")


def json_error(result):
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    event = json.loads(lines[0])
    assert event["event"] == "error" and event["exit_code"] == 2
    assert result.returncode == 2
    return event


@pytest.mark.parametrize("words, command", [
    (["frobnicate"], None),
    (["capture", "a", "b", "--split=1"], "capture"),
    (["restore", "a", "b", "--threads=abc"], "restore"),
    (["capture", "a", "b", "--frob"], "capture"),
    (["verify", "a", "--threads="], "verify"),
    (["restore", "a", "b", "--dry"], "restore"),
    (["restore", "a", "b", "--resize=half"], "restore"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_json_error_event_says_what_the_text_line_says(words, command,
                                                       tmp_path):
    text = run("rdeploy", *words, "--progress=none", cwd=tmp_path)
    line = one_error_line(text, "rdeploy")
    for argv in (["--progress=json", *words], [*words, "--progress=json"],
                 [*words, "--progress", "json"]):
        event = json_error(run("rdeploy", *argv, cwd=tmp_path))
        assert event["command"] == command, (argv, event)
        assert event["message"] == line[len("rdeploy: error: "):], argv


def test_an_unknown_command_after_an_option_is_named(tmp_path):
    line = one_error_line(run("rdeploy", "--quiet", "frobnicate",
                              cwd=tmp_path), "rdeploy")
    assert "unknown command 'frobnicate'" in line, line


@pytest.fixture(scope="module")
def image(small_images_ro):
    """The small disk's image (read-only, built once per session)."""
    return small_images_ro["image"]


@pytest.mark.parametrize("json_mode", [True, False])
def test_restore_without_yes_onto_a_new_file_says_what_is_true(
        image, tmp_path, json_mode):
    target = tmp_path / "new.img"
    mode = "--progress=json" if json_mode else "--progress=none"
    result = subprocess.run(
        [sys.executable, "-m", "rdeploy", "restore", str(image), str(target),
         mode], cwd=ROOT, capture_output=True, text=True,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 5
    if json_mode:
        message = json.loads(result.stderr.splitlines()[-1])["message"]
        assert message == (f"restore needs --yes to write {target} "
                           f"(--progress=json never asks)")
    else:
        assert result.stderr.splitlines() == [
            f"rdeploy: error: restore needs --yes to write {target} (no "
            f"terminal to ask on)"]
    assert "not overwritten" not in result.stderr
    assert not target.exists()


@pytest.mark.parametrize("argv, given", [
    (["rdeploy", "restore", "a", "b", "--threads=2", "--threads=3"],
     "--threads"),
    (["rdeploy", "restore", "a", "b", "--yes", "--yes"], "--yes"),
    (["rdeploy", "restore", "a", "b", "--progress=json", "--progress",
      "none"], "--progress"),
    (["imgx", "ls", "-l", "-l", "a:1/"], "-l"),
    (["imgx", "sfx", "a", "-o", "x", "--output=y"], "--output"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_an_option_given_twice_is_named(argv, given, tmp_path):
    # Sweep: docopt's refusal was "these arguments do not fit its usage".
    result = run(*argv, cwd=tmp_path)
    if "--progress=json" in argv:
        line = argv[0] + ": error: " + json_error(result)["message"]
    else:
        line = one_error_line(result, argv[0])
    assert line == (f"{argv[0]}: error: option {given} is given more than "
                    f"once; see '{argv[0]} {argv[1]} --help'")


@pytest.mark.parametrize("argv", [
    ["rdeploy", "restore", "a", "b", "--size=1=2M", "--size=2=3M",
     "--threads=x"],
    ["bootdisk", "iso", "-o", "x", "--add=/a:/b", "--add=nocolon"],
], ids=" ".join)
def test_a_repeatable_option_may_be_repeated(argv, tmp_path):
    line = one_error_line(run(*argv, cwd=tmp_path), argv[0])
    assert "more than once" not in line and "do not fit" not in line, line
