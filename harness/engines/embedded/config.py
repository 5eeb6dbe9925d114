"""Schema of the embedded CPU engine's settings (engine=embedded). Kept torch-free so config composition stays fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.plugins import EnginePlugin


@dataclass
class ModelConfig:
    """The policy's dimensions: the one definition (the engine's config keys and model.TinyGPT both take it)."""
    n_layer: int = 3
    n_embd: int = 64
    n_head: int = 4
    block_size: int = 96

    @classmethod
    def of(cls, eng: Any) -> ModelConfig:
        """The dimensions of an `engine:` config section."""
        return cls(n_layer=int(eng.n_layer), n_embd=int(eng.n_embd), n_head=int(eng.n_head),
                   block_size=int(eng.block_size))


@dataclass
class EmbeddedEngineConfig:
    name: str = "embedded"
    # staleness protocol: "fixed" (paper: step t trains on the batch of version t - stale) or "async" (AReaL's rule)
    staleness_mode: str = "fixed"
    # The default regime (docs/STUDY.md): a small step (lr 1e-4, on-policy M2 ≈ 3e-4, far below τ = 0.04, as in the
    # paper's regime) and enough steps (800) that a lag of 256 is at full lag for two thirds of the trail.
    steps: int = 800
    batch_prompts: int = 8           # B prompts per step (one AReaL "rollout" = one prompt's group)
    group_size: int = 8              # G samples per prompt
    lr: float = 1e-4
    ppo_n_minibatches: int = 1
    grad_clip: float = 1.0
    temperature: float = 1.0
    max_new_tokens: int = 10
    eval_every: int = 100
    eval_size: int = 512             # problems of each intermediate eval (every eval_every steps)
    final_eval_size: int = 4096      # distinct problems of the final eval at the last step (0: none)
    checkpoint_every: int = 100
    threads: int = 1                 # torch threads per trail
    # task: GSM8K-format word problems; difficulty = number of operations, operands in 1..max_number
    difficulty: int = 2
    max_number: int = 10
    task_seed: int = 0               # fixes the eval set and the base model's data (shared by every trail seed)
    # policy: a character transformer (defaults from ModelConfig)
    n_layer: int = ModelConfig.n_layer
    n_embd: int = ModelConfig.n_embd
    n_head: int = ModelConfig.n_head
    block_size: int = ModelConfig.block_size
    # base model: supervised pretraining until greedy probe accuracy in any answer format >= base_target_acc, cached
    base_seed: int = 0
    base_target_acc: float = 0.3
    base_max_steps: int = 4000
    base_check_every: int = 100
    base_lr: float = 0.003
    base_batch: int = 64
    base_ema: float = 0.0            # > 0: the base model is this moving average of the pretraining weights
    base_format_frac: float = 0.3    # share of pretraining answers in GSM8K's "#### N" format (the rest: "so N")
    cache_dir: str = ""              # "" -> $HARNESS_CACHE_DIR or ~/.cache/harness/base_models
    # the simulated clock (clock.py; both modes): a rollout worker's token rate with s concurrent sequences is
    # r(s) = rollout_worker_tokens_per_s · s / (s + rollout_half_saturation) (0: a constant rate); a trainer's is
    # constant. s_half = 64 is the middle of published vLLM throughput-vs-concurrency fits (clock.py cites them)
    rollout_worker_tokens_per_s: float = 2400.0
    rollout_half_saturation: float = 64.0
    train_worker_tokens_per_s: float = 4000.0


STALENESS_MODES = ("fixed", "async")
POSITIVE_INTS = ("steps", "batch_prompts", "group_size", "ppo_n_minibatches", "max_new_tokens", "eval_every",
                 "eval_size", "checkpoint_every", "threads")


def check_embedded(cfg: Any) -> None:
    """Engine-specific checks that types cannot express (run by harness.spec.validate for engine=embedded)."""
    from harness.errors import ConfigError

    eng = cfg.engine
    if eng.staleness_mode not in STALENESS_MODES:
        raise ConfigError("engine.staleness_mode", eng.staleness_mode, " | ".join(STALENESS_MODES))
    for key in POSITIVE_INTS:
        if not (isinstance(eng[key], int) and not isinstance(eng[key], bool) and eng[key] >= 1):
            raise ConfigError(f"engine.{key}", eng[key], "an integer ≥ 1")
    if not eng.lr > 0:
        raise ConfigError("engine.lr", eng.lr, "a number > 0")
    if eng.batch_prompts % eng.ppo_n_minibatches:
        raise ConfigError("engine.ppo_n_minibatches", eng.ppo_n_minibatches,
                          f"a divisor of engine.batch_prompts={eng.batch_prompts}")
    if eng.n_embd % eng.n_head:
        raise ConfigError("engine.n_head", eng.n_head, f"a divisor of engine.n_embd={eng.n_embd}")
    if not 0.0 <= eng.base_ema < 1.0:
        raise ConfigError("engine.base_ema", eng.base_ema, "a decay in [0, 1) (0: no averaging)")
    if not 0.0 <= eng.base_format_frac <= 1.0:
        raise ConfigError("engine.base_format_frac", eng.base_format_frac, "a fraction in [0, 1]")
    if not (isinstance(eng.final_eval_size, int) and not isinstance(eng.final_eval_size, bool)
            and eng.final_eval_size >= 0):
        raise ConfigError("engine.final_eval_size", eng.final_eval_size, "an integer ≥ 0 (0: no final eval)")
    for key in ("rollout_worker_tokens_per_s", "train_worker_tokens_per_s"):
        if not eng[key] > 0:
            raise ConfigError(f"engine.{key}", eng[key], "a number > 0 (tokens per simulated second)")
    if not eng.rollout_half_saturation >= 0:
        raise ConfigError("engine.rollout_half_saturation", eng.rollout_half_saturation,
                          "a number ≥ 0 (concurrent sequences at half the saturated rate; 0: a constant rate)")
    if eng.difficulty < 1:
        raise ConfigError("engine.difficulty", eng.difficulty, "an integer ≥ 1 (operations per problem)")


# The engine's plug-in record (harness.plugins): the run module imports torch, so it is named, not imported.
PLUGIN = EnginePlugin(name="embedded", schema=EmbeddedEngineConfig, run="harness.engines.embedded.engine:run",
                      check=check_embedded, prepare="harness.engines.embedded.prepare:prepare")
