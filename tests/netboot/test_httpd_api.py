"""The status API, the event stream and the console actions, with urllib
(and curl for the token), against a real server on loopback."""

import http.client
import json
import urllib.error
import urllib.request

import pytest

from tests.netboot.httpd_helpers import TOKEN, Served, curl, served  # noqa
from tests.netboot.jobsite import MAC1


def call(served, path, body=None, token=None, method=None, raw=None):
    data = raw if raw is not None else \
        (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(served.url + path, data=data,
                                 method=method or ("POST" if data is not None
                                                   else "GET"))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_machines(served):
    status, body = call(served, "api/machines")
    assert status == 200
    assert body["jobs"] == ["restore", "wipe"]
    assert body["entries"] == ["local", "rescue"]
    (m,) = body["machines"]
    assert m["mac"] == MAC1 and m["name"] == "pc01"
    assert m["state"] == "assigned" and m["next"] == "job"
    assert set(m) == {"mac", "name", "firmware", "last_seen", "job", "once",
                      "state", "attempts", "retries", "progress", "result",
                      "log", "next"}
    assert "lease" not in json.dumps(body)      # the lease is the key


def test_report_flow(served):
    lease = served.machines.next_boot(MAC1).lease
    assert call(served, "api/report", {"lease": lease, "event": "started"}) \
        == (200, {"ok": True, "state": "started"})
    status, _ = call(served, "api/report", {
        "lease": lease, "event": "progress", "log": ["copying"],
        "progress": {"event": "progress", "done": 5, "total": 10}})
    assert status == 200
    assert call(served, "api/report", {"lease": lease, "event": "done",
                                       "exit": 0})[0] == 200
    (m,) = call(served, "api/machines")[1]["machines"]
    assert m["state"] == "done" and m["next"] == "local"
    assert m["log"] == ["copying"] and m["progress"]["percent"] == 50.0
    status, body = call(served, "api/report", {"lease": lease,
                                               "event": "failed", "exit": 1})
    assert status == 409 and "already ended" in body["error"]
    status, body = call(served, "api/report", {"lease": "guess",
                                               "event": "done"})
    assert status == 409
    assert sum("report from 127.0.0.1 refused" in x
               for x in served.logs) == 2


@pytest.mark.parametrize("raw,words", [
    (b"not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (b'{"lease": "x", "event": "rebooted"}', "not one of")])
def test_report_bad_body(served, raw, words):
    if b"lease" in raw:
        lease = served.machines.next_boot(MAC1).lease
        raw = raw.replace(b'"x"', json.dumps(lease).encode())
    status, body = call(served, "api/report", raw=raw)
    assert status == 400 and words in body["error"]


def test_report_body_is_bounded(served):
    raw = json.dumps({"lease": "x", "event": "progress",
                      "log": ["y" * 70000]}).encode()
    status, body = call(served, "api/report", raw=raw)
    assert status == 413 and "65536" in body["error"]


@pytest.mark.needs("curl")
@pytest.mark.parametrize("auth,status", [
    (None, 401), ("Bearer wrong", 403), ("Basic " + TOKEN, 401),
    ("Bearer " + TOKEN[:-1], 403), ("Bearer " + TOKEN, 200)])
def test_actions_need_the_token(served, auth, status):
    args = ["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/json", "--data", "{}"]
    if auth:
        args += ["-H", f"Authorization: {auth}"]
    out = curl(*args, served.url + f"api/machines/{MAC1}/local")
    assert out.stdout == str(status).encode()
    state = served.machines.machine(MAC1)["state"]
    assert state == ("local" if status == 200 else "assigned")
    if status != 200:
        (line,) = [x for x in served.logs if "refused" in x]
        assert "local" in line and "127.0.0.1" in line
        assert TOKEN not in line


def test_assign_and_cancel(served):
    status, body = call(served, f"api/machines/{MAC1}/cancel", {},
                        token=TOKEN)
    assert status == 200 and body["machine"]["state"] == "cancelled"
    status, body = call(served, f"api/machines/{MAC1}/assign",
                        {"job": "wipe", "once": True}, token=TOKEN)
    assert status == 200 and body["machine"]["job"] == "wipe"
    assert served.machines.next_boot(MAC1).job.name == "wipe"
    assert call(served, f"api/machines/{MAC1}/assign", {"job": "nope"},
                token=TOKEN)[0] == 404
    assert call(served, "api/machines/52:54:00:99:99:99/cancel", {},
                token=TOKEN)[0] == 404
    assert call(served, "api/machines/not-a-mac/cancel", {},
                token=TOKEN)[0] == 404
    assert call(served, f"api/machines/{MAC1}/assign", {"job": 3},
                token=TOKEN)[0] == 400
    assert call(served, f"api/machines/{MAC1}/reboot", {},
                token=TOKEN)[0] == 404


def test_events(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.server.port,
                                      timeout=30)
    conn.request("GET", "/api/events")
    answer = conn.getresponse()
    assert answer.status == 200
    assert answer.getheader("Content-Type") == "text/event-stream"
    assert answer.readline() == b"retry: 3000\n"
    assert answer.readline() == b"\n"
    lease = served.machines.next_boot(MAC1).lease
    call(served, "api/report", {"lease": lease, "event": "started"})
    line = answer.readline()
    assert line.startswith(b"data: ")
    event = json.loads(line[6:])
    assert event["mac"] == MAC1 and event["state"] == "started"
    assert answer.readline() == b"\n"
    conn.close()


def test_events_keepalive(tmp_path):
    s = Served(tmp_path, keepalive=0.05)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.server.port,
                                          timeout=30)
        conn.request("GET", "/api/events")
        answer = conn.getresponse()
        lines = [answer.readline() for _ in range(4)]
        assert lines[2:] == [b": keepalive\n", b"\n"]
        conn.close()
    finally:
        s.stop()


def test_shutdown_ends_open_event_streams(tmp_path):
    s = Served(tmp_path)
    conn = http.client.HTTPConnection("127.0.0.1", s.server.port, timeout=30)
    conn.request("GET", "/api/events")
    answer = conn.getresponse()
    answer.readline()
    s.stop()
    assert answer.read() == b"\n"            # the blank line, then the end
    conn.close()
