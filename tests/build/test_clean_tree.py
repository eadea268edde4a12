"""`pip install .`, what a user does, leaves the source tree as it found it
(build/backend.py): no build/lib or build/bdist.* in the folder of the
freeze recipe, no *.egg-info beside setup.cfg, not even ignored ones; and a
module deleted from the sources is not installed again from a stale
build/lib.  Real pip in a fresh venv, on a fresh repository holding the
files of this tree (tracked and new, as `git status` sees them), building
with the setuptools the package index gives pip's isolated build.  Needs
pip >= 22.3 (--python) and the package index."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from diskimage import __version__
from tests import needs

ROOT = Path(__file__).resolve().parents[2]
PROBE = "cliutil/_deleted_module_probe.py"


def run(*argv, cwd):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result.stdout


def status(repo):
    return run("git", "status", "--porcelain", "--ignored", cwd=repo)


@pytest.fixture
def clone(tmp_path):
    needs.require("git")
    repo = tmp_path / "src"
    files = run("git", "ls-files", "-z", "--cached", "--others",
                "--exclude-standard", cwd=ROOT).split("\0")
    for rel in filter(None, files):
        source = ROOT / rel
        if source.is_file() and not source.is_symlink():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / rel)
    run("git", "init", "-q", cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
        "-m", "tree", cwd=repo)
    assert status(repo) == ""
    return repo


@pytest.fixture
def venv(tmp_path):
    path = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    # Without its own pip (ensurepip takes longer than the install): this
    # pip installs into it with --python.
    run(base, "-m", "venv", "--without-pip", str(path), cwd=tmp_path)
    return path


def site_packages(venv):
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv),
                                                    "platbase": str(venv)}))


def pip_install(venv, repo, *args):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "pip", "--python",
                             str(venv / "bin" / "python"), "install", "-q",
                             "--no-deps", *args, "."], cwd=repo, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pip_install_leaves_the_tree_clean(clone, venv):
    """Installed twice, with a module that is deleted between the two: each
    install leaves the tree as committed, and the second does not install
    the deleted module again."""
    (clone / PROBE).write_text("PROBE = 1\n")
    pip_install(venv, clone)
    assert status(clone) == f"?? {PROBE}\n"
    assert sorted(p.name for p in (clone / "build").iterdir()) == sorted(
        Path(rel).name for rel in
        run("git", "ls-files", cwd=clone / "build").split())
    assert (site_packages(venv) / "diskimage" / "image" / "writer.py").is_file()
    assert (site_packages(venv) / PROBE).is_file()
    (clone / PROBE).unlink()
    pip_install(venv, clone, "--force-reinstall")
    assert status(clone) == ""
    assert not (site_packages(venv) / PROBE).exists()


def test_editable_install_leaves_the_tree_clean(clone, venv):
    pip_install(venv, clone, "-e")
    assert status(clone) == ""
    where = run(str(venv / "bin" / "python"), "-c",
                "import diskimage; print(diskimage.__file__)", cwd=venv)
    assert where.strip() == str(clone / "diskimage" / "__init__.py")


def test_a_callers_extra_config_still_applies(clone, tmp_path):
    """DIST_EXTRA_CONFIG set by the caller (cibuildwheel does) is merged
    with the backend's, not replaced: its tag_build names the wheel."""
    extra = tmp_path / "extra.cfg"
    extra.write_text("[egg_info]\ntag_build = .dev7\n")
    wheels = tmp_path / "wheels"
    env = dict(os.environ, DIST_EXTRA_CONFIG=str(extra))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q",
                             "--no-deps", "-w", str(wheels), "."], cwd=clone,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in wheels.iterdir()] == [
        f"rdeploy_toolkit-{__version__}.dev7-py3-none-any.whl"]
    assert status(clone) == ""
