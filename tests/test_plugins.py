"""Engines and backends are plug-ins: the registry holds the built-ins, and a toy engine from the tests directory
runs a whole sweep without any change to the harness package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import plugins
from harness.cli import main
from harness.errors import HarnessError
from harness.spec.compose import compose_trail
from harness.store.journal import read_records
from harness.store.rundir import read_status
from harness.store.sweepdir import trail_dirs

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


def test_registry_holds_the_builtins() -> None:
    assert {"embedded", "areal"} <= set(plugins.engines())
    assert {"local", "ray", "slurm"} <= set(plugins.backends())
    assert [n for n, p in plugins.backends().items() if p.detachable] == ["slurm"]
    with pytest.raises(KeyError, match="unknown engine 'nope'"):
        plugins.engine("nope")


def test_composing_imports_no_engine_or_scheduler() -> None:
    code = ("import sys; from harness.spec.compose import compose_trail; "
            "compose_trail(['engine=areal', 'backend=slurm']);"
            "compose_trail(['backend=ray']); "
            "print(sorted(m for m in ('torch', 'ray', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("layout", ["none", "other group", "dist-info", "egg-info", "egg"])
def test_entry_points_are_those_importlib_metadata_reads(layout: str, tmp_path: Path) -> None:
    """The registry reads importlib.metadata only when some entry_points.txt names the group, and finds then what it
    finds; with none, the same empty answer without it. In a fresh interpreter whose path leads with the layout: no
    entry points handed by a sweep, no distribution finder another library installed (test_a_foreign_...)."""
    declares = "[harness.plugins]\ntoy = toy_engine:PLUGIN\n"
    where = {"other group": ("elsewhere-1.0.dist-info", "[console_scripts]\nx = y:z\n"),
             "dist-info": ("Toy_Plug-1.0.dist-info", declares), "egg-info": ("toy_plug.egg-info", declares),
             "egg": ("toy_plug-1.0-py3.11.egg/EGG-INFO", declares)}
    root = tmp_path / "site"
    root.mkdir()
    if layout in where:
        folder, text = where[layout]
        (root / folder).mkdir(parents=True)
        (root / folder / "entry_points.txt").write_text(text)
        (root / folder / "METADATA").write_text("Name: toy-plug\nVersion: 1.0\n")
    first = root / "toy_plug-1.0-py3.11.egg" if layout == "egg" else root
    code = ("import json, sys; from importlib.metadata import entry_points; from harness import plugins; "
            "g = plugins.ENTRY_POINT_GROUP; "
            "print(json.dumps([plugins._metadata_may_name(g), plugins.entry_point_refs(), "
            "[ep.value for ep in entry_points(group=g)]]))")
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(first), str(REPO)])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    may, found, metadata = json.loads(done.stdout)
    declared = layout in ("dist-info", "egg-info", "egg")
    assert may == declared
    assert found == metadata and ("toy_engine:PLUGIN" in found) == declared


def test_a_foreign_distribution_finder_makes_the_scan_unsure(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a distribution finder other than Python's own on sys.meta_path, the scan cannot see what it finds, so
    importlib.metadata is asked."""
    class Finder:
        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(self, *args: object) -> list:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert plugins._metadata_may_name(plugins.ENTRY_POINT_GROUP)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the toy engine the way a user would: HARNESS_PLUGINS, with its package on the path of every process."""
    monkeypatch.setenv(plugins.ENV_VAR, "toy_engine:PLUGIN")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def test_toy_engine_composes_and_validates(toy: None) -> None:
    cfg = compose_trail(["engine=toy", "engine.steps=5", "tracking=none"])
    assert cfg.engine.name == "toy" and cfg.engine.steps == 5
    with pytest.raises(HarnessError, match="engine.steps"):
        compose_trail(["engine=toy", "engine.steps=0"])
    with pytest.raises(HarnessError, match="unknown key 'engine.stepz'.*diverge_at"):
        compose_trail(["engine=toy", "engine.stepz=3"])


def test_toy_engine_runs_a_sweep(toy: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import toy_engine

    toy_engine.PREPARED.clear()
    root = tmp_path / "runs"
    args = ["sweep", "engine=toy", "stale=1,4", "tracking=none", "--name", "toy", "--root", str(root), "--no-report"]
    assert main(args) == 0
    dirs = trail_dirs(root / "toy")
    assert len(dirs) == 2
    for run_dir in dirs:
        assert read_status(run_dir)["state"] == "done"
        assert [r["step"] for r in read_records(run_dir)] == [1, 2, 3]
    # the engine's prepare ran once, before launch, for the trails to run, and its word was shown
    assert [len(trails) for trails in toy_engine.PREPARED] == [2]
    assert "toy setup: ready for 2 trails" in capsys.readouterr().out
    assert main(args) == 0 and len(toy_engine.PREPARED) == 1, "nothing to run: nothing to prepare"
    assert main([*(a.replace("stale=1,4", "stale=1,4,8") for a in args), "--extend"]) == 0  # a trail joins
    assert [len(trails) for trails in toy_engine.PREPARED] == [2, 1], "only the trails still to run"
    assert main(["sweep", "engine=toy", "stale=99", "tracking=none", "--root", str(root), "--dry-run",
                 "--preflight"]) == 2
    assert main(["sweep", "engine=toy", "stale=99", "tracking=none", "--root", str(root), "--dry-run"]) == 0
    assert len(toy_engine.PREPARED) == 2, "a dry run prepares nothing"


def test_toy_engine_divergence_reaches_the_sweep(toy: None, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert main(["sweep", "engine=toy", "engine.diverge_at=2", "tracking=none", "--name", "toy", "--root", str(root),
                 "--no-report"]) == 1
    (run_dir,) = trail_dirs(root / "toy")
    assert read_status(run_dir)["state"] == "diverged"


@pytest.fixture
def toyq(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "toy_engine:PLUGIN,toy_backend:PLUGIN")
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def test_ctrl_c_on_a_detachable_backend_says_the_jobs_go_on(toyq: None, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import json

    root = tmp_path / "runs"
    args = ["sweep", "engine=toy", "backend=toyq", "stale=1,2", "tracking=none", "--name", "q", "--root", str(root)]
    import toy_engine

    toy_engine.PREPARED.clear()
    assert main([*args, "--no-report"]) == 130
    assert toy_engine.PREPARED == [], "trails that do not run on this machine get nothing prepared here"
    out = " ".join(capsys.readouterr().out.split())
    assert "go on running on toyq" in out and "harness status" in out and "toyq-cancel <id>" in out
    assert json.loads((root / "q" / "sweep.json").read_text())["state"] == "running"  # a TrailState: they go on
    assert main(["status", "q", "--root", str(root)]) == 0
    assert "running" in capsys.readouterr().out  # asked the backend, not the stale status.json


def test_detach_needs_a_detachable_backend(toyq: None, tmp_path: Path) -> None:
    assert main(["sweep", "engine=toy", "tracking=none", "--root", str(tmp_path), "--detach"]) == 2
    assert main(["sweep", "engine=toy", "backend=toyq", "tracking=none", "--root", str(tmp_path), "--detach"]) == 0
