"""The axes module is the one list of algorithms and variants; it must match the embedded engine's loss registry,
which it mirrors so that composing a sweep never imports torch."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.spec.axes import ALGO_VARIANTS, algo_label, parse_alloc, run_name, slug, staleness_mode, trail_name


def test_algorithm_variants_match_the_loss_registry() -> None:
    from harness.engines.embedded.losses import LOSSES

    assert {f"{algo}/{v}" for algo, variants in ALGO_VARIANTS.items() for v in variants} == set(LOSSES)


def test_default_variant_is_each_algo_yaml_variant() -> None:
    from omegaconf import OmegaConf

    from harness.spec.resources import CONF_DIR

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


def test_run_names_lead_with_the_algorithm_and_show_only_acting_axes() -> None:
    assert run_name("async", 256, "d2+d1", 96, "m2po", 1) == "m2po · stale 256 · d2+d1 · rollout 96 · seed 1"
    assert run_name("fixed", 256, "d2+d1", 96, "m2po-areal", 1) == "m2po-areal · stale 256 · seed 1"
    assert run_name("areal", 1, "d4+d4", 32, "grpo") == "grpo · stale 1 · d4+d4 · rollout 32"
    assert staleness_mode({"name": "areal", "staleness_mode": "fixed"}) == "areal"
    assert staleness_mode({"name": "embedded", "staleness_mode": "fixed"}) == "fixed"
    assert staleness_mode(None) == "unknown"


def test_a_trails_mlflow_run_name_follows_its_config(tmp_path) -> None:
    from omegaconf import OmegaConf

    from harness.store.rundir import write_json_atomic
    from harness.tracking.metadata import trail_run_name

    axes = {"stale": 256, "alloc": "d2+d1", "rollout": 96, "algo": "m2po", "seed": 3}
    for mode, with_seed, expected in [("fixed", True, "m2po · stale 256 · seed 3"),
                                      ("async", False, "m2po · stale 256 · d2+d1 · rollout 96")]:
        run_dir = tmp_path / mode
        run_dir.mkdir()
        name = trail_name(256, "d2+d1", 96, "m2po", seed=3 if with_seed else None)
        write_json_atomic(run_dir / "trail.json", {"name": name, "axes": axes, "engine": "embedded"})
        OmegaConf.save(OmegaConf.create({"engine": {"name": "embedded", "staleness_mode": mode}}),
                       run_dir / "config.yaml")
        assert trail_run_name(run_dir) == expected
