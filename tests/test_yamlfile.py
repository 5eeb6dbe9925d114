"""A run dir's config read with libyaml (harness.store.yamlfile) is what OmegaConf.load reads: the same values, the same
types, the same refusal of a key given twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from harness.spec.compose import compose_trail
from harness.spec.config import CONF_DIR
from harness.store.rundir import load_config, save_config
from harness.store.yamlfile import load_dict_config

# Scalars whose YAML reading differs between YAML 1.1 resolvers and OmegaConf's own: `1e-3` is a float to OmegaConf
# (PyYAML's own resolver would make it a string), timestamps stay strings, quoted look-alikes stay strings.
TRICKY = """\
lr: 1e-3
small: 1.0e-10
big: -2E+5
nan: .nan
inf: -.inf
day: 2024-01-31
stamp: 2001-12-14t21:59:43.10-05:00
quoted_float: '1e-3'
quoted_bool: 'yes'
word_bool: yes
off: off
none: null
tilde: ~
octal: 0o17
hexa: 0x1f
sexagesimal: 1:30
unicode: "ε-greedy ≤ 0.5"
nested:
  list: [1, 2.5, "three", null, {a: b}]
  block:
    - x
    - 1e5
"""


def _same(path: Path) -> None:
    expected, got = OmegaConf.load(path), load_dict_config(path)
    assert OmegaConf.to_container(got) == OmegaConf.to_container(expected)
    types = [(k, type(v)) for k, v in OmegaConf.to_container(got).items()]
    assert types == [(k, type(v)) for k, v in OmegaConf.to_container(expected).items()], path


def test_tricky_scalars_read_as_omegaconf_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(TRICKY, encoding="utf-8")
    _same(path)
    got = OmegaConf.to_container(load_dict_config(path))
    assert isinstance(got, dict)
    assert got["lr"] == 1e-3 and isinstance(got["day"], str) and got["quoted_float"] == "1e-3", got


@pytest.mark.parametrize("path", sorted(CONF_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_every_shipped_config_reads_the_same(path: Path) -> None:
    _same(path)


@pytest.mark.parametrize("overrides", [[], ["algo=m2po", "stale=256", "engine.lr=3e-5", "seed=7"],
                                       ["engine=areal", "engine.overrides=['a=1','b=1e-3']", "tags=[x,'1e3',yes]"]])
def test_a_saved_trail_config_loads_as_it_was_composed(overrides: list[str], tmp_path: Path) -> None:
    cfg = compose_trail([*overrides, "tracking=none"])
    save_config(tmp_path, cfg, overrides)
    assert load_config(tmp_path) == cfg
    _same(tmp_path / "config.yaml")


def test_a_key_given_twice_is_refused_as_omegaconf_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("engine:\n  steps: 3\n  steps: 4\n", encoding="utf-8")
    with pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key steps"):
        OmegaConf.load(path)
    with pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key steps"):
        load_dict_config(path)
