"""rdeploy multicast's refusals before any network or disk is touched,
and the notice datagram (no namespaces needed)."""

import pytest

from diskimage.errors import UsageError
from diskimage.fleet import notice
from diskimage.fleet.udpcast import (Tool, check_interface,
                                      default_interface, receiver_args,
                                      sender_args)
from tests.rdeploy_helpers import check, install_trusted_key, rdeploy


def test_send_refuses_what_is_not_an_image(small_disk_ro):
    check(rdeploy("multicast", "send", small_disk_ro), 3,
          "not an rdeploy image")


@pytest.mark.parametrize("option, words", [
    ("--fec=8x8", "STRIPESxREDUNDANCY/STRIPESIZE"),
    ("--rate=0", "--rate takes megabits"),
    ("--port=80", "--port takes 1024 to 65533"),
    ("--min-receivers=0", "--min-receivers must be at least 1"),
    ("--max-wait=0", "--max-wait must be at least 1")])
def test_send_usage_errors(small_images_ro, option, words):
    check(rdeploy("multicast", "send", small_images_ro["image"], option), 2,
          words)


def test_send_refuses_stdin():
    check(rdeploy("multicast", "send", "-"), 2, "not stdin")


def test_receive_needs_yes_without_a_terminal(tmp_path):
    target = tmp_path / "pc.img"
    check(rdeploy("multicast", "receive", target), 5, "needs --yes")
    assert not target.exists()


def test_receive_refuses_delta_with_grow(tmp_path):
    check(rdeploy("multicast", "receive", tmp_path / "pc.img", "--yes",
                  "--delta", "--grow"), 2, "--delta")


def test_the_command_lines_never_stream_and_never_wait_for_a_key():
    args = sender_args(port=9100, min_receivers=3, max_wait=60, rate=8000,
                       fec="8x8/128", interface="eth1")
    assert "--streaming" not in args and "--nokbd" in args
    assert args[args.index("--max-bitrate") + 1] == "8000k"
    assert args[args.index("--portbase") + 1] == "9100"
    assert "--retries-until-drop" in args
    assert "--receive-timeout" in receiver_args(port=9100)


def test_notice_round_trip_and_strangers_ignored():
    n = notice.Notice(session=3, started=1796190000, receivers=40)
    data = n.pack()
    assert len(data) == 32 and data[:8] == b"RDI-MCST"
    assert notice.Notice.unpack(data) == n
    assert notice.Notice.unpack(data[:31]) is None
    assert notice.Notice.unpack(b"X" + data[1:]) is None
    assert notice.Notice.unpack(data[:8] + b"\x02" + data[9:]) is None
    assert notice.Notice.unpack(data[:9] + b"\x07" + data[10:]) is None


def test_default_interface_is_the_default_routes(tmp_path):
    routes = tmp_path / "route"
    head = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
    routes.write_text(
        head + "eth1\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\n"
        "enp3s0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\n")
    assert default_interface(routes) == "enp3s0"
    routes.write_text(head + "eth1\t0001A8C0\t00000000\t0001\t0\t0\t0\t"
                             "00FFFFFF\n")
    assert default_interface(routes) is None
    assert default_interface(tmp_path / "none") is None


def test_receive_is_refused_where_signatures_are_required(tmp_path,
                                                          monkeypatch):
    """bootdisk --trust media (keys installed) refuse a multicast session
    before joining it, as they refuse a pipe: its signature cannot be
    checked before the first write."""
    install_trusted_key(tmp_path, monkeypatch)
    target = tmp_path / "pc.img"
    check(rdeploy("multicast", "receive", target, "--yes", "--wait=1"), 11,
          "only signed images", "not a multicast session")
    assert not target.exists()


def test_udpcast_lines_lose_control_characters_and_say_our_words():
    """udp-receiver ends with "Transfer complete." and a BEL, and draws
    progress with CRs: messages carry neither, and its known phrases in
    our words."""
    tool = Tool(["sh", "-c", "printf 'bytes=  1 MB\\r"
                 "Receiver timeout\\r\\nTransfer complete.\\007\\n' >&2"])
    assert tool.wait(10) == 0
    assert list(tool.lines) == ["Receiver timeout", "Transfer complete."]
    assert tool.last_words() == ("no packet from the sender in time; the "
                                 "sender ended the session")
    tool.stop()


def test_interface_checked_against_the_hosts(tmp_path):
    (tmp_path / "eth0").mkdir()
    (tmp_path / "lo").mkdir()
    check_interface(None, str(tmp_path))
    check_interface("eth0", str(tmp_path))
    for name in ("nosuch0", "../eth0", "."):
        with pytest.raises(UsageError) as caught:
            check_interface(name, str(tmp_path))
        assert str(caught.value) == (f"--interface={name}: no such network "
                                     f"interface on this host (it has: "
                                     f"eth0, lo)")


def test_counts_of_one_are_singular():
    from rdeploy.multicastcmds import _late_line, _stopped_text
    from diskimage.words import counted
    assert counted(1, "receiver") == "1 receiver"
    assert counted(0, "try", "tries") == "0 tries"
    line = _late_line("10.0.0.1", notice.Notice(session=2, started=0,
                                                receivers=1))
    assert "with 1 receiver)" in line, line
    text = _stopped_text([{"finished": ["10.0.0.11"]}])
    assert text.startswith("multicast send stopped after 1 session (1 "
                           "receiver finished)"), text
