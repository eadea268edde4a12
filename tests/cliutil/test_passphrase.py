"""cliutil.passphrase: a file's first line, a variable, or a real terminal
(a pty made the child's controlling terminal), asked once per command."""

import os
import pty

import pytest

from cliutil.passphrase import Passphrase
from diskimage.errors import InputError, PassphraseError, UsageError


def test_the_first_line_of_a_file_without_its_line_end(tmp_path):
    for text in (b"s3cret\n", b"s3cret\r\nsecond line\n", b"s3cret"):
        (tmp_path / "pw").write_bytes(text)
        assert Passphrase(tmp_path / "pw")() == b"s3cret"
    (tmp_path / "pw").write_bytes(b"\nlater\n")
    with pytest.raises(UsageError, match="first line is empty"):
        Passphrase(tmp_path / "pw")()
    with pytest.raises(InputError, match="cannot read the passphrase file"):
        Passphrase(tmp_path / "missing")()


def test_a_variable(monkeypatch):
    monkeypatch.setenv("RDI_TEST_PW", "from env")
    assert Passphrase(env="RDI_TEST_PW")() == b"from env"
    monkeypatch.delenv("RDI_TEST_PW")
    with pytest.raises(UsageError, match="RDI_TEST_PW is not set"):
        Passphrase(env="RDI_TEST_PW")()


def test_not_both_sources():
    with pytest.raises(UsageError, match="not both"):
        Passphrase("f", "VAR")


def test_asked_once_and_remembered(tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(b"one\n")
    source = Passphrase(path)
    assert source() == b"one"
    path.write_bytes(b"two\n")
    assert source() == b"one"


def _on_a_terminal(encrypting, answers):
    """Run Passphrase()() in a child whose controlling terminal is a new
    pty; type `answers`; return what it got (or the error's text) and all
    the terminal showed."""
    read_end, write_end = os.pipe()
    pid, master = pty.fork()
    if pid == 0:        # the child: a new session, the pty its terminal
        os.close(read_end)
        try:
            got = b"OK " + Passphrase(what="t.rdi",
                                      encrypting=encrypting)()
        except UsageError as exc:
            got = b"ERR " + str(exc).encode()
        os.write(write_end, got)
        os._exit(0)
    os.close(write_end)
    shown = b""
    for answer in answers:
        while b": " not in shown.rsplit(b"\n", 1)[-1]:
            shown += os.read(master, 1024)
        os.write(master, answer + b"\n")
        shown += b"\n"
    result = b""
    while chunk := os.read(read_end, 1024):
        result += chunk
    try:
        while True:
            shown += os.read(master, 1024)
    except OSError:     # the child closed the terminal
        pass
    os.waitpid(pid, 0)
    os.close(master)
    os.close(read_end)
    return result, shown


def test_the_terminal_is_asked_with_echo_off():
    got, shown = _on_a_terminal(False, [b"typed pw"])
    assert got == b"OK typed pw"
    assert b"Passphrase for t.rdi: " in shown
    assert b"typed pw" not in shown


def test_encrypting_asks_twice_and_the_two_must_agree():
    assert _on_a_terminal(True, [b"pw1", b"pw1"])[0] == b"OK pw1"
    assert _on_a_terminal(True, [b"pw1", b"pw2"])[0] == \
        b"ERR the two passphrases differ"


def test_no_terminal_and_no_option_names_both_options():
    pid = os.fork()
    if pid == 0:
        os.setsid()     # no controlling terminal any more
        try:
            Passphrase(what="t.rdi")()
            code = 1
        except PassphraseError as exc:     # reading: exit 12
            code = 0 if "--passphrase-file=F or --passphrase-env=VAR" in \
                str(exc) else 2
        try:
            Passphrase(what="t.rdi", encrypting=True)()
            code = code or 1
        except UsageError as exc:          # encrypting: a usage error
            code = code or (0 if "--passphrase-file=F" in str(exc) else 3)
        os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
