"""Schema of the AReaL engine's settings (engine=areal): where AReaL lives and how trails map onto it.

Nothing here imports AReaL: AReaL runs in its own Python (its own venv), and the harness only writes its commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import DictConfig

from harness.errors import ConfigError
from harness.plugins import EnginePlugin
from harness.spec.axes import parse_alloc

# AReaL has example configs for these algorithms only; the harness's `is` baseline has no AReaL counterpart.
AREAL_ALGOS = ("grpo", "m2po")
DEVICES = ("gpu", "cpu")
# AReaL's rollout needs an inference server; of the two it supports (sglang, vllm) only vLLM has a CPU build.
CPU_ROLLOUT_BACKENDS = ("vllm",)


@dataclass
class AReaLEngineConfig:
    name: str = "areal"
    areal_path: Optional[str] = "AReaL"    # an AReaL checkout (the command runs there); null: the copy of AReaL
                                           # v1.0.4's GSM8K example that ships with the harness (areal_examples/)
    device: str = "gpu"                    # gpu: AReaL's own command | cpu: with what AReaL needs on a CPU (cpu.py)
    python: str = "python3"                # AReaL's own interpreter (its own venv)
    entrypoint: str = "examples/math/gsm8k_rl.py"
    config_grpo: str = "examples/math/gsm8k_grpo.yaml"   # relative to areal_path, or absolute
    config_m2po: str = "examples/math/gsm8k_m2po.yaml"
    rollout_backend: str = "sglang"        # rollout.backend = <this>:d{x}p1t1
    train_backend: str = "fsdp"            # actor.backend = <this>:d{y}p1t1
    n_nodes: int = 1
    n_gpus_per_node: Optional[int] = None  # default: (dx + dy) / n_nodes
    experiment_name: Optional[str] = None  # default: derived from the sweep name
    total_train_steps: Optional[int] = None
    overrides: List[str] = field(default_factory=list)  # passed through verbatim, after the generated ones
    env: Dict[str, str] = field(default_factory=dict)   # extra environment for AReaL (e.g. SBATCH_PARTITION)
    poll_seconds: float = 10.0             # how often TensorBoard events are read while AReaL runs
    preflight: bool = True                 # validate commands with AReaL's parser before launch (needs `python`)
    preflight_timeout_s: int = 600         # AReaL's parser, all trails in one process (imports take a while)
    timeout_s: Optional[float] = None      # wall-clock limit of one AReaL run; past it AReaL is stopped, trail failed
    startup_timeout_s: float = 600.0       # device=cpu: AReaL's start-up limits (30 to 300 s in AReaL) raised to this
    tiny_task: bool = False                # a tiny random Qwen2, tokenizer and GSM8K-format data, built offline
    cache_dir: str = ""                    # where the tiny task is built; "" -> $HARNESS_CACHE_DIR or ~/.cache/harness


def check_areal(cfg: DictConfig) -> None:
    """Settings whose mistakes would otherwise surface only on the GPU cluster."""
    eng = cfg.engine
    if cfg.algo.name not in AREAL_ALGOS:
        raise ConfigError("algo", cfg.algo.name, f"{' | '.join(AREAL_ALGOS)} with engine=areal")
    x, y = parse_alloc(cfg.alloc)
    if not (isinstance(eng.n_nodes, int) and eng.n_nodes >= 1):
        raise ConfigError("engine.n_nodes", eng.n_nodes, "an integer ≥ 1")
    if eng.device not in DEVICES:
        raise ConfigError("engine.device", eng.device, " | ".join(DEVICES))
    gpus = x + y
    if eng.device == "cpu":
        _check_cpu(cfg)
    elif eng.n_gpus_per_node is None:
        if gpus % eng.n_nodes:
            raise ConfigError("engine.n_nodes", eng.n_nodes,
                              f"a divisor of the {gpus} GPUs that alloc={cfg.alloc} uses")
    elif eng.n_nodes * eng.n_gpus_per_node != gpus:
        raise ConfigError("engine.n_gpus_per_node", eng.n_gpus_per_node,
                          f"n_nodes × n_gpus_per_node = {gpus}, the GPUs of alloc={cfg.alloc} "
                          f"(rollout {x} + train {y})")
    if eng.timeout_s is not None and not eng.timeout_s > 0:
        raise ConfigError("engine.timeout_s", eng.timeout_s, "a number of seconds > 0, or null")
    if eng.total_train_steps is not None and eng.total_train_steps < 1:
        raise ConfigError("engine.total_train_steps", eng.total_train_steps, "an integer ≥ 1, or null")
    if eng.poll_seconds <= 0:
        raise ConfigError("engine.poll_seconds", eng.poll_seconds, "a number > 0")
    for item in eng.overrides:
        if "=" not in str(item) or str(item).startswith("="):
            raise ConfigError("engine.overrides", item, "AReaL overrides of the form key=value (or ++key=value)")


def _check_cpu(cfg: DictConfig) -> None:
    """device=cpu runs on one machine with no GPU: one node, no GPUs per node, a rollout server with a CPU build."""
    eng = cfg.engine
    if eng.rollout_backend not in CPU_ROLLOUT_BACKENDS:
        raise ConfigError("engine.rollout_backend", eng.rollout_backend,
                          f"{' | '.join(CPU_ROLLOUT_BACKENDS)} with engine.device=cpu (no CPU build of the others)")
    if eng.n_nodes != 1:
        raise ConfigError("engine.n_nodes", eng.n_nodes, "1 with engine.device=cpu (AReaL's local scheduler)")
    if eng.n_gpus_per_node not in (None, 0):
        raise ConfigError("engine.n_gpus_per_node", eng.n_gpus_per_node, "null or 0 with engine.device=cpu")
    if not eng.startup_timeout_s > 0:
        raise ConfigError("engine.startup_timeout_s", eng.startup_timeout_s, "a number of seconds > 0")


PLUGIN = EnginePlugin(name="areal", schema=AReaLEngineConfig, run="harness.engines.areal.engine:run",
                      check=check_areal, preflight="harness.engines.areal.preflight:preflight",
                      prepare="harness.engines.areal.tiny_task:prepare",
                      describe="harness.engines.areal.command:describe")
