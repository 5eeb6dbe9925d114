"""The slurm backend: submitit parameters and state mapping (fast), and a real single-node cluster (integration)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from services import corrupt_config, final_metrics, job_meta, make_sweep, run_directly, wait_for_states
from tiny_trail import TINY

from harness.backends.slurm import (
    JOB_META,
    SlurmBackend,
    TrailJob,
    array_chunks,
    cancel_run_dir,
    job_state,
    max_array_size,
    parse_max_array_size,
    poll_from_run_dir,
)
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.store.rundir import read_status, write_status


class FakeJob:
    """Stands in for a submitit job on a cluster that cannot exist in a fast test (mock)."""

    def __init__(self, job_id: str = "7_0", result_exists: bool = False, tmp: Path | None = None):
        self.job_id = job_id
        self.paths = type("P", (), {"result_pickle": (tmp or Path("/nonexistent")) / ("r.pkl")})()
        if result_exists and tmp is not None:
            self.paths.result_pickle.write_bytes(b"x")


def test_config_keys_reach_sbatch_fake_submission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # submitit's executor only checks that `srun` is on PATH; nothing is submitted here
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    cfg = compose_trail(["backend=slurm", "backend.partition=gpu", "backend.time_min=30", "backend.cpus_per_task=4",
                         "backend.mem_gb=8", "backend.gres=gpu:1", "backend.array_parallelism=2",
                         "+backend.additional_parameters.qos=high"]).backend
    executor = SlurmBackend(cfg)._executor(tmp_path / ".submitit")
    params = executor._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 30 and params["cpus_per_task"] == 4
    assert params["gres"] == "gpu:1" and params["array_parallelism"] == 2 and params["mem"] == "8GB"
    assert params["additional_parameters"] == {"qos": "high"}
    assert executor._executor.max_num_timeout == cfg.max_requeue
    with pytest.raises(HarnessError, match=r"'backend.array_parallelism': 0 \(allowed: an integer ≥ 1"):
        compose_trail(["backend=slurm", "backend.array_parallelism=0"])


def test_array_chunks_cover_every_trail_once_within_max_array_size() -> None:
    assert array_chunks(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]
    assert array_chunks(1001, 1001) == [range(0, 1001)]
    assert array_chunks(1002, 1001) == [range(0, 1001), range(1001, 1002)]
    assert array_chunks(3, 0) == [range(0, 1), range(1, 2), range(2, 3)], "no arrays allowed: one job per trail"
    assert array_chunks(0, 5) == []
    for n in range(0, 40):
        for size in range(1, 12):
            chunks = array_chunks(n, size)
            assert [i for c in chunks for i in c] == list(range(n)) and all(len(c) <= size for c in chunks)


def test_max_array_size_is_read_from_scontrol_show_config() -> None:
    config = "Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 4\nMaxJobCount = 10000\n"
    assert parse_max_array_size(config) == 4
    assert parse_max_array_size("MaxJobCount = 10000\n") is None


FAKE_SBATCH = """#!/bin/sh
# records each submission script and answers as sbatch does, with job ids 101, 102, ...
n=$(($(cat "$FAKE_SLURM/count" 2>/dev/null || echo 100) + 1))
echo $n > "$FAKE_SLURM/count"
cp "$1" "$FAKE_SLURM/sbatch-$n.sh"
echo "Submitted batch job $n"
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sbatch, srun and scontrol stand-ins on PATH (a cluster cannot exist in a fast test): sbatch keeps the scripts
    it is given, scontrol says MaxArraySize = 3."""
    bin_dir, record = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    record.mkdir()
    scripts = {"sbatch": FAKE_SBATCH, "srun": "#!/bin/sh\nexit 1\n",
               "scontrol": "#!/bin/sh\necho 'MaxArraySize            = 3'\necho 'MaxJobCount = 10000'\n"}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(record))
    return record


def _sbatch_flags(script: Path) -> dict:
    flags = {}
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            flags[key] = value
    return flags


@pytest.mark.parametrize("dependency", [None, "afterok:99"])
def test_a_sweep_past_max_array_size_is_submitted_as_chained_capped_arrays(
        fake_slurm: Path, tmp_path: Path, dependency: str | None) -> None:
    assert max_array_size() == 3
    extra = [f"+backend.additional_parameters.dependency={dependency}"] if dependency else []
    run_dirs = make_sweep(tmp_path / "sweep", [[f"stale={i}"] for i in range(7)],
                          common=[*TINY, "backend=slurm", "backend.array_parallelism=2", *extra])
    jobs = _backend(run_dirs).submit(run_dirs)
    assert [j.job_id for j in jobs] == ["101_0", "101_1", "101_2", "102_0", "102_1", "102_2", "103"]
    assert [job_meta(d)["job_id"] for d in run_dirs] == [j.job_id for j in jobs]
    flags = [_sbatch_flags(fake_slurm / f"sbatch-{n}.sh") for n in (101, 102, 103)]
    assert [f.get("array") for f in flags] == ["0-2%2", "0-2%2", None], "at most 2 of each array at once"
    # each array waits for the one before it, so the cap holds for the whole sweep; a user's own dependency stays
    assert [f.get("dependency") for f in flags] == [
        dependency, ",".join(filter(None, ["afterany:101", dependency])),
        ",".join(filter(None, ["afterany:102", dependency]))]


FAKE_SACCT = """#!/bin/sh
# counts its calls; answers as sacct does for the arrays 101 and 102 (pending) and the job 103 (running)
echo x >> "$FAKE_SLURM/sacct-calls"
printf 'JobID|State|NodeList\\n101_[0-2]|PENDING|\\n102_[0-2]|PENDING|\\n103|RUNNING|node1\\n'
"""


def test_status_of_a_detached_sweep_asks_sacct_once_for_all_its_trails(fake_slurm: Path, tmp_path: Path) -> None:
    (fake_slurm.parent / "bin" / "sacct").write_text(FAKE_SACCT)
    (fake_slurm.parent / "bin" / "sacct").chmod(0o755)
    run_dirs = make_sweep(tmp_path / "sweep", [[f"stale={i}"] for i in range(7)], common=[*TINY, "backend=slurm"])
    _backend(run_dirs).submit(run_dirs)  # as `harness sweep --detach` does; a later process polls from run dirs
    write_status(run_dirs[6], "running")
    assert [poll_from_run_dir(d) for d in run_dirs] == ["pending"] * 6 + ["running"]
    assert (fake_slurm / "sacct-calls").read_text().count("x") == 1, "one sacct call answers for the whole sweep"


def test_misspelt_slurm_key_fails_at_composition() -> None:
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="partiton"):
        compose_trail(["backend=slurm", "backend.partiton=gpu"])


@pytest.mark.parametrize("sacct,recorded,expected", [
    ("PENDING", "pending", "pending"),
    ("REQUEUED", "failed", "pending"),
    ("RUNNING", "running", "running"),
    ("RUNNING", "pending", "pending"),
    ("COMPLETED", "done", "done"),
    ("COMPLETED", "diverged", "diverged"),
    ("COMPLETED", "failed", "failed"),
    ("CANCELLED by 0", "running", "cancelled"),
    ("TIMEOUT", "running", "failed"),
    ("NODE_FAIL", "running", "failed"),
    ("OUT_OF_MEMORY", "running", "failed"),
])
def test_fake_job_state_mapping(tmp_path: Path, sacct: str, recorded: str, expected: str) -> None:
    write_status(tmp_path, recorded)
    assert job_state(tmp_path, FakeJob(), sacct) == expected
    if expected in ("cancelled", "failed"):  # what only Slurm knew is now in the run dir for `harness status`
        assert read_status(tmp_path)["state"] == expected


def test_fake_job_finished_before_sacct_knows_it(tmp_path: Path) -> None:
    write_status(tmp_path, "done")
    assert job_state(tmp_path, FakeJob(result_exists=True, tmp=tmp_path), "UNKNOWN") == "done"
    queued = tmp_path / "queued"
    queued.mkdir()
    write_status(queued, "pending")
    assert job_state(queued, FakeJob(tmp=queued), "UNKNOWN") == "pending"
    # an array task that failed in its first second, while sacct still shows its array's PENDING line
    failed = tmp_path / "failed"
    failed.mkdir()
    write_status(failed, "failed", reason="config.yaml is damaged")
    assert job_state(failed, FakeJob(result_exists=True, tmp=failed), "PENDING") == "failed"
    assert read_status(failed)["reason"] == "config.yaml is damaged"
    # ... or while submitit's cached answer still says RUNNING (seen in CI from `harness status`), or COMPLETING
    assert job_state(failed, FakeJob(result_exists=True, tmp=failed), "RUNNING") == "failed"
    assert job_state(tmp_path, FakeJob(result_exists=True, tmp=tmp_path), "COMPLETING") == "done"
    # no result yet: a RUNNING job is running, whatever an interrupted run (requeued) recorded a moment ago
    requeued = tmp_path / "requeued"
    requeued.mkdir()
    write_status(requeued, "failed", reason="SystemExit")
    assert job_state(requeued, FakeJob(tmp=requeued), "RUNNING") == "pending"


def test_checkpoint_requeues_itself_until_max_requeue(tmp_path: Path) -> None:
    job = TrailJob(str(tmp_path), max_requeue=2)
    write_status(tmp_path, "running", attempts=1)
    delayed = job.checkpoint()
    assert delayed is not None and job._requeued
    assert isinstance(delayed.function, TrailJob) and delayed.function.run_dir == job.run_dir
    assert not delayed.function._requeued, "the requeued run must finish normally, not requeue again"
    write_status(tmp_path, "running", attempts=3)
    assert TrailJob(str(tmp_path), max_requeue=2).checkpoint() is None


def test_poll_from_run_dir_without_job_reads_status(tmp_path: Path) -> None:
    write_status(tmp_path, "done")
    assert not (tmp_path / JOB_META).exists()
    assert poll_from_run_dir(tmp_path) == "done"


# --- real cluster -------------------------------------------------------------------------------------------------

def _backend(run_dirs):
    return SlurmBackend(OmegaConf.load(run_dirs[0] / "config.yaml").backend)


@pytest.mark.integration
@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_slurm_array_runs_trails_and_isolates_a_failing_one(slurm_cluster, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["stale=1"], ["stale=2"], ["stale=4"]],
                          common=[*TINY, "backend=slurm", "backend.mem_gb=1"])
    corrupt_config(run_dirs[2])
    backend = _backend(run_dirs)
    jobs = backend.submit(run_dirs)
    assert len({j.job_id.split("_")[0] for j in jobs}) == 1, "one job array per submit"
    assert [job_meta(d)["job_id"] for d in run_dirs] == [j.job_id for j in jobs]

    states = wait_for_states(backend.poll, jobs)
    assert states == ["done", "done", "failed"], [read_status(d) for d in run_dirs]
    assert "slurm job" in read_status(run_dirs[2])["reason"]
    for run_dir in run_dirs[:2]:
        assert read_status(run_dir)["state"] == "done" and final_metrics(run_dir)
    # a later process (harness status of a detached sweep) sees the same from the run dirs alone
    assert [poll_from_run_dir(d) for d in run_dirs] == states
    backend.close()

    # same final metrics as the trail run directly, without Slurm
    direct = run_directly(run_dirs[0], tmp_path / "direct")
    assert final_metrics(direct) == final_metrics(run_dirs[0])


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "State", "-j", job_id], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] if out else ""


@pytest.mark.integration
@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_slurm_cancel_running_job_is_reported_cancelled(slurm_cluster, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=100000"]], common=[*TINY, "backend=slurm"])
    backend = _backend(run_dirs)
    (job,) = backend.submit(run_dirs)
    wait_for_states(backend.poll, [job], until=("running",), timeout=120)
    backend.cancel(job)
    assert wait_for_states(backend.poll, [job], timeout=120) == ["cancelled"]
    assert _sacct_state(job.job_id) == "CANCELLED"
    assert read_status(run_dirs[0])["state"] == "cancelled"
    assert poll_from_run_dir(run_dirs[0]) == "cancelled"


@pytest.mark.integration
@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_slurm_detached_job_cancelled_from_its_run_dir(slurm_cluster, tmp_path: Path) -> None:
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=100000"]], common=[*TINY, "backend=slurm"])
    _backend(run_dirs).submit(run_dirs)  # submit and forget, as `harness sweep --detach` does
    deadline = time.monotonic() + 120
    while poll_from_run_dir(run_dirs[0]) != "running":
        assert time.monotonic() < deadline, read_status(run_dirs[0])
        time.sleep(1)
    cancel_run_dir(run_dirs[0])
    deadline = time.monotonic() + 120
    while poll_from_run_dir(run_dirs[0]) != "cancelled":
        assert time.monotonic() < deadline, read_status(run_dirs[0])
        time.sleep(1)


@pytest.mark.integration
@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_slurm_preempted_trail_is_requeued_and_resumes(slurm_cluster, tmp_path: Path) -> None:
    """USR2 is what Slurm sends before preempting or timing out a job (submitit's --signal): the trail is
    checkpointed by submitit, requeued, and resumes from the engine's own checkpoint."""
    from harness.store.journal import read_records

    # Long enough (≈ 25 s of tiny steps on an idle core) that the signal always lands mid-run.
    run_dirs = make_sweep(tmp_path / "sweep", [["engine.steps=600", "engine.checkpoint_every=5"]],
                          common=[*TINY, "backend=slurm"])
    backend = _backend(run_dirs)
    (job,) = backend.submit(run_dirs)
    deadline = time.monotonic() + 180
    while int(read_status(run_dirs[0]).get("step") or 0) < 10:
        assert time.monotonic() < deadline and backend.poll(job) in ("pending", "running"), read_status(run_dirs[0])
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    assert wait_for_states(backend.poll, [job], timeout=400) == ["done"], read_status(run_dirs[0])
    status = read_status(run_dirs[0])
    assert status["attempts"] == 2, status
    steps = [r["step"] for r in read_records(run_dirs[0])]
    assert steps == list(range(0, 601)), "resumed without losing or writing a step twice"


@pytest.mark.integration
@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_slurm_sweep_past_max_array_size_runs_as_chained_capped_arrays(slurm_cluster, tmp_path: Path) -> None:
    """scripts/slurm_cluster.sh sets a small MaxArraySize: a sweep of two more trails than that is refused by sbatch
    as one array, and runs as two arrays, the second after the first, never more than array_parallelism at once."""
    size = max_array_size()
    if size > 8:
        pytest.skip(f"the running cluster has MaxArraySize={size}; scripts/slurm_cluster.sh starts one with 5")
    refused = subprocess.run(["sbatch", f"--array=0-{size}", "--wrap=true", "-o", "/dev/null"], capture_output=True,
                             text=True)
    assert refused.returncode != 0, "the cluster itself accepts an array past MaxArraySize"
    n = size + 2
    run_dirs = make_sweep(tmp_path / "sweep", [[f"stale={i}"] for i in range(n)],
                          common=[*TINY, "backend=slurm", "backend.mem_gb=1", "backend.array_parallelism=1"])
    backend = _backend(run_dirs)
    jobs = backend.submit(run_dirs)
    arrays = [j.job_id.split("_")[0] for j in jobs]
    assert len(set(arrays)) == 2 and arrays.count(arrays[0]) == size, arrays
    assert wait_for_states(backend.poll, jobs, timeout=500) == ["done"] * n, [read_status(d) for d in run_dirs]
    assert {read_status(d)["node"] for d in run_dirs} == {socket.gethostname().split(".")[0]}, "Slurm's node name"
    spans = sorted((read_status(d)["started"], read_status(d)["ended"]) for d in run_dirs)
    assert all(start >= end for (_, end), (start, _) in zip(spans, spans[1:], strict=False)), \
        f"array_parallelism=1 across both arrays: the trails ran one at a time: {spans}"
