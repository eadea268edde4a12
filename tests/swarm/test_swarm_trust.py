"""Where signatures are required (bootdisk --trust media: keys
installed), swarm receive is refused before it touches TARGET or the
network, as multicast receive and a pipe are: a swarm's pieces are
written before any signature could be checked."""

from tests.rdeploy_helpers import check, install_trusted_key, rdeploy


def test_receive_is_refused_where_signatures_are_required(tmp_path,
                                                          monkeypatch):
    install_trusted_key(tmp_path, monkeypatch)
    target = tmp_path / "pc.img"
    check(rdeploy("swarm", "receive", "http://127.0.0.1:9/lab.torrent",
                  target, "--yes", "--wait=1"), 11,
          "only signed images", "not a swarm")
    assert not target.exists()
