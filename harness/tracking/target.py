"""Where a trail's MLflow run lives: the tracking URI, experiment and client bounds of one trail.

Why its own module: every syncer (the sweep's tracker, a trail's sidecar, `harness sync`) must resolve the same
store for a trail wherever it runs, and the rule has an order (explicit URI, the sweep's, the trail config's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from harness.store.rundir import RunDir
from harness.store.sweepdir import read_sweep_meta
from harness.tracking.client import resolve_uri
from harness.tracking.config import TrackingConfig, sweep_experiment
from harness.tracking.metadata import sweep_of


@dataclass
class Target:
    """Where a trail's run lives: tracking URI, experiment and client settings."""
    uri: str
    experiment: str = "harness"    # the sweep's experiment (config.sweep_experiment)
    timeout_s: float = 10.0
    retries: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)


def tracking_config(run_dir: Path) -> TrackingConfig:
    """The trail's tracking settings from its config.yaml (defaults when the file or the group is absent)."""
    tc = TrackingConfig()
    section = RunDir(run_dir).config().get("tracking")
    for key, value in (section if isinstance(section, dict) else {}).items():
        if hasattr(tc, str(key)):
            setattr(tc, str(key), value)
    return tc


def trail_target(run_dir: Path, uri: Optional[str] = None, tracking: Any = None) -> Target:
    """Explicit uri > the sweep's resolved uri (sweep.json, set at launch) > the trail config's uri against cwd;
    the experiment is the sweep's own."""
    tc = tracking if tracking is not None else tracking_config(run_dir)
    if uri:
        resolved = resolve_uri(uri)
    else:
        resolved = read_sweep_meta(Path(run_dir).parent).get("mlflow_uri") or resolve_uri(tc.uri)
    experiment = sweep_experiment(tc.experiment, sweep_of(run_dir))
    return Target(resolved, experiment, float(tc.http_timeout_s), int(tc.http_retries))
