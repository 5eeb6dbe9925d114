"""Command-line commands that print: the library modules they call only log (through `logging`) and return data.

Why one module: what a user reads from `harness run`, `status`, `report` and `sync` is decided here, so the
library stays quiet when imported by a script, a notebook or a test; harness/cli.py parses the arguments, sets up
logging once (harness/logs.py) and dispatches here. `harness sweep` prints from harness/orchestration/sweep.py:
its output is the sweep's live display, which follows the order of work that module holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from harness.errors import HarnessError
from harness.store.metrics import EVAL_REWARD, ROLLOUT_REWARD
from harness.store.states import TERMINAL, TrailState
from harness.store.sweepdir import read_sweep_meta, resolve_sweep_dir


def main_run(overrides: List[str], root: Optional[str] = None) -> int:
    """`harness run <overrides>`: one trail in the foreground with a progress bar; a finished trail is not rerun."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from harness.backends.run_one import run_single, single_trail
    from harness.store.rundir import RunDir

    single = single_trail(overrides, root)
    name, run_dir = single.trail.name, single.run_dir
    if RunDir(run_dir).status().state == TrailState.DONE:
        print(f"{name}: already done in {run_dir}")
        return 0
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task(name, total=single.cfg.engine.get("steps") or None, info="")

        def on_step(step: int, total: int, metrics: dict) -> None:
            info = " ".join(f"{k.split('/')[0]}={metrics[k]:.3f}" for k in (EVAL_REWARD, ROLLOUT_REWARD)
                            if isinstance(metrics.get(k), (int, float)))
            progress.update(task, completed=step, total=total, info=info)

        state = run_single(single, on_step=on_step)
    status = RunDir(run_dir).status()
    print(f"{name}: {state} at step {status.step} {status.reason}".rstrip())
    print(f"run directory: {run_dir}")
    return state.exit_code


def main_status(sweep: str, root: str = "runs") -> int:
    """`harness status <sweep>`: the sweep's trail table (plain aligned text for large sweeps)."""
    from harness.orchestration.listing import PLAIN_ABOVE, plain_table
    from harness.orchestration.progress import STATUS_COLUMNS, trail_table
    from harness.orchestration.status import status_rows
    from harness.orchestration.sweep import console

    sweep_dir = resolve_sweep_dir(sweep, root)
    rows = status_rows(sweep_dir)
    meta = read_sweep_meta(sweep_dir)
    title = (f"{meta.get('name', sweep_dir.name)} ({meta.get('backend', '?')}): "
             f"{sum(r['state'] == TrailState.DONE and r['complete'] for r in rows)}/{len(rows)} done")
    if len(rows) > PLAIN_ABOVE:
        console.print(plain_table(rows, title, STATUS_COLUMNS), soft_wrap=True, markup=False, highlight=False)
    else:
        console.print(trail_table(rows, title))
    return 0


def main_report(sweep: str, root: str = "runs", out: Optional[str] = None, source: str = "journal") -> int:
    """`harness report <sweep>`: write the sweep's report (by name under `root`, or a path) and say where. The
    sweep's own report (no `out`) also replaces the one on its MLflow summary run, where it has one, as the sweep's
    end does: what `mlflow ui` shows is the latest report. A report written elsewhere stays there."""
    from harness.report import write_report

    sweep_dir = resolve_sweep_dir(sweep, root)
    path = write_report(sweep_dir, out, source)
    print(f"report: {path}")
    if out is None:
        _attach_report(sweep_dir, path.parent, uri=None)
    return 0


def _attach_report(sweep_dir: Path, report_dir: Path, uri: Optional[str]) -> None:
    """Attach the report to the sweep's MLflow summary run, if it has one, and say so; a copy of the sweep's
    directory changes nothing in MLflow (sweepdir.is_original)."""
    from harness.store.sweepdir import is_original
    from harness.tracking.sweep_run import COPY_NOT_ATTACHED, attach_report

    if read_sweep_meta(sweep_dir).get("mlflow_summaries") and not is_original(sweep_dir):
        print(COPY_NOT_ATTACHED.format(sweep_dir=sweep_dir))
        return

    attached = attach_report(sweep_dir, report_dir, uri=uri)
    if attached:
        print(f"report attached to the sweep's MLflow summary run ({attached} file{'s' * (attached != 1)} under "
              "report/)")


def main_sync(sweep: str, root: str = "runs", uri: Optional[str] = None) -> int:
    """`harness sync <sweep>`: catch MLflow up with the journals and the sweep's report; ends the parent run once
    every trail has ended."""
    from harness.tracking.client import resolve_uri
    from harness.tracking.sweep_run import finish_sweep_run
    from harness.tracking.sync import sync_sweep

    sweep_dir = resolve_sweep_dir(sweep, root)
    results = sync_sweep(sweep_dir, uri=uri)
    if not results:
        raise HarnessError(f"sweep {sweep_dir} has no trails to sync")
    target = resolve_uri(uri) if uri else read_sweep_meta(sweep_dir).get("mlflow_uri")
    for r in results:
        line = f"error: {r.error}" if r.error else f"{r.logged} new values, step {r.synced_step}, {r.status}"
        print(f"{r.run_dir.name}: {line}")
    failed = [r for r in results if r.error]
    _attach_report(sweep_dir, sweep_dir / "report", uri=target)  # e.g. written while MLflow was unreachable
    if not failed and all(r.status in TERMINAL for r in results):
        overall = TrailState.FAILED if any(r.status == TrailState.FAILED for r in results) else TrailState.DONE
        finish_sweep_run(sweep_dir, overall, uri=target)
    print(f"synced {len(results) - len(failed)}/{len(results)} trails to {target or 'each trail config uri'}")
    return 1 if failed else 0
