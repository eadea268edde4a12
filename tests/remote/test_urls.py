"""The pure parts of images over HTTP: what is a URL, how one is shown
(never with its credentials), the URLs of a split image's volumes, and
IMGPATH's split of a URL with a port."""

import pytest

from diskimage.errors import NetworkError, UsageError
from diskimage.image.browse import split_path
from diskimage.remote import is_url
from diskimage.remote.httpinput import HttpInput
from diskimage.remote.urls import endpoint, shown, volume_url
from tests.servehelpers import free_port


def test_is_url_takes_http_and_https_in_any_case():
    assert is_url("http://h/lab.rdi") and is_url("HTTPS://h/lab.rdi")
    assert not is_url("lab.rdi") and not is_url("-")
    assert not is_url("/srv/a:b/lab.rdi") and not is_url("c:/x.rdi")
    with pytest.raises(UsageError, match="^ftp://h/lab.rdi: ftp:// is not a source.*http"):
        is_url("ftp://h/lab.rdi")


def test_a_url_is_shown_without_user_password_and_query():
    url = ("https://alice:pw@s3.lab:9000/b/lab.rdi?X-Amz-Credential=AKIA"
           "&X-Amz-Signature=f00d#frag")
    assert shown(url) == "https://s3.lab:9000/b/lab.rdi?..."
    assert shown("http://[fe80::1]:8080/x.rdi") == "http://[fe80::1]:8080/x.rdi"
    key, target, headers = endpoint(url)
    assert key == ("https", "s3.lab", 9000)
    assert target == "/b/lab.rdi?X-Amz-Credential=AKIA&X-Amz-Signature=f00d"
    assert headers == {"Authorization": "Basic YWxpY2U6cHc="}
    assert endpoint("http://h/")[0] == ("http", "h", 80)
    with pytest.raises(UsageError, match="port"):
        shown("http://h:99999/x.rdi")


def test_volume_urls_as_files_and_none_behind_a_query():
    assert volume_url("http://h/img/lab.rdi", 0) == "http://h/img/lab.rdi"
    assert volume_url("http://h/img/lab.rdi", 1) == "http://h/img/lab.r01"
    assert volume_url("http://h/img/lab", 12) == "http://h/img/lab.r12"
    assert volume_url("http://h/lab.rdi?sig=1", 1) is None


@pytest.mark.parametrize("text, expected", [
    ("http://h:8080/lab.rdi:2/etc/hostname",
     ("http://h:8080/lab.rdi", 2, "etc/hostname")),
    ("http://h/lab.rdi:/etc", ("http://h/lab.rdi", None, "etc")),
    ("https://h:443/b/lab.rdi?X-Amz-Signature=ab:3",
     ("https://h:443/b/lab.rdi?X-Amz-Signature=ab", 3, "")),
    # a query written after the partition path is the URL's
    ("http://h/lab.rdi:1/?X-Amz-Signature=ab",
     ("http://h/lab.rdi?X-Amz-Signature=ab", 1, "")),
    ("http://h/lab.rdi:2/etc/hostname?sig=ab&x=1",
     ("http://h/lab.rdi?sig=ab&x=1", 2, "etc/hostname")),
])
def test_imgpath_splits_after_a_url_with_its_port(text, expected):
    assert split_path(text) == expected


def test_an_imgpath_without_a_partition_is_refused_not_split_at_the_port():
    with pytest.raises(UsageError, match="expected IMAGE:N/path") as caught:
        split_path("http://h:8080/lab.rdi?X-Amz-Signature=secret")
    assert "secret" not in str(caught.value)


def test_a_refused_connection_is_one_line_after_the_tries():
    url = f"http://127.0.0.1:{free_port()}/lab.rdi?sig=secret"
    with pytest.raises(NetworkError) as caught:
        HttpInput(url, tries=2, backoff=0.01)
    text = str(caught.value)
    assert text.startswith(url.split("?")[0] + "?...: could not be read at "
                           "byte 0 after 2 tries (last: connection refused)")
    assert "secret" not in text


def test_the_restore_marker_names_a_url_without_its_credentials():
    from rdeploy.targetcmds import image_name
    assert image_name("https://u:p@s3/b/lab.rdi?X-Amz-Signature=f00d") == \
        "https://s3/b/lab.rdi?..."
    assert image_name("-") == "-"
    assert image_name("lab.rdi").endswith("/lab.rdi")


def test_a_wrong_host_fails_at_once_and_other_schemes_are_shown_whole():
    """A name that does not resolve (.invalid never does, RFC 6761) is
    not retried: one line at once, not half a minute of silence."""
    import time
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        HttpInput("http://nosuch.invalid/lab.rdi?sig=secret", tries=6,
                  backoff=1.0)
    assert time.monotonic() - started < 5
    assert str(caught.value).startswith(
        "http://nosuch.invalid/lab.rdi?...: host not found")
    with pytest.raises(UsageError) as caught:
        is_url("ftp://user:pw@files.lab/img/lab.rdi?sig=secret")
    assert str(caught.value).startswith(
        "ftp://files.lab/img/lab.rdi: ftp:// is not a source this tool "
        "reads")
    assert "secret" not in str(caught.value) and "pw" not in \
        str(caught.value)


def test_each_retry_is_told_before_its_wait():
    url = f"http://127.0.0.1:{free_port()}/lab.rdi"
    told = []
    with pytest.raises(NetworkError):
        HttpInput(url, tries=3, backoff=0.01, on_retry=told.append)
    assert told == [
        f"{url}: connection refused at byte 0; retrying in 0.01 s (try 2 "
        f"of 3)",
        f"{url}: connection refused at byte 0; retrying in 0.02 s (try 3 "
        f"of 3)"]
