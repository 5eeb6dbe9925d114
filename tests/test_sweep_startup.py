"""A sweep does before its first trail only what that trail needs, and at its end only what has something to say:
the sweep process imports no library its trails' work does not call for, and the end-of-sweep report is skipped
where it would say nothing new."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import plugins
from harness.orchestration.sweep import REPORT_FILE, report_skipped
from harness.store.journal import JOURNAL_NAME, LINE_READ_BUDGET, missing_steps

TESTS_DIR = Path(__file__).resolve().parent
HEAVY = ("pyarrow", "pandas", "numpy", "scipy", "matplotlib", "mlflow", "torch", "ray", "submitit")


def _sweep_in_a_process(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    """Run `harness sweep ARGS` of the toy engine in a fresh Python; the heavy modules it imported, and its output."""
    code = (f"import sys; from harness.cli import main; rc = main({['sweep', 'engine=toy', *args]!r}); "
            f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules)); sys.exit(rc)")
    env = dict(os.environ, **{plugins.ENV_VAR: "toy_engine:PLUGIN"},
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("LOADED ")]
    return json.loads(line[len("LOADED "):].replace("'", '"')), done.stdout


def test_a_sweep_of_toy_trails_imports_no_heavy_library(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    loaded, out = _sweep_in_a_process(tmp_path, "stale=1,2", "tracking=none", "--no-report", "--name", "two",
                                      "--root", str(root))
    assert loaded == [], f"the sweep process imported {loaded}"
    loaded, out = _sweep_in_a_process(tmp_path, "tracking=none", "--name", "one", "--root", str(root))
    assert loaded == [], f"a single trail's sweep imported {loaded}"
    assert f"report: not written: a single trail (`harness report {root / 'one'}` writes it)" in out, out
    assert not (root / "one" / REPORT_FILE).exists()


# What a one-trail local sweep with tracking off (the start-up the peer benchmark times) imports for nothing it does
IDLE_ON_THAT_PATH = ("importlib.metadata", "sqlite3", "harness.tracking.client", "harness.tracking.tracker",
                     "harness.report", "rich.live")


def test_a_local_sweep_with_tracking_off_starts_on_what_it_uses(tmp_path: Path) -> None:
    """The sweep process: no tracking client or tracker, no report package, no live table off a terminal, no
    importlib.metadata (no installed plug-in declares the entry-point group), and only the schemas of the options
    its trail selects built (harness.internals.store_lazily); the warm worker, before its first trail: OmegaConf
    and the harness's own modules, not Hydra nor rich."""
    code = ("import sys; from harness.cli import main; from harness import internals; built = []; "
            "real = internals._structured.__wrapped__; "
            "internals._structured = lambda schema: built.append(schema.__name__) or real(schema); "
            f"rc = main(['sweep', 'engine=toy', 'tracking=none', '--no-report', '--name', 'one', '--root', "
            f"{str(tmp_path / 'runs')!r}]); "
            f"print('LOADED', sorted(m for m in {(*HEAVY, *IDLE_ON_THAT_PATH)!r} if m in sys.modules)); "
            "print('BUILT', sorted(set(built))); sys.exit(rc)")
    env = dict(os.environ, **{plugins.ENV_VAR: "toy_engine:PLUGIN"},
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(ln.split(" ", 1) for ln in done.stdout.splitlines() if ln.startswith(("LOADED ", "BUILT ")))
    assert lines["LOADED"] == "[]", f"the sweep process imported {lines['LOADED']}"
    assert lines["BUILT"] == str(sorted(["HarnessConfig", "AlgoConfig", "TrackingConfig", "ToyEngineConfig",
                                         "LocalBackendConfig"])), lines["BUILT"]

    code = ("import sys; from harness.backends import worker; worker._settle(); "
            "print(sorted(m for m in ('hydra', 'rich', 'importlib.metadata', *" + repr(HEAVY) + ") "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"a warm worker imported {done.stdout.strip()} before its first trail"


def _trail(sweep_dir: Path, name: str, steps: int = 3) -> Path:
    run_dir = sweep_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"state": "done", "step": steps}))
    (run_dir / JOURNAL_NAME).write_text("".join(json.dumps({"step": s, "x": 1.0}) + "\n"
                                                for s in range(1, steps + 1)))
    return run_dir


def _age(*paths: Path, seconds: float = 60.0) -> None:
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def test_the_report_is_skipped_where_it_would_say_nothing_new(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    a, b = _trail(sweep_dir, "a"), _trail(sweep_dir, "b")
    assert report_skipped(sweep_dir, [a]) is not None, "a single trail: nothing to compare"
    assert report_skipped(sweep_dir, [a, b]) is None, "no report yet"
    report = sweep_dir / REPORT_FILE
    report.parent.mkdir()
    report.write_text("# report\n")
    _age(*(d / f for d in (a, b) for f in ("status.json", JOURNAL_NAME)))
    assert "unchanged" in (report_skipped(sweep_dir, [a, b]) or ""), "newer than every trail: the same report"
    (b / JOURNAL_NAME).write_text((b / JOURNAL_NAME).read_text() + json.dumps({"step": 4, "x": 1.0}) + "\n")
    assert report_skipped(sweep_dir, [a, b]) is None, "a trail's journal changed since"
    _age(b / JOURNAL_NAME)
    (a / "status.json").write_text(json.dumps({"state": "failed"}))
    assert report_skipped(sweep_dir, [a, b]) is None, "a trail's status changed since"


@pytest.mark.parametrize("journal", [
    "".join(json.dumps({"step": s, "x": 0.5}) + "\n" for s in (1, 2, 4, 5)),
    '{"step": 1, "x": 1}\n{"step": 2, "x": "nan"}\nnot json\n{"step": 3, "x": 1}\n',
    '{"step": 1, "x": 1}\n{"step": 2, "x": 2}\n{"step": 3, "x"',
])
def test_missing_steps_reads_the_same_line_by_line_and_column_wise(journal: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / JOURNAL_NAME).write_text(journal)
    monkeypatch.setattr("harness.store.journal._line_read", [0])
    by_line = missing_steps(tmp_path, 5)
    monkeypatch.setattr("harness.store.journal._line_read", [LINE_READ_BUDGET])  # budget spent: pyarrow reads it
    assert missing_steps(tmp_path, 5) == by_line
