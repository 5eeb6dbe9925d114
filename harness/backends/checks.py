"""Semantic checks of the backend sections, run when a trail is composed (before anything is written or launched).

Why here and not at submission: a value that reaches a generated script (Slurm's sbatch file) must be refused
before the sweep exists, and a backend whose library is not installed must be named before sweep.json is written,
not found out by a traceback after it.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Dict, FrozenSet

from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError, HarnessError

# submitit parameters that are not `#SBATCH --key=value` flags (shell lines, or what the harness sets itself):
# never accepted through additional_parameters
NOT_FLAGS = frozenset({"additional_parameters", "setup", "teardown", "srun_args", "use_srun", "stderr_to_stdout",
                       "array_parallelism", "signal_delay_s", "map_count", "command", "folder"})
NO_CONTROL = "text without newlines or other control characters"


def installed(module: str) -> bool:
    """Whether `module` can be imported (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def _require(module: str, backend: str) -> None:
    if not installed(module):
        raise HarnessError(f"backend={backend} needs the '{module}' package, which is not installed "
                           f"(install it with: pip install 'harness[{backend}]')")


def sbatch_flags() -> FrozenSet[str]:
    """The sbatch options submitit writes as `#SBATCH --key=value` lines (its own parameter set)."""
    from harness.internals import sbatch_parameters

    return frozenset(sbatch_parameters()) - NOT_FLAGS


def _plain_text(key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, (dict, list)) or not isinstance(value, (str, int, float, bool)):
        raise ConfigError(key, value, "a string or a number")
    text = str(value)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ConfigError(key, text, NO_CONTROL)


def check_slurm(cfg: DictConfig) -> None:
    """No control characters in any string that reaches the sbatch script; extra options from submitit's set."""
    _require("submitit", "slurm")
    section = cfg.backend
    _plain_text("root", cfg.get("root"))  # the default job folder, <root>/<sweep>/.submitit, is in the script
    for key in ("partition", "gres", "folder"):
        _plain_text(f"backend.{key}", section.get(key))
    if int(section.get("array_parallelism", 1)) < 1:
        raise ConfigError("backend.array_parallelism", section.array_parallelism,
                          "an integer ≥ 1 (trails of the sweep's job arrays running at once)")
    extra: Dict[str, Any] = OmegaConf.to_container(section.additional_parameters) or {}  # type: ignore[assignment]
    allowed = sbatch_flags() if extra else frozenset()  # submitit imported only when there is something to check
    for key, value in extra.items():
        _plain_text("backend.additional_parameters (a key)", key)
        if str(key).replace("-", "_") not in allowed:
            raise ConfigError(f"backend.additional_parameters.{key}", value,
                              f"keys that submitit writes as sbatch options: {', '.join(sorted(allowed))}")
        _plain_text(f"backend.additional_parameters.{key}", value)


WORKER_KINDS = ("warm", "process")


def check_local(cfg: DictConfig) -> None:
    section = cfg.backend
    if section.get("workers", "warm") not in WORKER_KINDS:
        raise ConfigError("backend.workers", section.workers, " | ".join(WORKER_KINDS))
    for key in ("max_parallel", "worker_max_trails"):
        if int(section.get(key, 0) or 0) < 0:
            raise ConfigError(f"backend.{key}", section.get(key), "an integer ≥ 0")


def check_ray(cfg: DictConfig) -> None:
    _require("ray", "ray")
