"""The package installs anywhere: a wheel built from the sdist carries the top-level conf/ and sweeps/ as
harness/conf and harness/sweeps, and `harness sweep --dry-run` works from an unrelated directory with the harness
imported from the wheel (not from this checkout). An editable install reads the top-level folders themselves."""

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


def _source_copy(dest: Path) -> Path:
    """What the sdist is made from, copied, so that the shared checkout gets no build/ or egg-info."""
    for folder in ("harness", "conf", "sweeps"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


def _venv(path: Path) -> Path:
    """A fresh venv that reuses the installed dependencies (torch, hydra, …) of the environment running the tests (a
    venv's own site-packages are not "system" ones, so they are named in a .pth); harness itself is installed into it
    by the caller. No pip of its own (installing one takes seconds): this environment's pip installs into it with
    --python. Its python is returned."""
    _run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path.parent)
    python = path / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=path.parent).strip()
    (Path(purelib) / "_tested_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def _pip_install(python: Path, *what: object, cwd: Path) -> None:
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
         "--no-build-isolation", "--force-reinstall", *what, cwd=cwd)


@pytest.mark.e2e
def test_wheel_installs_and_runs_a_dry_run_elsewhere(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    # sdist first, then the wheel from the unpacked sdist, as `python -m build` does: the sdist must carry conf/ too
    _run(sys.executable, "-c", "from setuptools import build_meta; build_meta.build_sdist('sdist')", cwd=src)
    (sdist,) = (src / "sdist").glob("harness-*.tar.gz")
    shutil.unpack_archive(sdist, tmp_path / "unpacked")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, unpacked,
         cwd=tmp_path)
    (wheel,) = dist.glob("harness-*.whl")
    names = _run(sys.executable, "-m", "zipfile", "-l", wheel, cwd=tmp_path).split()
    for name in ("harness/conf/config.yaml", "harness/conf/algo/m2po.yaml", "harness/sweeps/demo.yaml"):
        assert name in names, name
    assert not [n for n in names if n.startswith(("conf/", "sweeps/"))], "conf/ and sweeps/ belong under harness/"

    python = _venv(tmp_path / "venv")
    _pip_install(python, wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import harness.spec.resources as r; print(r.CONF_DIR, r.SWEEPS_DIR)",
                 cwd=elsewhere).split()
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=elsewhere).strip()
    assert where == [f"{purelib}/harness/conf", f"{purelib}/harness/sweeps"], where

    out = _run(tmp_path / "venv" / "bin" / "harness", "sweep", "demo", "--dry-run", "--root", elsewhere / "runs",
               cwd=elsewhere)
    assert "trails on local (dry run)" in out and "stale 256 m2po seed 3" in out
    out = _run(tmp_path / "venv" / "bin" / "harness", "sweep", "stale=1,64", "algo=grpo,m2po", "--dry-run",
               cwd=elsewhere)
    assert "stale 64 m2po" in out


@pytest.mark.e2e
def test_editable_install_reads_the_top_level_conf_and_sweeps(tmp_path: Path) -> None:
    """`pip install -e .` (scripts/install.sh): the config tree and the sweeps are the checkout's own folders, so
    a sweep file added to sweeps/ is a named sweep at once, with nothing reinstalled."""
    src = _source_copy(tmp_path / "src")
    python = _venv(tmp_path / "venv")
    _pip_install(python, "-e", src, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import harness, harness.spec.resources as r; print(harness.__file__, r.CONF_DIR, "
                 "r.SWEEPS_DIR)", cwd=elsewhere).split()
    assert where == [str(src / "harness" / "__init__.py"), str(src / "conf"), str(src / "sweeps")]

    (src / "sweeps" / "mine.yaml").write_text("overrides: ['stale=1,64', algo=m2po]\n")
    out = _run(tmp_path / "venv" / "bin" / "harness", "sweep", "mine", "--dry-run", "--root", elsewhere / "runs",
               cwd=elsewhere)
    assert "mine: 2 trails on local (dry run)" in out and "stale 64 m2po" in out
