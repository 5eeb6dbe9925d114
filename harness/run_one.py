"""`harness run <overrides>`: one trail in the foreground, with a progress bar, in <root>/single/<trail dir>."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.compose import compose_trail
from harness.errors import HarnessError
from harness.rundir import read_status, save_config
from harness.runner import run_trail_dir
from harness.states import TrailState
from harness.sweepdir import write_sweep_meta, write_trail_meta
from harness.trails import make_trails

SINGLE_SWEEP = "single"


def run_one(overrides: List[str], root: Optional[str] = None) -> int:
    if any(("," in o.split("=", 1)[-1] and not o.split("=", 1)[-1].startswith("[")) for o in overrides if "=" in o):
        raise HarnessError("`harness run` runs one trail; use `harness sweep` for comma-separated values")
    cfg = compose_trail(overrides)
    (trail,) = make_trails([(cfg, list(overrides))])
    sweep_dir = Path(root or cfg.root) / SINGLE_SWEEP
    run_dir = trail.run_dir(sweep_dir)
    if read_status(run_dir).get("state") == TrailState.DONE:
        print(f"{trail.name}: already done in {run_dir}")
        return 0
    save_config(run_dir, cfg, overrides)
    write_trail_meta(run_dir, trail, SINGLE_SWEEP)
    write_sweep_meta(sweep_dir, name=SINGLE_SWEEP, description="trails run one at a time with `harness run`")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task(trail.name, total=cfg.engine.get("steps") or None, info="")

        def on_step(step: int, total: int, metrics: dict) -> None:
            info = " ".join(f"{k.split('/')[0]}={metrics[k]:.3f}" for k in ("eval/reward", "rollout/reward")
                            if isinstance(metrics.get(k), (int, float)))
            progress.update(task, completed=step, total=total, info=info)

        state = run_trail_dir(run_dir, on_step=on_step)
    status = read_status(run_dir)
    print(f"{trail.name}: {state} at step {status.get('step')} {status.get('reason') or ''}".rstrip())
    print(f"run directory: {run_dir}")
    return state.exit_code
