"""The wheel carries methods/ and tasks/ as imgbench.methods / imgbench.tasks, and they are found."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built offline (no isolation), so the build requirements must be installed: the `test` extra has them."""
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                           str(REPO)], capture_output=True, text=True)
    assert done.returncode == 0, f"building the wheel failed (pip install -e '.[torch,test]' installs `wheel` " \
                                 f"and `build`):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    (built,) = dist.glob("imgbench-*.whl")
    return built


def test_wheel_maps_folders_without_top_level_collisions(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "imgbench/methods/base/method.yaml" in names and "imgbench/tasks/tiny/tiny.yaml" in names
    assert "imgbench/tasks/tiny/prompts.jsonl" in names
    assert not any(n.startswith(("methods/", "tasks/")) for n in names)


def test_wheel_in_a_fresh_venv_lists_and_runs(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # Dependencies come from the test interpreter's site-packages (no network); imgbench itself
    # only from the wheel: the editable install's finder is not visible through a .pth path.
    site_dirs = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "_deps.pth").write_text("\n".join(site_dirs) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ls = subprocess.run([str(venv / "bin" / "imgbench"), "ls"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert ls.returncode == 0, ls.stderr
    assert "tiny" in ls.stdout and "base" in ls.stdout and "dummy" in ls.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import imgbench.methods as m; print(m.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert str(venv) in where.stdout, "imgbench.methods must come from the installed wheel"
    run = subprocess.run([str(venv / "bin" / "imgbench"), "run", "--method", "base", "--task", "tiny", "--seeds", "0",
                          "--output", str(tmp_path / "results")],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
