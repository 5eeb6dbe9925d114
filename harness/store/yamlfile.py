"""A run dir's config.yaml read with libyaml (PyYAML's C parser) under OmegaConf's own YAML rules.

Why: every trail's config is read where it runs (the runner) and by the local backend (its thread count), and
`OmegaConf.load` parses with PyYAML's pure-Python parser, about four fifths of a warm worker's own time per trail on
a trail that does little. The C parser with the same resolvers (OmegaConf's: `1e-3` is a float, no timestamps) and
the same refusal of duplicate keys gives the same values; `tests/test_yamlfile.py` holds the two equal. Where PyYAML
was built without libyaml, its Python parser is used, as OmegaConf does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

from harness.store.safe_files import open_regular

_OMEGACONF_LOADER = get_yaml_loader()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader with OmegaConf's implicit resolvers and its refusal of a key given twice."""

    yaml_implicit_resolvers = _OMEGACONF_LOADER.yaml_implicit_resolvers

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        keys = set()
        for key_node, _ in node.value:
            if key_node.tag != yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG:
                continue
            if key_node.value in keys:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"found duplicate key {key_node.value}", key_node.start_mark)
            keys.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_plain(path: Path | str) -> Any:
    """The file's YAML as plain Python values (dicts, lists, scalars), as OmegaConf.load would read it."""
    with open_regular(path, "r") as fh:  # never through a link, never a FIFO (harness.store.safe_files)
        return yaml.load(fh, Loader=_Loader)  # noqa: S506 - a safe loader


def load_dict_config(path: Path | str) -> DictConfig:
    """The file as a DictConfig, equal to `OmegaConf.load(path)` for a mapping."""
    data = load_plain(path)
    cfg = OmegaConf.create(data if data is not None else {})
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: not a mapping")
    return cfg
