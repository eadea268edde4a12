"""The web console in a real browser: Debian's headless Chromium (driven by
tests/browser.py) against a real HttpServer and Machines on 127.0.0.1,
with the imaging environment's reports posted over HTTP to /api/report.

Set PXECONF_CONSOLE_PNG=docs/pxeconf/console.png to keep the screenshot
of test_screenshot_of_a_room (how the one in the docs was made).
"""

import http.server
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
import zlib

import pytest

from diskimage.netboot import console
from diskimage.netboot.httpd import HttpServer
from diskimage.netboot.jobs import Machines
from tests.browser import Browser, BrowserError, png_size
from tests.netboot.jobsite import MAC1, MAC2, T0, Host, make_site

pytestmark = pytest.mark.needs("chromium")

TOKEN = "console-token-for-the-test"
MAC3 = "52:54:00:00:be:ef"
MAC4 = "52:54:00:c0:ff:ee"
GiB = 1 << 30
HOSTILE = '<img src=x onerror="window.__pwned=1">'


class Service:
    """A real HttpServer (the console page at /) and Machines over a site
    of two hosts: pc01 with a once-job `restore`, pc02 without a job."""

    def __init__(self, tmp_path, hosts=None, **kw):
        self.site = make_site(tmp_path, hosts=hosts or [
            Host(MAC1, name="pc01", job="restore", once=True,
                 assigned=T0),
            Host(MAC2, name="pc02")])
        self.root = tmp_path / "boot"
        self.machines = Machines(self.site, tmp_path / "state" / "journal.jsonl")
        self.log = []
        self.server = HttpServer(self.root, "127.0.0.1", 0, self.machines,
                                 TOKEN, self.log.append, page=console.PAGE,
                                 csp=console.CSP, **kw)
        self.url = f"http://127.0.0.1:{self.server.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.thread.join(10)
        self.machines.close()
        print("server log:", *self.log, sep="\n  ")   # shown if a test fails

    def lease(self, mac):
        return self.machines.next_boot(mac).lease

    def report(self, lease, event, **fields):
        """What the imaging environment sends: a POST to /api/report."""
        body = json.dumps({"lease": lease, "event": event, **fields}).encode()
        request = urllib.request.Request(
            self.url + "api/report", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            return json.loads(answer.read())

    def start_job(self, mac, firmware="bios"):
        """mac boots (its loader asks for its config) and its job starts."""
        self.machines.booted(mac, firmware)
        lease = self.lease(mac)
        self.report(lease, "started")
        return lease


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def browser():
    with Browser(width=1100, height=700) as b:
        yield b


def row(mac):
    return f'#rows tr[data-mac="{mac}"]'


def cell(mac, column):
    return f"{row(mac)} td.c-{column}"


def wait_text(browser, selector, text):
    """Wait until the element's shown text holds `text`; return it (or
    fail with what it and the connection badge show)."""
    try:
        return browser.wait(
            f"(document.querySelector({json.dumps(selector)})?.innerText"
            f" ?? '').includes({json.dumps(text)}) && "
            f"document.querySelector({json.dumps(selector)}).innerText",
            what=f"{selector} shows {text!r}")
    except BrowserError as exc:
        raise BrowserError(f"{exc}; it shows {browser.text(selector)!r}, "
                           f"#live {browser.text('#live')!r}") from None


def test_lists_machines_and_follows_reports_live(service, browser):
    lease = service.start_job(MAC1)
    browser.open(service.url)
    wait_text(browser, "#live", "live")
    wait_text(browser, cell(MAC1, "state"), "started")
    assert "pc01" in browser.text(cell(MAC1, "machine"))
    assert MAC1 in browser.text(cell(MAC1, "machine"))
    assert "BIOS" in browser.text(cell(MAC1, "seen"))
    assert "restore" in browser.text(cell(MAC1, "job"))
    assert "pc02" in browser.text(cell(MAC2, "machine"))
    browser.evaluate("window.__same_page = 1")

    service.report(lease, "progress",
                   progress={"task": "restore", "done": 3 * GiB,
                             "total": 8 * GiB, "percent": 37.5,
                             "rate": 50 * 1024 * 1024, "eta": 100})
    shown = wait_text(browser, cell(MAC1, "progress"), "37.5 %")
    assert "3.0 GiB of 8.0 GiB" in shown
    assert "50.0 MiB/s" in shown
    assert "1 min 40 s left" in shown
    assert browser.evaluate(
        f"document.querySelector('{cell(MAC1, 'progress')} progress').value"
    ) == 37.5

    service.report(lease, "done", exit=0, log=["restore: verified"])
    wait_text(browser, cell(MAC1, "state"), "last: done, exit 0")
    assert "done" in browser.text(f"{cell(MAC1, 'state')} .state")
    assert "next boot: local" in browser.text(cell(MAC1, "job"))
    assert "restore: verified" in browser.text(cell(MAC1, "log"))
    # the same page all along (no reload), and it followed the event
    # stream, not a poll
    assert browser.evaluate("window.__same_page") == 1
    requests = browser.requests()
    assert requests.count(service.url) == 1
    assert service.url + "api/events" in requests
    assert browser.text("#summary").startswith("2 machines")
    # nothing came from anywhere but the server
    assert all(url.startswith(service.url) for url in requests), requests


def test_polls_when_told_to(service, browser):
    """?poll (a proxy that holds event streams back): the page follows
    /api/machines alone."""
    lease = service.start_job(MAC1)
    browser.open(service.url + "?poll")
    wait_text(browser, cell(MAC1, "state"), "started")
    wait_text(browser, "#live", "polling")
    service.report(lease, "progress", progress={"done": 1, "total": 4})
    wait_text(browser, cell(MAC1, "progress"), "25.0 %")
    requests = browser.requests()
    assert service.url + "api/events" not in requests
    assert requests.count(service.url + "api/machines") >= 2


def use_token(browser, token):
    browser.type("#token", token, enter=True)
    wait_text(browser, "#tokenstate", "token set")


def test_assign_with_the_token_changes_the_next_boot(service, browser):
    assert service.machines.next_boot(MAC2).kind != "job"
    browser.open(service.url)
    wait_text(browser, cell(MAC2, "state"), "idle")
    use_token(browser, TOKEN)
    # typed once: kept for the tab, not left in the field
    assert browser.evaluate("sessionStorage.getItem('pxeconf.token')") == TOKEN
    assert browser.evaluate("document.querySelector('#token').value") == ""
    browser.choose(f"{row(MAC2)} select.job", "wipe")
    browser.click(f"{row(MAC2)} button.assign")
    wait_text(browser, "#msg", "wipe runs once on pc02")
    boot = service.machines.next_boot(MAC2)
    assert boot.kind == "job" and boot.job.name == "wipe"
    wait_text(browser, cell(MAC2, "state"), "assigned")
    assert "wipe" in browser.text(cell(MAC2, "job"))

    browser.click(f"{row(MAC2)} button.local")
    wait_text(browser, "#msg", "pc02 (52:54:00:ab:cd:ef) boots its local disk")
    assert service.machines.next_boot(MAC2).kind == "local"

    browser.click(f"{row(MAC1)} button.cancel")
    wait_text(browser, "#msg", "job of pc01 (52:54:00:12:34:56) cancelled")
    wait_text(browser, cell(MAC1, "state"), "cancelled")
    assert service.machines.next_boot(MAC1).kind != "job"


def test_a_wrong_or_missing_token_changes_nothing_and_says_so(service,
                                                              browser):
    before = service.machines.next_boot(MAC2).kind
    browser.open(service.url)
    wait_text(browser, cell(MAC2, "state"), "idle")

    browser.choose(f"{row(MAC2)} select.job", "restore")
    browser.click(f"{row(MAC2)} button.assign")
    shown = wait_text(browser, "#msg", "wants the console token")
    assert "Not allowed to assign a job to pc02" in shown
    assert browser.evaluate("document.querySelector('#msg').className") == \
        "error"
    assert service.machines.next_boot(MAC2).kind == before

    use_token(browser, "not-" + TOKEN)
    browser.click(f"{row(MAC2)} button.assign")
    wait_text(browser, "#msg", "refused this token (403)")
    browser.click(f"{row(MAC1)} button.cancel")
    wait_text(browser, "#msg", "Not allowed to cancel the job of pc01")
    assert service.machines.next_boot(MAC2).kind == before
    assert service.machines.next_boot(MAC1).kind == "job"
    assert "idle" in browser.text(cell(MAC2, "state"))


def test_text_from_machines_is_never_markup(tmp_path, browser):
    svc = Service(tmp_path, hosts=[
        Host(MAC1, name="pc01", job="restore", once=True, assigned=T0)])
    try:
        lease = svc.start_job(MAC1)
        svc.report(lease, "progress",
                   progress={"task": HOSTILE, "done": 1, "total": 2})
        browser.open(svc.url)
        # the task of a progress report is the machine's words too
        wait_text(browser, cell(MAC1, "progress"), HOSTILE)
        svc.report(lease, "failed", exit=5,
                   log=["restore: target too small", HOSTILE,
                        "<script>window.__pwned=2</script>"])
        wait_text(browser, cell(MAC1, "state"), "failed")
        browser.click(f"{cell(MAC1, 'log')} summary")   # the tail shown
        log = wait_text(browser, f"{cell(MAC1, 'log')} pre",
                        "target too small")
        assert HOSTILE in log
        assert "<script>window.__pwned=2</script>" in log
        assert browser.evaluate("document.images.length") == 0
        assert browser.evaluate(
            "document.querySelectorAll('#rows script, #rows img').length"
        ) == 0
        assert browser.evaluate("window.__pwned === undefined")
        assert svc.url + "x" not in browser.requests()
    finally:
        svc.close()


def test_narrow_screen(service):
    """A phone's width: one card per machine, nothing wider than the
    screen, every action reachable by a real click."""
    service.start_job(MAC1, firmware="ipxe-efi")
    with Browser(width=360, height=740) as browser:
        browser.open(service.url)
        wait_text(browser, cell(MAC1, "state"), "started")
        assert browser.evaluate(
            "document.documentElement.scrollWidth <= innerWidth")
        assert browser.evaluate(
            "getComputedStyle(document.querySelector('thead')).display"
        ) == "none"
        use_token(browser, TOKEN)
        browser.click(f"{row(MAC1)} button.local")
        wait_text(browser, "#msg", "boots its local disk next")
        assert service.machines.next_boot(MAC1).kind == "local"


def png_rows_differ(data):
    """The decoded pixel rows of a PNG are not all alike (not a blank
    page): the IDAT stream inflated, compared by its scanlines."""
    width, height = png_size(data)
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = len(raw) // height
    return len({raw[i * stride + 1:(i + 1) * stride]
                for i in range(height)}) > height // 10


def test_screenshot_of_a_room(tmp_path):
    """A room in mid-morning: one restoring, one done, one failed, one
    that asked without being in the site file."""
    svc = Service(tmp_path, hosts=[
        Host(MAC1, name="pc01", job="restore", once=True, assigned=T0),
        Host(MAC2, name="pc02", job="restore", once=True, assigned=T0),
        Host(MAC3, name="lab-07", job="wipe", once=True, assigned=T0)])
    try:
        lease = svc.start_job(MAC1)
        svc.report(lease, "progress", progress={
            "task": "restore", "done": 3_221_225_472, "total": 7_516_192_768,
            "percent": 42.9, "rate": 61_000_000, "eta": 70},
            log=["restore: partition 2 of 3 (ext4, 6.4 GiB used)"])
        lease = svc.start_job(MAC2, firmware="ipxe-efi")
        svc.report(lease, "done", exit=0,
                   log=["restore: verified 7.0 GiB", "job done"])
        lease = svc.start_job(MAC3, firmware="efi")
        svc.report(lease, "failed", exit=6,
                   log=["rdeploy: /dev/sda: no space left (needs 7.0 GiB)"])
        svc.machines.booted(MAC4, "bios")
        with Browser(width=1100, height=500) as browser:
            browser.open(svc.url)
            wait_text(browser, cell(MAC1, "progress"), "42.9 %")
            wait_text(browser, cell(MAC3, "state"), "failed")
            wait_text(browser, "#summary", "4 machines")
            data = browser.screenshot(tmp_path / "console.png")
        assert png_size(data) == (1100, 500)
        assert png_rows_differ(data)
        keep = os.environ.get("PXECONF_CONSOLE_PNG")
        if keep:
            shutil.copyfile(tmp_path / "console.png", keep)
    finally:
        svc.close()


class PageOnly:
    """The page and a Content-Security-Policy header at /, 404 for the
    rest: the policy's effect on the page alone."""

    def __init__(self, policy):
        page = console.PAGE

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                found = self.path == "/"
                body = page if found else b"{}"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8"
                                 if found else "application/json")
                self.send_header("Content-Length", str(len(body)))
                if found:
                    self.send_header("Content-Security-Policy", policy)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


VIOLATIONS = """window.__violations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__violations.push(e.violatedDirective));"""


@pytest.mark.parametrize("policy, runs", [
    (console.CSP, True),
    (console.CSP.replace("script-src 'sha256-", "script-src 'sha256-x"),
     False)])
def test_the_page_runs_under_its_own_csp(browser, policy, runs):
    """Under console.CSP the page's own script and style run and nothing
    is refused; a policy without the script's hash stops the script (so
    the check can tell)."""
    server = PageOnly(policy)
    try:
        browser.before_load(VIOLATIONS)
        browser.open(server.url)
        assert browser.evaluate("getComputedStyle(document.body).margin") \
            == "0px"
        if runs:
            wait_text(browser, "#live", "HTTP 404")
            assert browser.text("#summary") == "0 machines"
            assert "No machine has asked" in browser.text("#empty")
            assert browser.evaluate("window.__violations") == []
        else:
            browser.wait("window.__violations.length > 0")
            assert browser.text("#summary") == ""
            assert browser.text("#live") == "connecting"
    finally:
        server.close()


def test_httpd_sends_the_page_under_its_csp(service, browser):
    """The real server sends console.CSP with the page: the page runs
    (its own script fills the table) and an image the policy forbids is
    refused by the browser (without the header it would load)."""
    with urllib.request.urlopen(service.url, timeout=10) as answer:
        assert answer.headers["Content-Security-Policy"] == console.CSP
    browser.before_load(VIOLATIONS)
    browser.open(service.url)
    wait_text(browser, "#summary", "2 machines")
    browser.evaluate("document.body.appendChild(Object.assign(new Image(),"
                     " {src: 'data:image/gif;base64,R0lGODlhAQABAAAAACw='}))"
                     " && 1")
    browser.wait("window.__violations.includes('img-src')",
                 what="the image refused under the policy")


def test_favicon_is_answered_without_a_log_line(service):
    """Every browser asks for /favicon.ico: 204, and no 404 in the log."""
    for _ in range(3):
        with urllib.request.urlopen(service.url + "favicon.ico",
                                    timeout=10) as answer:
            assert answer.status == 204 and answer.read() == b""
    assert not [x for x in service.log if "favicon" in x], service.log


def test_a_refused_event_stream_falls_back_to_polling(tmp_path, browser):
    """A server whose event streams are all taken (a bound of 0) answers
    /api/events with 503: the page polls /api/machines instead, says so,
    and still follows a report."""
    svc = Service(tmp_path, max_streams=0)
    try:
        browser.open(svc.url)
        wait_text(browser, "#live", "polling (no event stream)")
        lease = svc.start_job(MAC1)
        wait_text(browser, cell(MAC1, "state"), "started")
        svc.report(lease, "failed", exit=3)
        wait_text(browser, cell(MAC1, "state"), "failed")
        assert any("over 0 event streams" in x for x in svc.log), svc.log
    finally:
        svc.close()


def _tab(browser, url):
    """A new tab of the same browser (its connections to the server are
    shared with the others, as an administrator's are) made the one the
    browser's commands go to."""
    target = browser.command("Target.createTarget",
                             url="about:blank")["targetId"]
    browser.session = browser.command("Target.attachToTarget",
                                      targetId=target,
                                      flatten=True)["sessionId"]
    browser.open(url)
    return browser.session


def test_three_tabs_of_one_browser_are_served_by_default(service, browser):
    """The default per_address lets one browser keep three console tabs
    live (three event streams, the lists and the actions besides), each
    following a report."""
    assert service.server.per_address == 16
    tabs = [browser.session]
    browser.open(service.url)
    tabs += [_tab(browser, service.url), _tab(browser, service.url)]
    for tab in tabs:
        browser.session = tab
        wait_text(browser, "#live", "live")
    lease = service.start_job(MAC1)
    service.report(lease, "progress", progress={"done": 3 * GiB,
                                                "total": 7 * GiB})
    for tab in tabs:
        browser.session = tab
        wait_text(browser, cell(MAC1, "progress"), "42.9 %")
        browser.evaluate("location.reload(), 1")
    for tab in tabs:
        browser.session = tab
        wait_text(browser, "#live", "live")
        wait_text(browser, cell(MAC1, "state"), "started")
    assert not [x for x in service.log if "503" in x], service.log
