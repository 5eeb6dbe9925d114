"""Slurm backend through submitit: one job array per submit call (several past MaxArraySize), one task per trail.

submitit writes the sbatch script, submits the array and reads job states from sacct (so the cluster needs
accounting — slurmdbd — for cancelled or killed jobs to be reported). Preemption and timeouts are handled by
submitit's checkpointing: the trail's callable is `Checkpointable`, its `checkpoint()` resubmits itself, and the
requeued job resumes from the engine's own checkpoint in the run dir. Each run dir keeps `job.json` (job id and
submitit folder), so a detached sweep can be polled later from its run dirs alone (`poll_from_run_dir`).

At scale: `backend.array_parallelism` caps how many of an array's tasks run at once (submitit's
`slurm_array_parallelism`, sbatch's `--array=…%N`). An array holds at most the cluster's MaxArraySize tasks (read with
`scontrol show config`), so a larger sweep is submitted as several arrays, each but the first starting once the one
before it has ended (`--dependency=afterany:`): the cap then holds for the whole sweep, not per array.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, cast

import submitit
from omegaconf import DictConfig, OmegaConf

from harness.internals import LibraryInternalMoved, job_outcome
from harness.store.rundir import RunDir, read_json, write_json_atomic
from harness.store.states import TrailState

JOB_META = "job.json"
SACCT_EVERY_S = 2.0

# sacct states (first word; "CANCELLED by 0") → trail states; anything else counts as failed once final
PENDING_STATES = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "CONFIGURING", "SUSPENDED", "PREEMPTED",
                  "RESV_DEL_HOLD", "RESIZING", "UNKNOWN", "READY", "SIGNALING", "STAGE_OUT"}
RUNNING_STATES = {"RUNNING", "COMPLETING"}
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize: array indices 0..1000


def parse_max_array_size(config: str) -> Optional[int]:
    """MaxArraySize from the text of `scontrol show config` (None when it is not there)."""
    found = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", config, re.MULTILINE)
    return int(found.group(1)) if found else None


def max_array_size() -> int:
    """The cluster's MaxArraySize, or Slurm's default when scontrol cannot tell (an array may hold this many tasks,
    indices 0 to MaxArraySize - 1)."""
    try:
        config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    size = parse_max_array_size(config)
    return DEFAULT_MAX_ARRAY_SIZE if size is None else size


def array_chunks(n: int, max_size: int) -> List[range]:
    """Positions 0..n-1 split into consecutive arrays of at most `max_size` tasks. MaxArraySize 0 means the cluster
    allows no arrays: every trail is then a job of its own (submitit submits a batch of one as a plain job)."""
    size = max(1, int(max_size))
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def after(dependency: Optional[str], job_id: Optional[str]) -> Optional[str]:
    """An sbatch --dependency that also waits for job `job_id` to end, whatever its outcome (afterany)."""
    if job_id is None:
        return dependency
    return ",".join(filter(None, [f"afterany:{job_id}", dependency]))


class TrailJob(submitit.helpers.Checkpointable):
    """The callable each array task runs: one trail, resumable after preemption or timeout.

    Why a class: submitit requeues a job only if its callable has `checkpoint()`. The engine keeps its own
    checkpoint in the run dir, so resubmitting this same callable is enough for the trail to resume.
    """

    def __init__(self, run_dir: str, max_requeue: int):
        self.run_dir = run_dir
        self.max_requeue = max_requeue
        self._requeued = False

    def __call__(self) -> str:
        from harness.backends.runner import run_trail_dir

        state = run_trail_dir(self.run_dir, node=os.environ.get("SLURMD_NODENAME"))
        if self._requeued:
            # submitit's signal handler exits the job (SystemExit) from inside the trail, which the runner records
            # as a failure; the trail is in fact only interrupted and queued again.
            RunDir(self.run_dir).record_outcome(TrailState.PENDING, "requeued after preemption or timeout",
                                                ended=None)
            sys.exit(-1)
        return state

    def checkpoint(  # type: ignore[override]  # None is submitit's "do not requeue"
            self, *args: Any, **kwargs: Any) -> Optional[submitit.helpers.DelayedSubmission]:
        attempts = RunDir(self.run_dir).status().attempts or 1
        if attempts > self.max_requeue:
            return None  # submitit then ends the job instead of requeuing it; the runner marks the trail failed
        self._requeued = True  # for this (interrupted) run only; the resubmitted copy starts clean
        return submitit.helpers.DelayedSubmission(TrailJob(self.run_dir, self.max_requeue), *args, **kwargs)


def _sacct_word(state: str) -> str:
    return state.split()[0].upper() if state else "UNKNOWN"


def job_state(run_dir: Path, job: submitit.Job, sacct_state: str) -> TrailState:
    """A trail's state from its Slurm job (as sacct reports it) and its run dir; final outcomes the trail could
    not record itself (cancelled, killed, lost node) are written to its status.json."""
    record = RunDir(run_dir)
    recorded = record.status().state
    word = _sacct_word(sacct_state)
    if word == "CANCELLED":
        if recorded != TrailState.CANCELLED:
            record.record_outcome(TrailState.CANCELLED, f"slurm job {job.job_id} cancelled")
        return TrailState.CANCELLED
    # a job that has ended before sacct (or submitit's cached answer) says so: its result pickle exists. sacct lags
    # behind a job that ends at once: UNKNOWN, READY, still its array's PENDING line (seen in CI for an array task
    # that failed in its first second), or a cached RUNNING. submitit writes the pickle only when the job has ended;
    # a requeued job writes none, and a resubmitted trail is a new job with its own pickle path.
    lagging = word in RUNNING_STATES or word in PENDING_STATES
    ended_unseen = lagging and job.paths.result_pickle.exists()
    if ended_unseen and recorded.terminal:
        return recorded
    if word in RUNNING_STATES and not ended_unseen:
        return TrailState.RUNNING if recorded == TrailState.RUNNING else TrailState.PENDING
    if word in PENDING_STATES and not ended_unseen:
        return TrailState.PENDING
    if word == "COMPLETED" and recorded.terminal:
        return recorded
    # FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE — or COMPLETED without a recorded outcome
    if recorded.finished:
        return recorded
    if recorded != TrailState.FAILED:
        reason = f"slurm job {job.job_id} ended {word}"
        error = _job_error(job)
        record.record_outcome(TrailState.FAILED, f"{reason}: {error}" if error else reason)
    return TrailState.FAILED


def _job_error(job: submitit.Job) -> str:
    """The last line of the traceback submitit pickled for a job that raised, if any."""
    try:
        outcome, payload = job_outcome(job.paths.result_pickle)
    except LibraryInternalMoved as exc:  # said where the failure is recorded, not raised into the sweep's polling
        return str(exc)
    except Exception:  # noqa: BLE001 - no result (killed, lost node) is an answer too
        return ""
    lines = [ln for ln in str(payload).splitlines() if ln.strip()] if outcome == "error" else []
    return lines[-1].strip() if lines else ""


def _job_from_meta(run_dir: Path) -> Optional[submitit.SlurmJob]:
    meta = read_json(Path(run_dir) / JOB_META)
    if not meta:
        return None
    return submitit.SlurmJob(folder=meta["folder"], job_id=meta["job_id"])


_asked: Dict[Path, float] = {}  # sweep dir → when sacct was last asked about all of its jobs (this process)


def _ask_about_sweep(sweep_dir: Path, watcher: Any) -> None:
    """Register every job of the sweep with submitit's shared watcher and ask sacct once about them all, at most every
    SACCT_EVERY_S: `harness status` of a detached 1,000-trail sweep makes one sacct call, not one per trail."""
    now = time.monotonic()
    if now - _asked.get(sweep_dir, float("-inf")) < SACCT_EVERY_S:
        return
    for meta_path in sweep_dir.glob(f"*/{JOB_META}"):
        meta = read_json(meta_path)
        if meta and meta.get("job_id"):
            watcher.register_job(str(meta["job_id"]))
    watcher.update()
    _asked[sweep_dir] = now


def poll_from_run_dir(run_dir: Path | str) -> TrailState:
    """State of a trail submitted earlier (maybe by another process): rebuilds its SlurmJob from job.json."""
    job = _job_from_meta(Path(run_dir))
    if job is None:
        return RunDir(run_dir).status().state
    _ask_about_sweep(Path(run_dir).resolve().parent, job.watcher)
    return job_state(Path(run_dir), job, job.watcher.get_state(job.job_id, mode="cache"))


def cancel_run_dir(run_dir: Path | str) -> None:
    """Cancel a trail's Slurm job from its run dir (detached sweeps)."""
    job = _job_from_meta(Path(run_dir))
    if job is not None:
        job.cancel(check=False)


class SlurmBackend:
    """Submits trails as one submitit job array per `submit` call; handles are submitit jobs (rebuildable from
    `<run_dir>/job.json`). Nothing runs in this process, so a sweep may submit and return (detached)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self._run_dirs: Dict[str, Path] = {}
        self._last_sacct = 0.0

    def _executor(self, folder: Path, after_job: Optional[str] = None) -> submitit.AutoExecutor:
        """An executor with the backend's settings; `after_job`: the array submitted with it waits for that job."""
        cfg = self.cfg
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=cfg.max_requeue)
        extra = cast(Dict[str, Any], OmegaConf.to_container(cfg.additional_parameters)) if cfg.additional_parameters \
            else {}
        dependency = after(extra.pop("dependency", None), after_job)
        if dependency:
            extra["dependency"] = dependency
        params: Dict[str, Any] = dict(
            name="harness", timeout_min=int(cfg.time_min), cpus_per_task=int(cfg.cpus_per_task),
            mem_gb=float(cfg.mem_gb), slurm_array_parallelism=int(cfg.array_parallelism),
            slurm_signal_delay_s=int(cfg.signal_delay_s), tasks_per_node=1, nodes=1,
        )
        if cfg.partition:
            params["slurm_partition"] = cfg.partition
        if cfg.gres:
            params["slurm_gres"] = cfg.gres
        if extra:
            params["slurm_additional_parameters"] = extra
        executor.update_parameters(**params)
        return executor

    def submit(self, run_dirs: List[Path]) -> List[submitit.Job]:
        """One job array per MaxArraySize trails, each array after the one before it (see the module's doc)."""
        if not run_dirs:
            return []
        run_dirs = [Path(d).resolve() for d in run_dirs]
        folder = Path(self.cfg.folder) if self.cfg.get("folder") else run_dirs[0].parent / ".submitit"
        for run_dir in run_dirs:  # before sbatch: a job may start (and write "running") within milliseconds
            RunDir(run_dir).record_outcome(TrailState.PENDING, "queued (slurm)", ended=None)
        jobs: List[submitit.Job] = []
        previous: Optional[str] = None
        for chunk in array_chunks(len(run_dirs), max_array_size()):
            executor = self._executor(folder, after_job=previous)
            with executor.batch():
                futures = [executor.submit(TrailJob(str(run_dirs[i]), int(self.cfg.max_requeue))) for i in chunk]
            submitted: List[submitit.Job] = list(futures)
            previous = submitted[0].job_id.split("_")[0]
            now = time.time()
            for i, job in zip(chunk, submitted, strict=True):
                write_json_atomic(run_dirs[i] / JOB_META, {"backend": "slurm", "job_id": job.job_id,
                                                           "folder": str(folder.resolve()), "submitted": now})
                self._run_dirs[job.job_id] = run_dirs[i]
            jobs.extend(submitted)
        return jobs

    def poll(self, handle: submitit.Job) -> TrailState:
        # one sacct call for all of the sweep's jobs at most every SACCT_EVERY_S, however often the sweep polls
        now = time.monotonic()
        if now - self._last_sacct >= SACCT_EVERY_S:
            handle.watcher.update()
            self._last_sacct = now
        return job_state(self._run_dirs[handle.job_id], handle, handle.watcher.get_state(handle.job_id, mode="cache"))

    def cancel(self, handle: submitit.Job) -> None:
        handle.cancel(check=False)

    def cancel_all(self) -> None:
        for run_dir in self._run_dirs.values():
            cancel_run_dir(run_dir)

    def close(self) -> None:
        """Jobs belong to the cluster: closing leaves them running (that is what --detach relies on)."""
