"""Files over HTTP with a real curl: HEAD, Range, a resumed download,
traversal attempts and a symlink out of the root."""

import hashlib
import os

import pytest

from tests.netboot.httpd_helpers import curl, served  # noqa: F401
from tests.netboot.jobsite import MAC1

pytestmark = pytest.mark.needs("curl")


def status_and_headers(out):
    text = out.stdout.decode("latin-1")
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def test_head_has_content_length(served):
    out = curl("-I", served.url + "env/small.bin")
    status, headers = status_and_headers(out)
    assert status == 200
    assert headers["content-length"] == "1024"
    assert headers["accept-ranges"] == "bytes"
    assert out.stdout.endswith(b"\r\n\r\n")               # no body


def test_get_whole(served, tmp_path):
    out = curl("-o", str(tmp_path / "got"), "-w", "%{http_code}",
               served.url + "env/small.bin")
    assert out.stdout == b"200"
    assert (tmp_path / "got").read_bytes() == served.small
    assert any("env/small.bin to 127.0.0.1: 200" in x for x in served.logs)


@pytest.mark.parametrize("spec,first,last", [
    ("10-19", 10, 19), ("1000-", 1000, 1023), ("-5", 1019, 1023),
    ("1020-5000", 1020, 1023), ("-4096", 0, 1023), ("0-0", 0, 0)])
def test_range(served, spec, first, last):
    out = curl("-i", "-r", spec, served.url + "env/small.bin")
    status, headers = status_and_headers(out)
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/1024"
    assert headers["content-length"] == str(last - first + 1)
    body = out.stdout.split(b"\r\n\r\n", 1)[1]
    assert body == served.small[first:last + 1]


@pytest.mark.parametrize("spec", ["1024-", "5000-6000", "-0"])
def test_range_past_the_end(served, spec):
    out = curl("-i", "-r", spec, served.url + "env/small.bin")
    status, headers = status_and_headers(out)
    assert status == 416
    assert headers["content-range"] == "bytes */1024"


def test_several_ranges_answer_the_whole_file(served):
    out = curl("-i", "-r", "0-1,5-6", served.url + "env/small.bin")
    status, headers = status_and_headers(out)
    assert status == 200 and headers["content-length"] == "1024"
    assert out.stdout.split(b"\r\n\r\n", 1)[1] == served.small


def test_a_cut_download_resumes(served, tmp_path):
    big = os.urandom(3 << 20) + bytes(5 << 20)
    (served.root / "images").mkdir()
    (served.root / "images" / "lab.rdi").write_bytes(big)
    part = tmp_path / "lab.rdi"
    part.write_bytes(big[:1234567])                       # cut here
    out = curl("-C", "-", "-o", str(part), "-w", "%{http_code}",
               served.url + "images/lab.rdi")
    assert out.stdout == b"206"
    assert hashlib.sha256(part.read_bytes()).digest() == \
        hashlib.sha256(big).digest()


def test_a_range_at_the_end_of_a_large_sparse_file(served):
    """A 6 GiB file (sparse): its last bytes come at once; the whole is
    never read (a reader that did would not finish in curl's time)."""
    size = 6 << 30
    with open(served.root / "huge.img", "wb") as f:
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"tail")
    out = curl("-i", "-r", f"{size - 10}-", served.url + "huge.img")
    status, headers = status_and_headers(out)
    assert status == 206
    assert headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert out.stdout.endswith(bytes(6) + b"tail")
    status, headers = status_and_headers(curl("-I", served.url + "huge.img"))
    assert headers["content-length"] == str(size)


@pytest.mark.parametrize("path,status,why", [
    ("/../secret", 403, "traversal"),
    ("/env/../../secret", 403, "traversal"),
    ("/%2e%2e/secret", 403, "traversal"),
    ("/env/%2E%2E/%2e%2e/secret", 403, "traversal"),
    ("/out-link", 403, "out of the boot root"),
    ("//etc/passwd", 403, "absolute"),
    ("/env%5c..%5csecret", 403, "backslash"),
    ("/small.bin%00.cfg", 403, "control character"),
    ("/" + "a" * 600, 403, "longer than 512"),
    ("/env", 403, "directory"),
    ("/missing.bin", 404, None)])
def test_refused_and_logged(served, path, status, why):
    out = curl("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
               served.url.rstrip("/") + path)
    assert out.stdout == str(status).encode()
    if why:
        line = [x for x in served.logs if "refused" in x]
        assert len(line) == 1, served.logs
        assert why in line[0] and "127.0.0.1" in line[0]


def test_a_symlink_inside_the_root_is_served(served):
    out = curl(served.url + "in-link")
    assert out.stdout == served.small


def test_ipxe_script_counts_a_boot(served):
    out = curl(served.url + "ipxe/52-54-00-12-34-56.ipxe?platform=efi")
    assert out.stdout == b"#!ipxe\nexit\n"
    m = served.machines.machine("52:54:00:12:34:56")
    assert m["firmware"] == "ipxe-efi" and m["last_seen"] is not None
    curl(served.url + "ipxe/52-54-00-ab-cd-ef.ipxe?platform=pcbios")
    m = served.machines.machine("52:54:00:ab:cd:ef")       # not in the site
    assert m["firmware"] == "ipxe-bios" and m["state"] == "unknown"
    # GRUB over HTTP (UEFI HTTP boot) asks for its per-MAC names too.
    curl(served.url + "grub/grub.cfg-01-52-54-00-ab-cd-ef")
    assert served.machines.machine("52:54:00:ab:cd:ef")["firmware"] == "efi"
    curl("-I", served.url + "ipxe/52-54-00-12-34-56.ipxe?platform=pcbios")
    assert served.machines.machine(MAC1)["firmware"] == "ipxe-efi"  # HEAD


def test_the_page_at_root(served):
    out = curl("-i", served.url)
    status, headers = status_and_headers(out)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert out.stdout.endswith(b"<title>console</title>\n")
