"""Man pages, bash completion and the exit-code tables, all made from the
usage texts and cliutil/runner.py (issue 11 item 20); every --help runs."""

import re
import shlex
import subprocess
import sys

import pytest

from deploytool import docgen
from deploytool.multicall import COMMANDS
from diskimage import errors

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
PROGS = tuple(COMMANDS)


def run(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def test_generated_files_are_the_committed_bytes():
    for rel, text in docgen.outputs().items():
        assert (ROOT / rel).read_bytes() == text.encode(), \
            f"{rel} is out of date: run `make docs`"
    result = run(sys.executable, "-m", "deploytool.docgen", "--check",
                 cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_check_notices_a_stale_file(tmp_path, monkeypatch):
    for rel in docgen.outputs():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((ROOT / rel).read_bytes())
    monkeypatch.setattr(docgen, "ROOT", str(tmp_path))
    assert docgen.main(["--check"]) == 0
    (tmp_path / "man" / "imgx.1").write_text(".TH OLD 1\n")
    assert docgen.main(["--check"]) == 1


@pytest.mark.parametrize("prog", PROGS)
def test_help_runs(prog):
    result = run(sys.executable, "-m", prog, "--help", cwd=ROOT)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"{prog} - ")
    assert "Usage:" in result.stdout and "Exit codes:" in result.stdout


@pytest.mark.parametrize("prog", PROGS)
def test_man_page_renders_without_warnings(prog):
    page = ROOT / "man" / f"{prog}.1"
    groff = run("groff", "-man", "-Tutf8", "-ww", "-z", str(page))
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr
    man = run("man", "-l", str(page), env={"MANWIDTH": "80",
                                          "LC_ALL": "C.UTF-8",
                                          "PATH": "/usr/bin:/bin"})
    assert man.returncode == 0 and man.stderr == "", man.stderr
    text = man.stdout
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT CODES",
                    "EXAMPLES", "SEE ALSO"):
        assert f"\n{heading}\n" in text
    usage = docgen.usage_of(prog)
    for command in usage.commands:
        assert re.search(rf"^       {command}\b", text, re.M), command
    for option in usage.options:
        assert (option.long or option.short) in text


def test_setup_installs_man_pages_and_completions():
    from setuptools.dist import Distribution
    dist = Distribution()
    dist.parse_config_files([str(ROOT / "setup.cfg")])
    files = dict(dist.data_files)
    assert sorted(files["share/man/man1"]) == sorted(
        f"man/{p}.1" for p in PROGS)
    assert sorted(files["share/bash-completion/completions"]) == sorted(
        f"completions/{p}" for p in PROGS)


def complete(prog, *words, cwd=ROOT):
    """What bash offers for the last of `words` after `prog`, with the
    completion script sourced in a real bash."""
    line = " ".join(shlex.quote(w) for w in (prog, *words))
    script = (f"source {shlex.quote(str(ROOT / 'completions' / prog))}\n"
              f"complete -p {prog}\n"
              f"COMP_WORDS=({line}); COMP_CWORD={len(words)}\n"
              f"_{prog}\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    result = run("bash", "--norc", "--noprofile", "-c", script, cwd=cwd)
    assert result.returncode == 0, result.stderr
    registered, *offered = result.stdout.splitlines()
    assert f"-F _{prog} {prog}" in registered
    return [w for w in offered if w]


def test_completion_of_command_words():
    assert complete("rdeploy", "") == list(
        docgen.usage_of("rdeploy").commands)
    assert complete("rdeploy", "re") == ["restore"]
    assert complete("imgx", "m") == ["mkdir", "mv"]
    assert complete("bootdisk", "i") == ["initrd", "iso", "info"]
    assert sorted(complete("rdeploy", "help", "ve")) == ["verify",
                                                         "verify-target"]
    assert complete("rdeploy", "--v") == ["--version"]


def test_completion_of_each_commands_options():
    assert complete("rdeploy", "capture", "--sp") == ["--split="]
    assert complete("rdeploy", "capture", "a", "b", "--p") == [
        "--partitions=", "--passphrase-env=", "--passphrase-file=",
        "--progress="]
    assert "--grow" in complete("rdeploy", "restore", "--")
    assert "--grow" not in complete("rdeploy", "capture", "--")
    ls = complete("imgx", "ls", "-")
    assert {"-l", "-R", "--json", "--help"} <= set(ls)
    assert "--threads=" not in ls
    assert complete("bootdisk", "iso", "--on-") == ["--on-failure=",
                                                    "--on-success="]


def test_completion_of_file_arguments(tmp_path):
    (tmp_path / "disk.img").write_bytes(b"")
    (tmp_path / "lab.rdi").write_bytes(b"")
    assert complete("rdeploy", "capture", "dis", cwd=tmp_path) == [
        "disk.img"]
    assert complete("imgx", "sfx", "lab.rdi", "-o", "l",
                    cwd=tmp_path) == ["lab.rdi"]


def md_table(path):
    text = path.read_text()
    start = text.index(docgen.BEGIN) + len(docgen.BEGIN)
    rows = text[start:text.index(docgen.END)].splitlines()[2:]
    return [(int(code), meaning) for code, meaning in
            (re.match(r"^\| (\d+) \| (.*) \|$", row).groups() for row in rows)]


def test_exit_code_tables_are_the_runners():
    table = docgen.exit_codes()
    codes = [code for code, _ in table]
    assert codes == sorted(codes) and len(codes) == len(set(codes))
    for page in docgen.DOCS:
        assert md_table(ROOT / page) == table, page
    # Every error class's code is in the table, and the runner's own.
    from cliutil import runner
    classes = {errors.DiskImageError, *[
        c for c in vars(errors).values() if isinstance(c, type)
        and issubclass(c, errors.DiskImageError)]}
    assert {c.exit_code for c in classes} | {
        0, runner.EXIT_INTERNAL, runner.EXIT_INTERRUPTED,
        runner.EXIT_BROKEN_PIPE} <= set(codes)


@pytest.mark.parametrize("prog", PROGS)
def test_help_names_only_codes_of_the_table(prog):
    codes = {code for code, _ in docgen.exit_codes()}
    section = "\n".join(docgen.usage_of(prog).section("Exit codes"))
    named = {int(n) for n in re.findall(
        r"(?:^|;)\s*(\d+) ", section.replace("\n", " "))}
    assert named and named <= codes, named - codes
    if prog == "rdeploy":
        assert named == codes


@pytest.mark.parametrize("prog, words, offered", [
    # As bash splits them (COMP_WORDBREAKS holds "="): "--progress" "=" "".
    ("rdeploy", ["restore", "x", "y", "--progress", "=", ""],
     ["auto", "bar", "json", "none"]),
    ("rdeploy", ["restore", "x", "y", "--progress", "=", "j"], ["json"]),
    ("rdeploy", ["capture", "x", "y", "--compress", "=", ""],
     ["lz4", "zstd", "none"]),
    ("rdeploy", ["restore", "x", "y", "--resize", "=", ""],
     ["proportional"]),
    ("imgx", ["convert", "a", "b", "--to", "=", ""], ["raw", "qcow2", "vhd"]),
    ("bootdisk", ["iso", "--on-failure", "=", ""],
     ["poweroff", "reboot", "shell"]),
    ("bootdisk", ["iso", "--compress", "=", ""], ["gzip", "zstd"]),
    # The value as the next word, as docopt takes it too.
    ("rdeploy", ["verify", "x", "--progress", "b"], ["bar"]),
    ("imgx", ["convert", "a", "b", "--to", ""], ["raw", "qcow2", "vhd"]),
    # A shell whose COMP_WORDBREAKS lacks "=": the word is whole.
    ("rdeploy", ["capture", "x", "y", "--compress=z"], ["--compress=zstd"]),
])
def test_completion_of_option_values_offers_the_choices(prog, words,
                                                        offered, tmp_path):
    (tmp_path / "json-file").write_bytes(b"")
    (tmp_path / "lz4.txt").write_bytes(b"")
    assert sorted(complete(prog, *words, cwd=tmp_path)) == sorted(offered)


def test_choices_come_from_the_usage_text():
    usage = docgen.usage_of("rdeploy")
    assert usage.by_name["--progress"].choices == ["auto", "bar", "json",
                                                   "none"]
    assert usage.by_name["--compress"].choices == ["lz4", "zstd", "none"]
    assert usage.by_name["--resize"].choices == ["proportional"]
    for name in ("--split", "--threads", "--level", "--dir", "--tmpdir",
                 "--description", "--partitions", "--size", "--into"):
        assert usage.by_name[name].choices == [], name


def test_completion_of_a_value_without_choices_is_files(tmp_path):
    (tmp_path / "work").mkdir()
    assert complete("rdeploy", "restore", "x", "y", "--tmpdir", "=", "w",
                    cwd=tmp_path) == ["work"]
