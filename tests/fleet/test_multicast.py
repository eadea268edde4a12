"""rdeploy multicast send / receive for real: udpcast between network
namespaces on the test's bridge (tests/fleet/room.py), each receiver
restoring onto its own disk file, checked with verify-target, e2fsck and
the files' sha256."""

import json
import random
import re
import signal
import subprocess
import time

import pytest

import demodisk
from tests.fleet.room import MiB, Room, blank_disk
from tests.rdeploy_helpers import rdeploy
from tests.smalldisk import sha256, sfdisk

pytestmark = pytest.mark.needs("udp-sender", "udp-receiver", "ip",
                               "mkfs.ext4", "e2fsck", "debugfs", "sfdisk",
                               root=True)

DISK = 48 * MiB
FS_START, FS_SIZE = MiB, 40 * MiB


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A 48 MiB GPT disk with an ext4 of files (20 MiB of random bytes, so
    the image is about 21 MB: more than the 6 MB udp-receiver buffers
    ahead of its reader), its image, and the files' digests."""
    d = tmp_path_factory.mktemp("mcast")
    tree = d / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("lab-pc\n")
    rng = random.Random(17)
    for i in range(5):
        (tree / f"blob{i}.bin").write_bytes(rng.randbytes(4 * MiB))
    disk = d / "golden.img"
    with open(disk, "wb") as f:
        f.truncate(DISK)
    sfdisk(disk, "label: gpt\nstart=2048, size=81920, name=sys\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E",
                    f"offset={FS_START}", str(disk), "40M"], check=True,
                   capture_output=True)
    image = d / "golden.rdi"
    result = rdeploy("capture", disk, image, "-q")
    assert result.returncode == 0, result.stderr.decode()
    return {"disk": disk, "image": image,
            "files": demodisk.read_files(disk, FS_START, FS_SIZE, "ext4")}


def restored(target, golden):
    """verify-target's exit, e2fsck clean, the files, in one assertion."""
    result = rdeploy("verify-target", target, golden["image"])
    assert result.returncode == 0, result.stderr.decode()
    clean, output = demodisk.fsck(target, FS_START, FS_SIZE, "ext4")
    assert clean, output
    assert demodisk.read_files(target, FS_START, FS_SIZE, "ext4") == \
        golden["files"]


def test_four_receivers_restore_one_image(golden, tmp_path):
    disks = [blank_disk(tmp_path / f"pc{i}.img", DISK) for i in range(4)]
    with Room(4) as room:
        sender = room.send(golden["image"], "--min-receivers=4")
        rx = [room.receive(i, disk) for i, disk in enumerate(disks)]
        for run in rx:
            assert run.wait() == 0, run.stderr
        assert sender.wait() == 0, sender.stderr
        assert room.pids(room.sender_ns) == []   # udp-sender gone too
    for disk in disks:
        restored(disk, golden)
    assert len({sha256(d) for d in disks}) == 1
    session = sender.ended()[0]["result"]
    assert sorted(session["finished"]) == [room.address(i) for i in range(4)]
    assert session["dropped"] == []
    end = rx[0].of("end")[0]
    assert end["result"]["sender"] == room.lan.address(1)


def test_a_killed_and_a_stalled_receiver_are_dropped_alone(golden,
                                                          tmp_path):
    """Rate-limited so the session lasts a few seconds.  Receiver 0 is
    SIGKILLed at a tenth of its restore (its udp-receiver, which has
    buffered up to 6 MB more, gets SIGINT from the kernel and leaves the
    session with a goodbye); receiver 1 is
    SIGSTOPped there (its udp-receiver fills its buffer and stops
    acknowledging).  Both are dropped; the two others finish and verify.
    Receiver 1, let go after the session, exits 15 naming the drop; both
    disks are marked incomplete."""
    disks = [blank_disk(tmp_path / f"pc{i}.img", DISK) for i in range(4)]
    with Room(4) as room:
        sender = room.send(golden["image"], "--min-receivers=4",
                           "--rate=40")
        rx = [room.receive(i, disk) for i, disk in enumerate(disks)]
        for run in rx[:2]:
            run.until(lambda r: r.percent() >= 10, what="a tenth restored")
        # at once, so both are dropped in the same rounds of requests
        rx[1].proc.send_signal(signal.SIGSTOP)
        rx[0].proc.send_signal(signal.SIGKILL)
        rx[0].wait()
        for run in rx[2:]:
            assert run.wait() == 0, run.stderr
        assert sender.wait() == 0, sender.stderr
        assert room.pids(room.receiver_ns[0]) == []  # its udp-receiver too
        rx[1].proc.send_signal(signal.SIGCONT)
        # udp-receiver gives up 30 s after the session's last packet
        assert rx[1].wait() == 15, rx[1].stderr
    message = rx[1].of("error")[0]["message"]
    assert f"dropped from the multicast session of {room.lan.address(1)}" \
        in message and "is marked incomplete" in message, message
    for disk in disks[2:]:
        restored(disk, golden)
    for disk in disks[:2]:
        result = rdeploy("verify-target", disk)
        assert result.returncode == 13, result.stderr.decode()
        line = result.stderr.decode()
        # a command that can be run: the next session, not a --resume
        assert f"rdeploy multicast receive {disk} --yes" in line, line
        assert "--resume" not in line and "pipe" not in line, line
        result = rdeploy("verify-target", disk, "--json")
        assert result.returncode == 13, result.stderr.decode()
        doc = json.loads(result.stdout)
        assert doc["incomplete"] and doc["marker"]["source"] == "session"
    ended = sender.ended()[0]
    # the text line says what its JSON says: left, then dropped
    assert f"left: {room.address(0)}; dropped: {room.address(1)}" in \
        ended["summary"], ended["summary"]
    session = sender.ended()[0]["result"]
    # the killed one's udp-receiver said goodbye (SIGINT from the kernel),
    # the stalled one was dropped by udp-sender
    assert session["left"] == [room.address(0)], str(session)
    assert session["dropped"] == [room.address(1)], str(session)
    assert sorted(session["finished"]) == [room.address(2), room.address(3)]


def test_a_late_receiver_is_told_then_served_by_the_next_session(
        golden, tmp_path):
    first, late = (blank_disk(tmp_path / f"{n}.img", DISK)
                   for n in ("first", "late"))
    with Room(2) as room:
        sender = room.send(golden["image"], "--rate=24", "--repeat")
        rx0 = room.receive(0, first)
        sender.until(lambda r: r.started(), what="the first session")
        rx1 = room.receive(1, late)
        rx1.until(lambda r: r.of("warning"), what="the late notice")
        assert rx0.percent() < 100      # it was told while session 1 ran
        assert "came after its start" in rx1.of("warning")[0]["message"]
        assert rx0.wait() == 0, rx0.stderr
        assert rx1.wait() == 0, rx1.stderr
        sender.until(lambda r: len(r.ended()) >= 2,
                     what="the second session's end")
        sender.proc.send_signal(signal.SIGTERM)
        assert sender.wait() == 143, sender.stderr
        assert room.pids(room.sender_ns) == []
    # worded for a sender: how many sessions, not a restore's clean-up
    stopped = sender.of("error")[0]["message"]
    assert re.match(r"multicast send stopped after [23] sessions \([23] "
                    r"receivers finished\); .* \(interrupted by SIGTERM\)$",
                    stopped), stopped
    sessions = [e["result"] for e in sender.ended()]
    assert sessions[0]["finished"] == [room.address(0)]
    assert sessions[1]["finished"] == [room.address(1)]
    for disk in (first, late):
        restored(disk, golden)


def test_min_receivers_and_max_wait_start_the_session(golden, tmp_path):
    """--min-receivers=2: one receiver alone gets no session (it gives up
    at --wait, exit 15, nothing written); with a second one the session
    starts.  --max-wait: with 3 wanted and 1 come, it starts anyway, and
    not before max-wait seconds."""
    disks = [blank_disk(tmp_path / f"pc{i}.img", DISK) for i in range(2)]
    with Room(2) as room:
        sender = room.send(golden["image"], "--min-receivers=2")
        alone = room.receive(0, disks[0], "--wait=5")
        # each join said as it comes, while the sender still waits
        sender.until(lambda r: any(e["state"] == "joined"
                                   for e in r.of("session")),
                     what="the first join")
        joined = [e for e in sender.of("session") if e["state"] == "joined"]
        assert joined[0]["receiver"] == room.address(0), joined
        assert joined[0]["receivers"] == 1 and not sender.started()
        assert alone.wait() == 15, alone.stderr
        assert "no multicast session started within 5 s" in \
            alone.of("error")[0]["message"]
        assert sha256(disks[0]) == sha256(blank_disk(tmp_path / "z", DISK))
        rx = [room.receive(i, disk) for i, disk in enumerate(disks)]
        for run in rx:
            assert run.wait() == 0, run.stderr
        assert sender.wait() == 0, sender.stderr

        sender = room.send(golden["image"], "--min-receivers=3",
                           "--max-wait=3")
        one = room.receive(0, disks[0])
        assert one.wait() == 0, one.stderr
        assert sender.wait() == 0, sender.stderr
    session = sender.ended()[0]["result"]
    assert session["finished"] == [room.address(0)]
    waited = session["started"] - session["first_joined"]
    assert waited >= 2.5, session


def _limited_drops(room, rate):
    """A token bucket of `rate` (tc tbf: this kernel has no policer
    actions) on the bridge's port towards receiver 0, so what the sender
    puts on the wire crosses it; returns a function reading how many
    packets it dropped (its queue holds 64 KiB)."""
    lan, port = room.lan, "p-rx0"
    lan.run(lan.bridge_ns, ["tc", "qdisc", "add", "dev", port, "root",
                            "tbf", "rate", rate, "burst", "32k", "limit",
                            "64k"])

    def dropped():
        out = lan.run(lan.bridge_ns, ["tc", "-s", "qdisc", "show", "dev",
                                      port], text=True).stdout
        return sum(int(n) for n in re.findall(r"dropped (\d+)", out))
    return dropped


@pytest.mark.needs("tc")
@pytest.mark.parametrize("limit, drops", [("11mbit", False),
                                          ("6mbit", True)])
def test_rate_holds_under_a_limit(small_images_ro, tmp_path, limit, drops):
    """--rate=8 (megabits): a token bucket just above it on the way to the
    receiver drops nothing; one below it drops packets (udpcast then
    resends them, and the restore still completes and verifies)."""
    image = small_images_ro["image"]
    target = blank_disk(tmp_path / "pc.img")
    with Room(1, subnet="192.168.79") as room:
        dropped = _limited_drops(room, limit)
        sender = room.send(image, "--rate=8")
        rx = room.receive(0, target)
        assert rx.wait() == 0, rx.stderr
        assert sender.wait() == 0, sender.stderr
        assert (dropped() > 0) == drops, dropped()
    result = rdeploy("verify-target", target, image)
    assert result.returncode == 0, result.stderr.decode()


def test_udp_sender_never_outlives_a_killed_send(small_images_ro):
    """SIGKILL leaves rdeploy no time to clean up: the kernel's
    PR_SET_PDEATHSIG ends udp-sender all the same."""
    with Room(0, subnet="192.168.80") as room:
        sender = room.send(small_images_ro["image"])
        deadline = time.monotonic() + 30
        while len(room.pids(room.sender_ns)) < 2:   # rdeploy + udp-sender
            assert sender.proc.poll() is None, sender.stderr
            assert time.monotonic() < deadline, "udp-sender never started"
            time.sleep(0.05)
        sender.proc.send_signal(signal.SIGKILL)
        sender.wait()
        deadline = time.monotonic() + 10
        while room.pids(room.sender_ns):
            assert time.monotonic() < deadline, room.pids(room.sender_ns)
            time.sleep(0.05)


def test_receive_delta_checks_every_chunk_and_writes_what_differs(
        small_images_ro, small_disk_ro, tmp_path):
    """A disk that already holds the image, but for one changed MiB:
    receive --delta reads the whole session (every chunk checked) and
    writes about that MiB (the tables and marker besides), not the whole
    disk."""
    image = small_images_ro["image"]
    target = tmp_path / "pc.img"
    result = rdeploy("restore", image, target, "--yes", "-q")
    assert result.returncode == 0, result.stderr.decode()
    with open(target, "r+b") as f:          # in partition 2's random bytes
        f.seek(67584 * 512 + MiB)
        f.write(bytes(MiB))
    with Room(1, subnet="192.168.81") as room:
        sender = room.send(image)
        rx = room.receive(0, target, "--delta")
        assert rx.wait() == 0, rx.stderr
        assert sender.wait() == 0, sender.stderr
    result = rx.of("end")[0]["result"]
    delta = result["delta"]
    assert delta["chunks_same"] >= 5 and delta["chunks_written"] >= 1, delta
    assert MiB <= delta["written"] <= delta["full"] // 10, delta
    assert result["written_bytes"] == delta["written"]
    assert sha256(target) == sha256(small_disk_ro)


def test_an_interface_that_is_not_there_is_a_usage_error_on_both_sides(
        small_images_ro, tmp_path):
    """Checked before udpcast starts: exit 2 for send and receive alike,
    naming the interfaces there are; nothing written, nothing left."""
    target = blank_disk(tmp_path / "pc.img")
    with Room(1, subnet="192.168.82") as room:
        rx = room.receive(0, target, "--interface=nosuch0", "--wait=20")
        sender = room.send(small_images_ro["image"], "--interface=nosuch0")
        assert rx.wait() == 2, rx.stderr
        assert sender.wait() == 2, sender.stderr
        for run in (rx, sender):
            message = run.of("error")[0]["message"]
            assert message.startswith("--interface=nosuch0: no such network "
                                      "interface on this host (it has: "), \
                message
            assert "eth0" in message and "lo" in message, message
        assert room.pids(room.receiver_ns[0]) == []
        assert room.pids(room.sender_ns) == []
    assert sha256(target) == sha256(blank_disk(tmp_path / "z.img"))


def test_an_encrypted_image_over_a_session(small_disk_ro, tmp_path):
    secret = tmp_path / "pass"
    secret.write_text("room 101\n")
    image = tmp_path / "sealed.rdi"
    result = rdeploy("capture", small_disk_ro, image, "--encrypt",
                     f"--passphrase-file={secret}", "-q")
    assert result.returncode == 0, result.stderr.decode()
    target = blank_disk(tmp_path / "pc.img")
    with Room(1, subnet="192.168.83") as room:
        sender = room.send(image)
        rx = room.receive(0, target, f"--passphrase-file={secret}")
        assert rx.wait() == 0, rx.stderr
        assert sender.wait() == 0, sender.stderr
    assert sha256(target) == sha256(small_disk_ro)
