"""Files that tests share for a whole session (tests/conftest.py): built
once, read-only, checked unchanged at the end; a test that writes works on
its own copy."""

import os
import subprocess
from pathlib import Path


def copy(source, target):
    """A writable copy of a shared file: shares blocks where the filesystem
    can, keeps holes."""
    subprocess.run(["cp", "--reflink=auto", "--sparse=always",
                    os.fspath(source), os.fspath(target)], check=True)
    os.chmod(target, 0o644)
    return Path(target)


class Shared:
    """Files built once per session: read-only, and checked at the end of
    the session to be as they were built."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.files = {}

    def seal(self, *paths):
        for path in paths:
            os.chmod(path, 0o444)
            st = os.stat(path)
            self.files[Path(path)] = (st.st_size, st.st_mtime_ns)
        return paths[0] if len(paths) == 1 else paths

    def changed(self):
        found = []
        for path, was in self.files.items():
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) != was:
                found.append(str(path))
        return found
