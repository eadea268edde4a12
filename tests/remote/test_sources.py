"""The servers an image is read from besides a plain one: https with a CA
the test makes (cryptography's x509), an S3-compatible store (moto's
server mode) through a presigned GET URL, and `pxeconf serve`."""

import datetime
import ipaddress
import logging
import shutil
import ssl

import pytest

from tests.rangeserver import RangeServer
from tests.rdeploy_helpers import check, rdeploy
from tests.remote.conftest import HOSTNAME, TOOLS, check_disk
from tests.remote.test_http import imgx
from tests.servehelpers import Serve, free_port, make_site

pytestmark = pytest.mark.needs(*TOOLS)


def _pem(cert):
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it: (CA PEM
    path, server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    week = datetime.timedelta(days=7)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("rdeploy test CA"))
          .issuer_name(name("rdeploy test CA"))
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - week).not_valid_after(now + week)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - week).not_valid_after(now + week)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(_pem(ca))
    chain = directory / "server.pem"
    chain.write_bytes(_pem(cert) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_path, context


def test_https_is_verified_against_the_system_cas_or_the_ca_file(
        remote_ro, tmp_path):
    ca, context = make_ca(tmp_path)
    with RangeServer(remote_ro["dir"], tls=context) as server:
        url = server.url("lab.rdi")
        assert url.startswith("https://")
        check(rdeploy("info", url), 15, "TLS certificate not trusted",
              "--ca-file")
        result = rdeploy("verify", url, f"--ca-file={ca}")
        assert result.returncode == 0, result.stderr.decode()
        result = imgx("cat", url + ":2/etc/hostname", f"--ca-file={ca}")
        assert result.stdout == HOSTNAME, result.stderr.decode()
        (tmp_path / "other").mkdir()
        other, _ = make_ca(tmp_path / "other")
        check(rdeploy("info", url, f"--ca-file={other}"), 15,
              "not trusted", str(other))
    check(rdeploy("info", remote_ro["image"], f"--ca-file={ca}"), 2,
          "--ca-file goes with an https:// IMAGE")


@pytest.fixture
def moto_s3():
    moto = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto.ThreadedMotoServer(ip_address="127.0.0.1",
                                     port=free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._port}"
    finally:
        server.stop()


def test_restore_and_verify_from_s3_through_a_presigned_url(
        remote_ro, tmp_path, moto_s3):
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1",
                      aws_access_key_id="testing",
                      aws_secret_access_key="testing",
                      config=Config(s3={"addressing_style": "path"},
                                    signature_version="s3v4"))
    s3.create_bucket(Bucket="lab")
    s3.upload_file(str(remote_ro["image"]), "lab", "images/lab.rdi")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "lab", "Key": "images/lab.rdi"},
        ExpiresIn=600)
    assert "X-Amz-Signature=" in url
    signature = url.split("X-Amz-Signature=")[1].split("&")[0]
    target = tmp_path / "target.img"
    result = rdeploy("restore", url, target, "--yes")
    assert result.returncode == 0, result.stderr.decode()
    assert signature not in result.stderr.decode()
    check_disk(target, remote_ro["manifest"], tmp_path)
    result = rdeploy("verify", url)
    assert result.returncode == 0, result.stderr.decode()
    assert signature not in result.stdout.decode()
    # (moto's server does not check signatures: a refused presigned URL
    # is test_http.py's, from a server that answers 403)


def test_pxeconf_serve_is_a_source(remote_ro, tmp_path):
    site = make_site(tmp_path / "site")
    images = tmp_path / "site" / "boot" / "images"
    images.mkdir()
    shutil.copy(remote_ro["image"], images / "lab.rdi")
    server = Serve(site)
    try:
        server.ready()
        url = server.url + "images/lab.rdi"
        result = rdeploy("verify", url)     # streamed, as restore reads
        assert result.returncode == 0, result.stderr.decode()
        result = imgx("cat", url + ":2/etc/hostname")      # Range requests
        assert result.stdout == HOSTNAME, result.stderr.decode()
    finally:
        server.close()
