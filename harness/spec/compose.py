"""Compose trail configs from overrides with Hydra's compose API, turning Hydra's errors into clear ones.

Why a Composer: a sweep composes every trail before anything launches, and Hydra's compose is the slow part
(~75 ms: defaults list, yaml and schema merge). Hydra is initialised once per sweep, and the config of each distinct
choice of config groups (algo=, engine=, …) is composed once; a trail's value overrides are then applied to a copy
with the very function Hydra's compose applies them with (`ConfigLoaderImpl._apply_overrides_to_config`, reached
through harness.internals), after the
groups, as Hydra does. tests/test_compose.py holds the result equal to a full compose per trail.
"""

from __future__ import annotations

import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import HarnessError
from harness.internals import apply_overrides_to_config, config_repository
from harness.spec.config import CONF_DIR, register_configs
from harness.spec.validate import validate

GROUPS = ("algo", "engine", "backend", "tracking")


def group_options(group: str) -> List[str]:
    """The options of a config group: its yaml files plus registered plug-ins of that kind."""
    from harness import plugins

    names = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
    if group == "engine":
        names |= set(plugins.engines())
    elif group == "backend":
        names |= set(plugins.backends())
    return sorted(names)


def _schema_keys(class_name: str) -> List[str]:
    """Field names of the schema dataclass Hydra named in its error."""
    import dataclasses

    from harness.spec.config import schemas

    for obj in schemas():
        if obj.__name__ == class_name:
            return [f.name for f in dataclasses.fields(obj)]
    return []


def _explain(exc: Exception, overrides: Sequence[str]) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    text = f"{exc}\n{cause}".strip()
    unknown = re.search(r"Key '([^']+)' not in '(\w+)'\s+full_key: ([^\s]+)", text)
    if unknown:
        full_key = unknown.group(3)
        parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
        allowed = _schema_keys(unknown.group(2))
        where = f" in '{parent}'" if parent else ""
        return f"unknown key '{full_key}'{where} (allowed keys: {', '.join(allowed)})"
    bad_type = re.search(r"Value '([^']*)' of type '(\w+)' could not be converted to (\w+)\s+full_key: ([^\s]+)", text)
    if bad_type:
        value, _, wanted, full_key = bad_type.groups()
        return f"invalid value for '{full_key}': {value!r} (allowed: {wanted.lower()})"
    missing = re.search(r"Could not find '([^/']+)/([^']*)'", text)
    if missing and missing.group(1) in GROUPS:
        group, value = missing.groups()
        return f"invalid value for '{group}': {value!r} (allowed: {' | '.join(group_options(group))})"
    key = re.search(r"full_key: ([^\s]+)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    if key:
        return f"invalid override for '{key.group(1)}': {first}"
    return f"invalid overrides {list(overrides)}: {first}"


def _unresolvable(cfg: DictConfig, exc: Exception) -> str:
    """Name the key whose interpolation (`${...}`) failed to resolve, its value and why."""

    def walk(node: object, prefix: str) -> Optional[str]:
        if not isinstance(node, DictConfig):
            return None
        for key in node.keys():
            if not isinstance(key, str):
                continue  # the harness's configs have string keys only
            full = f"{prefix}{key}"
            if OmegaConf.is_interpolation(node, key):
                try:
                    node[key]
                except OmegaConfBaseException as err:
                    raw = node._get_node(key)._value()  # type: ignore[union-attr]
                    return f"invalid value for '{full}': {raw!r} cannot be resolved ({str(err).splitlines()[0]})"
            else:
                found = walk(node._get_node(key), f"{full}.")
                if found:
                    return found
        return None

    return walk(cfg, "") or f"a value cannot be resolved: {exc}"


class Composer:
    """Hydra initialised once (as a context manager); `compose(overrides)` for each trail of a sweep."""

    def __init__(self) -> None:
        self._bases: Dict[Tuple[str, ...], DictConfig] = {}
        self._init: Optional[initialize_config_dir] = None

    def __enter__(self) -> Composer:
        register_configs()
        GlobalHydra.instance().clear()
        self._init = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
        self._init.__enter__()
        self._repo = config_repository()
        self._parser = OverridesParser.create()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._init is not None:
            self._init.__exit__(*exc)
        GlobalHydra.instance().clear()
        self._bases.clear()

    def _selects_config(self, override: Override) -> bool:
        """Overrides that shape the defaults list (Hydra's own test: a group choice, or a hydra setting)."""
        return override.is_hydra_override() or (self._repo.group_exists(override.key_or_group)
                                                and not isinstance(override.value(), dict))

    def _compose(self, overrides: List[str]) -> DictConfig:
        parsed = self._parser.parse_overrides(overrides)
        if any(o.is_sweep_override() for o in parsed):
            return compose(config_name="config", overrides=overrides)  # Hydra's own error for a sweep in one trail
        # input_line is the override's own text (always set for overrides parsed from strings)
        groups = tuple(o.input_line for o in parsed if o.input_line is not None and self._selects_config(o))
        if groups not in self._bases:
            self._bases[groups] = compose(config_name="config", overrides=list(groups))
        cfg = copy.deepcopy(self._bases[groups])
        apply_overrides_to_config([o for o in parsed if not self._selects_config(o)], cfg)
        return cfg

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """Compose and validate one trail; raise HarnessError naming the key, value and what is allowed."""
        try:
            cfg = self._compose(list(overrides))
        except (HydraException, OmegaConfBaseException, ValueError) as exc:
            raise HarnessError(_explain(exc, overrides)) from exc
        try:
            OmegaConf.resolve(cfg)
        except OmegaConfBaseException as exc:
            raise HarnessError(_unresolvable(cfg, exc)) from exc
        validate(cfg)
        return cfg


def compose_trail(overrides: Sequence[str]) -> DictConfig:
    """Compose and validate one trail on its own (a sweep composes all of its trails with one Composer)."""
    with Composer() as composer:
        return composer.compose(overrides)
