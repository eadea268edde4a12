"""Build backend: setuptools, with its scratch files outside the source tree.

pyproject.toml names this module (`backend-path = ["build"]`), so `pip
install .`, `pip install -e .`, `pip wheel .` and `python -m build` all come
through here.  Plain setuptools builds in `build/lib` and `build/bdist.*` and
writes `<name>.egg-info` beside setup.cfg, and never cleans them: the
project's `build/` folder (the freeze recipe) fills with copies of the
sources, and a module deleted from the source tree stays in `build/lib` and
is installed again by every later wheel.

Each hook here runs setuptools' own hook with `build_base` and `egg_base` in
a fresh temporary directory, handed to setuptools as an extra configuration
file through DIST_EXTRA_CONFIG (setuptools >= 65.5, the variable made for
overriding setup.cfg during a build).  A DIST_EXTRA_CONFIG that the caller
set already is kept: its options are copied into ours, and only those two
are set over it.  Everything else is setuptools.build_meta unchanged.
"""

import configparser
import contextlib
import os
import tempfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the other hooks)


@contextlib.contextmanager
def _scratch_outside_the_tree():
    with tempfile.TemporaryDirectory(prefix="rdeploy-toolkit-build-") as tmp:
        base = os.path.join(tmp, "build")
        config = os.path.join(tmp, "extra.cfg")
        caller = os.environ.get("DIST_EXTRA_CONFIG")
        extra = configparser.ConfigParser(interpolation=None)
        extra.optionxform = str     # option names as written
        if caller:
            extra.read(caller, encoding="utf-8")
        for section, option, value in (("build", "build_base", base),
                                       ("egg_info", "egg_base", tmp)):
            if not extra.has_section(section):
                extra.add_section(section)
            extra.set(section, option, value)
        with open(config, "w", encoding="utf-8") as f:
            extra.write(f)
        os.environ["DIST_EXTRA_CONFIG"] = config
        try:
            yield
        finally:
            if caller is None:
                del os.environ["DIST_EXTRA_CONFIG"]
            else:
                os.environ["DIST_EXTRA_CONFIG"] = caller


def _outside_the_tree(hook):
    def run(*args, **kwargs):
        with _scratch_outside_the_tree():
            return hook(*args, **kwargs)
    run.__name__ = hook.__name__
    run.__doc__ = hook.__doc__
    return run


build_wheel = _outside_the_tree(_setuptools.build_wheel)
build_sdist = _outside_the_tree(_setuptools.build_sdist)
build_editable = _outside_the_tree(_setuptools.build_editable)
get_requires_for_build_wheel = _outside_the_tree(_setuptools.get_requires_for_build_wheel)
get_requires_for_build_sdist = _outside_the_tree(_setuptools.get_requires_for_build_sdist)
get_requires_for_build_editable = _outside_the_tree(
    _setuptools.get_requires_for_build_editable)
prepare_metadata_for_build_wheel = _outside_the_tree(
    _setuptools.prepare_metadata_for_build_wheel)
prepare_metadata_for_build_editable = _outside_the_tree(
    _setuptools.prepare_metadata_for_build_editable)
