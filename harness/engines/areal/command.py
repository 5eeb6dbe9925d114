"""A trail → the AReaL command that runs it: `python3 examples/math/gsm8k_rl.py --config <yaml> key=value …`.

Pure functions of the composed config and the trail's directory, so `--dry-run`, tests and the launcher all see the
same argv. Generated keys use Hydra's `++key=value` (set whether or not the example yaml has the key); AReaL's own
structured schema still rejects a key it does not know, which is what preflight relies on.
Targets AReaL ≥ 1.0 (per-engine `rollout.backend` / `actor.backend`; the older `allocation_mode` is deprecated there).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from harness.engines.areal import cpu
from harness.engines.areal.tiny_task import offline_env, tiny_task_overrides
from harness.spec.axes import parse_alloc
from harness.spec.trails import Trail

TENSORBOARD_DIR = "tensorboard"   # <run_dir>/tensorboard: AReaL's TensorBoard event files
FILEROOT_DIR = "areal"            # <run_dir>/areal: AReaL's cluster.fileroot (logs, checkpoints, recover info)
LOG_NAME = "areal.log"            # <run_dir>/areal.log: AReaL's stdout and stderr
# engine.areal_path=null: the copy of AReaL v1.0.4's GSM8K example shipped with the harness (its README says why)
BUNDLED_EXAMPLES = Path(__file__).resolve().parent / "areal_examples"


@dataclass
class AReaLCommand:
    argv: List[str]                 # [python, *launcher, entrypoint, --config, yaml, override, …]
    cwd: str                        # the AReaL checkout
    config_path: str                # the base yaml (as passed to --config)
    overrides: List[str]            # the key=value part of argv
    experiment_name: str
    trial_name: str
    env: Dict[str, str] = field(default_factory=dict)   # set on top of the harness's own environment
    launcher: List[str] = field(default_factory=list)   # between python and the entry point (device=cpu only)

    @property
    def entry_args(self) -> List[str]:
        """[entrypoint, --config, yaml, override, …]: what AReaL's entry point receives."""
        return self.argv[1 + len(self.launcher):]

    def shell(self) -> str:
        """The command as one would type it (for logs and --dry-run), with the environment it sets."""
        env = ["env", *(f"{k}={v}" for k, v in self.env.items())] if self.env else []
        return f"cd {shlex.quote(self.cwd)} && {shlex.join(env + self.argv)}"


def experiment_name(name: str) -> str:
    """AReaL forbids '_' and '/' in experiment_name: keep letters, digits, '.', '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", str(name)).strip("-.")
    return cleaned or "harness"


def trial_name(label: str) -> str:
    """AReaL forbids '-' and '/' in trial_name: keep letters, digits, '.', '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9.]+", "_", str(label)).strip("_.")
    return cleaned or "trial"


def _value(value: object) -> str:
    """A Hydra override value: plain when its grammar allows, otherwise single-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:+@%-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def base_config(cfg: DictConfig) -> str:
    """The AReaL example yaml for this trail's algorithm."""
    return str(cfg.engine.config_m2po if cfg.algo.name == "m2po" else cfg.engine.config_grpo)


def _resolve(areal_path: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else areal_path / p


def _yaml_actor_value(config_file: Path, key: str) -> Optional[object]:
    """The base yaml's actor.<key>, when the yaml is readable here (it is not, without an AReaL checkout)."""
    try:
        node = OmegaConf.load(config_file)
        return OmegaConf.select(node, f"actor.{key}", throw_on_missing=False, default=None)
    except Exception:  # noqa: BLE001 - unreadable yaml: fall back to the harness's own defaults
        return None


def user_keys(overrides: Sequence[str]) -> set:
    """The config keys a trail's own overrides set ('++algo.eps_clip=0.3' -> 'algo.eps_clip')."""
    return {str(o).split("=", 1)[0].lstrip("+~") for o in overrides if "=" in str(o)}


def _same(a: object, b: object) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return a == b


def _algo_overrides(cfg: DictConfig, config_file: Path, overrides: Sequence[str]) -> List[str]:
    """eps_clip / m2_threshold, only where the trail's own overrides set them.

    The AReaL yamls carry the page's values (GRPO eps_clip 0.4; M2PO eps_clip 0.0, m2_threshold 0.04); the harness's
    defaults are tuned for the embedded engine, so they are not pushed onto AReaL unless the user chose them — which
    the trail's overrides (sweep file and command line) say, with no need to read the harness's conf/ again.
    """
    keys = ["eps_clip"] + (["m2_threshold"] if cfg.algo.name == "m2po" else [])
    chosen = user_keys(overrides)
    out = []
    for key in keys:
        value = cfg.algo[key]
        if f"algo.{key}" not in chosen:
            continue
        in_yaml = _yaml_actor_value(config_file, key)
        if in_yaml is not None and _same(value, in_yaml):
            continue
        out.append(f"++actor.{key}={_value(value)}")
    return out


def build_command(cfg: DictConfig, run_dir: Path | str, sweep: str, label: str,
                  overrides: Sequence[str] = ()) -> AReaLCommand:
    """The AReaL command for one trail; `sweep` names the experiment, `label` (the trail dir) the trial, and
    `overrides` are the trail's own Hydra overrides (which algorithm settings the user chose)."""
    eng = cfg.engine
    on_cpu = eng.get("device", "gpu") == "cpu"
    run_dir = Path(run_dir).resolve()
    areal_path = checkout(cfg)
    config_path = base_config(cfg)
    x, y = parse_alloc(cfg.alloc)
    n_nodes = int(eng.n_nodes)
    if on_cpu:
        per_node = cpu.CPU_GPUS_PER_NODE
    else:
        per_node = int(eng.n_gpus_per_node) if eng.n_gpus_per_node is not None else (x + y) // n_nodes
    exp = experiment_name(eng.experiment_name or sweep)
    trial = trial_name(label)
    user_overrides = overrides
    overrides = [
        f"++experiment_name={exp}",
        f"++trial_name={trial}",
        f"++seed={cfg.seed}",
        f"++scheduler.type={cfg.backend.name}",
        f"++cluster.n_nodes={n_nodes}",
        f"++cluster.n_gpus_per_node={per_node}",
        f"++cluster.fileroot={_value(run_dir / FILEROOT_DIR)}",
        f"++rollout.backend={eng.rollout_backend}:d{x}p1t1",
        f"++actor.backend={eng.train_backend}:d{y}p1t1",
        f"++rollout.max_head_offpolicyness={cfg.stale}",
        f"++rollout.max_concurrent_rollouts={cfg.rollout}",
        f"++stats_logger.tensorboard.path={_value(run_dir / TENSORBOARD_DIR)}",
        "++recover.mode=auto",
    ]
    if eng.total_train_steps is not None:
        overrides.append(f"++total_train_steps={int(eng.total_train_steps)}")
    overrides += _algo_overrides(cfg, _resolve(areal_path, config_path), user_overrides)
    env: Dict[str, str] = {}
    launcher: List[str] = []
    if on_cpu:
        overrides += [f"++{key}={_value(value)}" for key, value in cpu.cpu_overrides(run_dir, eng.startup_timeout_s)]
        env.update(cpu.cpu_env(cfg))
        launcher = cpu.launcher()
    if eng.get("tiny_task"):
        overrides += [f"++{key}={_value(value)}" for key, value in tiny_task_overrides(eng)]
        env.update(offline_env())
    overrides += [str(o) for o in eng.overrides]
    env.update({str(k): str(v) for k, v in (eng.env or {}).items()})
    argv = [str(eng.python), *launcher, str(eng.entrypoint), "--config", config_path, *overrides]
    return AReaLCommand(argv, str(areal_path), config_path, overrides, exp, trial, env, launcher)


def checkout(cfg: DictConfig) -> Path:
    """Where the command runs: engine.areal_path, or the bundled copy of AReaL's example when it is null."""
    if cfg.engine.areal_path is None:
        return BUNDLED_EXAMPLES
    return Path(str(cfg.engine.areal_path)).expanduser().resolve()


def names_for_run_dir(run_dir: Path | str) -> tuple[str, str]:
    """(sweep name, trail label) of a run dir, from its trail.json when present."""
    from harness.store.sweepdir import read_trail_meta

    run_dir = Path(run_dir)
    meta = read_trail_meta(run_dir)
    return str(meta.get("sweep") or run_dir.resolve().parent.name), str(meta.get("dirname") or run_dir.name)


def command_for_run_dir(cfg: DictConfig, run_dir: Path | str) -> AReaLCommand:
    from harness.store.rundir import load_overrides

    sweep, label = names_for_run_dir(run_dir)
    return build_command(cfg, run_dir, sweep, label, load_overrides(run_dir))


def describe(trail: Trail, sweep_dir: Path) -> str:
    """The trail's AReaL command as --dry-run prints it. Needs neither AReaL nor its Python: where the checkout is
    absent the base yaml cannot be read, so algorithm keys the user left at their defaults are passed explicitly."""
    run_dir = trail.run_dir(sweep_dir)
    return build_command(trail.cfg, run_dir, sweep_dir.name, run_dir.name, trail.overrides).shell()
