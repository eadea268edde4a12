"""The console page as bytes: one document, nothing from outside, no markup
parsing of data, and a CSP whose hashes are those of its inline script and
style.  How it behaves is tested in a real browser in
tests/pxeconf/test_console.py."""

import base64
import hashlib
import re

from diskimage.netboot import console

PAGE = console.PAGE.decode()


def inline(tag):
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S)
    assert len(found) == 1, f"one <{tag}> in the page, found {len(found)}"
    return found[0]


def sha256(text):
    return "'sha256-" + base64.b64encode(
        hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_one_document():
    assert PAGE.startswith("<!DOCTYPE html>")
    assert PAGE.count("<html") == 1 and PAGE.rstrip().endswith("</html>")
    assert '<meta name="viewport"' in PAGE


def test_nothing_from_outside():
    """No address with a scheme or a host (//...), no src at all: the only
    link is the noscript one to /api/machines."""
    assert "://" not in PAGE
    assert not re.search(r"""["'(]//""", PAGE)
    assert not re.search(r"\bsrc\s*=", PAGE)
    assert re.findall(r'href="([^"]*)"', PAGE) == ["/api/machines"]
    assert "@import" not in PAGE and "url(" not in PAGE


def test_no_markup_from_data():
    script = inline("script")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML",
                 "document.write", "eval(", "new Function", "DOMParser",
                 "createContextualFragment", "srcdoc"):
        assert sink not in script, sink


def test_csp_hashes_are_the_page_s_own():
    policy = dict(part.strip().split(" ", 1)
                  for part in console.CSP.split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == sha256(inline("script"))
    assert policy["style-src"] == sha256(inline("style"))
    assert policy["connect-src"] == "'self'"
    assert "'unsafe-inline'" not in console.CSP
