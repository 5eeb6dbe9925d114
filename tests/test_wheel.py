"""The package installs anywhere: a wheel carries its Hydra config and named sweeps, and `harness sweep --dry-run`
works from an unrelated directory with the harness imported from the wheel (not from this checkout)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(*args: object, cwd: Path) -> str:
    # one table row per line; no PYTHONPATH, so that harness is imported from where the venv installed it
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "COLUMNS": "200"}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.e2e
def test_wheel_installs_and_runs_a_dry_run_elsewhere(tmp_path: Path) -> None:
    # build from a copy, so the shared checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(REPO / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, src, cwd=tmp_path)
    (wheel,) = dist.glob("harness-*.whl")
    names = _run(sys.executable, "-m", "zipfile", "-l", wheel, cwd=tmp_path)
    assert "harness/conf/config.yaml" in names and "harness/sweeps/demo.yaml" in names

    # a fresh venv that reuses the installed dependencies (torch, hydra, …) of the environment running the tests (a
    # venv's own site-packages are not "system" ones, so they are named in a .pth); harness itself comes from the wheel.
    # No pip of its own (installing one takes seconds): this environment's pip installs into it with --python
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    (Path(purelib) / "_tested_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
         "--force-reinstall", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import harness; print(harness.__file__)", cwd=elsewhere).strip()
    assert where.startswith(str(venv)), where

    out = _run(venv / "bin" / "harness", "sweep", "demo", "--dry-run", "--root", elsewhere / "runs", cwd=elsewhere)
    assert "trails on local (dry run)" in out and "stale 256 d2+d1 rollout 96 m2po seed 3" in out
    out = _run(venv / "bin" / "harness", "sweep", "stale=1,64", "algo=grpo,m2po", "--dry-run", cwd=elsewhere)
    assert "stale 64 d2+d1 rollout 96 m2po" in out
