"""Every machine's state for `pxeconf status`, read from the journal
without touching it.

A running `pxeconf serve` holds the journal locked, and opening it through
jobs.Machines would also append the leases of the site file's new
assignments.  So the journal's records are read without a lock
(journal.read: a last line being written just then is dropped), written
into a private copy, and replayed there by jobs.Machines: the same state
the server shows (and would show after a restart, with the site file as it
is now), and the real journal left as it was.
"""

import json
import os
import tempfile

from . import journal as journalfile
from .jobs import Machines


def journal_path(site_path):
    """DIR/state/journal.jsonl of the site file DIR/pxeconf.site."""
    return os.path.join(os.path.dirname(os.path.abspath(site_path)),
                        "state", "journal.jsonl")


def snapshot(site, journal, log=None):
    """The machines of jobs.Machines.snapshot() for `site` and the journal
    at `journal` (missing: none seen yet, the site's hosts idle)."""
    records = journalfile.read(journal, log)
    with tempfile.TemporaryDirectory(prefix="pxeconf-status-") as private:
        copy = os.path.join(private, "journal.jsonl")
        with open(copy, "w", encoding="utf-8") as f:
            for record in [journalfile.HEADER] + records:
                f.write(json.dumps(record, sort_keys=True,
                                   separators=(",", ":")) + "\n")
        machines = Machines(site, copy, log=log)
        try:
            return machines.snapshot()
        finally:
            machines.close()
