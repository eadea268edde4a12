"""Signed images (rdeploy keygen, sign, verify --pubkey, restore
--require-signature and the trusted keys of boot media): a signed image
verifies and restores; one changed byte anywhere (header, META, a chunk,
the index, the trailer, the .sig), another key, no signature or a pipe is
refused before any write, the target's sha256 unchanged."""

import json
import os
import struct
import subprocess

import pytest

from diskimage.errors import SignatureError
from diskimage.image.reader import ImageReader, RecordStream
from diskimage.image.volumes import VolumeInput
from diskimage.trust import keys as keyfiles, policy

from tests.rdeploy_helpers import check, rdeploy
from tests.shared import copy
from tests.smalldisk import sha256


@pytest.fixture(scope="module")
def signed(disk, tmp_path_factory):
    """A copy of the small image, signed; the key pair; another key pair."""
    d = tmp_path_factory.mktemp("signed")
    image = copy(disk["image"], d / "disk.rdi")
    for name in ("release.key", "other.key"):
        result = rdeploy("keygen", d / name, f"--comment={name} owner", "-q")
        assert result.returncode == 0, result.stderr.decode()
    result = rdeploy("sign", image, f"--key={d / 'release.key'}", "-q")
    assert result.returncode == 0, result.stderr.decode()
    return {"dir": d, "image": image, "pub": d / "release.key.pub",
            "other": d / "other.key.pub", "source": disk["source"],
            "target": disk["other"]}


@pytest.fixture
def target(signed, tmp_path):
    path = copy(signed["target"], tmp_path / "target.img")
    return path, sha256(path)


@pytest.fixture(autouse=True)
def _no_installed_keys(monkeypatch, tmp_path):
    """Tests see only the trusted keys they install themselves."""
    monkeypatch.setenv(policy.ENV, str(tmp_path / "no-trusted-keys"))


def restore(image, target, *options):
    return rdeploy("restore", image, target, "--yes", "-q", *options)


def test_signed_image_verifies_and_restores(signed, target):
    result = rdeploy("verify", signed["image"], f"--pubkey={signed['pub']}")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().splitlines()
    key = keyfiles.load_public(signed["pub"])
    assert out[-1] == f"signature: good (key {key.key_id} release.key owner)"
    sig = json.loads((signed["dir"] / "disk.rdi.sig").read_text())
    assert sig["root"] in out[0] and sig["key_id"] == key.key_id
    result = restore(signed["image"], target[0],
                     f"--require-signature={signed['pub']}")
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(target[0]) == sha256(signed["source"])


def _regions(image):
    """One byte in the middle of each part of the image: name -> offset."""
    size = os.path.getsize(image)
    with open(image, "rb") as f:
        f.seek(size - 64)
        index_offset = struct.unpack("<8sQ", f.read(16))[1]
    with ImageReader(str(image)) as reader:
        first = reader.entries[0].record_offset
        data = next(e for e in reader.entries if not e.is_zero)
    return {"header": 20, "META": (64 + first) // 2,
            "chunk": data.record_offset + data.stored_size // 2 + 40,
            "index": (index_offset + size - 64) // 2,
            "trailer": size - 40}


@pytest.mark.parametrize("part", ["header", "META", "chunk", "index",
                                  "trailer", "sig", "sig-root",
                                  "sig-key_id"])
def test_one_changed_byte_is_refused_before_any_write(signed, target,
                                                      tmp_path, part):
    image = copy(signed["image"], tmp_path / "disk.rdi")
    sig = tmp_path / "disk.rdi.sig"
    sig.write_bytes((signed["dir"] / "disk.rdi.sig").read_bytes())
    if part.startswith("sig"):
        text = sig.read_text()
        field = "signature" if part == "sig" else part[4:]
        value = json.loads(text)[field]
        at = text.index(value) + len(value) // 2
        path, offset = sig, at
        new = b"A" if text[at] != "A" else b"B"
        if part != "sig":       # stays hex
            new = b"0" if text[at] != "0" else b"1"
    else:
        path, offset = image, _regions(image)[part]
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        if not part.startswith("sig"):
            new = bytes([old[0] ^ 0xFF])
        f.seek(offset)
        f.write(new)
    result = restore(image, target[0], f"--require-signature={signed['pub']}")
    assert result.returncode in (4, 11), result.stderr.decode()
    assert sha256(target[0]) == target[1]
    code = 11 if part.startswith("sig") else 4
    assert result.returncode == code, result.stderr.decode()
    result = rdeploy("verify", image, f"--pubkey={signed['pub']}")
    assert result.returncode == code, result.stderr.decode()


def test_another_key_unsigned_and_pipe_are_refused(signed, target, tmp_path):
    check(restore(signed["image"], target[0],
                  f"--require-signature={signed['other']}"),
          11, "signed by key", "not trusted")
    check(rdeploy("verify", signed["image"], f"--pubkey={signed['other']}"),
          11, "not trusted")
    unsigned = copy(signed["image"], tmp_path / "unsigned.rdi")
    check(restore(unsigned, target[0], f"--require-signature={signed['pub']}"),
          11, "not signed")
    with open(signed["image"], "rb") as stdin:
        result = rdeploy("restore", "-", target[0], "--yes", "-q",
                         f"--require-signature={signed['pub']}", stdin=stdin)
    check(result, 11, "not a pipe")
    assert sha256(target[0]) == target[1]


def test_installed_keys_require_a_signature(signed, target, tmp_path,
                                            monkeypatch):
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    key = keyfiles.load_public(signed["pub"])
    (trusted / f"{key.key_id}.pub").write_text(key.line())
    monkeypatch.setenv(policy.ENV, str(trusted))
    unsigned = copy(signed["image"], tmp_path / "unsigned.rdi")
    check(restore(unsigned, target[0]), 11, "not signed")
    # a key of one's own does not widen what the environment trusts
    other = keyfiles.load_public(signed["other"])
    (tmp_path / "unsigned.rdi.sig").write_text("{}")
    check(restore(unsigned, target[0], f"--require-signature={signed['other']}"),
          11, other.key_id, "not trusted by this environment")
    assert sha256(target[0]) == target[1]
    result = restore(signed["image"], target[0])
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(target[0]) == sha256(signed["source"])
    # a damaged trusted directory refuses every restore
    (trusted / "junk.pub").write_text("not a key\n")
    check(restore(signed["image"], target[0]), 11, "no restore is allowed")


def test_keygen_refuses_to_overwrite(tmp_path):
    key = tmp_path / "k"
    assert rdeploy("keygen", key, "-q").returncode == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    before = key.read_bytes(), (tmp_path / "k.pub").read_bytes()
    check(rdeploy("keygen", key, "-q"), 3, "exists", "--force")
    (tmp_path / "k2.pub").write_text("mine\n")
    check(rdeploy("keygen", tmp_path / "k2", "-q"), 3, "k2.pub", "exists")
    assert not (tmp_path / "k2").exists()
    assert (key.read_bytes(), (tmp_path / "k.pub").read_bytes()) == before
    result = rdeploy("keygen", key, "--force", "-q")
    assert result.returncode == 0, result.stderr.decode()
    assert key.read_bytes() != before[0]
    assert (key.stat().st_mode & 0o777) == 0o600
    public = keyfiles.load_public(tmp_path / "k.pub")
    assert result.stdout.decode().strip() == public.key_id
    assert keyfiles.load_secret(key).public.raw == public.raw


def test_key_files_are_checked(tmp_path):
    secret = keyfiles.SecretKey.generate("c")
    (tmp_path / "s").write_text(secret.line())
    check(rdeploy("verify", tmp_path / "x.rdi", f"--pubkey={tmp_path / 's'}"),
          3, "secret key", ".pub")
    for text in ("rdeploy-ed25519 AAAA c\n", "rdeploy-ed25519\n", "",
                 "x" * 5000):
        (tmp_path / "p").write_text(text)
        with pytest.raises(Exception) as info:
            keyfiles.load_public(tmp_path / "p")
        assert info.value.exit_code == 3, info.value


def test_stream_must_match_the_checked_image(signed, tmp_path):
    """The restore's second read must see the file that was checked."""
    keys = [keyfiles.load_public(signed["pub"])]
    checked = policy.check_image(str(signed["image"]), keys, chunks=False)
    with VolumeInput(str(signed["image"])) as source:
        policy.check_stream(RecordStream(source), checked, "x")
    other = tmp_path / "other.rdi"      # the file replaced in between
    assert rdeploy("capture", signed["source"], other, "--description=new",
                   "-q").returncode == 0
    with VolumeInput(str(other)) as source:
        with pytest.raises(SignatureError, match="changed after"):
            policy.check_stream(RecordStream(source), checked, "x")


def test_format_10_image_is_refused_for_signing(signed, tmp_path):
    import gzip
    data = os.path.join(os.path.dirname(__file__), "..", "image", "data",
                        "v10-ext4.rdi.gz")
    with gzip.open(data) as f:
        (tmp_path / "v10.rdi").write_bytes(f.read())
    image = tmp_path / "v10.rdi"
    line = check(rdeploy("sign", image, f"--key={signed['dir'] / 'release.key'}"),
                 7, "format 1.0", "CRC-32", "imgx recompress before signing")
    assert f"{image} is format 1.0" in line
    assert not (tmp_path / "v10.rdi.sig").exists()
    # a signature made for it elsewhere is refused as well
    (tmp_path / "v10.rdi.sig").write_bytes(
        (signed["dir"] / "disk.rdi.sig").read_bytes())
    check(rdeploy("verify", image, f"--pubkey={signed['pub']}"),
          11, "format 1.0")
    target = tmp_path / "t.img"
    check(restore(image, target, f"--require-signature={signed['pub']}"),
          11, "format 1.0")
    assert not target.exists()


def test_split_image_with_signature_elsewhere(signed, disk, target, tmp_path):
    """A split image is signed through its first volume; --signature puts
    the signature where asked, and restore and verify read it there."""
    sig = tmp_path / "elsewhere.sig"
    key = f"--key={signed['dir'] / 'release.key'}"
    assert rdeploy("sign", disk["split"], key, f"--signature={sig}",
                   "-q").returncode == 0
    assert not os.path.exists(f"{disk['split']}.sig")
    result = rdeploy("verify", disk["split"], f"--pubkey={signed['pub']}",
                     f"--signature={sig}")
    assert result.returncode == 0, result.stderr.decode()
    assert "signature: good" in result.stdout.decode()
    check(restore(disk["split"], target[0],
                  f"--require-signature={signed['pub']}"), 11, "not signed")
    assert sha256(target[0]) == target[1]
    result = restore(disk["split"], target[0], f"--signature={sig}",
                     f"--require-signature={signed['pub']}")
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(target[0]) == sha256(disk["source"])
    check(rdeploy("verify", disk["split"], f"--signature={sig}"), 2,
          "--signature goes with --pubkey")


@pytest.mark.parametrize("change", [
    b"not json", b"[]", b'{"format": "other"}',
    {"version": 2}, {"algorithm": "rsa"}, {"key_id": "XYZ"},
    {"root": "00"}, {"signature": "!!"}, {"signature": "AAAA"},
    {"comment": 5}, b" " * (70 * 1024)])
def test_damaged_signature_files_are_refused(change):
    from diskimage.trust import signature as signatures
    secret = keyfiles.SecretKey.generate("c")
    good = signatures.make(bytes(32), secret)
    if isinstance(change, dict):
        data = signatures.encode(dict(good, **change))
    else:
        data = change
    with pytest.raises(SignatureError, match="not a usable rdeploy "
                                             "signature"):
        signatures.decode(data, "x.sig")
    sig = signatures.decode(signatures.encode(good), "x.sig")
    assert signatures.check(sig, bytes(32), [secret.public], "x") == \
        secret.public
    with pytest.raises(SignatureError, match="not for this image"):
        signatures.check(sig, bytes([1]) * 32, [secret.public], "x")


@pytest.mark.parametrize("field", ["comment", "signed_at", "key_id"])
def test_edited_notes_are_refused_before_any_write(signed, target, tmp_path,
                                                   field):
    """comment, signed_at and key_id are signed with the root: an edit of
    any of them, kept well formed, is a bad signature (exit 11)."""
    sig = json.loads((signed["dir"] / "disk.rdi.sig").read_text())
    other = keyfiles.load_public(signed["other"]).key_id
    sig[field] = {"comment": "release.key owner (approved)",
                  "signed_at": "2030-01-01T00:00:00Z",
                  "key_id": other}[field]
    edited = tmp_path / "edited.sig"
    edited.write_text(json.dumps(sig))
    both = (f"--pubkey={signed['pub']}", f"--pubkey={signed['other']}")
    check(rdeploy("verify", signed["image"], f"--signature={edited}", *both),
          11, "bad signature")
    if field != "key_id":      # restore trusts one key: another id is
        check(restore(signed["image"], target[0],      # refused earlier
                      f"--require-signature={signed['pub']}",
                      f"--signature={edited}"), 11, "bad signature")
    assert sha256(target[0]) == target[1]


@pytest.mark.needs("mount", root=True)
@pytest.mark.parametrize("inodes", [2, 3, 4, 5])
def test_keygen_writes_both_key_files_or_neither(tmp_path, inodes):
    """A tmpfs of `inodes` inodes (its root takes one; so does every file
    and every extra link(2)) fills up at each step of keygen in turn: 2,
    the public key's private file cannot be created; 3, the secret cannot
    take its name; 4, the public key cannot take its name after the secret
    took its own (which is removed again).  Neither file is left (exit 6).
    With 5 both appear."""
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size=64k,nr_inodes={inodes}", "tmpfs", str(where)],
                   check=True)
    try:
        result = rdeploy("keygen", where / "k", "-q")
        if inodes < 5:
            check(result, 6, "no space left", "no key written")
            assert os.listdir(where) == []
        else:
            assert result.returncode == 0, result.stderr.decode()
            assert sorted(os.listdir(where)) == ["k", "k.pub"]
            public = keyfiles.load_public(where / "k.pub")
            assert keyfiles.load_secret(where / "k").public.raw == public.raw
            assert (where / "k").stat().st_mode & 0o777 == 0o600
    finally:
        subprocess.run(["umount", str(where)], check=True)
