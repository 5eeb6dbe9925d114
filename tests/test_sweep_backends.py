"""The same `harness sweep` on local, Slurm (real single-node cluster) and Ray (real `ray start --head`): the same
trails, and for the same seeds the same final metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from services import final_metrics
from tiny_trail import TINY

from harness.cli import main
from harness.store.rundir import read_status
from harness.store.sweepdir import trail_dirs

SWEEP = ["stale=0,2", "algo=grpo,m2po", *TINY]


def outcome(sweep_dir: Path) -> dict[str, dict]:
    """trail dir name (id-based) → final metrics, for trails that finished."""
    out = {}
    for run_dir in trail_dirs(sweep_dir):
        assert read_status(run_dir)["state"] == "done", f"{run_dir.name}: {read_status(run_dir)}"
        out[run_dir.name] = final_metrics(run_dir)
    return out


@pytest.fixture(scope="module")
def local_outcome(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("local") / "runs"
    assert main(["sweep", *SWEEP, "--name", "same", "--root", str(root), "--no-report"]) == 0
    return outcome(root / "same")


@pytest.mark.integration
@pytest.mark.slurm
def test_slurm_sweep_matches_local(slurm_cluster, local_outcome, tmp_path: Path):
    root = tmp_path / "runs"
    assert main(["sweep", *SWEEP, "backend=slurm", "backend.mem_gb=1", "--name", "same", "--root", str(root),
                 "--no-report"]) == 0
    got = outcome(root / "same")
    assert sorted(got) == sorted(local_outcome), "the same trails"
    assert got == local_outcome, "the same final metrics for the same seeds"


@pytest.mark.integration
@pytest.mark.ray
def test_ray_sweep_matches_local(ray_head, local_outcome, tmp_path: Path):
    root = tmp_path / "runs"
    assert main(["sweep", *SWEEP, "backend=ray", f"backend.address='{ray_head}'", "--name", "same",
                 "--root", str(root), "--no-report"]) == 0
    got = outcome(root / "same")
    assert sorted(got) == sorted(local_outcome), "the same trails"
    assert got == local_outcome, "the same final metrics for the same seeds"
