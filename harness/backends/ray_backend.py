"""Ray backend: one Ray task per trail, each with its own CPU/GPU request, on a running cluster or a local head.

Ray does the scheduling; this layer only maps trails to tasks and task outcomes to trail states. The task runs
`harness.backends.runner.run_trail_dir`, which records the trail's own outcome in its run dir; what only Ray knows
(still queued, worker crashed, cancelled) is added here and written back to status.json so `harness status` sees it. """

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig

from harness.store.rundir import RunDir
from harness.store.states import TERMINAL, TrailState

FORWARDED_PREFIXES = ("HARNESS_", "MLFLOW_")


def _run_trail(run_dir: str) -> str:
    """The Ray task body (module-level so workers import it by name rather than unpickling a closure). The trail
    records the Ray node it runs on (`node` in status.json: the node id). A trail that another live process is
    running is left to it: its state is returned as recorded (never terminal, so the sweep counts it as not finished)
    and nothing is written."""
    import ray

    from harness.backends.runner import run_trail_dir
    from harness.store.locks import LockHeld

    try:
        return run_trail_dir(run_dir, node=ray.get_runtime_context().get_node_id())
    except LockHeld:
        return RunDir(run_dir).status().state.value


def forwarded_env() -> Dict[str, str]:
    """The harness's own settings (HARNESS_*, MLFLOW_*) from this process. Workers of a running cluster inherit
    the environment of `ray start`, not ours; the local and Slurm backends pass ours on, so Ray does too."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}


@dataclass
class RayHandle:
    run_dir: Path
    ref: Any = field(repr=False)
    submitted: float = 0.0
    state: Optional[TrailState] = None   # set once final


class RayBackend:
    """Trails as Ray tasks: `num_cpus_per_trail`/`num_gpus_per_trail` each; `close()` ends only what it started."""

    def __init__(self, cfg: DictConfig):
        import ray

        self.cfg = cfg
        self._ray = ray
        self._owns_connection = False
        self._handles: List[RayHandle] = []
        if cfg.get("auth_mode"):
            os.environ["RAY_AUTH_MODE"] = str(cfg.auth_mode)
        if not ray.is_initialized():
            if cfg.address:
                ray.init(address=cfg.address, log_to_driver=False)
            else:
                # address="local": a new head even if RAY_ADDRESS points at a cluster
                ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=False, log_to_driver=False,
                         object_store_memory=cfg.object_store_memory)
            self._owns_connection = True
        # max_retries=0: a trail resumes from its own checkpoint when the sweep is run again; a silent retry
        # would hide a crashed worker. The trail's threads are the engine's business (engine.threads).
        self._task = ray.remote(_run_trail).options(
            num_cpus=float(cfg.num_cpus_per_trail), num_gpus=float(cfg.num_gpus_per_trail), max_retries=0,
            name="harness-trail", runtime_env={"env_vars": forwarded_env()})

    def submit(self, run_dirs: List[Path]) -> List[RayHandle]:
        # absolute paths: a worker's working directory is Ray's session dir, not ours
        now = time.time()
        handles = [RayHandle(Path(d).resolve(), self._task.remote(str(Path(d).resolve())), now) for d in run_dirs]
        self._handles.extend(handles)
        return handles

    def poll(self, handle: RayHandle) -> TrailState:
        if handle.state is not None:
            return handle.state
        ready, _ = self._ray.wait([handle.ref], timeout=0)
        if not ready:
            status = RunDir(handle.run_dir).status()
            running = status.state == TrailState.RUNNING and (status.started or 0.0) >= handle.submitted
            return TrailState.RUNNING if running else TrailState.PENDING
        handle.state = self._outcome(handle)
        return handle.state

    def wait(self, timeout: float) -> None:
        """Return as soon as a trail's task ends, or after `timeout` s (a trail's start is read from its status at
        the next poll)."""
        refs = [h.ref for h in self._handles if h.state is None]
        if refs:
            self._ray.wait(refs, num_returns=1, timeout=timeout)
        else:
            time.sleep(timeout)

    def _outcome(self, handle: RayHandle) -> TrailState:
        exceptions = self._ray.exceptions
        try:
            state = self._ray.get(handle.ref)
        except exceptions.TaskCancelledError:
            RunDir(handle.run_dir).record_outcome(TrailState.CANCELLED, "cancelled (ray)")
            return TrailState.CANCELLED
        except exceptions.RayError as exc:  # worker crashed, node lost, out of memory, …
            reason = f"ray: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            RunDir(handle.run_dir).record_outcome(TrailState.FAILED, reason)
            return TrailState.FAILED
        return TrailState(state) if state in TERMINAL else TrailState.FAILED

    def cancel(self, handle: RayHandle) -> None:
        if handle.state is not None:
            return
        ready, _ = self._ray.wait([handle.ref], timeout=0)
        if ready:  # finished before the cancel arrived: keep its real outcome
            handle.state = self._outcome(handle)
            return
        self._ray.cancel(handle.ref, force=True)
        handle.state = TrailState.CANCELLED
        RunDir(handle.run_dir).record_outcome(handle.state, "cancelled (ray)")

    def cancel_all(self) -> None:
        for handle in self._handles:
            self.cancel(handle)

    def close(self) -> None:
        """Ends the local head this backend started (and the tasks on it); a running cluster is left as it is."""
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_connection = False
