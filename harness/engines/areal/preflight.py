"""`--dry-run` for engine=areal: every generated command is parsed by AReaL's own config parser, in AReaL's Python.

The checker runs as one subprocess per (AReaL python, checkout), reading the commands as JSON on stdin, so AReaL's
imports are paid once per sweep. It does what AReaL's `load_expr_config` does up to building the typed config
(Hydra compose of the yaml + overrides, merge into GRPOConfig, dataclass validation), minus its side effects
(name_resolve setup, writing the config under fileroot), then parses rollout/actor backends with AReaL's allocation
parser and checks their GPUs against the cluster size (on GPUs: a CPU run has none to check).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from harness.engines.areal.command import AReaLCommand, build_command
from harness.spec.trails import Trail

CHECKER = r'''
import json, os, sys, traceback
items = json.load(sys.stdin)
results = []
try:
    from omegaconf import OmegaConf
    from areal.api.cli_args import GRPOConfig, parse_cli_args, to_structured_cfg
except BaseException as exc:
    print(json.dumps({"fatal": "cannot import AReaL's config parser: %s: %s (engine.python must be AReaL's Python; "
                                "scripts/areal_cpu_venv.sh DIR builds one for CPUs)" % (type(exc).__name__, exc)}))
    sys.exit(0)
try:
    from areal.api.alloc_mode import ModelAllocation
except BaseException:
    ModelAllocation = None

def check(item):
    os.chdir(item["cwd"])
    cfg, _ = parse_cli_args(item["args"])
    cfg = to_structured_cfg(cfg, config_cls=GRPOConfig)
    cfg = OmegaConf.to_object(cfg)
    if not isinstance(cfg, GRPOConfig):
        raise TypeError("parsed config is %s, not GRPOConfig" % type(cfg).__name__)
    for label, name in (("experiment_name", cfg.experiment_name), ("trial_name", cfg.trial_name)):
        bad = ("_", "/") if label == "experiment_name" else ("-", "/")
        if any(c in name for c in bad):
            raise ValueError("%s %r may not contain %s" % (label, name, " or ".join(repr(c) for c in bad)))
    if item.get("cpu"):
        return
    if ModelAllocation is not None and getattr(cfg.rollout, "backend", None) and getattr(cfg.actor, "backend", None):
        rollout = ModelAllocation.from_str(cfg.rollout.backend, name="rollout")
        actor = ModelAllocation.from_str(cfg.actor.backend, name="actor")
        used = rollout.parallel.world_size + actor.parallel.world_size
        have = cfg.cluster.n_nodes * cfg.cluster.n_gpus_per_node
        if used != have:
            raise ValueError("rollout.backend %s + actor.backend %s use %d GPUs, but cluster has %d x %d = %d"
                             % (cfg.rollout.backend, cfg.actor.backend, used, cfg.cluster.n_nodes,
                                cfg.cluster.n_gpus_per_node, have))

for item in items:
    try:
        check(item)
        results.append({"id": item["id"], "ok": True})
    except BaseException as exc:
        cause = exc
        while getattr(cause, "__cause__", None) is not None and not str(cause).strip():
            cause = cause.__cause__
        lines = [l.strip() for l in ("%s: %s" % (type(cause).__name__, cause)).splitlines() if l.strip()]
        text = " ".join(lines[:2])
        results.append({"id": item["id"], "ok": False, "error": text})
print("@@AREAL_PREFLIGHT@@" + json.dumps({"results": results}))
'''

MARKER = "@@AREAL_PREFLIGHT@@"


def commands_for(trails: Sequence[Trail], sweep_dir: Optional[Path] = None) -> List[Tuple[Trail, AReaLCommand]]:
    """The commands the sweep would launch (run dirs under sweep_dir, or a scratch dir when there is none yet)."""
    base = Path(sweep_dir) if sweep_dir is not None else Path(tempfile.gettempdir()) / "harness-preflight"
    sweep = base.name
    return [(t, build_command(t.cfg, t.run_dir(base), sweep, t.dirname, t.overrides)) for t in trails]


def _run_checker(python: str, cwd: str, items: List[dict], timeout: int) -> Dict[str, Any]:
    """The checker's JSON answer: {"results": [{"id", "ok", "error"}, ...]} or {"fatal": why}."""
    try:
        proc = subprocess.run([python, "-c", CHECKER], input=json.dumps(items), capture_output=True, text=True,
                              cwd=cwd, timeout=timeout)
    except FileNotFoundError:
        return {"fatal": f"AReaL's python {python!r} was not found (set engine.python)"}
    except subprocess.TimeoutExpired:
        return {"fatal": f"AReaL's config parser did not answer within {timeout}s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
        if line.startswith('{"fatal"'):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"fatal": f"AReaL's config parser failed (exit {proc.returncode}): " + " | ".join(tail)}


def preflight(trails: Sequence[Trail], sweep_dir: Optional[Path] = None) -> List[str]:
    """Errors, one line per failing trail ('<trail name>: <AReaL's message>'); empty when every command parses."""
    errors: List[str] = []
    groups: Dict[Tuple[str, str, int], List[Tuple[Trail, AReaLCommand]]] = {}
    checked = [t for t in trails if t.cfg.engine.name == "areal" and t.cfg.engine.get("preflight", True)]
    for trail, cmd in commands_for(checked, sweep_dir):
        if not Path(cmd.cwd).is_dir():
            errors.append(f"{trail.name}: AReaL checkout {cmd.cwd} does not exist (set engine.areal_path)")
            continue
        key = (cmd.argv[0], cmd.cwd, int(trail.cfg.engine.preflight_timeout_s))
        groups.setdefault(key, []).append((trail, cmd))
    for (python, cwd, timeout), members in groups.items():
        items = [{"id": t.id, "cwd": c.cwd, "args": c.entry_args, "cpu": t.cfg.engine.get("device") == "cpu"}
                 for t, c in members]
        answer = _run_checker(python, cwd, items, timeout)
        if "fatal" in answer:
            errors += [f"{t.name}: {answer['fatal']}" for t, _ in members]
            continue
        by_id = {r["id"]: r for r in answer.get("results", [])}
        for trail, _ in members:
            result = by_id.get(trail.id, {"ok": False, "error": "no answer from AReaL's config parser"})
            if not result["ok"]:
                errors.append(f"{trail.name}: {result['error']}")
    return errors
