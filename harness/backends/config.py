"""Schemas of the launch backends (backend=local|ray|slurm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class LocalBackendConfig:
    name: str = "local"
    max_parallel: int = 0          # 0: cores // threads per trail


@dataclass
class RayBackendConfig:
    name: str = "ray"
    address: Optional[str] = None  # a running cluster ("auto", "127.0.0.1:6379"); None starts a local head
    num_cpus_per_trail: float = 1.0
    num_gpus_per_trail: float = 0.0
    num_cpus: Optional[int] = None          # for a local head
    object_store_memory: Optional[int] = 200_000_000


@dataclass
class SlurmBackendConfig:
    name: str = "slurm"
    partition: Optional[str] = None
    time_min: int = 60
    cpus_per_task: int = 1
    mem_gb: float = 2.0
    gres: Optional[str] = None
    array_parallelism: int = 64
    max_requeue: int = 3
