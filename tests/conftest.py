"""Shared fixtures: every test writes under its own tmp dir; base models are cached once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# The real-service fixtures (slurm_cluster, ray_head) live in tests/services.py and are registered once here, so a
# session-scoped service is started once however many modules use it.
pytest_plugins = ["services"]

# One base-model cache for the whole session (and its subprocesses), never the user's ~/.cache.
os.environ.setdefault("HARNESS_CACHE_DIR", str(Path(tempfile.gettempdir()) / "harness-test-cache"))
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(Path(tempfile.gettempdir()) / "harness-test-mlflow.db"))

# A trail small enough to finish in a few seconds on one core.
TINY = [
    "engine.steps=6", "engine.batch_prompts=4", "engine.group_size=4", "engine.eval_every=3",
    "engine.eval_size=16", "engine.checkpoint_every=3", "engine.max_new_tokens=6", "engine.n_layer=1",
    "engine.n_embd=16", "engine.n_head=2", "engine.base_max_steps=30", "engine.base_check_every=30",
    "engine.base_target_acc=0.0", "tracking=none",
]


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"
