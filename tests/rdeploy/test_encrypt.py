"""rdeploy capture --encrypt and the readers given the passphrase: round
trips of the GPT demo (ext4, FAT32, NTFS) through a file, a pipe and split
volumes, checked by each filesystem's fsck and every file's SHA-256; imgx
browsing with the passphrase; what is refused (wrong passphrase, swapped
chunks, a truncated stream, a flipped byte), each with its own message and
exit code, and nothing written where it can be known before writing."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

import demodisk
from tests.image.test_encrypted import records, refix
from tests.rdeploy_helpers import ROOT, check, command, env, rdeploy
from diskimage.image import format as fmt

pytestmark = pytest.mark.needs("sfdisk", "mkfs.ext4", "mkfs.fat", "mcopy",
                               "mkntfs", "ntfs-3g", root=True, fuse=True)

SECRET = b"a long pass phrase"


def imgx(*args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "imgx", *map(str, args)],
                          env=env(), cwd=ROOT, stdin=stdin,
                          capture_output=True, timeout=60)


def ok(result):
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def pw(tmp_path_factory):
    d = tmp_path_factory.mktemp("pw")
    (d / "pw").write_bytes(SECRET + b"\n")
    (d / "wrong").write_bytes(b"another pass phrase\n")
    return {"file": f"--passphrase-file={d / 'pw'}",
            "wrong": f"--passphrase-file={d / 'wrong'}"}


@pytest.fixture(scope="module")
def encrypted(gpt_demo_ro, tmp_path_factory, pw):
    """The demo captured with --encrypt: (image, manifest); read-only."""
    disk, manifest = gpt_demo_ro
    image = tmp_path_factory.mktemp("enc") / "demo.rdi"
    ok(rdeploy("capture", disk, image, "--encrypt", pw["file"],
               "--description=the secret lab", "-q"))
    os.chmod(image, 0o444)
    return image, manifest


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def test_file_round_trip(encrypted, pw, tmp_path):
    image, manifest = encrypted
    ok(rdeploy("verify", image, pw["file"]))
    target = tmp_path / "copy.img"
    ok(rdeploy("restore", image, target, "--yes", "--verify", pw["file"]))
    assert demodisk.check_disk(target, manifest) == []
    info = json.loads(ok(rdeploy("info", image, pw["file"], "--json"))
                      .stdout)
    assert info["encrypted"] and info["description"] == "the secret lab"


def test_pipe_round_trip_with_the_passphrase_in_a_variable(gpt_demo_ro,
                                                           tmp_path):
    disk, manifest = gpt_demo_ro
    target = tmp_path / "copy.img"
    e = dict(env(), RDI_PW=SECRET.decode())
    producer = subprocess.Popen(
        command("capture", disk, "-", "--encrypt", "--passphrase-env=RDI_PW",
                "-q"), env=e, cwd=ROOT, stdout=subprocess.PIPE)
    consumer = subprocess.run(
        command("restore", "-", target, "--yes", "-q",
                "--passphrase-env=RDI_PW"), env=e, cwd=ROOT,
        stdin=producer.stdout, capture_output=True, timeout=120)
    producer.stdout.close()
    assert producer.wait() == 0
    assert consumer.returncode == 0, consumer.stderr.decode()
    assert demodisk.check_disk(target, manifest) == []


def test_split_volumes(gpt_demo_ro, pw, tmp_path):
    disk, manifest = gpt_demo_ro
    image = tmp_path / "split.rdi"
    ok(rdeploy("capture", disk, image, "--encrypt", pw["file"],
               "--split=1M", "-q"))
    assert len(list(tmp_path.glob("split.r0*"))) >= 3
    ok(rdeploy("verify", image, pw["file"]))
    target = tmp_path / "copy.img"
    ok(rdeploy("restore", image, target, "--yes", pw["file"]))
    assert demodisk.check_disk(target, manifest) == []


def test_imgx_browses_with_the_passphrase(encrypted, pw, tmp_path):
    image, manifest = encrypted
    part = next(n for n, p in manifest["partitions"].items()
                if p["fs"] == "ext4")
    name, digest = next(iter(manifest["partitions"][part]["files"].items()))
    listing = ok(imgx("ls", f"{image}:{part}/", pw["file"])).stdout.decode()
    assert name.split("/")[0] in listing.splitlines()
    data = ok(imgx("cat", f"{image}:{part}/{name}", pw["file"])).stdout
    assert hashlib.sha256(data).hexdigest() == digest
    check_imgx(imgx("ls", f"{image}:{part}/", pw["wrong"]), 12,
               "wrong passphrase")
    check_imgx(imgx("rm", f"{image}:{part}/{name}"), 7, "is encrypted",
               "does not write encrypted images")


def check_imgx(result, code, *words):
    assert result.returncode == code, result.stderr.decode()
    line = result.stderr.decode().strip()
    for word in words:
        assert word in line, line


SEALED_KEYS = ("image", "encrypted", "volumes", "image_bytes",
               "format_version", "chunk_size", "cipher", "kdf", "root",
               "root_strong")


def test_info_without_the_passphrase_tells_only_what_is_plain(encrypted,
                                                              pw):
    image, _ = encrypted
    info = json.loads(ok(rdeploy("info", image, "--json")).stdout)
    assert info["format_version"] == "1.1" and info["encrypted"] is True
    assert set(info) == set(SEALED_KEYS)
    assert info["kdf"] == "scrypt n=131072 r=8 p=1"
    text = ok(rdeploy("info", image)).stdout.decode()
    assert "encrypted:    aes-256-gcm" in text
    assert f"root digest:  sha256:{info['root']}" in text
    signed = json.loads(ok(rdeploy("info", image, pw["file"], "--json"))
                        .stdout)
    assert signed["root"] == info["root"]     # one name, with or without
    raw = image.read_bytes()
    for secret in (b"the secret lab", b"ext4", b"ntfs", b"gpt-demo",
                   b"lost+found"):
        assert secret not in raw and secret.decode() not in text


def exists_unchanged(target):
    """A 256 MiB target with bytes of its own; its digest."""
    with open(target, "wb") as f:
        f.truncate(256 << 20)
        f.write(b"target's own first bytes" * 100)
    return sha256(target)


def test_a_wrong_passphrase_writes_nothing(encrypted, pw, tmp_path):
    image, _ = encrypted
    target = tmp_path / "t.img"
    before = exists_unchanged(target)
    check(rdeploy("restore", image, target, "--yes", pw["wrong"]), 12,
          f"{image}: wrong passphrase")
    with open(image, "rb") as f:
        check(rdeploy("restore", "-", target, "--yes", pw["wrong"],
                      stdin=f), 12, "<stdin>: wrong passphrase")
    check(rdeploy("verify", image, pw["wrong"]), 12, "wrong passphrase")
    check(rdeploy("restore", image, target, "--yes"), 12,
          "--passphrase-file=F or --passphrase-env=VAR")
    assert sha256(target) == before
    missing = tmp_path / "new.img"
    check(rdeploy("restore", image, missing, "--yes", pw["wrong"]), 12)
    assert not missing.exists()


def tampered(image, tmp_path, how):
    raw = image.read_bytes()
    recs = [(at, f) for at, f in records(raw) if f["tag"] == fmt.TAG_DATA]
    size = fmt.RECORD_HEADER.size
    if how == "payloads":
        # two chunks of one size, payloads exchanged: the CRCs stay right,
        # only the seal (bound to the disk offset) can tell
        by_size = {}
        for at, f in recs:
            by_size.setdefault(f["stored_size"], []).append((at, f))
        (a, fa), (b, fb) = next(v for v in by_size.values() if len(v) > 1)[:2]
        n = fa["stored_size"]
        pa, pb = raw[a + size:a + size + n], raw[b + size:b + size + n]
        raw = raw[:a + size] + pb + raw[a + size + n:b + size] + pa + \
            raw[b + size + n:]
        raw = refix(refix(raw, a, stored_crc32=fmt.stored_crc(pb)), b,
                    stored_crc32=fmt.stored_crc(pa))
    elif how == "records":
        (a, fa), (b, fb) = recs[0], recs[1]
        one, two = raw[a:b], raw[b:b + size + fb["stored_size"]]
        raw = raw[:a] + two + one + raw[b + len(two):]
    elif how == "truncated":
        raw = raw[:len(raw) * 2 // 3]
    elif how == "flipped":
        at, f = recs[len(recs) // 2]
        where = at + size + f["stored_size"] // 2
        raw = raw[:where] + bytes([raw[where] ^ 0x40]) + raw[where + 1:]
        payload = raw[at + size:at + size + f["stored_size"]]
        raw = refix(raw, at, stored_crc32=fmt.stored_crc(payload))
    path = tmp_path / f"{how}.rdi"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("how, words", [
    ("payloads", "fails authentication (altered, moved or from another "
                 "image)"),
    ("records", "index does not match the chunks read"),
    ("truncated", "image ends early"),
    ("flipped", "fails authentication (altered, moved or from another "
                "image)"),
])
def test_tampering_is_refused_with_its_own_message(encrypted, pw, tmp_path,
                                                   how, words):
    image = tampered(encrypted[0], tmp_path, how)
    check(rdeploy("verify", image, pw["file"]), 4, words)
    # from a pipe, found as it is read: onto a disk that existed, the
    # restore has begun (exit 8, the target says it is not usable); a
    # target file it created is removed (exit 4)
    target = tmp_path / "t.img"
    exists_unchanged(target)
    with open(image, "rb") as f:
        line = check(rdeploy("restore", "-", target, "--yes", pw["file"],
                             stdin=f), 8, words)
    assert "no valid partition table" in line, line
    created = tmp_path / "new.img"
    with open(image, "rb") as f:
        check(rdeploy("restore", "-", created, "--yes", pw["file"],
                      stdin=f), 4, words)
    assert not created.exists()


def test_a_hostile_kdf_is_refused_before_the_passphrase_is_asked(
        encrypted, tmp_path):
    """An envelope asking scrypt for 2 GiB (META record made whole again):
    exit 7 from a pipe, with no passphrase option and no terminal (which
    would be exit 2 if it were asked)."""
    raw = encrypted[0].read_bytes()
    at, fields = records(raw)[0]
    size = fmt.RECORD_HEADER.size
    outer = json.loads(raw[at + size:at + size + fields["stored_size"]])
    outer["encryption"]["kdf"]["n"] = 2 ** 21
    payload = json.dumps(outer).encode()
    record = fmt.pack_payload_record(fmt.TAG_META, payload)
    path = tmp_path / "hostile.rdi"
    path.write_bytes(raw[:at] + record +
                     raw[at + size + fields["stored_size"]:])
    with open(path, "rb") as f:
        check(rdeploy("restore", "-", tmp_path / "t.img", "--yes", stdin=f),
              7, "asks scrypt for 2147483648 bytes of memory")
    assert not (tmp_path / "t.img").exists()
