"""The `needs` marker (tests/needs.py, tests/conftest.py): a test whose tool
is missing is skipped with a line naming the tool and its Debian package,
before any of its fixtures is built; a test whose tools are here runs."""

import pytest

from tests import needs

pytest_plugins = ["pytester"]


def test_missing_names_the_tool_and_its_package(monkeypatch, tmp_path):
    monkeypatch.setattr(needs, "SEARCH", str(tmp_path))     # an empty PATH
    reason = needs.missing("mkfs.ext4", "partclone.ntfs", "no-such-tool")
    assert reason.startswith("needs mkfs.ext4 (Debian package e2fsprogs), "
                             "partclone.ntfs (Debian package partclone), "
                             "no-such-tool"), reason
    assert "make deps" in reason


def test_nothing_missing_is_none():
    assert needs.missing("sh") is None


def test_the_marker_skips_before_the_fixtures_are_built(pytester):
    pytester.makeconftest(
        "from tests.conftest import pytest_runtest_setup  # noqa: F401\n")
    pytester.makeini("[pytest]\naddopts = --strict-markers\n"
                     "markers =\n    needs: see tests/needs.py\n")
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.fixture(scope="module")
        def expensive():
            raise AssertionError("built although the test is skipped")

        @pytest.mark.needs("no-such-tool-h4", "sh")
        def test_skipped(expensive):
            pass

        @pytest.mark.needs("sh")
        def test_runs():
            pass
        """)
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*needs no-such-tool-h4 (make deps*"])


def test_no_test_module_has_its_own_skip_logic():
    """Skip logic lives in the marker alone: a skipif (or a which/geteuid
    check that skips) in a test module is the repetition issue 12 removed."""
    import os
    import re
    root = os.path.dirname(os.path.abspath(__file__))
    found = []
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(base, name)
            if not name.endswith(".py") or name == "test_needs.py":
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if re.search(r"mark\.skipif\(", line):
                        found.append(f"{os.path.relpath(path, root)}:{number}")
    assert found == []
