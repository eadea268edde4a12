"""The import rules of the source tree, read from the sources (ast), so a
command that reaches into another one fails here before it ships:

- no command package imports another command package, nor the multi-call
  entry (deploytool) that bundles them;
- the library (diskimage/) imports no command, no deploytool, no cliutil,
  not the demo-disk builder, and not tqdm or docopt (it raises, takes
  progress callbacks and never prints);
- cliutil/ (what the commands share) imports no command and not deploytool;
- bench/ and the demo-disk builder reach the commands only by running them.

Dynamic imports count too: a string constant that names a command module
("rdeploy.cli", as importlib.import_module takes it) is an import.
"""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("rdeploy", "imgx", "bootdisk", "pxeconf", "bwpart")
_MODULE = re.compile(r"^(%s)(\.\w+)+$" % "|".join(COMMANDS))

#: package -> what of the project (and tqdm/docopt) it must not import
FORBIDDEN = {
    "diskimage": set(COMMANDS) | {"deploytool", "cliutil", "demodisk",
                                  "bench", "tests", "tqdm", "docopt"},
    "cliutil": set(COMMANDS) | {"deploytool", "demodisk", "bench", "tests"},
    "demodisk": set(COMMANDS) | {"deploytool", "cliutil", "bench", "tests"},
    "bench": set(COMMANDS) | {"deploytool", "cliutil"},
}
for _name in COMMANDS:
    # The demo (rdeploy demo) builds its disk with demodisk, which is not
    # library code: a command may use it, the library may not.
    FORBIDDEN[_name] = (set(COMMANDS) - {_name}) | {"deploytool", "bench",
                                                    "tests"}


def _sources(package):
    top = os.path.join(ROOT, package)
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(base, name)


def _is_module(name):
    """Whether the dotted `name` is a module of the tree ("rdeploy.cli"),
    not a file name that looks like one ("bootdisk.md")."""
    path = os.path.join(ROOT, *name.split("."))
    return os.path.isfile(path + ".py") or os.path.isdir(path)


def imports(path, package):
    """[(line, top-level name)] of what the module at `path` imports:
    import statements (a relative one stays in `package`), and string
    constants naming a command's module."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            top = package if node.level else (node.module or "").split(".")[0]
            found.append((node.lineno, top))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE.match(node.value) and _is_module(node.value):
            found.append((node.lineno, node.value.split(".")[0]))
    return sorted(found)


def violations(package):
    bad = []
    for path in _sources(package):
        rel = os.path.relpath(path, ROOT)
        for line, name in imports(path, package):
            if name in FORBIDDEN[package] and name != package:
                bad.append(f"{rel}:{line}: imports {name}")
    return bad


# The rules name packages still to come (pxeconf, bwpart): each is checked
# from the day it exists.
@pytest.mark.parametrize("package", sorted(
    p for p in FORBIDDEN if os.path.isdir(os.path.join(ROOT, p))))
def test_package_imports_only_what_it_may(package):
    assert violations(package) == []


def test_the_checker_sees_imports_of_each_kind(tmp_path):
    """The rules are only as good as the reader: it sees plain, from,
    relative and string (importlib) imports."""
    source = tmp_path / "m.py"
    source.write_text("import rdeploy.cli\nfrom imgx import edit\n"
                      "from . import sibling\nimport importlib\n"
                      "importlib.import_module('bootdisk.cli')\n"
                      "'''docs naming rdeploy.cli in a sentence'''\n"
                      "DOC = 'bootdisk.md'\n")
    assert imports(str(source), "cliutil") == [
        (1, "rdeploy"), (2, "imgx"), (3, "cliutil"), (4, "importlib"),
        (5, "bootdisk")]
