"""Schema of the embedded CPU engine's settings (engine=embedded). Kept torch-free so config composition stays fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EmbeddedEngineConfig:
    name: str = "embedded"
    # staleness protocol: "fixed" (paper: step t trains on the batch of version t - stale) or "async" (AReaL's rule)
    staleness_mode: str = "fixed"
    steps: int = 300
    batch_prompts: int = 32          # B prompts per step (one AReaL "rollout" = one prompt's group)
    group_size: int = 8              # G samples per prompt
    lr: float = 1e-3
    ppo_n_minibatches: int = 1
    grad_clip: float = 1.0
    temperature: float = 1.0
    max_new_tokens: int = 12
    eval_every: int = 25
    eval_size: int = 256
    checkpoint_every: int = 50
    threads: int = 1                 # torch threads per trail
    difficulty: int = 2
    # async mode: simulated clock, tokens per second of each worker
    rollout_worker_tokens_per_s: float = 2000.0
    train_worker_tokens_per_s: float = 4000.0
