"""Schema of the AReaL engine's settings (engine=areal): where AReaL lives and how trails map onto it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class AReaLEngineConfig:
    name: str = "areal"
    areal_path: str = "AReaL"              # an AReaL checkout
    python: str = "python3"                # AReaL's own interpreter (its own venv)
    entrypoint: str = "examples/math/gsm8k_rl.py"
    config_grpo: str = "examples/math/gsm8k_grpo.yaml"
    config_m2po: str = "examples/math/gsm8k_m2po.yaml"
    n_nodes: int = 1
    n_gpus_per_node: Optional[int] = None  # default: dx + dy
    total_train_steps: Optional[int] = None
    overrides: List[str] = field(default_factory=list)  # passed through verbatim
