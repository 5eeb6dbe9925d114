"""The test suite's tiny trail, defined once: an embedded trail that finishes in well under a second on one core.

Its base model (1 layer, width 16, 30 pretraining steps, no accuracy target) is the same for every test that uses
it, so the session's base-model cache ($HARNESS_CACHE_DIR) builds it once. Standard library only: .ci/run
(`python3 tests/tiny_trail.py` prints the engine overrides, one a line) and the benchmarks read it too.
"""

from __future__ import annotations

from typing import Dict, List

# what makes the trail and its base model tiny
ENGINE = (
    "engine.steps=6", "engine.batch_prompts=4", "engine.group_size=4", "engine.eval_every=3", "engine.eval_size=16",
    "engine.final_eval_size=24",
    "engine.checkpoint_every=3", "engine.max_new_tokens=6", "engine.n_layer=1", "engine.n_embd=16",
    "engine.n_head=2", "engine.base_max_steps=30", "engine.base_check_every=30", "engine.base_target_acc=0.0",
)
TINY = (*ENGINE, "tracking=none")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def tiny_trail(*extra: str) -> List[str]:
    """TINY with `extra` laid over it, a later value of a key replacing an earlier one (the harness refuses a key
    given twice)."""
    merged: Dict[str, str] = {}
    for override in (*TINY, *extra):
        merged[_key(override)] = override
    return list(merged.values())


if __name__ == "__main__":
    print("\n".join(ENGINE))
