"""A download whose reader pauses is not a silent client.

Found by the network boots (tests/pxeconf/test_netboot.py): the job
`wget -O- http://SERVER/images/lab.rdi | rdeploy restore - /dev/vda`
stops reading while rdeploy starts (the frozen toolkit unpacks itself:
many seconds under TCG) and while it writes; the TCP window closes, and
the server's silence timeout, meant for clients that send nothing, cut
the download ("wget: connection closed prematurely", the restore failed
with exit 8).  The client here pauses for three silence timeouts between
two reads and must still get every byte of the file."""

import socket
import threading
import time

from diskimage.netboot.httpd import HttpServer
from diskimage.netboot.jobs import Machines
from tests.netboot.jobsite import make_site

SIZE = 32 << 20     # more than the socket buffers of both ends hold
TIMEOUT = 1.0


def test_a_reader_that_pauses_gets_the_whole_file(tmp_path):
    site = make_site(tmp_path)
    root = tmp_path / "boot"
    (root / "images").mkdir()
    (root / "images" / "big.rdi").write_bytes(bytes(range(256)) * (SIZE // 256))
    machines = Machines(site, tmp_path / "state" / "journal.jsonl")
    log = []
    server = HttpServer(root, "127.0.0.1", 0, machines, "t", log.append,
                        timeout=TIMEOUT)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /images/big.rdi HTTP/1.1\r\n"
                         b"Host: x\r\nConnection: close\r\n\r\n")
            data = sock.recv(65536)
            time.sleep(3 * TIMEOUT)       # the reader is busy elsewhere
            sock.settimeout(30)
            while chunk := sock.recv(1 << 20):
                data += chunk
    finally:
        server.shutdown()
        thread.join(10)
        machines.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    got = len(body)
    assert got == SIZE, f"{got} of {SIZE} bytes; server: {log[-3:]}"
