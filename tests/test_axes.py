"""The axes module is the one list of algorithms and variants; it must match the embedded engine's loss registry,
which it mirrors so that composing a sweep never imports torch."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.spec.axes import ALGO_VARIANTS, parse_alloc, staleness_mode


def test_algorithm_variants_match_the_loss_registry() -> None:
    from harness.engines.embedded.losses import LOSSES

    assert {f"{algo}/{v}" for algo, variants in ALGO_VARIANTS.items() for v in variants} == set(LOSSES)


def test_default_variant_is_each_algo_yaml_variant() -> None:
    from omegaconf import OmegaConf

    from harness.spec.resources import CONF_DIR

    for algo, variants in ALGO_VARIANTS.items():
        assert OmegaConf.load(CONF_DIR / "algo" / f"{algo}.yaml").variant == variants[0]


def test_alloc_syntax() -> None:
    assert parse_alloc("d2+d1") == (2, 1)
    with pytest.raises(ConfigError, match="alloc"):
        parse_alloc("d0+d1")


def test_staleness_modes() -> None:
    assert staleness_mode({"name": "areal", "staleness_mode": "fixed"}) == "areal"
    assert staleness_mode({"name": "embedded", "staleness_mode": "fixed"}) == "fixed"
    assert staleness_mode(None) == "unknown"
