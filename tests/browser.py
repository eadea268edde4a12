"""A real browser for tests: Debian's headless Chromium driven through its
DevTools protocol over a pipe (``--remote-debugging-pipe``: the browser
reads commands on its fd 3 and writes answers and events on its fd 4, JSON
messages ended by a NUL byte), standard library only.

    with Browser(width=1024, height=640) as browser:
        browser.open("http://127.0.0.1:8080/")
        browser.wait("document.querySelectorAll('tr').length > 1")
        browser.type("#token", "secret")
        browser.click("button.assign")
        png = browser.screenshot("page.png")

`--dump-dom` does not wait for scripts on a page with a live stream
(DESIGN.md, "Facts measured here for network boot"); this does.  Waiting is
a loop of evaluations that ends on the condition, or fails with what was
awaited and the page's last exceptions once the bound is passed: tests
count and compare, they never judge by the clock.

`prefix` runs the browser under a command, e.g. ``["ip", "netns", "exec",
"ns1"]`` to browse a server inside a network namespace (the pipe's fds are
inherited through it).  Every process is started in a session of its own
and that session alone is ended by `close()`; the profile directory is
fresh and removed.
"""

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

CHROMIUM = "/usr/bin/chromium"

#: The flags every run gets: no network of its own (updates, sync, QUIC,
#: first-run pages), no GPU, no sandbox (tests run as root).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions",
         "--mute-audio", "--hide-scrollbars")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class BrowserError(Exception):
    """The browser died, refused a command, or a condition was not met."""


def png_size(data):
    """(width, height) of PNG bytes; BrowserError if they are not a PNG."""
    if data[:8] != PNG_MAGIC or data[12:16] != b"IHDR":
        raise BrowserError("not a PNG image")
    return (int.from_bytes(data[16:20], "big"),
            int.from_bytes(data[20:24], "big"))


def _high(fd):
    """`fd` moved to a number of 10 or more, so bash's 3<& and 4>&
    redirections cannot overwrite one end with the other (dash takes only
    fds 0-9 in a redirection: hence bash)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium with one page (tab) attached."""

    def __init__(self, width=1024, height=768, prefix=(), flags=(),
                 command_timeout=30.0):
        self.command_timeout = command_timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.stderr_path = os.path.join(self.profile, "stderr.log")
        self._lock = threading.Condition()
        self._answers = {}
        self._events = []
        self._next_id = 0
        self._eof = False
        self.session = None
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        child_in, child_out = _high(to_browser_r), _high(from_browser_w)
        argv = [*prefix, "/bin/bash", "-c",
                f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} '
                f'{child_in}<&- {child_out}>&-',
                CHROMIUM, *FLAGS, *flags, "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        with open(self.stderr_path, "wb") as stderr:
            try:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=stderr,
                    stderr=stderr, pass_fds=(child_in, child_out),
                    start_new_session=True)
            finally:
                os.close(child_in)
                os.close(child_out)
        self._out = to_browser_w
        self._in = from_browser_r
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            target = self.command("Target.createTarget",
                                  url="about:blank")["targetId"]
            self.session = self.command("Target.attachToTarget",
                                        targetId=target,
                                        flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Network"):
                self.send(f"{domain}.enable")
            self.resize(width, height)
        except BaseException:
            self.close()
            raise

    # -- the protocol ----------------------------------------------------

    def _read(self):
        buffer = b""
        while True:
            try:
                data = os.read(self._in, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            *messages, buffer = buffer.split(b"\0")
            with self._lock:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self._events.append(message)
                self._lock.notify_all()
        with self._lock:
            self._eof = True
            self._lock.notify_all()

    def command(self, method, session=None, **params):
        """Send one command (to the browser, or to `session`) and return
        its result; BrowserError with the browser's words if it fails."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._out, data):]
        except OSError as exc:
            raise BrowserError(f"{method}: the browser is gone ({exc})"
                               f"{self._stderr_tail()}") from None
        deadline = time.monotonic() + self.command_timeout
        with self._lock:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise BrowserError(
                        f"{method}: no answer "
                        f"({'the browser exited' if self._eof else 'timeout'})"
                        f"{self._stderr_tail()}")
                self._lock.wait(min(left, 1.0))
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def send(self, method, **params):
        """A command to the page."""
        return self.command(method, session=self.session, **params)

    def events(self, method):
        """The parameters of every event `method` the page has sent so far
        (e.g. "Network.requestWillBeSent", "Runtime.exceptionThrown")."""
        with self._lock:
            return [event.get("params", {}) for event in self._events
                    if event.get("method") == method
                    and event.get("sessionId") in (None, self.session)]

    def _stderr_tail(self):
        try:
            with open(self.stderr_path, "rb") as stream:
                lines = stream.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "; browser stderr: " + " | ".join(lines[-5:]) if lines else ""

    # -- what a test does with a page --------------------------------------

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises are
        awaited); BrowserError with the exception's text if it throws."""
        result = self.send("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or \
                details.get("text")
            raise BrowserError(f"{expression[:80]!r} threw: {text}")
        return result.get("result", {}).get("value")

    def wait(self, expression, timeout=20.0, what=None):
        """Evaluate `expression` until it is truthy and return its value;
        BrowserError naming it (and the page's uncaught exceptions) if it
        is still false after `timeout` seconds.  A bound for a failing
        test, not a measurement."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                thrown = [e.get("exceptionDetails", {}).get("exception", {})
                          .get("description", "")
                          for e in self.events("Runtime.exceptionThrown")]
                raise BrowserError(f"still not true: {what or expression}"
                                   + (f"; page exceptions: {thrown}"
                                      if thrown else ""))
            time.sleep(0.1)

    def open(self, url, timeout=20.0):
        """Load `url` and wait for its load to complete."""
        self.send("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && "
                  f"document.readyState === 'complete'", timeout,
                  what=f"{url} loaded")

    def resize(self, width, height):
        """The page's viewport, in CSS pixels (scale 1)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    def _centre(self, selector):
        box = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center", inline: "center"}});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2,
                    r.width, r.height];
        }})()""")
        if box is None:
            raise BrowserError(f"no element {selector!r} on the page")
        x, y, width, height = box
        if width <= 0 or height <= 0:
            raise BrowserError(f"{selector!r} is not shown")
        hit = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            const at = document.elementFromPoint({x}, {y});
            return !!at && (at === e || e.contains(at));
        }})()""")
        if not hit:
            raise BrowserError(f"{selector!r} is covered by another element")
        return x, y

    def click(self, selector):
        """A real mouse click (move, press, release) at the element's
        centre, after checking nothing covers it there."""
        x, y = self._centre(selector)
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                      button="left", buttons=1, clickCount=1)

    def type(self, selector, text, enter=False):
        """Click into the field, select what is there, type `text` over it
        (and press Enter)."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)})"
                      f".select?.()")
        self.send("Input.insertText", text=text)
        if enter:
            self.key("Enter")

    def key(self, key):
        """Press and release one key ("Enter", "Tab", "Escape")."""
        codes = {"Enter": 13, "Tab": 9, "Escape": 27}
        text = {"Enter": "\r"}.get(key)
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": key, "code": key,
                      "windowsVirtualKeyCode": codes.get(key, 0)}
            if text and kind == "keyDown":
                params["text"] = text
            self.send("Input.dispatchKeyEvent", **params)

    def choose(self, selector, value):
        """Pick `value` in a <select> as a person's choice does (the value
        set, then input and change events)."""
        found = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return "missing";
            if (![...e.options].some(o => o.value === {json.dumps(value)}))
                return "no such option";
            e.value = {json.dumps(value)};
            e.dispatchEvent(new Event("input", {{bubbles: true}}));
            e.dispatchEvent(new Event("change", {{bubbles: true}}));
            return "ok";
        }})()""")
        if found != "ok":
            raise BrowserError(f"{selector!r}: {found} ({value!r})")

    def text(self, selector):
        """The element's text as shown (innerText), or None."""
        return self.evaluate(f"document.querySelector({json.dumps(selector)})"
                             f"?.innerText ?? null")

    def screenshot(self, path=None, full_page=False):
        """PNG bytes of the viewport (or the whole page), also written to
        `path` if given."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": size["height"], "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot",
                                          **params)["data"])
        if path is not None:
            with open(path, "wb") as stream:
                stream.write(data)
        return data

    def requests(self):
        """Every URL the page asked for so far."""
        return [event["request"]["url"]
                for event in self.events("Network.requestWillBeSent")]

    # -- the end -------------------------------------------------------------

    def close(self):
        """Ask the browser to quit; end its session of processes if it does
        not; remove the profile."""
        if getattr(self, "process", None) is not None:
            if self.process.poll() is None:
                try:
                    self.command_timeout = 10.0
                    self.command("Browser.close")
                except BrowserError:
                    pass
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process = None
            self._reader.join(10)
        for fd in ("_out", "_in"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
