"""The site file's swarm keys (what `pxeconf serve` seeds with
libtorrent): typed, defaulted, overridden per server, and each torrent
checked inside the boot root with the NAME.raw that `rdeploy swarm
prepare` writes beside it; every error "FILE:LINE: FIELD: problem"."""

import pytest

from diskimage.netboot.site import SiteError, load_text
from tests.site_helpers import SITE, make_site


@pytest.fixture
def path(tmp_path):
    path = make_site(tmp_path)
    images = tmp_path / "boot" / "images"
    images.mkdir()
    for name in ("lab.torrent", "lab.raw", "b.torrent", "b.raw",
                 "alone.torrent"):
        (images / name).write_bytes(b"x")
    return path


def _with(keys, extra=""):
    return SITE.replace("retries = 2\n", "retries = 2\n" + keys, 1) + extra


def test_defaults_seed_nothing(path):
    settings = load_text(path, SITE).settings
    assert (settings.swarm_seed, settings.swarm_port,
            settings.swarm_upload_rate, settings.swarm_tracker) == \
        ((), 6881, None, None)


def test_values_and_a_server_of_its_own(path):
    site = load_text(path, _with(
        "swarm-seed = images/lab.torrent, images/b.torrent  # both\n"
        "swarm-port = 7000\nswarm-upload-rate = 400\nswarm-tracker = 6969\n",
        "\n[server room2]\nswarm-seed = images/b.torrent\n"
        "\n[server quiet]\nswarm-seed =\n"))
    settings = site.settings
    assert (settings.swarm_seed, settings.swarm_port,
            settings.swarm_upload_rate, settings.swarm_tracker) == \
        (("images/lab.torrent", "images/b.torrent"), 7000, 400, 6969)
    room2 = site.for_server("room2").settings
    assert (room2.swarm_seed, room2.swarm_port) == (("images/b.torrent",),
                                                    7000)
    assert site.for_server("quiet").settings.swarm_seed == ()


@pytest.mark.parametrize("keys, message", [
    ("swarm-seed = images/none.torrent\n",
     r":7: site: swarm-seed: images/none.torrent: no such file in the boot "
     r"root"),
    ("swarm-seed = images/alone.torrent\n",
     r":7: site: swarm-seed: images/alone.raw: no such file in the boot "
     r"root"),
    ("swarm-seed = images/lab.raw\n",
     r":7: site: swarm-seed: images/lab.raw: not a .torrent file"),
    ("swarm-seed = /srv/lab.torrent\n",
     r":7: site: swarm-seed: /srv/lab.torrent: an absolute path"),
    ("swarm-seed = ../lab.torrent\n",
     r":7: site: swarm-seed: .*files must be inside the boot root"),
    ("swarm-seed = images/lab.torrent, images/lab.torrent\n",
     r":7: site: swarm-seed: a file given twice"),
    ("swarm-port = 0\n", r":7: site: swarm-port: 0 is out of range"),
    ("swarm-upload-rate = fast\n",
     r":7: site: swarm-upload-rate: 'fast' is not a whole number"),
    ("swarm-tracker = 70000\n",
     r":7: site: swarm-tracker: 70000 is out of range"),
    ("swarm-seeds = images/lab.torrent\n",
     r":7: site: swarm-seeds: unknown key \(did you mean 'swarm-seed'\?\)"),
])
def test_errors_name_the_line_and_the_key(path, keys, message):
    with pytest.raises(SiteError, match=message):
        load_text(path, _with(keys))


def test_a_server_override_is_checked_too(path):
    text = SITE + "\n[server room2]\nswarm-seed = images/alone.torrent\n"
    with pytest.raises(SiteError, match=r":31: server room2: swarm-seed: "
                       r"images/alone.raw: no such file"):
        load_text(path, text)
