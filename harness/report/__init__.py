"""`harness report <sweep>`: the markdown trail report (REPORT.md, trails.csv, comparison.csv, PNG plots).

Pipeline: load (journals or MLflow → pandas) → tables → findings → plots → markdown. Every number in the report
is computed from the two frames that `load` returns, whichever source they came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.report.findings import findings
from harness.report.load import SweepData, load_sweep
from harness.report.markdown import render
from harness.report.plots import write_plots
from harness.report.tables import comparison_table, trail_table
from harness.sweepdir import resolve_sweep_dir

REPORT_NAME = "REPORT.md"


def build_report(data: SweepData, out: Path) -> Path:
    """Write the report of already-loaded data into `out`; returns the REPORT.md path."""
    out.mkdir(parents=True, exist_ok=True)
    trails = trail_table(data)
    comparison = comparison_table(trails)
    trails.to_csv(out / "trails.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    plots = {metric: path.name for metric, path in write_plots(data.metrics, trails, out).items()}
    text = render(data.name, data.source, trails, comparison, [*data.notes, *findings(trails)], plots)
    path = out / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    return path


def write_report(sweep_dir: Path | str, out: Optional[Path | str] = None, source: str = "journal") -> Path:
    """Report of the sweep at `sweep_dir` into `out` (default `<sweep_dir>/report/`)."""
    sweep_dir = Path(sweep_dir)
    data = load_sweep(sweep_dir, source)
    return build_report(data, Path(out) if out else sweep_dir / "report")


def main_report(sweep: str, root: str = "runs", out: Optional[str] = None, source: str = "journal") -> int:
    """CLI entry: resolve the sweep by name or path, write its report, print where."""
    path = write_report(resolve_sweep_dir(sweep, root), out, source)
    print(f"report: {path}")
    return 0


__all__ = ["build_report", "main_report", "write_report"]
