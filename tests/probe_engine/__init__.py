"""A probe engine for the local backend's worker tests: it records the process state each trail starts with
(`probe.json` in the run dir) and then disturbs that state, as a careless engine might, so a test can see whether the
next trail in the same warm worker starts as it would in a fresh process. Registered with
HARNESS_PLUGINS=probe_engine:PLUGIN (tests/ on the path).

torch is imported (and its state recorded and disturbed) only with engine.torch=true: importing it costs a worker
about two seconds of CPU, which the tests of starting, killing and cancelling workers need not pay."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.engines import EngineResult, StepCallback
from harness.plugins import EnginePlugin
from harness.store.journal import Journal

LEAK = "HARNESS_PROBE_LEAK"


@dataclass
class ProbeEngineConfig:
    name: str = "probe"
    steps: int = 1
    step_s: float = 0.0       # sleep per step, so a test can catch a trail mid-run
    threads: int = 1
    torch: bool = False       # record and disturb torch's global state too


def run(cfg, run_dir: Path, journal: Journal, on_step: StepCallback) -> EngineResult:
    seen = {"pid": os.getpid(), "leak": os.environ.get(LEAK), "cwd": os.getcwd(),
            "omp": os.environ.get("OMP_NUM_THREADS")}
    if cfg.engine.torch:
        import torch

        seen |= {"torch_threads": torch.get_num_threads(), "grad": torch.is_grad_enabled(),
                 "dtype": str(torch.get_default_dtype())}
    (Path(run_dir) / "probe.json").write_text(json.dumps(seen))
    print(f"probe output of {Path(run_dir).name}", flush=True)
    # what a careless engine leaves behind
    os.environ[LEAK] = str(run_dir)
    os.chdir("/")
    if cfg.engine.torch:
        torch.set_num_threads(2)
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
    steps = int(cfg.engine.steps)
    for step in range(1, steps + 1):
        time.sleep(float(cfg.engine.step_s))
        journal.append(step, {"probe/step": float(step)})
        on_step(step, steps, {})
    return EngineResult("done", steps)


PLUGIN = EnginePlugin(name="probe", schema=ProbeEngineConfig, run="probe_engine:run")
