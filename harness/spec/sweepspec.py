"""Sweep specs: a sweep file and/or command-line overrides, expanded with Hydra's override grammar into trails.

A sweep file (sweeps/<name>.yaml):
    description: one line on what the sweep asks
    overrides: [stale=1,64,256, algo=grpo,m2po]     # applied to every trail; sweeps (a,b / range() / choice()) allowed
    trails:                                          # optional explicit trails, each a list of overrides
      - [algo=grpo, stale=256, alloc=d2+d1, rollout=96]
    seeds:                                           # optional: which seeds are exploratory, which confirmatory
      exploratory: [1, 2]                            # a list of ints, or Hydra's sweep grammar: 'range(101,111)'
      confirmatory: range(101,111)
Command-line overrides come last and replace the same key from the file.

Seed roles (docs/STUDY.md has the protocol): with `seeds:` and no `seed=` override in the file, the declared seeds
(exploratory, then confirmatory) are the file's seed axis; a file that also sets `seed=` must use exactly the
declared seeds. A command-line `seed=` may pick any subset of the declared seeds (the exploratory ones first, the
confirmatory ones once the regime and the contrasts are fixed) but no undeclared seed. The roles are written to
sweep.json, where the report reads them.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, Override, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig

from harness.errors import HarnessError
from harness.internals import config_loader, split_sweep
from harness.spec.compose import Composer
from harness.spec.config import SweepConfig
from harness.spec.resources import CONF_DIR, SWEEPS_DIR
from harness.spec.sweep_names import check_sweep_name
from harness.spec.trails import Trail, make_trails

SWEEP_FILE_KEYS = ("description", "overrides", "trails", "name", "seeds")
SEED_ROLES = ("exploratory", "confirmatory")
MAX_FILE_BYTES = 1 << 20     # a sweep file is a few lines; a bigger one is not one
MAX_DEPTH = 8                # how deep its YAML may nest (it needs 3: mapping, list of trails, list of overrides)
HARD_MAX_TRAILS = 100_000    # more trails than one sweep can hold, even with --yes: split it into several


@dataclass
class SweepSpec:
    name: str
    overrides: List[str]                     # from the sweep file
    cli_overrides: List[str] = field(default_factory=list)
    trail_overrides: List[List[str]] = field(default_factory=lambda: [[]])
    description: str = ""
    source: Optional[str] = None
    seed_roles: Dict[str, List[int]] = field(default_factory=dict)  # role -> seeds, from the file's `seeds:`


def find_sweep_file(arg: str) -> Optional[Path]:
    """A path, or a named sweep shipped in the package (`demo`, `demo.yaml` or `sweeps/demo.yaml`)."""
    if Path(arg).is_dir():
        raise HarnessError(f"sweep file '{arg}' is a directory (expected a YAML sweep file)")
    name = arg[len("sweeps/"):] if arg.startswith("sweeps/") else arg
    for candidate in (Path(arg), SWEEPS_DIR / name, SWEEPS_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _as_override_list(value: object, where: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}={_fmt(v)}" for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise HarnessError(f"{where}: expected a list of overrides like ['stale=256', 'algo=m2po'] or a mapping, "
                       f"got {value!r}")


def _fmt(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _depth(value: Any) -> int:
    """How deep a parsed YAML value nests (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def load_sweep_file(path: Path) -> SweepSpec:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise HarnessError(f"sweep file {path}: cannot be read: {exc.strerror}") from exc
    if size > MAX_FILE_BYTES:
        raise HarnessError(f"sweep file {path}: {size} bytes (allowed: at most {MAX_FILE_BYTES}; a sweep file is a "
                           f"few lines of YAML)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise HarnessError(f"sweep file {path}: nested too deeply to read (allowed: at most {MAX_DEPTH} levels)") \
            from None
    except UnicodeDecodeError as exc:
        raise HarnessError(f"sweep file {path}: not a text file (byte {exc.start} is not UTF-8; expected YAML)") \
            from exc
    except yaml.YAMLError as exc:
        raise HarnessError(f"sweep file {path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except OSError as exc:
        raise HarnessError(f"sweep file {path}: cannot be read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"sweep file {path}: expected a mapping with keys {', '.join(SWEEP_FILE_KEYS)}")
    if _depth(data) > MAX_DEPTH:
        raise HarnessError(f"sweep file {path}: nested more than {MAX_DEPTH} levels deep (allowed: a mapping of "
                           f"{', '.join(SWEEP_FILE_KEYS)}, whose trails are lists of overrides)")
    unknown = sorted(set(data) - set(SWEEP_FILE_KEYS))
    if unknown:
        raise HarnessError(f"sweep file {path}: unknown key '{unknown[0]}' "
                           f"(allowed keys: {', '.join(SWEEP_FILE_KEYS)})")
    trails = data.get("trails")
    if trails is not None and not isinstance(trails, list):
        raise HarnessError(f"sweep file {path}: 'trails' must be a list of override lists, got {trails!r}")
    trail_overrides = [_as_override_list(t, f"sweep file {path}: trails[{i}]") for i, t in enumerate(trails or [])]
    for i, overrides in enumerate(trail_overrides):
        check_overrides(overrides, f"sweep file {path}: trails[{i}]")
    name = data.get("name")
    overrides = check_overrides(_as_override_list(data.get("overrides"), f"sweep file {path}: overrides"),
                                f"sweep file {path}: overrides")
    roles = seed_roles(data["seeds"], f"sweep file {path}") if "seeds" in data else {}
    if roles and not any(_sets_seed(o) for o in [overrides, *trail_overrides]):
        overrides = [*overrides, "seed=" + ",".join(str(s) for role in SEED_ROLES for s in roles[role])]
    return SweepSpec(
        name=check_sweep_name(name, f"'name' in sweep file {path}") if name is not None else path.stem,
        overrides=overrides,
        trail_overrides=trail_overrides or [[]],
        description=str(data.get("description") or ""),
        source=str(path),
        seed_roles=roles,
    )


def _seed_list(value: object, where: str) -> List[int]:
    """A role's seeds: a YAML list of integers, one integer, or a string in Hydra's sweep grammar ('1,2',
    'range(101,111)'), expanded by Hydra's own parser."""
    allowed = "allowed: a list of integer seeds such as [1, 2], or a Hydra sweep such as 'range(101,111)'"
    if isinstance(value, str):
        try:
            (override,) = OverridesParser.create().parse_overrides([f"seed={value}"])
        except HydraException as exc:
            raise HarnessError(f"{where}: cannot parse {value!r} ({allowed})") from exc
        if _sweep_size(override) > HARD_MAX_TRAILS:  # counted, not enumerated
            raise HarnessError(f"{where}: {value!r} is {_sweep_size(override)} seeds (allowed: at most "
                               f"{HARD_MAX_TRAILS})")
        value = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise HarnessError(f"{where}: expected integer seeds, got {value!r} ({allowed})")
    seen: set = set()
    for seed in value:
        if seed in seen:
            raise HarnessError(f"{where}: seed {seed} is listed twice (allowed: each seed once)")
        seen.add(seed)
    return list(value)


def seed_roles(value: object, where: str) -> Dict[str, List[int]]:
    """The `seeds:` mapping of a sweep file, checked: known roles only, integer seeds, no seed in two roles, at
    least one seed. Returns every role, empty where the file names none."""
    if not isinstance(value, dict) or not value:
        raise HarnessError(f"{where}: 'seeds' must map {' and/or '.join(SEED_ROLES)} to seed lists, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in SEED_ROLES)
    if unknown:
        raise HarnessError(f"{where}: unknown seed role '{unknown[0]}' in 'seeds' "
                           f"(allowed: {', '.join(SEED_ROLES)})")
    roles = {role: _seed_list(value.get(role, []), f"{where}: 'seeds.{role}'") for role in SEED_ROLES}
    both = sorted(set(roles["exploratory"]) & set(roles["confirmatory"]))
    if both:
        raise HarnessError(f"{where}: seed {both[0]} is both exploratory and confirmatory in 'seeds' "
                           f"(allowed: each seed in one role)")
    if not any(roles.values()):
        raise HarnessError(f"{where}: 'seeds' declares no seed (allowed: at least one exploratory or confirmatory "
                           f"seed)")
    return roles


def _sets_seed(overrides: Sequence[str]) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == "seed" for o in overrides)


def seeds_text(seeds: Sequence[int]) -> str:
    """'1, 2, 101–110': runs of consecutive seeds as ranges."""
    runs: List[List[int]] = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


def check_seed_roles(spec: SweepSpec, used: Sequence[int]) -> None:
    """Every seed the trails use is declared; and unless the command line picks the seeds, every declared seed is
    used (a declared seed no trail runs is a typo, or a file whose `seed=` and `seeds:` disagree)."""
    if not spec.seed_roles:
        return
    declared = {s: role for role, seeds in spec.seed_roles.items() for s in seeds}
    listing = "; ".join(f"{role} {seeds_text(seeds)}" for role, seeds in spec.seed_roles.items() if seeds)
    undeclared = sorted(set(used) - set(declared))
    if undeclared:
        where = "the command line" if _sets_seed(spec.cli_overrides) else f"sweep file {spec.source}"
        raise HarnessError(f"seed {undeclared[0]} ({where}) is not declared in 'seeds' of sweep file {spec.source} "
                           f"(declared: {listing}; allowed: the declared seeds, or add it to a role)")
    unused = sorted(set(declared) - set(used))
    if unused and not _sets_seed(spec.cli_overrides):
        raise HarnessError(f"sweep file {spec.source}: declared {declared[unused[0]]} seed {unused[0]} is used by no "
                           f"trail (the trails' seeds: {seeds_text(used)}; allowed: declare only the seeds the sweep "
                           f"runs, or drop its seed= override so that 'seeds' sets them)")


def build_spec(args: Sequence[str], name: Optional[str] = None) -> SweepSpec:
    """Turn `harness sweep [SWEEP_FILE] [overrides…]` arguments into a spec."""
    args = list(args)
    spec = SweepSpec(name="", overrides=[])
    if args and "=" not in args[0]:
        path = find_sweep_file(args[0])
        if path is None:
            known = ", ".join(sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
            raise HarnessError(f"sweep file '{args[0]}' not found (named sweeps: {known})")
        spec = load_sweep_file(path)
        args = args[1:]
    bad = [a for a in args if "=" not in a]
    if bad:
        raise HarnessError(f"'{bad[0]}' is not an override: expected key=value (e.g. stale=1,64,256)")
    spec.cli_overrides = check_overrides(args, "command line")
    if name is not None:
        spec.name = check_sweep_name(name, "--name")
    elif spec.source is not None:
        spec.name = check_sweep_name(spec.name, f"sweep file {spec.source} (its file name)")
    else:
        spec.name = _default_name(spec.cli_overrides)
    return spec


def _default_name(overrides: Sequence[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(overrides)).encode()).hexdigest()[:8]
    return f"sweep-{digest}"


def check_overrides(overrides: List[str], where: str) -> List[str]:
    """Each override parses on its own and names a key; one source gives each key once (Hydra refuses a key given
    twice). The error names the bad override only, not the whole list."""
    parser = OverridesParser.create()
    seen: Dict[str, str] = {}
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as exc:
            reason = " ".join(str(exc).split("See https://")[0].split())
            raise HarnessError(f"invalid override {text!r} ({where}): {reason}") from exc
        key = override.key_or_group
        if not key:
            raise HarnessError(f"invalid override {text!r} ({where}): no key before '=' (expected key=value)")
        if key in seen:
            raise HarnessError(f"multiple values for '{key}' ({where}): {seen[key]!r} and {text!r} "
                               f"(allowed: each key once, as Hydra requires)")
        seen[key] = text
    return overrides


def _last_per_key(overrides: Sequence[str]) -> List[str]:
    """Later overrides of the same key replace earlier ones (command line over sweep file)."""
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(list(overrides))
    except HydraException as exc:
        raise HarnessError(f"invalid override syntax: {exc}") from exc
    by_key: Dict[str, str] = {}
    for override in parsed:
        by_key.pop(override.key_or_group, None)
        by_key[override.key_or_group] = str(override.input_line)  # set for every override parsed from a string
    return list(by_key.values())


def _parser() -> OverridesParser:
    """An override parser that can expand glob() over the yaml options of conf/ groups."""
    return OverridesParser.create(config_loader=config_loader(CONF_DIR))


def _sweep_size(override: Override) -> int:
    """How many values a (sweep) override stands for, counted without enumerating them: range(0,50000000) is a
    number, never a list."""
    if not override.is_sweep_override():
        return 1
    value = override.value()
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if start is None or stop is None or not step:
            return 1
        return max(0, math.ceil((float(stop) - float(start)) / float(step)))
    if isinstance(value, ChoiceSweep):
        return len(value.list)
    if isinstance(value, Glob):  # over a config group's options: a handful
        return max(1, len(list(override.sweep_string_iterator())))
    return 1


def _max_trails(overrides: Sequence[Override]) -> int:
    """sweep.max_trails as the overrides set it (the schema's default otherwise)."""
    for override in overrides:
        if override.key_or_group == "sweep.max_trails" and not override.is_sweep_override():
            try:
                return int(str(override.value()))
            except ValueError:
                break  # composition names the bad value
    return SweepConfig().max_trails


def count_trails(spec: SweepSpec, confirmed: bool = False) -> int:
    """The number of trails the spec expands to, counted before any is enumerated or composed; more than
    sweep.max_trails needs `confirmed` (--yes), more than HARD_MAX_TRAILS is refused."""
    parser = _parser()
    total, limit = 0, SweepConfig().max_trails
    for trail in spec.trail_overrides:
        try:
            overrides = parser.parse_overrides(_last_per_key([*spec.overrides, *trail, *spec.cli_overrides]))
        except HydraException as exc:
            raise HarnessError(f"invalid sweep override: {exc}") from exc
        size = 1
        for override in overrides:
            size *= _sweep_size(override)
        total += size
        limit = _max_trails(overrides)
    if total > limit and not confirmed:
        raise HarnessError(f"the sweep has {total} trails, more than sweep.max_trails={limit} (allowed: pass --yes to "
                           f"run it anyway, or set sweep.max_trails)")
    if total > HARD_MAX_TRAILS:
        raise HarnessError(f"the sweep has {total} trails, more than one sweep can hold (allowed: at most "
                           f"{HARD_MAX_TRAILS}, even with --yes; split it into several sweeps)")
    return total


def expand(spec: SweepSpec) -> List[List[str]]:
    """Every trail's concrete override list: file overrides, then the trail's own, then the command line's
    (the last of each key wins), with sweeps expanded by Hydra's BasicSweeper rules."""
    parser = _parser()
    jobs: List[List[str]] = []
    for trail in spec.trail_overrides:
        merged = _last_per_key([*spec.overrides, *trail, *spec.cli_overrides])
        try:
            jobs.extend(split_sweep(parser.parse_overrides(merged)))
        except HydraException as exc:
            raise HarnessError(f"invalid sweep override: {exc}") from exc
    return jobs


def build_trails(spec: SweepSpec, confirmed: bool = False) -> List[Trail]:
    """Compose and validate every trail before anything launches; the first bad one raises (with its overrides
    when the sweep has several trails). A sweep of more than `sweep.max_trails` trails needs `confirmed` (--yes)."""
    configs: List[Tuple[DictConfig, List[str]]] = []
    count_trails(spec, confirmed)
    jobs = expand(spec)
    with Composer() as composer:
        for overrides in jobs:
            try:
                cfg = composer.compose(overrides)
            except HarnessError as exc:
                if len(jobs) == 1:
                    raise
                raise HarnessError(f"{exc}\n  in trail with overrides: {' '.join(overrides)}") from exc
            if not configs and len(jobs) > int(cfg.sweep.max_trails) and not confirmed:
                raise HarnessError(f"the sweep has {len(jobs)} trails, more than sweep.max_trails="
                                   f"{int(cfg.sweep.max_trails)} (allowed: pass --yes to run it anyway, or set "
                                   f"sweep.max_trails)")
            configs.append((cfg, overrides))
    check_seed_roles(spec, sorted({int(cfg.seed) for cfg, _ in configs}))
    return make_trails(configs)
