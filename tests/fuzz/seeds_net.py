"""The seeds of the http and site targets: requests as browsers, curl and
boot firmware send them (the forms tests/netboot and docs/pxeconf/http.md
show), and site files as `pxeconf init` writes them and the docs and
tests show.  Called by seeds.py."""

from diskimage.netboot.site import new_site_text
from tests.fuzz.targets.http import TOKEN

MAC = "52:54:00:12:34:56"


def _req(line, *headers, body=b""):
    head = [line] + list(headers)
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def http_seeds(save):
    auth = f"Authorization: Bearer {TOKEN}"
    json = "Content-Type: application/json"
    seeds = {
        "get-file": _req("GET /env/small.bin HTTP/1.1", "Host: x"),
        "get-range": _req("GET /env/small.bin HTTP/1.1", "Host: x",
                          "Range: bytes=100-199"),
        "get-suffix": _req("GET /env/small.bin HTTP/1.1",
                           "Range: bytes=-10",
                           'If-Range: "400-0"'),
        "get-if-range-date": _req("GET /in-link HTTP/1.1",
                                  "Range: bytes=5-",
                                  "If-Range: Tue, 01 Dec 2026 16:00:00 GMT"),
        "head": _req("HEAD /env/small.bin HTTP/1.0"),
        "get-ipxe": _req(f"GET /ipxe/{MAC.replace(':', '-')}.ipxe"
                         f"?platform=efi HTTP/1.1", "Host: 10.0.0.1"),
        "get-grub": _req("GET /grub/grub.cfg-01-52-54-00-12-34-56 HTTP/1.1"),
        "get-out": _req("GET /out-link HTTP/1.1"),
        "get-traversal": _req("GET /../etc/passwd HTTP/1.1"),
        "get-slashes": _req("GET //etc/passwd HTTP/1.1"),
        "get-page": _req("GET / HTTP/1.1", "Accept: text/html"),
        "get-machines": _req("GET /api/machines HTTP/1.1"),
        "get-events": _req("GET /api/events HTTP/1.1",
                           "Accept: text/event-stream"),
        "get-favicon": _req("GET /favicon.ico HTTP/1.1"),
        "report": _req("POST /api/report HTTP/1.1", json,
                       body=b'{"lease": "x", "event": "started"}'),
        "report-progress": _req("POST /api/report HTTP/1.1", json,
                                body=b'{"lease": "2026-12-01T16:00:00Z", '
                                b'"event": "progress", "progress": 0.5, '
                                b'"log": "restoring"}'),
        "assign": _req(f"POST /api/machines/{MAC}/assign HTTP/1.1", auth,
                       json, body=b'{"job": "wipe", "once": true}'),
        "cancel": _req(f"POST /api/machines/{MAC}/cancel HTTP/1.1", auth),
        "local": _req("POST /api/machines/52-54-00-ab-cd-ef/local HTTP/1.1",
                      auth, body=b"{}"),
        "no-token": _req(f"POST /api/machines/{MAC}/assign HTTP/1.1",
                         body=b'{"job": "restore"}'),
        "chunked": _req("POST /api/report HTTP/1.1",
                        "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n",
        "pipelined": _req("GET /env/small.bin HTTP/1.1") +
        _req("GET /api/machines HTTP/1.1") + _req("GET /nothing HTTP/1.1"),
        "http09": b"GET /env/small.bin\r\n",
    }
    for name, data in seeds.items():
        save(name, "http", data)


SITE_FULL = f"""\
# a site with every section
[site]
root = boot
timeout = 5
default = local
retries = 2
fallback = local
address = 10.0.0.1
http-port = 8080
entries = local, rescue, restore

[server lab2]
address = 10.0.1.2
default = rescue
entries = local, rescue     # lab2's menu

[menu local]
label = "Local disk #1"
local = yes

[menu rescue]
label = Rescue
kernel = rescue/vmlinuz
initrd = rescue/initrd.img
cmdline = console=ttyS0,115200n8 a#b

[menu restore]
job = restore

[job restore]
label = Restore the lab image
bundle = env
script = jobs/restore.sh
cmdline = quiet

[job wipe]
kernel = env/vmlinuz
initrd = env/initrd.img
script = jobs/wipe.sh
retries = 0

[host {MAC}]
name = pc01
job = restore
once = yes
assigned = 2026-12-01T16:30:00Z

[host 52-54-00-AB-CD-EF]
name = pc02
menu = rescue
"""


def site_seeds(save):
    save("init", "site", new_site_text().encode())
    save("full", "site", SITE_FULL.encode())
    save("crlf-bom", "site", b"\xef\xbb\xbf" +
         SITE_FULL.replace("\n", "\r\n").encode())
    save("minimal", "site", b"[menu local]\nlocal = yes\n")
