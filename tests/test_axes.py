"""The axes module is the one list of algorithms and variants; it must match the embedded engine's loss registry,
which it mirrors so that composing a sweep never imports torch."""

from __future__ import annotations

import pytest

from harness.axes import ALGO_VARIANTS, algo_label, parse_alloc, slug, trail_name
from harness.errors import ConfigError


def test_algorithm_variants_match_the_loss_registry() -> None:
    from harness.engines.embedded.losses import LOSSES

    assert {f"{algo}/{v}" for algo, variants in ALGO_VARIANTS.items() for v in variants} == set(LOSSES)


def test_default_variant_is_each_algo_yaml_variant() -> None:
    from omegaconf import OmegaConf

    from harness.resources import CONF_DIR

    for algo, variants in ALGO_VARIANTS.items():
        assert OmegaConf.load(CONF_DIR / "algo" / f"{algo}.yaml").variant == variants[0]


def test_name_rule() -> None:
    assert algo_label("m2po", "paper") == "m2po" and algo_label("m2po", "areal") == "m2po-areal"
    name = trail_name(256, "d2+d1", 96, "m2po", seed=3)
    assert name == "stale 256 d2+d1 rollout 96 m2po seed 3"
    assert slug(name) == "stale256-d2+d1-rollout96-m2po-seed3"
    assert parse_alloc("d2+d1") == (2, 1)
    with pytest.raises(ConfigError, match="alloc"):
        parse_alloc("d0+d1")
