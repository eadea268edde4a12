"""--progress=json: stderr is JSON lines only, a success ends with 100 % and
an `end` event carrying the result, a failure with an `error` event carrying
the message and the exit code; restore --verify reports its read-back
(issue 11 item 10).  The schema is in docs/rdeploy.md."""

import json
import os
import subprocess
import sys

import pytest

from tests.smalldisk import build_disk
from tests.image.test_corruption import layout

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
PROGRESS_KEYS = {"event", "task", "done", "total", "percent", "rate", "eta"}


def rdeploy(*args):
    return subprocess.run([sys.executable, "-m", "rdeploy", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True)


def events(result):
    """Every stderr line parsed as JSON (each must be an object)."""
    lines = result.stderr.splitlines()
    assert lines, "no JSON events on stderr"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and "event" in e for e in parsed)
    return parsed


def check_tasks(parsed, tasks):
    """The progress events: only `tasks`, in that order, each counting up
    and ending with done == total and 100 %."""
    progress = [e for e in parsed if e["event"] == "progress"]
    seen = []
    for event in progress:
        assert set(event) == PROGRESS_KEYS, event
        if not seen or seen[-1] != event["task"]:
            seen.append(event["task"])
    assert seen == tasks
    for task in tasks:
        mine = [e for e in progress if e["task"] == task]
        dones = [e["done"] for e in mine]
        assert dones == sorted(dones)
        assert all(e["total"] == mine[0]["total"] for e in mine)
        assert mine[-1]["done"] == mine[-1]["total"] > 0
        assert mine[-1]["percent"] == 100.0


def check_end(parsed, result, command):
    end = parsed[-1]
    assert end["event"] == "end" and end["command"] == command
    assert end["exit_code"] == 0 == result.returncode
    assert [e["event"] for e in parsed].count("end") == 1
    assert "error" not in [e["event"] for e in parsed]
    return end


def check_error(parsed, result, command, code):
    error = parsed[-1]
    assert error["event"] == "error" and error["command"] == command
    assert error["exit_code"] == code == result.returncode
    assert isinstance(error["message"], str) and error["message"]
    assert "end" not in [e["event"] for e in parsed]
    return error


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("progress")
    disk = build_disk(tmp / "disk.img")
    result = rdeploy("capture", disk, tmp / "disk.rdi", "--progress=json")
    return tmp, disk, tmp / "disk.rdi", result


def test_capture_json_is_progress_then_end_with_the_result(image):
    _, _, path, result = image
    assert result.stdout == ""
    parsed = events(result)
    check_tasks(parsed, ["capture"])
    end = check_end(parsed, result, "capture")
    assert end["result"]["image_bytes"] == os.path.getsize(path)
    assert end["result"]["digest"]
    assert end["summary"].startswith("rdeploy: captured ")


def test_restore_verify_json_reports_the_read_back(image, tmp_path):
    _, _, path, _ = image
    result = rdeploy("restore", path, tmp_path / "copy.img", "--yes",
                     "--verify", "--progress=json")
    parsed = events(result)
    check_tasks(parsed, ["restore", "read-back"])
    end = check_end(parsed, result, "restore")
    assert end["result"]["verified"] is True
    assert end["result"]["written_bytes"] > 0


def test_verify_json_keeps_the_result_on_stdout(image):
    _, _, path, _ = image
    result = rdeploy("verify", path, "--progress=json")
    assert result.stdout.startswith(f"{path}: OK: ")
    parsed = events(result)
    check_tasks(parsed, ["verify"])
    end = check_end(parsed, result, "verify")
    assert end["summary"] == result.stdout.strip()
    assert end["result"]["chunks"] > 0


def test_quiet_with_json_still_streams_and_prints_no_text(image):
    _, _, path, _ = image
    result = rdeploy("verify", path, "--progress=json", "--quiet")
    assert result.stdout == ""
    parsed = events(result)
    check_tasks(parsed, ["verify"])
    check_end(parsed, result, "verify")


def test_damaged_image_ends_with_an_error_event(image, tmp_path):
    _, _, path, _ = image
    data = bytearray(path.read_bytes())
    payloads = [r for r in layout(bytes(data)) if r[2] == "payload"]
    start, end_, _, _ = payloads[-1]
    data[(start + end_) // 2] ^= 0xFF
    bad = tmp_path / "bad.rdi"
    bad.write_bytes(bytes(data))
    result = rdeploy("verify", bad, "--progress=json")
    parsed = events(result)
    assert parsed[0]["event"] == "progress"
    error = check_error(parsed, result, "verify", 4)
    assert "chunk" in error["message"]


def test_missing_source_is_one_error_event(tmp_path):
    result = rdeploy("capture", tmp_path / "nosuch", tmp_path / "x.rdi",
                     "--progress=json")
    parsed = events(result)
    assert len(parsed) == 1
    error = check_error(parsed, result, "capture", 3)
    assert "nosuch" in error["message"]
    assert not os.path.exists(tmp_path / "x.rdi")


def test_restore_json_does_not_ask_and_needs_yes(image, tmp_path):
    _, _, path, _ = image
    target = tmp_path / "t.img"
    target.write_bytes(b"\0" * 4096)
    result = rdeploy("restore", path, target, "--progress=json")
    check_error(events(result), result, "restore", 5)
    assert target.read_bytes() == b"\0" * 4096


def test_usage_error_with_json_is_an_error_event(tmp_path):
    result = rdeploy("capture", "a", "b", "--progress=json", "--frob")
    parsed = events(result)
    assert len(parsed) == 1
    error = check_error(parsed, result, "capture", 2)
    assert "--frob" in error["message"]


def test_reader_gone_ends_with_an_error_event_141(image):
    _, disk, _, _ = image
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdeploy", "capture", str(disk), "-",
         "--progress=json", "--compress=none"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1000)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "",
                                         stderr)
    parsed = events(result)
    check_error(parsed, result, "capture", 141)


def test_ctrl_c_ends_with_an_error_event_130(tmp_path):
    import signal
    disk = tmp_path / "big.img"
    with open(disk, "wb") as f:     # no table: read whole; a byte in
        f.truncate(2 << 30)         # every chunk so that none is a hole
        for offset in range(0, 2 << 30, 4 << 20):
            os.pwrite(f.fileno(), b"x", offset)
    image = tmp_path / "big.rdi"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdeploy", "capture", str(disk), str(image),
         "--progress=json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # A shell's background job inherits SIGINT ignored; Python then
        # installs no KeyboardInterrupt handler.  Give it Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()
    assert json.loads(first)["event"] == "progress"
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "",
                                         first + rest)
    check_error(events(result), result, "capture", 130)
    assert not any(p.name.startswith("big.rdi") for p in tmp_path.iterdir())


def test_a_long_run_of_zeros_still_reports_progress(tmp_path):
    """All-zero chunks are merged into one hole record; the progress must
    move while they are read, not jump from 0 to 100 % at the end.  The
    zeros are written, not a sparse file's hole: capture does not read a
    hole at all (SEEK_DATA), so a hole would be done before any tick."""
    disk = tmp_path / "empty.img"
    zeros = bytes(4 << 20)
    with open(disk, "wb") as f:
        for _ in range(128):        # 512 MiB; no table: one all-zero area
            f.write(zeros)
    result = rdeploy("capture", disk, tmp_path / "empty.rdi",
                     "--progress=json")
    parsed = events(result)
    check_tasks(parsed, ["capture"])
    check_end(parsed, result, "capture")
    # Ticks are at most every 0.5 s, and 512 MiB of zeros now read in
    # about 0.3 s (memcmp): one tick inside the run shows it moves.
    moving = [e for e in parsed if e["event"] == "progress"
              and 0 < e["done"] < e["total"]]
    assert moving, parsed
    assert parsed[-1]["result"]["chunks"] == 1     # still one hole


def test_the_bar_counts_in_the_summary_lines_units():
    """tqdm's own scaling says "27.9M" for 26.6 MiB: the bar says sizes as
    the summary line does (diskimage.sizes.format_size)."""
    import io

    from cliutil.progress import Progress
    from diskimage.sizes import format_size
    stream = io.StringIO()
    progress = Progress("bar", "restore", stream=stream)
    total = 55 * 1024 * 1024 + 123456
    progress(26 * 1024 * 1024, total)
    progress(total, total)
    progress.close()
    text = stream.getvalue()
    assert f"/{format_size(total)} [" in text, text
    assert f"{format_size(total)}/{format_size(total)}" in text, text
    assert "55.1 MiB" in text and "57.8M" not in text, text
