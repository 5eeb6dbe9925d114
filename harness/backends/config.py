"""Schemas and plug-in records of the launch backends (backend=local|ray|slurm).

Kept free of ray and submitit: the records name each backend's module, imported only when a sweep launches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from harness.backends.checks import check_local, check_ray, check_slurm
from harness.plugins import BackendPlugin


@dataclass
class LocalBackendConfig:
    name: str = "local"
    max_parallel: int = 0          # 0: cores // threads per trail
    workers: str = "warm"          # warm: workers that run trail after trail | process: a fresh process per trail
    worker_max_trails: int = 0     # warm: a worker is replaced after this many trails (0: never)


@dataclass
class RayBackendConfig:
    name: str = "ray"
    address: Optional[str] = None  # a running cluster ("auto", "127.0.0.1:6379"); None starts a local head
    num_cpus_per_trail: float = 1.0
    num_gpus_per_trail: float = 0.0
    num_cpus: Optional[int] = None          # for a local head
    object_store_memory: Optional[int] = 200_000_000
    # RAY_AUTH_MODE for the client ("disabled" | "token"); None leaves the environment as it is. Ray 2.60 turns
    # token auth on by default, so a client of a `ray start --head` cluster must use the mode the head was started in.
    auth_mode: Optional[str] = None


@dataclass
class SlurmBackendConfig:
    name: str = "slurm"
    partition: Optional[str] = None
    time_min: int = 60                      # submitit timeout_min (sbatch --time)
    cpus_per_task: int = 1
    mem_gb: float = 2.0
    gres: Optional[str] = None              # e.g. "gpu:1"
    array_parallelism: int = 64             # trails of one job array running at once
    max_requeue: int = 3                    # requeues after preemption or timeout before a trail is marked failed
    folder: Optional[str] = None            # submitit's job folder; None: <sweep dir>/.submitit
    signal_delay_s: int = 90                # USR2 this long before the time limit, so the trail is requeued in time
    additional_parameters: Dict[str, Any] = field(default_factory=dict)  # any other sbatch option (account, qos…)


LOCAL = BackendPlugin(name="local", schema=LocalBackendConfig, factory="harness.backends.local:LocalBackend",
                      check=check_local, same_host=True)
RAY = BackendPlugin(name="ray", schema=RayBackendConfig, factory="harness.backends.ray_backend:RayBackend",
                    check=check_ray)
SLURM = BackendPlugin(name="slurm", schema=SlurmBackendConfig, factory="harness.backends.slurm:SlurmBackend",
                      detachable=True, poll_detached="harness.backends.slurm:poll_from_run_dir",
                      cancel_hint="scancel <job id> (each trail's job id is in its job.json)", check=check_slurm)
