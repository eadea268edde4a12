"""Usage errors are one line `PROG: error: WHAT; see 'PROG ... --help'`,
exit 2, for rdeploy, imgx and bootdisk alike (issue 11 item 16); `PROG help
[COMMAND]` and `PROG COMMAND --help` print the help (item 20)."""

import subprocess
import sys

import pytest

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

BAD = [
    ("rdeploy", [], "no command given"),
    ("rdeploy", ["frobnicate"], "unknown command 'frobnicate'"),
    ("rdeploy", ["capture"], "capture: missing SOURCE IMAGE"),
    ("rdeploy", ["capture", "a"], "capture: missing IMAGE"),
    ("rdeploy", ["capture", "a", "b", "--frob"], "unknown option --frob"),
    ("rdeploy", ["--frob"], "unknown option --frob"),
    ("rdeploy", ["capture", "a", "b", "--level"],
     "option --level needs a value (--level=N)"),
    ("rdeploy", ["capture", "a", "b", "c"], "unexpected argument 'c'"),
    ("rdeploy", ["capture", "a", "b", "--raw=1"], "--raw takes no value"),
    ("rdeploy", ["capture", "a", "b", "--p"],
     "unknown option --p (did you mean --partitions, --passphrase-file, "
     "--passphrase-env or --progress?)"),
    ("rdeploy", ["info", "x", "--raw"], "info does not take --raw"),
    ("rdeploy", ["verify", "-x", "a"], "unknown option -x"),
    ("rdeploy", ["capture", "a", "b", "--threads=x"],
     "--threads takes a whole number"),
    ("rdeploy", ["help", "nosuch"], "help: no command 'nosuch'"),
    ("rdeploy", ["help", "capture", "--dry"],
     "help: unexpected argument '--dry'"),
    ("rdeploy", ["verify", "a", "--progress=loud"],
     "--progress takes auto, bar, json or none, not 'loud'"),
    ("rdeploy", ["restore", "a", "b", "--resize=half"],
     "--resize takes proportional, not 'half'"),
    ("imgx", ["frobnicate"], "unknown command 'frobnicate'"),
    ("imgx", ["get", "-R", "a.rdi:1/"], "get: missing DEST"),
    ("imgx", ["ls", "-x", "a"], "unknown option -x"),
    ("imgx", ["sfx", "a.rdi"], "sfx: missing --output=OUT"),
    ("imgx", ["sfx", "a.rdi", "-o"], "option -o needs a value"),
    ("imgx", ["cat", "a", "b"], "unexpected argument 'b'"),
    ("imgx", ["rm", "-R", "a"], "rm does not take -R"),
    ("bootdisk", ["frobnicate"], "unknown command 'frobnicate'"),
    ("bootdisk", ["info"], "info: missing ARTIFACT"),
    ("bootdisk", ["iso"], "iso: missing --output=OUT"),
    ("bootdisk", ["usb", "-o", "x", "--size"], "option --size needs a value"),
    ("bootdisk", ["iso", "-o", "x", "--bogus"], "unknown option --bogus"),
    ("bootdisk", ["info", "a", "--force"], "info does not take --force"),
]


def run(prog, *argv):
    return subprocess.run([sys.executable, "-m", prog, *argv], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.parametrize("prog, argv, phrase", BAD,
                         ids=[f"{p} {' '.join(a)}" for p, a, _ in BAD])
def test_usage_error_is_one_line_exit_2(prog, argv, phrase):
    result = run(prog, *argv)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"{prog}: error: "), line
    assert phrase in line, line
    command = argv[0] if argv and argv[0] not in ("frobnicate", "help") \
        and not argv[0].startswith("-") else None
    where = f"{prog} {command}" if command else prog
    assert line.endswith(f"; see '{where} --help'"), line
    assert "Warning" not in line and "Usage" not in line


@pytest.mark.parametrize("prog", ["rdeploy", "imgx", "bootdisk"])
def test_help_alone_is_the_whole_help(prog):
    whole = run(prog, "--help")
    result = run(prog, "help")
    assert result.returncode == 0 and whole.returncode == 0
    assert result.stdout == whole.stdout
    assert "Usage:" in result.stdout and "Exit codes:" in result.stdout


def commands_of(prog):
    from cliutil.usage import Usage
    module = __import__(f"{prog}.cli", fromlist=["cli"])
    return list(Usage(module.__doc__).commands)


@pytest.mark.parametrize("prog, command", [
    (prog, command) for prog in ("rdeploy", "imgx", "bootdisk")
    for command in commands_of(prog)])
def test_every_command_has_its_own_help(prog, command):
    result = run(prog, "help", command)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"Usage:\n  {prog} {command}")
    # What it does, from the command sections, and nothing of the others.
    assert f"\n  {command} " in text
    usage_block = text.split("\n\n")[0].splitlines()[1:]
    assert all(line.startswith((f"  {prog} {command}", "    "))
               for line in usage_block), usage_block
    if command != "help":
        assert run(prog, command, "--help").stdout == text


def test_capture_help_holds_its_options_only():
    text = run("rdeploy", "help", "capture").stdout
    for option in ("--partitions=LIST", "--raw", "--split=SIZE",
                   "--progress=MODE", "-q --quiet"):
        assert option in text
    for option in ("--into=N", "--grow", "--dir=DIR"):
        assert option not in text
    assert "rdeploy capture /dev/sda" in text      # its examples


@pytest.mark.parametrize("argv, phrase", [
    (["nosuch"], "unknown command 'nosuch' (one of: rdeploy, imgx, bootdisk, pxeconf, bwpart)"),
    (["--frob"], "unknown option --frob"),
])
def test_multicall_usage_errors_are_the_same_kind_of_line(argv, phrase):
    result = run("deploytool.multicall", *argv)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"deploytool: error: {phrase}; see 'deploytool --help'"]


def test_options_that_exclude_each_other_are_named():
    result = run("rdeploy", "restore", "a", "b", "--grow",
                 "--resize=proportional")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "rdeploy: error: restore: --grow and --resize do not go together; "
        "see 'rdeploy restore --help'"]


@pytest.mark.parametrize("prog, command", [
    (prog, command) for prog in ("rdeploy", "imgx", "bootdisk")
    for command in commands_of(prog)])
def test_help_of_a_command_keeps_every_heading_whole(prog, command):
    # `imgx help put` printed "Editing (each writes a new image over IMAGE
    # only when it is complete and:": a heading of several lines, cut.
    from cliutil.usage import Usage
    module = __import__(f"{prog}.cli", fromlist=["cli"])
    doc = module.__doc__
    titles = {title for title, _ in Usage(doc).sections}
    text = run(prog, "help", command).stdout
    for block in text.split("\n\n"):
        lines = block.splitlines()
        head = []
        for line in lines:
            if line[:1].isspace():
                break
            head.append(line)
        if not head or head[0].startswith("See '"):
            continue
        heading = "\n".join(head)
        assert heading.endswith(":"), heading
        assert heading in titles, heading
        assert heading in doc
