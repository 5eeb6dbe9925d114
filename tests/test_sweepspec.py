"""Hydra's override grammar → the trail set; trail naming and identity."""

from __future__ import annotations

from pathlib import Path

from harness.spec.compose import compose_trail
from harness.spec.sweepspec import build_spec, build_trails, expand
from harness.spec.trails import trail_id


def names(args):
    return sorted(t.name for t in build_trails(build_spec(args)))


def test_comma_lists_make_the_cartesian_product():
    assert names(["stale=1,64,256", "algo=grpo,m2po"]) == sorted(
        f"stale {s} {a}" for s in (1, 64, 256) for a in ("grpo", "m2po"))


def test_range_and_choice():
    spec = build_spec(["stale=range(0,257,128)", "seed=choice(1,2)"])
    jobs = expand(spec)
    assert sorted(jobs) == sorted([f"stale={s}", f"seed={d}"] for s in (0, 128, 256) for d in (1, 2))
    trails = build_trails(spec)
    assert len(trails) == 6
    assert all(t.name.endswith(f"seed {t.cfg.seed}") for t in trails), "several seeds → seed in the name"


def test_glob_over_a_config_group():
    assert sorted({t.cfg.algo.name for t in build_trails(build_spec(["algo=glob(*)"]))}) == ["grpo", "is", "m2po"]


def test_alloc_sweep_with_plus_in_values():
    trails = build_trails(build_spec(["alloc=d2+d1,d1+d2"]))
    assert sorted(t.cfg.alloc for t in trails) == ["d1+d2", "d2+d1"]


def test_sweep_file_and_command_line_override_it():
    spec = build_spec(["demo", "stale=1,256"])
    assert spec.name == "demo"
    assert sorted({t.cfg.stale for t in build_trails(spec)}) == [1, 256]


def test_shipped_sweeps():
    assert len(build_trails(build_spec(["demo"]))) == 3 * 5
    areal = sorted(t.name for t in build_trails(build_spec(["areal_m2po_page"])))
    assert areal == sorted(["stale 256 d2+d1 rollout 96 grpo/decoupled", "stale 256 d2+d1 rollout 96 m2po/areal",
                            "stale 256 d1+d2 rollout 64 m2po/areal", "stale 32 d1+d2 rollout 64 m2po/areal"])
    assert len(build_trails(build_spec(["paper_staleness"]))) == 4 * 2 * 3


def test_duplicate_trails_collapse():
    assert len(build_trails(build_spec(["stale=1,1,2"]))) == 2


def test_trail_names_show_the_acting_axes_and_those_the_sweep_varies():
    """AReaL's rule in async mode; in fixed mode (the embedded default) dx+dy and the rollout cap do not act and are
    left out, unless the sweep's trails differ in them; the seed where the sweep has several; a variant other than
    the algorithm's default as name/variant. Each name is rendered from the identity stored with the trail."""
    def names(*overrides: str) -> list:
        return sorted(t.name for t in build_trails(build_spec(list(overrides))))

    assert names("stale=256", "alloc=d2+d1", "rollout=96", "algo=m2po", "engine.staleness_mode=async") == \
        ["stale 256 d2+d1 rollout 96 m2po"]
    assert names("stale=256", "algo=m2po", "seed=1,2") == ["stale 256 m2po seed 1", "stale 256 m2po seed 2"]
    assert names("stale=256", "algo=m2po", "alloc=d2+d1,d1+d2") == ["stale 256 d1+d2 m2po", "stale 256 d2+d1 m2po"]
    assert names("algo=m2po", "algo.variant=areal", "stale=4") == ["stale 4 m2po/areal"]
    [trail] = build_trails(build_spec(["stale=256", "alloc=d2+d1", "rollout=96", "algo=m2po",
                                       "engine.staleness_mode=async"]))
    assert trail.dirname == f"stale256-d2+d1-rollout96-m2po-{trail.id[:12]}"
    assert trail.identity.run_name() == "m2po · stale 256 · d2+d1 · rollout 96"


def test_trail_id_is_stable_and_ignores_where_it_runs():
    a = compose_trail(["stale=64", "algo=m2po"])
    b = compose_trail(["algo=m2po", "stale=64", "backend=slurm", "tracking=none", "root=/elsewhere"])
    c = compose_trail(["stale=64", "algo=m2po", "seed=2"])
    assert trail_id(a) == trail_id(b)
    assert trail_id(a) != trail_id(c)
    assert len(trail_id(a)) == 16


def test_run_dir_is_under_the_sweep(tmp_path: Path):
    (trail,) = build_trails(build_spec(["stale=256", "algo=m2po"]))
    assert trail.run_dir(tmp_path).parent == tmp_path
    assert trail.run_dir(tmp_path).name.startswith("stale256-m2po-")
