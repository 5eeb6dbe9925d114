"""Where the harness's own data lives: the Hydra config tree and the named sweeps, shipped inside the package.

Why importlib.resources rather than a path next to the source: an installed wheel has no repository around it, so
`conf/` and `sweeps/` must travel as package data and be found from the package itself. Hydra and the sweep loader
need real directories; a wheel installs as files on disk, which is what `_as_dir` relies on.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _as_dir(name: str) -> Path:
    return Path(str(files("harness").joinpath(name)))


CONF_DIR = _as_dir("conf")      # Hydra's config tree: config.yaml + groups algo/ engine/ backend/ tracking/
SWEEPS_DIR = _as_dir("sweeps")  # named sweeps: <name>.yaml
