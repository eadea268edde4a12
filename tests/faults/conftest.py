"""What the fault tests share: the small disk (tests/conftest.py) and its
image, and the marks of the NBD layers."""

import pytest

from tests.needs import NBD_TOOLS

#: A test over an nbdkit + nbdfuse layer (tests/faultlayers.py).
nbd = pytest.mark.needs(*NBD_TOOLS, "sfdisk", "mkfs.ext4", root=True,
                        fuse=True)
