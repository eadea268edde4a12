"""The environment's client against an HTTP server on 127.0.0.1: what it
sends, how often it tries (counted: the pauses are recorded, not slept),
what it does with 409 and 400, and the relay's pass-through and throttle."""

import io
import json
import time

import pytest

from diskimage.errors import InputError, ToolError
from diskimage.netboot import client

from tests.reportserver import closed_port, report_server


def _wait_until(condition, most):
    """Poll condition() until true or `most` seconds passed (no failure)."""
    end = time.monotonic() + most
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)


def _reporter(url, lease="L1"):
    pauses = []
    return client.Reporter(url, lease, sleep=pauses.append), pauses


def test_cmdline_words_give_url_and_lease(tmp_path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=ttyS0 rd.job=http://10.0.0.2:80/jobs/r.sh "
                       "rd.pxeconf=http://10.0.0.2:80/ rd.pxeconf.lease=ab12 "
                       "quiet\n")
    assert client.find(cmdline=cmdline) == ("http://10.0.0.2:80/", "ab12")
    assert client.find("http://h:81", None, cmdline) == ("http://h:81/", "ab12")
    cmdline.write_text("console=ttyS0\n")
    with pytest.raises(InputError, match=r"no server: rd.pxeconf=URL .*"
                       r"--server-url"):
        client.find(cmdline=cmdline)
    with pytest.raises(InputError, match="no lease"):
        client.find("http://h/", cmdline=cmdline)
    with pytest.raises(InputError, match="not http://HOST"):
        client.find("ftp://h/", "x", cmdline)


def test_started_is_sent_and_acknowledged():
    with report_server() as (url, seen):
        reporter, pauses = _reporter(url)
        assert reporter.send("started") == {"ok": True}
    assert seen.bodies == [{"lease": "L1", "event": "started"}]
    assert pauses == []


def test_a_failing_server_is_tried_again_with_growing_pauses():
    with report_server() as (url, seen):
        seen.answers = [503, 500, 502]
        reporter, pauses = _reporter(url)
        reporter.send("done", exit=0, log=["a", "b"])
    assert seen.events() == ["done"] * 4
    assert seen.bodies[-1] == {"lease": "L1", "event": "done", "exit": 0,
                               "log": ["a", "b"]}
    assert pauses == [0.5, 1.0, 2.0]


def test_no_server_is_bounded_then_unacknowledged():
    url = f"http://127.0.0.1:{closed_port()}/"
    reporter, pauses = _reporter(url)
    with pytest.raises(client.Unacknowledged,
                       match=r"started not acknowledged after 12 tries"):
        reporter.send("started")
    assert reporter.requests == client.STARTED.tries == 12
    assert len(pauses) == 11 and max(pauses) == client.STARTED.longest
    reporter, pauses = _reporter(url)
    with pytest.raises(client.Unacknowledged, match="after 34 tries"):
        reporter.send("failed", exit=3)
    assert reporter.requests == 34 and sum(pauses) < 330
    reporter, pauses = _reporter(url)
    with pytest.raises(client.Unacknowledged, match="after 1 try"):
        reporter.send("progress", progress={"done": 1})
    assert pauses == []


def test_a_job_fetch_is_tried_five_times_then_unfetched(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/jobs/restore.sh"
    pauses, said = [], []
    with pytest.raises(client.Unfetched, match=r"restore.sh: not fetched "
                       r"after 5 tries: .*refused"):
        client.fetch(url, tmp_path / "job", log=said.append,
                     sleep=pauses.append)
    assert pauses == [1, 2, 4, 8]            # as docs/pxeconf/serve.md says
    assert len(said) == 4 and "trying again in 8 s" in said[-1]
    assert list(tmp_path.iterdir()) == []


def test_a_job_fetch_waits_out_server_errors_not_a_missing_job(tmp_path):
    job = tmp_path / "job"
    with report_server() as (url, seen):
        seen.files["/jobs/a.sh"] = b"echo a\n"
        seen.get_answers = [503, "cut", 502]
        pauses, said = [], []
        client.fetch(url + "jobs/a.sh", job, log=said.append,
                     sleep=pauses.append)
        assert job.read_bytes() == b"echo a\n" and pauses == [1, 2, 4]
        assert "IncompleteRead" in said[1]      # never kept half a job
        with pytest.raises(client.Unfetched, match="HTTP 404"):
            client.fetch(url + "jobs/b.sh", tmp_path / "b",
                         sleep=pauses.append)
        assert pauses == [1, 2, 4]
    assert seen.gets == ["/jobs/a.sh"] * 4 + ["/jobs/b.sh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]
    assert client.find_job(_cmdline(tmp_path, f"rd.job={url}jobs/a.sh")) \
        == url + "jobs/a.sh"
    with pytest.raises(InputError, match="no job: rd.job=URL"):
        client.find_job(_cmdline(tmp_path, "quiet"))


def _cmdline(tmp_path, text):
    path = tmp_path / "cmdline"
    path.write_text(text + "\n")
    return path


def test_stale_lease_and_bad_body_are_not_tried_again():
    with report_server() as (url, seen):
        seen.stale.add("old")
        reporter, pauses = _reporter(url, "old")
        with pytest.raises(client.StaleLease, match="lease old"):
            reporter.send("started")
        seen.answers = [400]
        reporter, pauses = _reporter(url)
        with pytest.raises(ToolError, match="refused the done report"):
            reporter.send("done", exit=0)
    assert seen.events() == ["started", "done"] and pauses == []


def _progress(done, total=1000):
    return json.dumps({"event": "progress", "task": "restore", "done": done,
                       "total": total, "percent": done / total * 100,
                       "rate": 1e6, "eta": 1}).encode() + b"\n"


def test_relay_passes_every_line_and_throttles_progress():
    lines = [b"job: restoring\n", b"\xff not utf-8\n"] + \
        [_progress(i) for i in range(1001)] + [b"job: synced\n"]
    out = io.BytesIO()
    with report_server() as (url, seen):
        relay = client.Relay(client.Reporter(url, "L1"), interval=3600)
        relay.run(iter(lines), out)
    assert out.getvalue() == b"".join(lines)
    # at most the first report at once and the last state at the end
    assert 1 <= relay.sent == len(seen.bodies) <= 2
    last = seen.bodies[-1]
    assert last["event"] == "progress" and last["lease"] == "L1"
    assert last["progress"]["done"] == 1000 and "event" not in \
        last["progress"]
    assert last["log"] == ["job: restoring", "\ufffd not utf-8",
                           "job: synced"]


def test_relay_sends_no_more_than_once_per_interval():
    """Each line is given time to be reported before the next one comes
    (the generator waits, a bounded while, for a new report): without the
    throttle every line would be one report."""
    with report_server() as (url, seen):
        def slow_lines():
            for i in range(8):
                before = len(seen.bodies)
                yield _progress(i, 7)
                _wait_until(lambda: len(seen.bodies) > before, 0.5)
        relay = client.Relay(client.Reporter(url, "L1"), interval=3600)
        relay.run(slow_lines(), io.BytesIO())
        assert len(seen.bodies) == 2, seen.events()
        relay = client.Relay(client.Reporter(url, "L1"), interval=0)
        del seen.bodies[:]
        relay.run(slow_lines(), io.BytesIO())
        assert len(seen.bodies) >= 8
    assert seen.bodies[-1]["progress"]["done"] == 7


def test_relay_keeps_a_bounded_tail_of_long_lines():
    lines = [f"line {i} ".encode() + b"x" * 2000 + b"\n" for i in range(100)]
    with report_server() as (url, seen):
        relay = client.Relay(client.Reporter(url, "L1"), interval=3600)
        relay.run(lines, io.BytesIO())
    log = seen.bodies[-1]["log"]
    assert len(log) == client.LOG_LINES and log[0].startswith("line 80 ")
    assert all(len(line) <= client.MAX_LINE + 3 for line in log)
    assert seen.bodies[-1].get("progress") is None


def test_relay_goes_on_passing_lines_when_the_lease_is_stale():
    said = []
    lines = [_progress(i, 10) for i in range(11)] + [b"end\n"]
    out = io.BytesIO()
    with report_server() as (url, seen):
        seen.stale.add("gone")
        relay = client.Relay(client.Reporter(url, "gone"), interval=0,
                             log=said.append)
        relay.run(lines, out)
    assert out.getvalue() == b"".join(lines)
    assert relay.stale and relay.sent == 0 and len(seen.bodies) == 1
    assert len(said) == 1 and "not reported any more" in said[0]


def test_relay_without_a_server_still_passes_every_line():
    said = []
    url = f"http://127.0.0.1:{closed_port()}/"
    lines = [_progress(i, 3) for i in range(4)] + [b"end\n"]
    out = io.BytesIO()
    client.Relay(client.Reporter(url, "L"), interval=0,
                 log=said.append).run(lines, out)
    assert out.getvalue() == b"".join(lines)
    assert said and all("not acknowledged after 1 try" in s for s in said)


def test_tail_of_a_log_file(tmp_path):
    log = tmp_path / "bootdisk.log"
    log.write_bytes(b"".join(f"l{i}\n".encode() for i in range(50)))
    assert client.tail(log) == [f"l{i}" for i in range(30, 50)]
