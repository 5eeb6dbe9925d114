"""`harness report <sweep>`: the markdown trail report (REPORT.md, trails.csv, cells.csv, contrasts.csv, PNGs).

Pipeline: load (journals or MLflow → pandas) → tables → contrasts → findings → plots → markdown. Every number in
the report is computed from the two frames that `load` returns, whichever source they came from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from harness.report.contrasts import contrast_frame, contrasts
from harness.report.findings import findings
from harness.report.load import SweepData, load_sweep
from harness.report.markdown import render
from harness.report.plots import captions, write_plots
from harness.report.tables import cell_table, trail_table

REPORT_NAME = "REPORT.md"
log = logging.getLogger(__name__)


def build_report(data: SweepData, out: Path, target: Optional[float] = None) -> Path:
    """Write the report of already-loaded data into `out`; returns the REPORT.md path. `target`: the eval reward
    that 'steps to target' counts to (default: tables.default_target)."""
    out.mkdir(parents=True, exist_ok=True)
    trails = trail_table(data, target)
    items = contrasts(trails)
    trails.to_csv(out / "trails.csv", index=False)
    cell_table(trails).to_csv(out / "cells.csv", index=False)
    contrast_frame(items).to_csv(out / "contrasts.csv", index=False)
    plots = {key: path.name for key, path in write_plots(data.metrics, trails, out, items).items()}
    text = render(data.name, data.source, trails, items, [*data.notes, *findings(trails, items)], plots,
                  captions())
    path = out / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    log.info("report of %s (%d trails, from %s) written to %s", data.name, len(trails), data.source, path)
    return path


def write_report(sweep_dir: Path | str, out: Optional[Path | str] = None, source: str = "journal") -> Path:
    """Report of the sweep at `sweep_dir` into `out` (default `<sweep_dir>/report/`)."""
    sweep_dir = Path(sweep_dir)
    data = load_sweep(sweep_dir, source)
    return build_report(data, Path(out) if out else sweep_dir / "report")


__all__ = ["build_report", "write_report"]
