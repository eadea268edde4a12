"""The state API over the tail: a job, its tries counted and saved before
the job runs, its end; the 128 KiB job limit."""

import hashlib
import types

import pytest

from diskimage.errors import InputError
from diskimage.service import state, tail

MiB = 1 << 20


@pytest.fixture
def service(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(4 * MiB)
    return types.SimpleNamespace(disk=str(path), tail_offset=3 * MiB)


def test_nothing_saved(service):
    assert state.load(service) == {"job": None, "armed": None, "last": None}


def test_job_tries_and_results(service):
    st = state.load(service)
    job = state.new_job("capture.sh", "echo hi\n", tries=2)
    assert job["sha256"] == hashlib.sha256(b"echo hi\n").hexdigest()
    assert (job["tries"], job["used"]) == (2, 0)
    state.set_job(st, job, service)
    loaded = state.load(service)
    assert state.pending(loaded)["text"] == "echo hi\n"
    # the try is on the disk before the job runs
    assert state.count_try(loaded, service) == 1
    assert state.load(service)["job"]["used"] == 1
    state.finish(loaded, "failed", 3, service)
    again = state.load(service)
    assert again["last"]["result"] == "failed" and again["last"]["try"] == 1
    assert state.pending(again) is not None
    assert state.count_try(again, service) == 2
    state.finish(again, "exhausted", 3, service)
    last = state.load(service)
    assert last["job"] is None and state.pending(last) is None
    assert last["last"]["result"] == "exhausted" and last["last"]["try"] == 2
    with pytest.raises(InputError, match="no pending job"):
        state.count_try(last)


def test_done_clears_the_job(service):
    st = state.load(service)
    state.set_job(st, state.new_job("j", "true\n", tries=3), service)
    state.count_try(st, service)
    state.finish(st, "done", 0, service)
    st = state.load(service)
    assert st["job"] is None and st["last"]["exit"] == 0


def test_job_limit(service):
    state.new_job("big", "x" * (128 << 10))         # at the limit: fine
    with pytest.raises(InputError, match="more than the 131072"):
        state.new_job("big", "x" * ((128 << 10) + 1))
    with pytest.raises(InputError, match="not UTF-8"):
        state.new_job("bin", b"\xff\xfe")
    with pytest.raises(InputError, match="tries"):
        state.new_job("j", "true", tries=0)


def test_a_full_job_fits_a_slot(service):
    st = state.load(service)
    state.set_job(st, state.new_job("big", "echo é; " * 13000), service)
    assert len(tail.encode(st)) < tail.STATE_ROOM
    assert state.load(service)["job"]["text"].startswith("echo é; ")
