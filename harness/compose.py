"""Compose one trail's config from overrides with Hydra's compose API, turning Hydra's errors into clear ones."""

from __future__ import annotations

import re
from typing import List, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import CONF_DIR, register_configs
from harness.errors import HarnessError
from harness.validate import validate

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

    from harness.config import schemas

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
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing and missing.group(1) in GROUPS:
        group, value = missing.groups()
        return f"invalid value for '{group}': {value!r} (allowed: {' | '.join(group_options(group))})"
    key = re.search(r"full_key: ([^\s]+)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    if key:
        return f"invalid override for '{key.group(1)}': {first}"
    return f"invalid overrides {list(overrides)}: {first}"


def compose_trail(overrides: Sequence[str]) -> DictConfig:
    """Compose and validate; raise HarnessError naming the key, value and what is allowed."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise HarnessError(_explain(exc, overrides)) from exc
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.resolve(cfg)
    validate(cfg)
    return cfg
