"""Shared fixtures: every test writes under its own tmp dir; base models are cached once per test session, and so
is a finished tiny sweep that tests read or copy."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_trail import TINY

# The real-service fixtures (slurm_cluster, ray_head) live in tests/services.py and are registered once here, so a
# session-scoped service is started once however many modules use it.
pytest_plugins = ["services"]

# One base-model cache for the whole session (and its subprocesses), never the user's ~/.cache.
os.environ.setdefault("HARNESS_CACHE_DIR", str(Path(tempfile.gettempdir()) / "harness-test-cache"))
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(Path(tempfile.gettempdir()) / "harness-test-mlflow.db"))
# One torch thread, as every trail runs by default (engine.threads): the tests' tensors are tiny, and a second intra-op
# thread only adds synchronisation, which on a busy two-core machine costs several times the work itself. Set before
# any test module imports torch.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture
def tiny() -> list[str]:
    """The tiny trail's overrides (tests/tiny_trail.py); tiny_trail(...) lays others over them."""
    return list(TINY)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@dataclass(frozen=True)
class FinishedSweep:
    """A tiny sweep of four trails (stale 0, 2 × grpo, m2po) that ran to completion, and the arguments that ran it."""

    root: Path
    name: str
    overrides: tuple[str, ...]

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def args(self, root: Path) -> list[str]:
        """`harness sweep` arguments that run the same sweep under `root`."""
        return ["sweep", *self.overrides, "--name", self.name, "--root", str(root), "--no-report"]

    def copy_to(self, root: Path) -> Path:
        """A copy of the finished sweep under `root`, for a test that changes it (a run dir holds no absolute
        path, so the copy is the same sweep in another place)."""
        return Path(shutil.copytree(self.dir, root / self.name, symlinks=True))


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> FinishedSweep:
    """Run once per session: launching a sweep costs seconds of worker start-up, and most tests of a finished
    sweep only read it or change a copy. One warm worker runs the four trails one after another."""
    from harness.cli import main

    sweep = FinishedSweep(tmp_path_factory.mktemp("finished") / "runs", "four",
                          ("stale=0,2", "algo=grpo,m2po", *TINY, "backend.max_parallel=1"))
    assert main(sweep.args(sweep.root)) == 0
    return sweep
