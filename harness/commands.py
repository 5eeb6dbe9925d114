"""Command-line commands that print: the library modules they call only log (through `logging`) and return data.

`harness sync <sweep>` lives here; harness/cli.py dispatches to it.
"""

from __future__ import annotations

from typing import Optional

from harness.errors import HarnessError
from harness.states import TERMINAL, TrailState
from harness.sweepdir import read_sweep_meta, resolve_sweep_dir


def main_sync(sweep: str, root: str = "runs", uri: Optional[str] = None) -> int:
    """`harness sync <sweep>`: catch MLflow up with the journals; ends the parent run once every trail has ended."""
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
    if not failed and all(r.status in TERMINAL for r in results):
        overall = TrailState.FAILED if any(r.status == TrailState.FAILED for r in results) else TrailState.DONE
        finish_sweep_run(sweep_dir, overall, uri=target)
    print(f"synced {len(results) - len(failed)}/{len(results)} trails to {target or 'each trail config uri'}")
    return 1 if failed else 0
