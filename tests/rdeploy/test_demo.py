"""rdeploy demo removes only what it made and refuses a directory that holds
anything else (issue 11 item 3)."""

import os
import subprocess
import sys

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
DEMO_FILES = {"demo-disk.img", "demo.rdi", "restored-disk.img"}


def demo(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rdeploy", "demo", *args],
                          cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_error_line(result, code):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rdeploy: error: ")
    return lines[0]


def test_demo_refuses_a_directory_holding_a_users_file(tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "thesis.txt").write_text("years of work\n")
    (mine / "sub" / "data.csv").write_text("1,2\n")
    result = demo(f"--dir={mine}")
    line = one_error_line(result, 3)
    assert str(mine) in line and "thesis.txt" in line
    assert result.stdout == ""
    assert (mine / "thesis.txt").read_text() == "years of work\n"
    assert (mine / "sub" / "data.csv").read_text() == "1,2\n"
    assert sorted(os.listdir(mine)) == ["sub", "thesis.txt"]


def test_demo_refuses_the_current_directory_when_it_holds_anything(tmp_path):
    (tmp_path / "notes.md").write_text("keep me\n")
    result = demo("--dir=.", cwd=tmp_path)
    one_error_line(result, 3)
    assert os.listdir(tmp_path) == ["notes.md"]
    assert (tmp_path / "notes.md").read_text() == "keep me\n"


def test_demo_in_a_new_directory_removes_it_and_only_it(tmp_path):
    (tmp_path / "beside.txt").write_text("neighbour\n")
    result = demo(f"--dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr
    assert "OK:" in result.stdout
    assert os.listdir(tmp_path) == ["beside.txt"]


def test_demo_in_an_existing_empty_directory_leaves_it_empty(tmp_path):
    result = demo("--dir=.", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert tmp_path.is_dir() and os.listdir(tmp_path) == []


def test_demo_keep_then_rerun_replaces_only_its_own_files(tmp_path):
    run_dir = tmp_path / "run"
    assert demo(f"--dir={run_dir}", "--keep").returncode == 0
    assert set(os.listdir(run_dir)) == DEMO_FILES
    result = demo(f"--dir={run_dir}")
    assert result.returncode == 0, result.stderr
    # It made the directory the first time, but the second run found it
    # there: it removes its files and leaves the (now empty) directory.
    assert os.listdir(run_dir) == []


def test_demo_refuses_a_file_as_dir(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    one_error_line(demo(f"--dir={target}"), 3)
    assert target.read_text() == "x"
