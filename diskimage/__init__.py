"""Shared library of the disk-deployment toolkit: the .rdi image format,
partition tables, device access and the capture/restore pipelines.

The library raises (see :mod:`diskimage.errors`) and never prints; commands
render progress through callbacks.
"""

__version__ = "0.1.0"
