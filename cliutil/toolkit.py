"""Where the frozen toolkit is: the multi-call binary (dist/deploytool)
that boot media carry (bootdisk --toolkit) and that a self-restoring image
is built on (imgx sfx --toolkit)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_toolkit():
    """The frozen multi-call binary: this one when frozen, else the source
    tree's dist/deploytool from `make freeze`."""
    if getattr(sys, "frozen", False):
        return sys.executable
    return os.path.join(ROOT, "dist", "deploytool")
