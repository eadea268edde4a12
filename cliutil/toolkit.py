"""The frozen toolkit (the multi-call binary ``deploytool``) that boot
media (bootdisk --toolkit) and self-restoring images (imgx sfx --toolkit)
carry: where it is found.  Found, in this order: this program when it is
the frozen binary; the source tree's ``dist/deploytool`` (``make freeze``).
"""

import os
import sys

NAME = "deploytool"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_tree_build():
    """dist/deploytool of the source tree this runs from (`make freeze`);
    in an installed toolkit there is none."""
    return os.path.join(_ROOT, "dist", NAME)


def find():
    """The frozen toolkit to use, or None when there is none yet."""
    if getattr(sys, "frozen", False):
        return sys.executable
    path = source_tree_build()
    return path if os.path.isfile(path) else None
