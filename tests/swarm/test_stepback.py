"""StepBack's decisions (diskimage/swarm/stepback.py) on plain peers
shaped like libtorrent's peer_info (pieces, ip, flags, connection_type),
libtorrent's own flag values, and a handle that records the upload limits
it is given: it steps back once every main piece has a holder, serves
again when a holder leaves, when a peer is stuck, or when a peer holding
every main piece lacks a held piece nobody has; web seeds hold nothing."""

import time
from types import SimpleNamespace

import pytest

from diskimage.swarm.stepback import StepBack, TRICKLE

lt = pytest.importorskip("libtorrent")

MAIN, HELD = [0, 1, 2, 3], [4, 5]
PIECES = 6


class Handle:
    def __init__(self):
        self.limits = []

    def set_upload_limit(self, limit):
        self.limits.append(limit)


def peer(n, pieces, interested=True, kind=None):
    bits = [i in pieces for i in range(PIECES)]
    flags = lt.peer_info.remote_interested if interested else 0
    return SimpleNamespace(
        pieces=bits, ip=(f"192.0.2.{n}", 6881), flags=flags,
        connection_type=lt.peer_info.standard_bittorrent if kind is None
        else kind)


def stepback(stuck=60.0):
    handle = Handle()
    return StepBack(lt, handle, MAIN, HELD, stuck=stuck), handle


def test_steps_back_once_every_main_piece_has_a_holder():
    step, handle = stepback()
    step.update([peer(1, {0, 1}), peer(2, {2})], 0)
    assert not step.back and handle.limits == [] and step.fewest == 0
    step.update([peer(1, {0, 1}), peer(2, {2, 3})], 10)
    assert step.back and handle.limits == [TRICKLE] and step.fewest == 1
    step.update([peer(1, {0, 1}), peer(2, {2, 3})], 10 + 5000)
    assert handle.limits == [TRICKLE]       # no change, no call
    assert step.summary()["stepped_back"] == 1
    assert step.summary()["back_bytes"] == 5000


def test_serves_again_when_a_holder_leaves():
    step, handle = stepback()
    both = [peer(1, {0, 1}), peer(2, {2, 3})]
    step.update(both, 0)
    assert step.back
    step.update(both[:1], 0)                # the holder of 2 and 3 left
    assert not step.back and handle.limits == [TRICKLE, 0]
    assert step.summary()["raised_again"] == 1
    step.update([*both[:1], peer(3, {2, 3})], 0)
    assert step.back and handle.limits == [TRICKLE, 0, TRICKLE]


def test_serves_again_when_a_peer_is_stuck():
    step, handle = stepback(stuck=0.3)
    peers = [peer(1, {0, 1}), peer(2, {2, 3})]
    step.update(peers, 0)
    assert step.back
    time.sleep(0.4)
    step.update(peers, 0)                   # neither gained a piece
    assert not step.back and handle.limits == [TRICKLE, 0]
    step.update([peer(1, {0, 1, 2}), peer(2, {2, 3, 0})], 0)
    assert step.back                        # both gained: not stuck


def test_a_peer_not_interested_is_not_stuck():
    step, handle = stepback(stuck=0.3)
    peers = [peer(1, {0, 1}, interested=False), peer(2, {2, 3}, False)]
    step.update(peers, 0)
    time.sleep(0.4)
    step.update(peers, 0)
    assert step.back and handle.limits == [TRICKLE]


def test_a_held_piece_nobody_has_keeps_it_serving():
    step, handle = stepback()
    whole = peer(1, set(MAIN))
    step.update([whole], 0)                 # it waits for 4 and 5
    assert not step.back and handle.limits == []
    step.update([whole, peer(2, {4, 5})], 0)
    assert step.back and handle.limits == [TRICKLE]


def test_web_seeds_are_no_holders():
    step, handle = stepback()
    web = peer(9, set(range(PIECES)), kind=lt.peer_info.web_seed)
    step.update([peer(1, {0, 1}), web], 0)
    assert not step.back and step.fewest == 0
