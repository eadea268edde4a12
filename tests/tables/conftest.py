"""Fixtures of the partition-table tests: a GPT and an MBR disk built once
per session (read only), copied per test."""

import os
import shutil

import pytest

from tests import needs
from tests.tables.table_tools import GPT_SCRIPT, MBR_SCRIPT, MIB, make_disk


@pytest.fixture(scope="session")
def session_images(tmp_path_factory):
    needs.require("sfdisk")
    d = tmp_path_factory.mktemp("images")
    images = {
        "gpt": make_disk(d / "gpt.img", 64 * MIB, GPT_SCRIPT),
        "mbr": make_disk(d / "mbr.img", 64 * MIB, MBR_SCRIPT),
    }
    for path in images.values():
        os.chmod(path, 0o444)
    return images


@pytest.fixture
def gpt_disk(session_images, tmp_path):
    path = tmp_path / "gpt.img"
    shutil.copyfile(session_images["gpt"], path)
    return path


@pytest.fixture
def mbr_disk(session_images, tmp_path):
    path = tmp_path / "mbr.img"
    shutil.copyfile(session_images["mbr"], path)
    return path
