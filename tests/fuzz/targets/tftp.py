"""The TFTP server's handling of what clients send.  The input is packets
separated by SEP: the first is parsed as the server's listener parses a
request (RRQ/WRQ, mode, options: RFC 1350, 2347-2349, 7440), its name
judged by rootpath as the server does; an allowed read then runs a real
transfer (tftpsession.Transfer on a UDP socket on 127.0.0.1) of a file
of a small boot root, the other packets queued from the client's address
as its replies (ACKs, errors, garbage).  The server's shutdown pipe is
made readable first, so when the queued replies run out the transfer
ends at once instead of waiting for its timeout."""

import os
import socket

from diskimage.netboot import rootpath, tftpproto, tftpsession
from tests.fuzz.targets_index import scratch

MAX_LEN = 65507     # the largest UDP payload (the server reads 65536)
SEP = b"|#|"

_ROOT = None


def _root():
    """A boot root: a loader, a config, an empty file, a directory and a
    symlink that leads out of the root."""
    global _ROOT
    if _ROOT is None:
        top = scratch("tftp", memory=False)
        with open(os.path.join(top, "pxelinux.0"), "wb") as f:
            f.write(bytes(range(256)) * 6)
        os.mkdir(os.path.join(top, "pxelinux.cfg"))
        with open(os.path.join(top, "pxelinux.cfg", "default"), "wb") as f:
            f.write(b"DEFAULT rdeploy\r\nLABEL rdeploy\n\rKERNEL vmlinuz\n")
        open(os.path.join(top, "empty"), "wb").close()
        os.symlink("/etc/hostname", os.path.join(top, "out"))
        _ROOT = top
    return _ROOT


def _transfer(rel, mode, options, replies):
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wake_r, wake_w = os.pipe()
    try:
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        for packet in replies:
            try:
                client.sendto(packet, server.getsockname())
            except OSError:
                break
        os.write(wake_w, b"x")
        tftpsession.Transfer(server, client.getsockname(), wake_r,
                             lambda line: None, 1, 1).run(
            _root(), rel, mode, options, None)
    finally:
        for sock in (server, client):
            sock.close()
        os.close(wake_r)
        os.close(wake_w)


def one_input(data):
    packets = data.split(SEP)
    request, replies = packets[0], packets[1:]
    try:
        op = tftpproto.opcode(request)
    except tftpproto.BadPacket:
        return
    if op not in (tftpproto.RRQ, tftpproto.WRQ):
        for packet in packets:
            tftpproto.parse_reply(packet)
        return
    op, name, mode, options = tftpproto.parse_request(request)
    tftpproto.oack(tftpproto.negotiate(options, 1 << 40))
    tftpsession.shown(name)
    if op == tftpproto.WRQ:
        return
    rel = rootpath.relative(name)
    _transfer(rel, mode, options, replies[:64])
