"""The web-seed fallback's decisions (diskimage/swarm/webseeds.py) on
plain peers shaped like libtorrent's peer_info, libtorrent's own flag
values, a handle that records what it is told, and a clock the test
moves: with a seed connected (by its bitfield or the seeder's peer id)
a choked receiver whose pieces keep coming waits, and one that gets
nothing for STARVED seconds, or under FLOOR for SLOW, falls back; with
no seed, GRACE seconds without a peer serving it; the web seeds go once
peers give FLOOR (a seed connected) for PATIENCE, after HOLD."""

from types import SimpleNamespace

import pytest

from diskimage.swarm import webseeds
from diskimage.swarm.session import RECEIVER_ID, SEEDER_ID
from diskimage.swarm.webseeds import (FLOOR, GRACE, HOLD, PATIENCE, SLOW,
                                      STARVED, WebSeeds)

lt = pytest.importorskip("libtorrent")

URL = "http://192.0.2.1/lab.raw"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


class Handle:
    def __init__(self):
        self.seeds = []
        self.added = 0

    def add_url_seed(self, url):
        self.seeds.append(url)
        self.added += 1

    def remove_url_seed(self, url):
        if url in self.seeds:
            self.seeds.remove(url)

    def url_seeds(self):
        return list(self.seeds)

    def force_reannounce(self, *args):
        pass

    def force_dht_announce(self):
        pass


def peer(n, *, seed=False, pid=RECEIVER_ID, serving=False, rate=0):
    info = lt.peer_info
    flags = (info.seed if seed else 0) | (
        info.interesting if serving else info.choked)
    return SimpleNamespace(
        ip=(f"192.0.2.{n}", 6881), flags=flags, payload_down_speed=rate,
        connection_type=info.standard_bittorrent,
        pid=lt.sha1_hash(pid.encode().ljust(20, b"x")))


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(webseeds, "time", clock)
    return clock


def fallback(clock):
    handle = Handle()
    seeds = WebSeeds(lt, handle, [URL], fallback=True)
    return seeds, handle


def run(seeds, clock, peers, seconds, quiet=lambda t: 0.0):
    """Ticks of 0.5 s for `seconds`; `quiet(t)`: the seconds without a
    byte at t."""
    t = 0.0
    while t < seconds:
        clock.now += 0.5
        t += 0.5
        seeds.update(peers, quiet(t))


@pytest.mark.parametrize("seed", [
    peer(1, seed=True), peer(1, pid=SEEDER_ID)], ids=["bitfield", "peer id"])
def test_choked_by_the_seed_while_pieces_come_it_waits(clock, seed):
    seeds, handle = fallback(clock)
    # the seeder chokes it; a receiver gives what it lacks, over FLOOR
    run(seeds, clock, [seed, peer(2, rate=2 * FLOOR)], 30)
    assert handle.seeds == [] and seeds.added == 0
    # nobody unchokes it, but bytes keep coming (from the seeder's turns)
    run(seeds, clock, [seed, peer(2, rate=FLOOR)], 30)
    assert seeds.added == 0


def test_starved_with_a_seed_connected_falls_back(clock):
    seeds, handle = fallback(clock)
    peers = [peer(1, seed=True), peer(2)]
    run(seeds, clock, peers, STARVED - 1, quiet=lambda t: t)
    assert seeds.added == 0
    run(seeds, clock, peers, 1.5, quiet=lambda t: STARVED - 1 + t)
    assert handle.seeds == [URL] and seeds.summary()["web_seeds_why"] == \
        {"starved": 1}


@pytest.mark.parametrize("peers, wait, why", [
    # a seed on a slow link: under FLOOR for SLOW seconds
    ([peer(1, seed=True, serving=True, rate=FLOOR // 4)], SLOW, "slow"),
    # no seed, and the one peer chokes it: GRACE seconds
    ([peer(2, rate=4 * FLOOR)], GRACE, "no_peer_serving")],
    ids=["slow seed", "no seed"])
def test_falls_back_after_its_wait(clock, peers, wait, why):
    seeds, handle = fallback(clock)
    run(seeds, clock, peers, wait - 1)
    assert seeds.added == 0
    run(seeds, clock, peers, 1.5)
    assert seeds.summary()["web_seeds_why"] == {why: 1}


def test_removed_once_peers_give_the_floor_with_a_seed(clock):
    seeds, handle = fallback(clock)
    run(seeds, clock, [peer(1, seed=True)], STARVED + 1,
        quiet=lambda t: t)
    assert handle.seeds == [URL]
    # FLOOR from peers that serve it (the web seed shares the downlink)
    serving = [peer(1, seed=True, serving=True, rate=FLOOR)]
    run(seeds, clock, serving, max(HOLD, PATIENCE) - 2)
    assert handle.seeds == [URL]              # HOLD: no flapping
    run(seeds, clock, serving, PATIENCE + 2)
    assert handle.seeds == [] and seeds.added == 1


def test_without_a_seed_removal_takes_twice_the_floor(clock):
    seeds, handle = fallback(clock)
    run(seeds, clock, [peer(2)], GRACE + 1)
    assert handle.seeds == [URL]
    run(seeds, clock, [peer(2, serving=True, rate=FLOOR)], 3 * HOLD)
    assert handle.seeds == [URL]
    run(seeds, clock, [peer(2, serving=True, rate=2 * FLOOR)], PATIENCE + 1)
    assert handle.seeds == []
