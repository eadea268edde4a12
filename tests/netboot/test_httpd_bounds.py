"""A flood from one address cannot stop another from being served; idle
and slow clients are cut off; request lines, headers and bodies are
bounded."""

import socket

import pytest

from tests.netboot.httpd_helpers import Served, curl


def held(count, source="127.0.0.1", port=None):
    """`count` connections that send nothing, from `source`."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                     source_address=(source, 0))
        socks.append(s)
    return socks


def answer_of(sock, request=b"GET /env/small.bin HTTP/1.1\r\n"
              b"Host: x\r\nConnection: close\r\n\r\n"):
    sock.sendall(request)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def bounded(tmp_path):
    s = Served(tmp_path, max_clients=12, per_address=4, timeout=30)
    yield s
    s.stop()


def test_one_address_over_its_bound_gets_503(bounded):
    port = bounded.server.port
    flood = held(4, port=port)
    try:
        # The server counts a connection when it accepts it, in order:
        # the four held ones first, so these are over the bound.
        extra = [socket.create_connection(("127.0.0.1", port), timeout=30)
                 for _ in range(3)]
        for s in extra:
            data = answer_of(s)
            assert data.startswith(b"HTTP/1.1 503 ")
            s.close()
        assert any("503 to 127.0.0.1" in x and "from one address" in x
                   for x in bounded.logs)
    finally:
        for s in flood:
            s.close()


@pytest.mark.needs("curl")
def test_a_flood_from_one_address_does_not_stop_another(bounded):
    port = bounded.server.port
    flood = held(4, port=port)
    try:
        out = curl("--interface", "127.0.0.2", "-w", "%{http_code}",
                   "-o", "/dev/null", bounded.url + "env/small.bin")
        assert out.stdout == b"200"
        out = curl("-w", "%{http_code}", "-o", "/dev/null",
                   bounded.url + "env/small.bin")
        assert out.stdout == b"503"
    finally:
        for s in flood:
            s.close()
    # Once the flood ends, its address is served again.
    for _ in range(200):                # until its handler threads are done
        out = curl("-w", "%{http_code}", "-o", "/dev/null",
                   bounded.url + "env/small.bin")
        if out.stdout == b"200":
            break
    assert out.stdout == b"200"


def test_the_server_bound(bounded):
    port = bounded.server.port
    flood = []
    try:
        for n in range(3):                       # 12 from three addresses
            flood += held(4, source=f"127.0.0.{10 + n}", port=port)
        s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                     source_address=("127.0.0.20", 0))
        assert answer_of(s).startswith(b"HTTP/1.1 503 ")
        s.close()
        assert any("connections in all" in x for x in bounded.logs)
    finally:
        for s in flood:
            s.close()


def test_a_silent_client_is_cut_off(tmp_path):
    s = Served(tmp_path, timeout=0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        sock.sendall(b"GET /env/small.bin HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(100) == b""             # closed by the server
        sock.close()
    finally:
        s.stop()


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 70000 + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", b"431"),
    (b"POST /api/report HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
     b"413"),
    (b"POST /api/report HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
     b"411"),
    (b"DELETE /env/small.bin HTTP/1.1\r\n\r\n", b"501")])
def test_bounded_requests(tmp_path, request_bytes, status):
    s = Served(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        data = answer_of(sock, request_bytes)
        assert data.split(b" ")[1] == status, data[:200]
        sock.close()
    finally:
        s.stop()


def test_the_library_prints_nothing(tmp_path, capfd):
    s = Served(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        answer_of(sock, b"BREW /pot HTTP/1.1\r\n\r\n")
        sock.close()
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        answer_of(sock, b"GET /../x HTTP/1.1\r\nConnection: close\r\n\r\n")
        sock.close()
    finally:
        s.stop()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert s.logs


def test_listen_address_must_be_given(tmp_path):
    from diskimage.errors import BusyError, InputError
    from diskimage.netboot.httpd import HttpServer
    with pytest.raises(InputError):
        HttpServer(tmp_path, "", 0, None, "t", print)
    s = Served(tmp_path)
    try:
        with pytest.raises(BusyError):
            HttpServer(tmp_path, "127.0.0.1", s.server.port, None, "t", print)
    finally:
        s.stop()


def test_shutdown_without_serving(tmp_path):
    from diskimage.netboot.httpd import HttpServer
    server = HttpServer(tmp_path, "127.0.0.1", 0, None, "t", print)
    server.shutdown()
    server.shutdown()
    server.serve_forever()                    # returns: already closed
