"""An encrypted image is signed without its passphrase (rdeploy sign takes
the root that sealed_info checks), then verifies with --pubkey and restores
with --require-signature given the passphrase: the target's sha256 is the
source's."""

import json

import pytest

from diskimage.image.sealed import sealed_info
from diskimage.trust import policy

from tests.rdeploy_helpers import check, rdeploy
from tests.shared import copy
from tests.smalldisk import sha256


@pytest.fixture(autouse=True)
def _no_installed_keys(monkeypatch, tmp_path):
    monkeypatch.setenv(policy.ENV, str(tmp_path / "no-trusted-keys"))


def ok(result):
    assert result.returncode == 0, result.stderr.decode()
    return result


def test_an_encrypted_image_is_signed_without_its_passphrase(disk, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("a long pass phrase\n")
    image, key = tmp_path / "enc.rdi", tmp_path / "release.key"
    ok(rdeploy("capture", disk["source"], image, "--encrypt",
               f"--passphrase-file={pw}", "-q"))
    ok(rdeploy("keygen", key, "--comment=lab", "-q"))
    ok(rdeploy("sign", image, f"--key={key}", "-q"))     # no passphrase
    sig = json.loads((tmp_path / "enc.rdi.sig").read_text())
    assert sig["root"] == sealed_info(str(image))["root"]
    out = ok(rdeploy("verify", image, f"--pubkey={key}.pub",
                     f"--passphrase-file={pw}")).stdout.decode()
    assert out.splitlines()[-1].startswith("signature: good (key ")
    target = copy(disk["other"], tmp_path / "target.img")
    before = sha256(target)
    wrong = tmp_path / "wrong"
    wrong.write_text("another pass phrase\n")
    check(rdeploy("restore", image, target, "--yes", "-q",
                  f"--require-signature={key}.pub",
                  f"--passphrase-file={wrong}"), 12)
    assert sha256(target) == before
    ok(rdeploy("restore", image, target, "--yes", "-q",
               f"--require-signature={key}.pub", f"--passphrase-file={pw}"))
    assert sha256(target) == sha256(disk["source"])
    other = tmp_path / "other.key"              # another key: refused
    ok(rdeploy("keygen", other, "-q"))
    check(rdeploy("verify", image, f"--pubkey={other}.pub",
                  f"--passphrase-file={pw}"), 11, "not trusted")
