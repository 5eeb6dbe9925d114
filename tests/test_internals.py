"""Each private Hydra or submitit symbol the harness calls still does what harness.internals relies on, with the
installed versions; when a release moves one, the failure names the library, its version and the symbol."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from harness import internals
from harness.internals import LibraryInternalMoved
from harness.spec.resources import CONF_DIR


@pytest.fixture(autouse=True)
def _fresh_lookups():
    internals.internal.cache_clear()  # a symbol removed by one test is looked up again by the next
    yield
    internals.internal.cache_clear()


def test_apply_overrides_to_config_sets_adds_and_deletes() -> None:
    cfg = OmegaConf.create({"stale": 1, "engine": {"steps": 10, "lr": 0.1}})
    OmegaConf.set_struct(cfg, True)
    parsed = OverridesParser.create().parse_overrides(["stale=256", "engine.steps=3", "+engine.extra=x",
                                                       "~engine.lr"])
    internals.apply_overrides_to_config(parsed, cfg)
    assert OmegaConf.to_container(cfg) == {"stale": 256, "engine": {"steps": 3, "extra": "x"}}


def test_config_loader_lets_glob_list_a_config_group() -> None:
    parser = OverridesParser.create(config_loader=internals.config_loader(CONF_DIR))
    (override,) = parser.parse_overrides(["algo=glob(*)"])
    listed = sorted(override.sweep_string_iterator())
    assert listed == sorted(p.stem for p in (CONF_DIR / "algo").glob("*.yaml")) and "m2po" in listed


def test_config_repository_tells_config_groups_from_keys(monkeypatch) -> None:
    from hydra.core.global_hydra import GlobalHydra

    from harness.spec.compose import Composer

    with Composer():
        repository = internals.config_repository()
        assert repository.group_exists("algo") and repository.group_exists("engine")
        assert not repository.group_exists("stale")
        monkeypatch.delattr(GlobalHydra.instance().config_loader(), "repository")
        with pytest.raises(LibraryInternalMoved, match=r"hydra-core [\d.]+: .*ConfigLoaderImpl has no "
                                                       r"repository.group_exists"):
            internals.config_repository()


def test_split_sweep_is_the_cartesian_product() -> None:
    parsed = OverridesParser.create().parse_overrides(["stale=1,64", "algo=grpo,m2po", "seed=3"])
    assert internals.split_sweep(parsed) == [
        ["stale=1", "algo=grpo", "seed=3"], ["stale=1", "algo=m2po", "seed=3"],
        ["stale=64", "algo=grpo", "seed=3"], ["stale=64", "algo=m2po", "seed=3"]]


def test_sbatch_parameters_are_submitit_update_parameters() -> None:
    pytest.importorskip("submitit")
    parameters = internals.sbatch_parameters()
    assert {"partition", "gres", "time", "mem", "cpus_per_task", "setup"} <= set(parameters)
    assert parameters["partition"] is None


def test_job_outcome_reads_what_a_submitit_job_writes(tmp_path: Path) -> None:
    """A job that raises, run by submitit's own local executor: its result pickle says error + the traceback."""
    submitit = pytest.importorskip("submitit")
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=1)
    job = executor.submit(int, "not a number")
    with pytest.raises(Exception, match="not a number"):
        job.result()
    outcome, payload = internals.job_outcome(job.paths.result_pickle)
    assert outcome == "error" and "ValueError: invalid literal for int()" in str(payload)
    from harness.backends.slurm import _job_error  # what a failed Slurm trail records as its reason

    assert _job_error(job).startswith("ValueError: invalid literal for int()")


def test_a_failed_slurm_trail_records_a_moved_result_reader(tmp_path: Path, monkeypatch) -> None:
    """Said in the trail's failure reason, not raised into the polling of the whole sweep."""
    utils = pytest.importorskip("submitit.core.utils")
    from harness.backends.slurm import _job_error

    monkeypatch.delattr(utils, "pickle_load")
    fake_slurm_job = SimpleNamespace(paths=SimpleNamespace(result_pickle=tmp_path / "result.pkl"))
    assert "has no submitit.core.utils.pickle_load" in _job_error(fake_slurm_job)


def test_job_outcome_refuses_an_unknown_layout(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    path = tmp_path / "result.pkl"
    path.write_bytes(pickle.dumps({"state": "error"}))
    with pytest.raises(LibraryInternalMoved, match=r"submitit \d.*\(outcome, payload\)"):
        internals.job_outcome(path)


@pytest.mark.parametrize("call,module,owner,name", [
    (lambda: internals.apply_overrides_to_config([], OmegaConf.create()), "hydra._internal.config_loader_impl",
     "ConfigLoaderImpl", "_apply_overrides_to_config"),
    (lambda: internals.config_loader(CONF_DIR), "hydra._internal.config_search_path_impl", None,
     "ConfigSearchPathImpl"),
    (lambda: internals.config_loader(CONF_DIR), "hydra._internal.config_loader_impl", None, "ConfigLoaderImpl"),
    (lambda: internals.split_sweep([]), "hydra._internal.core_plugins.basic_sweeper", "BasicSweeper",
     "split_arguments"),
    (lambda: internals.sbatch_parameters(), "submitit.slurm.slurm", None, "_get_default_parameters"),
    (lambda: internals.job_outcome(Path("x")), "submitit.core.utils", None, "pickle_load"),
], ids=["apply_overrides", "search_path", "config_loader", "split_arguments", "sbatch_parameters", "pickle_load"])
def test_a_moved_symbol_is_named_with_the_library_version(call, module, owner, name, monkeypatch) -> None:
    """What an upgrade that moves the symbol looks like: the error names the library, its version and the symbol."""
    import importlib

    pytest.importorskip(module.split(".")[0])
    target = importlib.import_module(module)
    monkeypatch.delattr(getattr(target, owner) if owner else target, name)
    with pytest.raises(LibraryInternalMoved) as info:
        call()
    dist = internals.DISTRIBUTIONS[module.split(".")[0]]
    from importlib.metadata import version

    qualname = f"{owner}.{name}" if owner else name
    assert f"{dist} {version(dist)} has no {module}.{qualname}" in str(info.value)


def test_a_changed_signature_is_named(monkeypatch) -> None:
    from hydra._internal.core_plugins import basic_sweeper

    monkeypatch.setattr(basic_sweeper.BasicSweeper, "split_arguments", staticmethod(lambda overrides, batch: []))
    with pytest.raises(LibraryInternalMoved, match=r"hydra-core [\d.]+: .*split_arguments has no parameter "
                                                   r"'max_batch_size'"):
        internals.split_sweep([])


def test_a_lazily_stored_schema_loads_as_a_stored_one_and_is_built_when_read(monkeypatch) -> None:
    from dataclasses import dataclass

    from hydra.core.config_store import ConfigStore

    @dataclass
    class Probe:
        steps: int = 3
        name: str = "probe"

    store = ConfigStore.instance()
    monkeypatch.setattr(store, "repo", {})
    store.store(group="engine", name="eager_schema", node=Probe)
    internals._structured.cache_clear()
    internals.store_lazily("engine", "lazy_schema", Probe)
    assert internals._structured.cache_info().misses == 0, "built when stored"
    assert store.list("engine") == ["eager_schema.yaml", "lazy_schema.yaml"]
    eager, lazy = store.load("engine/eager_schema.yaml"), store.load("engine/lazy_schema.yaml")
    assert (lazy.name, lazy.group, lazy.package, lazy.provider) == ("lazy_schema.yaml", "engine", None, None)
    assert (eager.group, eager.package, eager.provider) == ("engine", None, None)
    assert OmegaConf.to_container(lazy.node) == OmegaConf.to_container(eager.node) == {"steps": 3, "name": "probe"}
    assert OmegaConf.get_type(lazy.node) is Probe
    lazy.node.steps = 9  # a load is a copy: the store's record is untouched
    assert store.load("engine/lazy_schema.yaml").node.steps == 3
    assert internals._structured.cache_info().misses == 1


def test_a_moved_config_store_is_named(monkeypatch) -> None:
    from hydra.core.config_store import ConfigStore

    monkeypatch.setattr(ConfigStore.instance(), "repo", None)
    with pytest.raises(LibraryInternalMoved, match=r"hydra-core [\d.]+: .*ConfigStore has no repo"):
        internals.store_lazily(None, "x_schema", dict)
