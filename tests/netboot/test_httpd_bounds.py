"""A flood from one address cannot stop another from being served; idle
and slow clients are cut off; request lines, headers and bodies are
bounded."""

import socket

import pytest

from tests.netboot.httpd_helpers import Served, curl


def held(count, source="127.0.0.1", port=None):
    """`count` connections from `source`, each kept open after one whole
    answer: the answer proves the server has accepted and counted it (the
    kernel may hand connections to accept() in another order than they
    were made), and then it waits for the next request."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30,
                                     source_address=(source, 0))
        s.sendall(b"GET /env/small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or \
                len(data.partition(b"\r\n\r\n")[2]) < 1024:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ")
        socks.append(s)
    return socks


def ended(socks):
    """End each connection as a client does and wait for the server's own
    close: from then on the server no longer counts it."""
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    for s in socks:
        assert s.recv(100) == b""
        s.close()


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
        # The server counts a connection when it accepts it: the four
        # held ones are counted, so these are over the bound.
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
        ended(flood)
    # Once the flood has ended (the server has closed each of its
    # connections), its address is served again at once.
    out = curl("-w", "%{http_code}", "-o", "/dev/null",
               bounded.url + "env/small.bin")
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
        assert any("connections in all" in x for x in bounded.logs), \
            bounded.logs
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


def test_a_trickling_request_is_cut_off(tmp_path):
    """Slowloris: a byte every tenth of a second never leaves the
    socket silent for `timeout`, but the whole request must come within
    `request_timeout`: the server closes it after a few bytes, not never
    (counted in bytes sent; 200 would be 20 s)."""
    s = Served(tmp_path, timeout=30, request_timeout=1)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        sock.sendall(b"GET /env/small.bin HTTP/1.1\r\nX-Slow: ")
        sock.settimeout(0.1)
        for sent in range(200):
            try:
                sock.sendall(b"z")          # one header line, never ended
                data = sock.recv(100)
            except socket.timeout:
                continue                    # still open
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            break
        assert data == b"" and sent < 199
        sock.close()
        assert any("timed out" in x for x in s.logs), s.logs
        # A request sent whole on the same server is served as ever.
        assert curl("-w", "%{http_code}", "-o", "/dev/null",
                    s.url + "env/small.bin").stdout == b"200"
    finally:
        s.stop()


def test_shutdown_does_not_wait_for_a_download(tmp_path):
    """A client that stops reading a large file holds its handler in
    sendfile; stopping the server must not wait for it (the socket's
    timeout here is a minute)."""
    import threading
    s = Served(tmp_path, timeout=60)
    with open(s.root / "big.img", "wb") as f:
        f.truncate(256 << 20)
    sock = socket.create_connection(("127.0.0.1", s.server.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /big.img HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(12) == b"HTTP/1.1 200"
    stopper = threading.Thread(target=s.stop)
    stopper.start()
    stopper.join(30)
    alive = stopper.is_alive()
    # The download is cut, not left running (its handler sees the socket
    # shut, while the client still has bytes to read: a wait on the log,
    # bounded, not a measure of time).
    import time
    for _ in range(600):
        if any("big.img to 127.0.0.1: cut off" in x for x in s.logs):
            break
        time.sleep(0.05)
    sock.close()
    stopper.join()
    assert not alive
    assert any("big.img to 127.0.0.1: cut off" in x for x in s.logs), s.logs


def test_shutdown_ends_kept_alive_connections(tmp_path):
    """A connection kept alive after an answer is ended by shutdown at
    once: its client sees the close (not a timeout: the socket's is 60 s,
    the recv's 30 s), and a request sent on it after shutdown is never
    answered."""
    s = Served(tmp_path, timeout=60)
    socks = held(3, port=s.server.port)
    s.stop()
    for sock in socks:
        try:
            sock.sendall(b"GET /env/small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        sock.close()
        assert data == b"", data


def test_a_flood_of_bad_requests_logs_a_few_lines(tmp_path):
    """70 requests for a missing file and 70 refused names from one
    address: logged at the 1st, 2nd, 4th ... 64th of each (7 + 7 lines),
    each with the count so far; another address is logged from its 1st."""
    import http.client
    s = Served(tmp_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.server.port,
                                          timeout=30)
        for path in ("/missing.bin", "/env/../../secret"):
            for _ in range(70):
                conn.request("GET", path)
                answer = conn.getresponse()
                answer.read()
                assert answer.status in (403, 404)
        conn.close()
        missing = [x for x in s.logs if "404 not found" in x]
        refused = [x for x in s.logs if "refused" in x]
        assert len(missing) == 7 and len(refused) == 7, s.logs
        assert missing[-1].endswith("(64 of these from 127.0.0.1)")
        other = http.client.HTTPConnection("127.0.0.1", s.server.port,
                                           timeout=30,
                                           source_address=("127.0.0.2", 0))
        other.request("GET", "/missing.bin")
        assert other.getresponse().status == 404
        other.close()
        assert sum("to 127.0.0.2: 404" in x for x in s.logs) == 1
    finally:
        s.stop()


def test_event_streams_are_bounded(tmp_path):
    """Event streams hold their connection for ever: at most max_streams of
    them, so that files are still served to boot clients."""
    import http.client
    s = Served(tmp_path, max_clients=16, per_address=16, max_streams=2)
    conns = []
    try:
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", s.server.port,
                                              timeout=30)
            conn.request("GET", "/api/events")
            answer = conn.getresponse()
            assert answer.status == 200
            conns.append(conn)
        conn = http.client.HTTPConnection("127.0.0.1", s.server.port,
                                          timeout=30)
        conn.request("GET", "/api/events")
        answer = conn.getresponse()
        assert answer.status == 503 and b"event streams" in answer.read()
        conn.close()
        assert any("over 2 event streams" in x for x in s.logs)
        assert curl("-w", "%{http_code}", "-o", "/dev/null",
                    s.url + "env/small.bin").stdout == b"200"
    finally:
        for conn in conns:
            conn.close()
        s.stop()


def test_a_bug_is_logged_not_swallowed(tmp_path):
    """A handler that fails for a reason not the client's (here: a server
    made without Machines asked for /api/machines) is logged in one line;
    a client gone away is not."""
    import threading
    from diskimage.netboot.httpd import HttpServer
    logs = []
    server = HttpServer(tmp_path, "127.0.0.1", 0, None, "t", logs.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port),
                                        timeout=30)
        assert answer_of(sock, b"GET /api/machines HTTP/1.1\r\n\r\n") == b""
        sock.close()
        assert any("internal error (AttributeError" in x for x in logs), logs
    finally:
        server.shutdown()
        thread.join(10)


def test_a_get_with_a_body_ends_its_connection(tmp_path):
    """A body on a GET is not read, so it must not be taken for the next
    request on the connection (request smuggling): one answer, then the
    close."""
    s = Served(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        inner = b"GET /in-link HTTP/1.1\r\nHost: x\r\n\r\n"
        data = answer_of(sock, b"GET /env/small.bin HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(inner) + inner)
        sock.close()
        assert data.count(b"HTTP/1.1 ") == 1 and data.endswith(s.small)
    finally:
        s.stop()


def test_a_reader_that_pauses_gets_the_whole_file(tmp_path):
    """A download whose reader stops taking bytes for longer than the
    silence timeout (wget -O- | rdeploy restore -, while the toolkit
    unpacks itself: seconds under TCG) is not a silent client: it gets the
    whole file (found by the network boots, tests/pxeconf)."""
    import time
    s = Served(tmp_path, timeout=0.5)
    size = 32 << 20                 # more than both socket buffers hold
    (s.root / "big.img").write_bytes(bytes(range(256)) * (size // 256))
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        sock.sendall(b"GET /big.img HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        data = sock.recv(65536)
        time.sleep(2.0)             # four silence timeouts
        while chunk := sock.recv(1 << 20):
            data += chunk
        sock.close()
        body = data.partition(b"\r\n\r\n")[2]
        assert len(body) == size, s.logs[-3:]
    finally:
        s.stop()


def test_a_request_is_bounded_in_all(tmp_path):
    """Each header line under 64 KiB and at most 100 of them, yet 6 MB in
    all: over REQUEST_MAX (256 KiB) the connection is ended and logged,
    however the bytes are spread."""
    from diskimage.netboot.httpconn import REQUEST_MAX
    s = Served(tmp_path)
    try:
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        line = b"X-Big: " + b"b" * 60000 + b"\r\n"
        try:
            sock.sendall(b"GET /env/small.bin HTTP/1.1\r\n" + line * 99 +
                         b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass                            # ended before all was sent
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        sock.close()
        assert not data.startswith(b"HTTP/1.1 200"), data[:80]
        assert any(f"over {REQUEST_MAX} bytes" in x for x in s.logs), s.logs
        # Within the bound: served.
        sock = socket.create_connection(("127.0.0.1", s.server.port),
                                        timeout=30)
        data = answer_of(sock, b"GET /env/small.bin HTTP/1.1\r\n" +
                         line * 3 + b"Connection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(s.small)
        sock.close()
    finally:
        s.stop()


def test_the_default_bound_holds_a_flood_from_one_address(tmp_path):
    """Defaults: 16 connections from one address (httpd.PER_ADDRESS), the
    17th is 503, and another address is still served."""
    s = Served(tmp_path, timeout=30)
    flood = held(16, port=s.server.port)
    try:
        extra = socket.create_connection(("127.0.0.1", s.server.port),
                                         timeout=30)
        assert answer_of(extra).startswith(b"HTTP/1.1 503 ")
        extra.close()
        other = socket.create_connection(("127.0.0.1", s.server.port),
                                         timeout=30,
                                         source_address=("127.0.0.2", 0))
        assert answer_of(other).startswith(b"HTTP/1.1 200 ")
        other.close()
    finally:
        for sock in flood:
            sock.close()
        s.stop()
