"""The plug-in registry: one record per engine and per backend, found by name.

Why records, as Hydra's launcher plugins and submitit's executors do it: everything the harness needs to know about
an engine (its config schema, its semantic checks, its sweep preflight, how it runs one trail) or a backend (its
schema, how to make one, whether its jobs outlive the command, how to poll them later) lives in one place, next to
the component. config.py, validate.py, sweep.py and the runner iterate this registry and name no engine or backend.

A record lives in a torch-free module of its component (the schema module); what is heavy — the engine's run, a
backend's scheduler client — is named by a "module:attribute" string and imported only when used, so composing
configs never imports torch, ray or submitit.

Where records come from, in order (a later one with the same name replaces an earlier one):
  1. BUILTIN below — adding a component to the harness is one line here;
  2. the `harness.plugins` entry-point group of installed distributions (value "module:attribute");
  3. the HARNESS_PLUGINS environment variable, comma-separated "module:attribute" entries — inherited by the
     trail processes every backend starts, so a plug-in outside the package also runs in local, Ray and Slurm workers.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from omegaconf import DictConfig

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.backends.base import Backend
    from harness.engines import RunFn
    from harness.spec.trails import Trail
    from harness.store.states import TrailState

BUILTIN = (
    "harness.engines.embedded.config:PLUGIN",
    "harness.engines.areal.config:PLUGIN",
    "harness.backends.config:LOCAL",
    "harness.backends.config:RAY",
    "harness.backends.config:SLURM",
)
ENTRY_POINT_GROUP = "harness.plugins"
ENV_VAR = "HARNESS_PLUGINS"

Check = Callable[[DictConfig], None]
PreflightFn = Callable[[Sequence["Trail"], Optional[Path]], List[str]]
Say = Callable[[str, str], None]  # say(task, message): the latest word on one piece of work, shown by the sweep
PrepareFn = Callable[[Sequence["Trail"], Say], None]
DescribeFn = Callable[["Trail", Path], str]


def load_attr(ref: str) -> Any:
    """'package.module:attribute' -> the attribute (imports the module)."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class EnginePlugin:
    """An engine: `engine=<name>` selects it.

    schema:    the dataclass of its `engine:` config section (its `name` field defaults to `name`)
    run:       "module:function" with run(cfg, run_dir, journal, on_step) -> EngineResult (may import torch)
    check:     semantic checks of a composed trail using this engine; raises ConfigError
    preflight: "module:function" with preflight(trails, sweep_dir) -> [error lines], run on the whole sweep before
               anything launches (and on --dry-run)
    prepare:   "module:function" with prepare(trails, say) -> None: work every trail needs done once, which the sweep
               does before it launches the trails on a backend whose trails run on this machine (never on a dry run),
               e.g. building the base model they start from; say(task, message) reports its progress. A failure
               there is reported and the trails launch anyway (each meets it with its own reason).
    describe:  "module:function" with describe(trail, sweep_dir) -> str: what the trail would run (e.g. its command
               line), printed by --dry-run under the trail table; it must not need the engine installed.
    """

    name: str
    schema: type
    run: str
    check: Optional[Check] = None
    preflight: Optional[str] = None
    prepare: Optional[str] = None
    describe: Optional[str] = None

    def load_run(self) -> RunFn:
        return load_attr(self.run)

    def load_preflight(self) -> Optional[PreflightFn]:
        return load_attr(self.preflight) if self.preflight else None

    def load_prepare(self) -> Optional[PrepareFn]:
        return load_attr(self.prepare) if self.prepare else None

    def load_describe(self) -> Optional[DescribeFn]:
        return load_attr(self.describe) if self.describe else None


@dataclass(frozen=True)
class BackendPlugin:
    """A launch backend: `backend=<name>` selects it.

    schema:        the dataclass of its `backend:` config section
    factory:       "module:Class" called with that section; the instance has submit/poll/cancel/cancel_all/close
                   (harness.backends.base.Backend)
    detachable:    its jobs belong to a scheduler and outlive the command (so --detach is allowed, and Ctrl-C leaves
                   them running)
    poll_detached: "module:function" with poll(run_dir) -> state, for trails submitted by an earlier command
    cancel_hint:   how a user cancels jobs that outlive the command (said on Ctrl-C)
    check:         semantic checks of a composed trail using this backend
    same_host:     its trails run on this machine: what an engine's `prepare` makes here (a cached base model) is
                   theirs, and one tracker process of the sweep can follow their journals (tracking.live=sweep);
                   elsewhere each trail feeds MLflow itself
    """

    name: str
    schema: type
    factory: str
    detachable: bool = False
    poll_detached: Optional[str] = None
    cancel_hint: str = ""
    check: Optional[Check] = None
    same_host: bool = False

    def create(self, section: DictConfig) -> Backend:
        return load_attr(self.factory)(section)

    def load_poll_detached(self) -> Optional[Callable[[Path], TrailState]]:
        return load_attr(self.poll_detached) if self.poll_detached else None


Plugin = Union[EnginePlugin, BackendPlugin]


_handed: List[tuple] = []  # the entry points this process was handed by the sweep that started it


def entry_point_refs() -> List[str]:
    """The `harness.plugins` entry points of the installed distributions (read once per process)."""
    return list(_entry_point_refs())


def use_entry_points(refs: Sequence[str]) -> None:
    """Take `refs` as this process's entry points instead of reading every installed distribution's metadata (about
    50 ms): a local worker runs in the environment of the sweep that started it, which has read them."""
    if not _handed:
        _handed.append(tuple(refs))
        _entry_point_refs.cache_clear()


@cache
def _entry_point_refs() -> tuple:
    if _handed:
        return _handed[0]
    if not _metadata_may_name(ENTRY_POINT_GROUP):
        return ()
    from importlib.metadata import entry_points

    return tuple(ep.value for ep in entry_points(group=ENTRY_POINT_GROUP))


def _metadata_may_name(group: str) -> bool:
    """Whether an installed distribution's entry_points.txt may declare `group`: the files importlib.metadata reads
    (those of the `*.dist-info`, `*.egg-info` and `.egg` folders of sys.path's directories) searched for the name
    alone; True where unsure (a zip on sys.path, a finder of distributions other than Python's own).

    Why: importing importlib.metadata and making a record of every installed distribution costs 40-60 ms of each
    sweep's start, where almost always no plug-in is installed; when one may be, importlib.metadata reads it.
    """
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True
    needle = group.encode()
    for entry in sys.path:
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip archive: importlib.metadata looks inside
                return True
            continue
        egg = root.lower().endswith(".egg")
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")) or (egg and low == "egg-info"):
                try:
                    with open(os.path.join(root, child, "entry_points.txt"), "rb") as f:
                        if needle in f.read():
                            return True
                except OSError:  # none (most distributions), or a file-form .egg-info
                    pass
    return False


def _refs() -> List[str]:
    extra = [r.strip() for r in os.environ.get(ENV_VAR, "").split(",") if r.strip()]
    return [*BUILTIN, *_entry_point_refs(), *extra]


def preload_builtins() -> None:
    """Import the built-in records (torch-free, like every record module), so that a warm worker does it while it
    waits for its first trail rather than when the trail arrives."""
    for ref in BUILTIN:
        _load(ref)


@cache
def _load(ref: str) -> List[Plugin]:
    obj = load_attr(ref)
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if not isinstance(item, (EnginePlugin, BackendPlugin)):
            raise TypeError(f"plug-in {ref!r} is {type(item).__name__}, not an EnginePlugin or BackendPlugin")
    return items


def _all(kind: type) -> Dict[str, Any]:
    found: Dict[str, Any] = {}
    for ref in _refs():
        for plugin in _load(ref):
            if isinstance(plugin, kind):
                found[plugin.name] = plugin
    return found


def engines() -> Dict[str, EnginePlugin]:
    """Every registered engine by name."""
    return _all(EnginePlugin)


def backends() -> Dict[str, BackendPlugin]:
    """Every registered backend by name."""
    return _all(BackendPlugin)


def engine(name: str) -> EnginePlugin:
    found = engines()
    if name not in found:
        raise KeyError(f"unknown engine {name!r}; allowed: {', '.join(found)}")
    return found[name]


def backend(name: str) -> BackendPlugin:
    found = backends()
    if name not in found:
        raise KeyError(f"unknown backend {name!r}; allowed: {', '.join(found)}")
    return found[name]
