"""How the seeder spends its uplink (docs/swarm.md, "The seeder's upload").

A seeder that unchokes whoever asks sends rate x time: receivers started
together ask it for the same pieces (libtorrent's rarest-first takes
equally rare pieces in much the same order on every receiver), and the
seeder sent each piece about 1.5 times before the swarm held it once:
1.7-2.2 images' worth for 8 machines.  Two of libtorrent's own means cut
that:

* SLOTS: the seeder's session unchokes only a few peers at a time
  (`unchoke_slots_limit`, round-robin seed choking): fewer receivers ask
  it at once, for fewer pieces at once, and each piece leaves it faster;
  the others take those pieces from the ones served.
* StepBack: on every tick the seeder counts, in its connected peers'
  bitfields, how many hold each piece the receivers fetch first (the
  wanted pieces not zeroed on the receiver and not held to the end);
  once every one of them is held by HOLDERS peers, it lowers the
  torrent's upload limit (handle.set_upload_limit) to TRICKLE.  It serves
  at its full rate again as soon as some piece is held by fewer peers (a
  holder died or left), a peer that holds all those lacks a held piece
  that no peer has (those the receivers fetch last), or a peer that lacks
  pieces and is interested in the seeder gained none for STUCK seconds.

libtorrent's piece_availability() is empty on a seed, hence the count
from get_peer_info().  The summary tells how often and how long it
stepped back and what it sent meanwhile.
"""

import time

#: Bytes a second the seeder still sends once it stepped back: a peer that
#: asks it is answered, slowly (0 would mean no limit to libtorrent).
TRICKLE = 128 * 1024
#: Peers the seeder unchokes at once (measured: 2 to 4, 3 best).
SLOTS = 3
HOLDERS = 1
STUCK = 5.0


class StepBack:
    """One torrent's upload limit; `update(peer_info, uploaded)` on every
    tick of the seeder (the session's --upload-rate still holds)."""

    def __init__(self, lt, handle, main, held=(), *, holders=HOLDERS,
                 trickle=TRICKLE, stuck=STUCK):
        self.lt, self.handle = lt, handle
        self.main, self.held = list(main), list(held)
        self.holders, self.trickle, self.stuck = holders, trickle, stuck
        self.back = False
        self.since = None           # when it last stepped back
        self.steps = self.raised = 0
        self.back_seconds = 0.0
        self.back_bytes = 0
        self.uploaded = 0           # the torrent's upload at the last tick
        self.fewest = 0             # the last tick's fewest holders
        self.gains = {}             # peer -> (pieces held, since when)

    def _count(self, peer_info):
        """(fewest holders of a main piece, whether a peer waits for the
        seeder: lacks a held piece nobody else holds while it holds every
        main one, or is stuck)."""
        now = time.monotonic()
        web_types = (self.lt.peer_info.web_seed, self.lt.peer_info.http_seed)
        main = [0] * len(self.main)
        held = [0] * len(self.held)
        fields, seen = [], {}
        for peer in peer_info:
            if peer.connection_type in web_types:
                continue
            pieces = peer.pieces
            has = [i < len(pieces) and bool(pieces[i]) for i in self.main]
            holds = [i < len(pieces) and bool(pieces[i]) for i in self.held]
            for counts, marks in ((main, has), (held, holds)):
                for n, mark in enumerate(marks):
                    counts[n] += mark
            key, gained = tuple(peer.ip), sum(has) + sum(holds)
            last = self.gains.get(key)
            if last is None or gained > last[0]:
                last = (gained, now)
            seen[key] = last
            fields.append((peer, all(has), holds, last))
        self.gains = seen
        waits = False
        for peer, whole, holds, last in fields:
            lacking = not whole or not all(holds)
            if whole and any(not mark and not held[n]
                             for n, mark in enumerate(holds)):
                waits = True    # the held pieces: nobody fetched them yet
            if lacking and peer.flags & self.lt.peer_info.remote_interested \
                    and now - last[1] >= self.stuck:
                waits = True
        return (min(main) if main else 0), waits

    def update(self, peer_info, uploaded):
        now = time.monotonic()
        if self.back:
            self.back_bytes += max(0, uploaded - self.uploaded)
        self.uploaded = uploaded
        self.fewest, waits = self._count(peer_info)
        want = self.fewest >= self.holders and not waits
        if want == self.back:
            return
        if want:
            self.handle.set_upload_limit(self.trickle)
            self.since, self.steps = now, self.steps + 1
        else:
            self.handle.set_upload_limit(0)
            self.back_seconds += now - self.since
            self.raised += 1
        self.back = want

    def summary(self):
        seconds = self.back_seconds + (
            time.monotonic() - self.since if self.back else 0.0)
        return {"stepped_back": self.steps, "raised_again": self.raised,
                "back_seconds": round(seconds, 1),
                "back_bytes": self.back_bytes, "fewest_holders": self.fewest}
