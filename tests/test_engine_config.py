"""The embedded engine's settings: schema and conf/engine/embedded.yaml agree, and bad values fail at composition."""

from __future__ import annotations

import dataclasses

import pytest

from harness.engines.embedded.config import EmbeddedEngineConfig
from harness.errors import HarnessError
from harness.spec.compose import compose_trail


def test_yaml_repeats_the_schema_defaults() -> None:
    composed = compose_trail(["tracking=none"]).engine
    defaults = dataclasses.asdict(EmbeddedEngineConfig())
    assert {k: composed[k] for k in defaults} == defaults


@pytest.mark.parametrize("override,key", [
    ("engine.n_head=5", "engine.n_head"),
    ("engine.base_format_frac=1.5", "engine.base_format_frac"),
    ("engine.base_ema=1.0", "engine.base_ema"),
    ("engine.difficulty=0", "engine.difficulty"),
    ("engine.staleness_mode=lagged", "engine.staleness_mode"),
    ("engine.rollout_half_saturation=-1", "engine.rollout_half_saturation"),
    ("engine.rollout_worker_tokens_per_s=0", "engine.rollout_worker_tokens_per_s"),
    ("engine.train_worker_tokens_per_s=-5", "engine.train_worker_tokens_per_s"),
])
def test_bad_engine_values_fail_at_composition(override: str, key: str) -> None:
    with pytest.raises(HarnessError, match=key.replace(".", r"\.")):
        compose_trail(["tracking=none", override])
