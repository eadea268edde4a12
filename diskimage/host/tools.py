"""Running the field's own tools (mkfs, fsck, sfdisk ...) from the library,
also from the frozen binary on boot media."""

import os
import sys

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool_env(extra=None):
    """The environment for a child tool: this one, with the sbin
    directories on PATH (an `env -i` start has no PATH at all), and in a
    frozen binary the library path PyInstaller replaced put back, so system
    tools load the system's libraries rather than the bundled ones."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    missing = [d for d in SYSTEM_PATH.split(":") if d not in path.split(":")]
    env["PATH"] = ":".join(filter(None, [path] + missing))
    if getattr(sys, "frozen", False):
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
    env.update(extra or {})
    return env
