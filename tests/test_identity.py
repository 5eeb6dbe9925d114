"""A trail's identity is stored once (trail.json's `identity`) and every name is rendered from it, never parsed
back: the trail name, its run dir's slug, its MLflow run name and cell, its params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.spec.identity import TrailIdentity, algo_label, slug
from harness.spec.sweepspec import build_spec, build_trails
from harness.store.rundir import CorruptRecord, RunDir, write_json_atomic
from harness.store.sweepdir import write_sweep_meta, write_trail_meta


def identity(mode: str = "async", shown: tuple = ("alloc", "rollout", "seed"), variant: str = "paper") -> TrailIdentity:
    return TrailIdentity(256, "d2+d1", 96, "m2po", variant, 3, mode, shown)


def test_renderings_follow_the_shown_axes() -> None:
    full = identity()
    assert full.name() == "stale 256 d2+d1 rollout 96 m2po seed 3"
    assert full.slug() == slug(full.name()) == "stale256-d2+d1-rollout96-m2po-seed3"
    assert full.run_name() == "m2po · stale 256 · d2+d1 · rollout 96 · seed 3"
    assert full.run_name(with_seed=False) == "m2po · stale 256 · d2+d1 · rollout 96"
    fixed = identity("fixed", ())
    assert (fixed.name(), fixed.run_name(), fixed.setting()) == ("stale 256 m2po", "m2po · stale 256", "")
    areal = identity("areal", ("alloc", "rollout"), variant="areal")
    assert areal.name() == "stale 256 d2+d1 rollout 96 m2po/areal"
    assert (areal.algo_label, areal.algo_path) == ("m2po/areal", "m2po/areal")
    assert (fixed.algo_label, fixed.algo_path) == ("m2po", "m2po/paper")
    assert algo_label("grpo", "clip") == "grpo" and algo_label("grpo", "decoupled") == "grpo/decoupled"
    assert full.axes() == {"stale": 256, "alloc": "d2+d1", "rollout": 96, "algo": "m2po", "seed": 3}


def test_the_stored_record_reads_back_equal() -> None:
    for each in (identity(), identity("fixed", ("seed",)), identity("areal", ("alloc", "rollout"), "areal")):
        assert TrailIdentity.from_record(json.loads(json.dumps(each.record()))) == each


def test_composed_trails_store_their_identity_and_a_run_dir_renders_it(tmp_path: Path) -> None:
    trails = build_trails(build_spec(["stale=4", "algo=m2po", "algo.variant=areal", "seed=1,2"]))
    for trail in trails:
        write_trail_meta(trail.run_dir(tmp_path), trail, "s")
        record = RunDir(trail.run_dir(tmp_path))
        assert record.identity() == trail.identity
        assert record.meta().name == trail.name == f"stale 4 m2po/areal seed {trail.cfg.seed}"
        stored = json.loads(record.meta_path.read_text())
        assert stored["identity"]["algo"] == "m2po" and stored["identity"]["variant"] == "areal"

    from harness.tracking.metadata import trail_params, trail_run_name, trail_tags
    run_dir = trails[0].run_dir(tmp_path)
    assert trail_run_name(run_dir) == f"m2po/areal · stale 4 · seed {trails[0].cfg.seed}"
    assert trail_tags(run_dir)["harness.cell"] == "m2po/areal · stale 4"
    assert trail_params(run_dir)["algo"] == "m2po/areal"


def test_a_trail_recorded_before_identities_is_named_from_its_axes_and_config(tmp_path: Path) -> None:
    """trail.json without `identity` (an older sweep's): the axes it recorded and its config's algo and mode; the
    axes acting in that mode and the seed are shown."""
    axes = {"stale": 256, "alloc": "d2+d1", "rollout": 96, "algo": "m2po-areal", "seed": 3}
    for mode, expected in [("fixed", "m2po/areal · stale 256 · seed 3"),
                           ("async", "m2po/areal · stale 256 · d2+d1 · rollout 96 · seed 3")]:
        run_dir = tmp_path / mode
        run_dir.mkdir()
        write_json_atomic(run_dir / "trail.json", {"name": "old name", "axes": axes, "engine": "embedded"})
        OmegaConf.save(OmegaConf.create({"engine": {"name": "embedded", "staleness_mode": mode},
                                         "algo": {"name": "m2po", "variant": "areal"}}), run_dir / "config.yaml")
        got = RunDir(run_dir).identity()
        assert got is not None and got.run_name() == expected and got.algo_path == "m2po/areal"
    bare = tmp_path / "bare"
    bare.mkdir()
    write_json_atomic(bare / "trail.json", {"name": "just a name"})
    assert RunDir(bare).identity() is None


def test_a_trail_json_whose_identity_is_not_one_is_named_in_one_line(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "trail.json", {"id": "x", "name": "n", "identity": {"stale": "many"}})
    with pytest.raises(CorruptRecord, match="identity"):
        RunDir(tmp_path).meta()


def test_a_trail_keeps_its_run_dir_when_its_sweep_names_it_otherwise(tmp_path: Path) -> None:
    """Run dirs are found by trail id: rerunning one seed of a two-seed sweep (its name then has no seed) reuses
    the run dir the first run made, never a second one for the same trail."""
    from harness.orchestration.sweep import place

    sweep_dir = tmp_path / "s"
    first = build_trails(build_spec(["stale=4", "seed=1,2"]))
    for trail in first:
        write_trail_meta(trail.run_dir(sweep_dir), trail, "s")
    write_sweep_meta(sweep_dir, name="s", trails=[t.dirname for t in first])
    [again] = build_trails(build_spec(["stale=4", "seed=1"]))
    assert again.name == "stale 4 grpo" and again.dirname != first[0].dirname
    place([again], sweep_dir)
    assert again.dirname == next(t.dirname for t in first if t.id == again.id)


def test_report_cells_are_keyed_by_named_fields(tmp_path: Path) -> None:
    """The report groups trails into cells by a CellKey (mode, setting, stale, algorithm as name/variant), read by
    field, whatever the trails' names."""
    from synthetic_sweeps import engine_config, finish_sweep, write_trail

    from harness.report.load import load_journals
    from harness.report.tables import CellKey, seed_cells, trail_table

    records = [{"step": 1, "time": 1001.0, "eval/reward": 0.5}]
    runs = [write_trail(tmp_path / "s", {"stale": 4, "alloc": "d2+d1", "rollout": 8, "algo": "m2po/areal",
                                         "seed": seed}, records, ended=1002.0,
                        config=engine_config("async", 64, "m2po/areal")) for seed in (1, 2)]
    cells = seed_cells(trail_table(load_journals(finish_sweep(tmp_path / "s", runs))))
    [key] = cells
    assert isinstance(key, CellKey) and key == CellKey("async", "d2+d1 rollout 8", 4, "m2po/areal")
    assert (key.where, key.group.stale) == (("async", "d2+d1 rollout 8"), 4) and len(cells[key]) == 2
