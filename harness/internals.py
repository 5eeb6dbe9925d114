"""The private parts of Hydra and submitit that the harness calls, each behind one function here.

Why: their public APIs lack these calls. Hydra composes a whole config per call, but a sweep applies each trail's
value overrides to a cached base config with the function Hydra's own compose uses (asking Hydra's config repository
which overrides choose a config group); it expands sweep overrides with its basic sweeper's rule; only its own
config loader lets the override parser expand `glob()` over a config group; and its ConfigStore builds each config
it is given at once, where the harness registers every plug-in's schema and a sweep reads only those it selects (a
record that builds its config when first read goes into the store's repository). submitit names the sbatch parameters it
writes only in a private function, and its result pickle (how a job that raised reports its traceback) has no reader
outside `Job.result()`, which waits. A new release may move any of them; the pins (hydra-core 1.3.*, submitit>=1.5)
are the first guard, and this module the second: each symbol is looked up, with the parameter names the harness
passes, when first used, and a missing one raises `LibraryInternalMoved` naming the library, its version and the
symbol, instead of an AttributeError deep inside a sweep. tests/test_internals.py calls each function against the
installed libraries.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from harness.errors import HarnessError

# the distribution each top-level module comes from (the version in a message is the distribution's)
DISTRIBUTIONS = {"hydra": "hydra-core", "submitit": "submitit"}


class LibraryInternalMoved(HarnessError):
    """A private symbol of Hydra or submitit that the harness calls is not where this module expects it."""


def library_version(module: str) -> str:
    """The installed version of the distribution that provides the top-level `module`."""
    from importlib.metadata import PackageNotFoundError, version  # only for a message: slow to import

    dist = DISTRIBUTIONS[module.split(".")[0]]
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return f"{dist} (not installed)"


@functools.cache
def internal(module: str, qualname: str, params: Tuple[str, ...] = ()) -> Any:
    """`module`'s object at `qualname` (`Class.attr` allowed), whose signature has `params` among its parameters."""
    where = f"{module}.{qualname}"
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise LibraryInternalMoved(f"{library_version(module)} has no {where} ({exc}); harness/internals.py "
                                   f"needs updating for this version") from exc
    if params:
        have = set(inspect.signature(obj).parameters)
        missing = [p for p in params if p not in have]
        if missing:
            raise LibraryInternalMoved(f"{library_version(module)}: {where} has no parameter "
                                       f"{', '.join(repr(p) for p in missing)} (it takes {', '.join(sorted(have))}); "
                                       f"harness/internals.py needs updating for this version")
    return obj


# --- Hydra -------------------------------------------------------------------------------------------------------

def apply_overrides_to_config(overrides: Sequence[Any], cfg: Any) -> None:
    """Apply value overrides (parsed `Override`s, no group choices) to a composed config in place, as Hydra's compose
    does after the defaults list."""
    apply: Callable[..., None] = internal("hydra._internal.config_loader_impl",
                                          "ConfigLoaderImpl._apply_overrides_to_config", ("overrides", "cfg"))
    apply(list(overrides), cfg)


@functools.cache
def _structured(schema: type) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.structured(schema)


@functools.cache
def _lazy_node_class() -> type:
    """A ConfigNode of Hydra's ConfigStore whose config is built from its schema dataclass when first read."""
    from hydra.core.config_store import ConfigNode

    fields = {"name", "node", "group", "package", "provider"}
    have = set(getattr(ConfigNode, "__dataclass_fields__", {}))
    if have != fields:
        raise LibraryInternalMoved(f"{library_version('hydra')}: hydra.core.config_store.ConfigNode has the fields "
                                   f"{', '.join(sorted(have))}, not {', '.join(sorted(fields))}; harness/internals.py "
                                   f"needs updating for this version")

    class LazyConfigNode(ConfigNode):
        def __init__(self, name: str, group: Optional[str], schema: type) -> None:
            self.name, self.group, self.package, self.provider = name, group, None, None
            self.schema = schema

        @property
        def node(self) -> Any:
            # ConfigStore.load copies the record, then sets the copy's node to a deep copy of this one
            return self.__dict__["_node"] if "_node" in self.__dict__ else _structured(self.schema)

        @node.setter
        def node(self, value: Any) -> None:
            self.__dict__["_node"] = value

    return LazyConfigNode


def store_lazily(group: Optional[str], name: str, schema: type) -> None:
    """Register the schema dataclass `schema` in Hydra's ConfigStore as `ConfigStore.store(name, schema, group)` does,
    but build its config (OmegaConf.structured) only when Hydra first loads it. Why: the harness registers every
    plug-in's schemas at each start, a sweep loads those its trails select, and building all of them costs 20-30 ms.
    """
    from hydra.core.config_store import ConfigStore

    repo = getattr(ConfigStore.instance(), "repo", None)
    if not isinstance(repo, dict):
        raise LibraryInternalMoved(f"{library_version('hydra')}: hydra.core.config_store.ConfigStore has no repo "
                                   f"dict; harness/internals.py needs updating for this version")
    for part in group.split("/") if group is not None else ():
        repo = repo.setdefault(part, {})
    filename = name if name.endswith(".yaml") else f"{name}.yaml"
    repo[filename] = _lazy_node_class()(filename, group, schema)


def config_loader(conf_dir: Path) -> Any:
    """A Hydra config loader over the config tree at `conf_dir` alone (what the override parser's glob() lists)."""
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers Hydra's config sources (file://)
    search_path = internal("hydra._internal.config_search_path_impl", "ConfigSearchPathImpl")()
    search_path.append("harness", f"file://{conf_dir}")
    loader_cls = internal("hydra._internal.config_loader_impl", "ConfigLoaderImpl", ("config_search_path",))
    return loader_cls(config_search_path=search_path)


def config_repository() -> Any:
    """The config repository of the initialised Hydra: what says whether an override names a config group."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    repository = getattr(loader, "repository", None)
    if not callable(getattr(repository, "group_exists", None)):
        raise LibraryInternalMoved(f"{library_version('hydra')}: {type(loader).__module__}.{type(loader).__name__} "
                                   f"has no repository.group_exists; harness/internals.py needs updating for this "
                                   f"version")
    return repository


def split_sweep(overrides: Sequence[Any]) -> List[List[str]]:
    """The jobs of parsed overrides with sweeps (`a,b`, `range()`, `choice()`, `glob()`): Hydra's basic sweeper's
    cartesian product, each job a list of `key=value` strings."""
    split: Callable[..., List[List[List[str]]]] = internal(
        "hydra._internal.core_plugins.basic_sweeper", "BasicSweeper.split_arguments",
        ("overrides", "max_batch_size"))
    return [list(job) for batch in split(list(overrides), None) for job in batch]


# --- submitit ----------------------------------------------------------------------------------------------------

def sbatch_parameters() -> Dict[str, Any]:
    """The parameters submitit's sbatch script takes (`update_parameters` names), with their defaults."""
    parameters: Callable[[], Dict[str, Any]] = internal("submitit.slurm.slurm", "_get_default_parameters")
    return dict(parameters())


def job_outcome(result_pickle: Path) -> Tuple[str, Any]:
    """A finished job's result pickle as submitit wrote it: ("success", result) or ("error", traceback text)."""
    load: Callable[..., Any] = internal("submitit.core.utils", "pickle_load", ("filename",))
    outcome = load(result_pickle)
    if not (isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[0], str)):
        raise LibraryInternalMoved(f"{library_version('submitit')}: the result pickle {result_pickle} holds "
                                   f"{type(outcome).__name__}, not the (outcome, payload) pair harness/internals.py "
                                   f"reads; it needs updating for this version")
    return outcome[0], outcome[1]
