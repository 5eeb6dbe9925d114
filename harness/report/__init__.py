"""`harness report <sweep>`: the markdown trail report (REPORT.md, trails.csv, cells.csv, contrasts.csv, PNGs).

Pipeline: load (journals or MLflow → pandas) → tables → seed roles → contrasts → findings → plots → markdown. Every
number in the report is computed from the two frames that `load` returns, whichever source they came from. Where the
sweep file declared seed roles, findings, cells, comparisons and plots rest on the confirmatory seeds, and the
exploratory ones are reported apart (roles.py); the CSVs carry both, told apart by their `seeds` column.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import List, Optional

import pandas as pd

from harness.errors import naming
from harness.report.contrasts import contrast_frame, contrasts
from harness.report.findings import findings
from harness.report.load import SweepData, load_sweep
from harness.report.markdown import Exploratory, render
from harness.report.plots import captions, write_plots
from harness.report.roles import CONFIRMATORY, EXPLORATORY, role_notes, split_by_role
from harness.report.systems import TIME_COLUMNS, cell_frame, contrast_rows, systems_markdown, systems_part
from harness.report.systems_plots import systems_captions, write_systems_plots
from harness.report.tables import cell_table, trail_table
from harness.store.safe_files import check_directory

REPORT_NAME = "REPORT.md"
log = logging.getLogger(__name__)


def build_report(data: SweepData, out: Path, target: Optional[float] = None) -> Path:
    """Write the report of already-loaded data into `out`; returns the REPORT.md path. `target`: the eval reward
    that 'steps to target' counts to (default: tables.default_target).

    Every file is written into a staging directory inside `out` and renamed into place only once all are written:
    a report that fails (a full disk) leaves the previous report as it was and no partial file, and the error
    names the file it was writing. A file of the report that is a link is replaced, never written through."""
    check_directory(out)
    out.mkdir(parents=True, exist_ok=True)
    _remove_dead_stages(out)
    stage = out / f".report.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        trails = _write_files(data, out, stage, target)
        for written in sorted(stage.iterdir()):
            os.replace(written, out / written.name)
    except OSError as exc:
        if exc.filename is not None and str(stage) in str(exc.filename):
            exc.filename = str(out / Path(exc.filename).name)  # the report's file, not the staging copy
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    path = out / REPORT_NAME
    log.info("report of %s (%d trails, from %s) written to %s", data.name, len(trails), data.source, path)
    return path


def _write_files(data: SweepData, out: Path, stage: Path, target: Optional[float]) -> pd.DataFrame:
    """The report's files, written into `stage` (an OSError names the file of `out` it was writing); returns the
    trail table."""
    trails = trail_table(data, target)
    sets = split_by_role(trails)
    items = contrasts(sets.primary)
    label = CONFIRMATORY if sets.declared else "undeclared"
    exploratory = None
    cells, frames = [cell_table(sets.primary).assign(seeds=label)], [contrast_frame(items).assign(seeds=label)]
    if sets.declared and not sets.exploratory.empty:
        explored = contrasts(sets.exploratory)
        exploratory = Exploratory(sets.exploratory, explored, findings(sets.exploratory, explored))
        cells.append(cell_table(sets.exploratory).assign(seeds=EXPLORATORY))
        frames.append(contrast_frame(explored).assign(seeds=EXPLORATORY))
    for name, frame in (("trails.csv", trails), ("cells.csv", pd.concat(cells, ignore_index=True)),
                        ("contrasts.csv", pd.concat(frames, ignore_index=True))):
        with naming(out / name):
            frame.to_csv(stage / name, index=False)
    metrics = data.metrics[data.metrics["id"].isin(sets.primary["id"])] if sets.declared else data.metrics
    with naming(out):
        plots = {key: path.name for key, path in write_plots(metrics, sets.primary, stage, items).items()}
    with naming(out):
        systems = systems_section(sets.primary, metrics, stage)
    text = render(data.name, data.source, trails, items,
                  [*data.notes, *role_notes(sets), *findings(sets.primary, items)], plots, captions(), sets,
                  exploratory, data.description, systems)
    with naming(out / REPORT_NAME):
        (stage / REPORT_NAME).write_text(text, encoding="utf-8")
    return trails


def _remove_dead_stages(out: Path) -> None:
    """Staging directories of reports whose process was killed mid-way (its PID is gone)."""
    for stage in out.glob(".report.*.tmp"):
        try:
            os.kill(int(stage.name.split(".")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(stage, ignore_errors=True)
        except (ValueError, OSError):
            continue


def systems_section(trails: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> Optional[List[str]]:
    """The systems section (systems.py) of the trails the findings rest on: its CSVs and figures written into
    `out` (the report's staging directory), its markdown lines returned; None where the sweep has no simulated clock
    over several settings."""
    part = systems_part(trails, metrics)
    if part is None:
        return None
    part.table[["trail", "display", "id", "mode", "setting", "stale", "alloc", "rollout", "algo", "seed",
                "state", "target", "budget_s", *TIME_COLUMNS]].to_csv(out / "systems_trails.csv", index=False)
    cell_frame(part).to_csv(out / "systems_cells.csv", index=False)
    contrast_rows(part).to_csv(out / "systems_contrasts.csv", index=False)
    plots = {key: path.name for key, path in write_systems_plots(part, metrics, out).items()}
    return systems_markdown(part, plots, systems_captions())


def write_report(sweep_dir: Path | str, out: Optional[Path | str] = None, source: str = "journal") -> Path:
    """Report of the sweep at `sweep_dir` into `out` (default `<sweep_dir>/report/`)."""
    sweep_dir = Path(sweep_dir)
    data = load_sweep(sweep_dir, source)
    return build_report(data, Path(out) if out else sweep_dir / "report")


__all__ = ["build_report", "systems_section", "write_report"]
