"""Libraries' INFO logging is quiet unless --verbose: MLflow creating its tables says nothing in a plain run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import parse_args

# A new MLflow store logs "Creating initial MLflow database tables..." at INFO (mlflow and alembic loggers).
NEW_STORE = ("import sys; from harness.logs import configure_logging; configure_logging(verbose=sys.argv[1] == 'v'); "
             "import mlflow; mlflow.MlflowClient(sys.argv[2]).search_experiments()")


def _new_store(tmp_path: Path, verbose: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    uri = f"sqlite:///{tmp_path / ('v' if verbose else 'q')}.db"
    return subprocess.Popen([sys.executable, "-c", NEW_STORE, "v" if verbose else "q", uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _stderr(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


@pytest.mark.e2e
def test_mlflow_info_shows_only_when_verbose(tmp_path: Path) -> None:
    # both at once: creating a store is seconds of waiting on sqlite, which the two processes overlap
    verbose, quiet = _new_store(tmp_path, verbose=True), _new_store(tmp_path, verbose=False)
    assert "Creating initial MLflow database tables" in _stderr(verbose)
    assert "INFO" not in _stderr(quiet)


@pytest.mark.parametrize("argv", [["-v", "status", "x"], ["status", "x", "--verbose"], ["--verbose", "sweep", "-v"]])
def test_verbose_goes_before_or_after_the_command(argv: list[str]) -> None:
    assert parse_args(argv).verbose is True


def test_not_verbose_by_default() -> None:
    assert parse_args(["status", "x"]).verbose is False
