"""Before a sweep launches its trails: build the base model of each distinct engine config, once, in the sweep.

Why not in the first trail, as a trail alone does: the first trail would spend its wall time pretraining while the
others wait on the cache lock, its progress would go only to its own log, and its wall time would include it. Built
here it is a phase of its own in the sweep's output, and every trail starts by loading it.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Dict, Sequence

from harness.engines.embedded.base_model import cache_path, ensure_built
from harness.logs import duration
from harness.plugins import Say
from harness.spec.trails import Trail


def prepare(trails: Sequence[Trail], say: Say) -> None:
    """The embedded engine's `prepare` hook (harness.plugins.EnginePlugin): every base model the trails start from,
    built unless cached. A config whose model cannot be built (an unwritable cache dir) is reported and left to its
    trails, which fail with the reason; the others are built."""
    configs: Dict[Path, Any] = {}
    for trail in trails:
        configs.setdefault(cache_path(trail.cfg.engine), trail.cfg.engine)
    for path, eng in configs.items():
        task = "base model" if len(configs) == 1 else f"base model {path.stem.removeprefix('base-')[:8]}"
        started = time.monotonic()
        if not path.exists():
            say(task, f"pretraining: at most {int(eng.base_max_steps)} steps, until the mean greedy probe "
                      f"accuracy in any answer format reaches {float(eng.base_target_acc):g}")
        try:
            info = ensure_built(eng, log=functools.partial(say, task),
                                on_wait=functools.partial(say, task, "another process is building it; waiting for it"))
        except Exception as exc:  # noqa: BLE001 - each trail meets it again and records it as its failure
            say(task, f"not built, its trails will try themselves: {type(exc).__name__}: {exc}")
            continue
        if info is None:
            say(task, f"cached: {path}")
        else:
            say(task, f"built in {duration(time.monotonic() - started)}: {info['steps']} pretraining steps, greedy "
                      f"probe accuracy {info['probe_accuracy']:.3f} in any format, "
                      f"{info.get('probe_strict_accuracy', float('nan')):.3f} strict → {path}")
