"""Where the harness's own data lives: the Hydra config tree and the named sweeps.

They sit at the top of the source tree, `conf/` and `sweeps/` beside `harness/`, and a wheel carries them inside the
package as `harness/conf` and `harness/sweeps` (setup.py maps them there). So the package's own folder is looked at
first (an installed wheel, which has no repository around it), then the folder beside the package (a source tree: a
checkout, an editable install, or another commit's tree that a benchmark runs through PYTHONPATH, which then reads
its own config, not the installed one). Hydra and the sweep loader need real directories; a wheel installs as files
on disk, which `_as_dir` relies on.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGE = Path(str(files("harness")))


def _as_dir(name: str) -> Path:
    packaged = PACKAGE / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name


CONF_DIR = _as_dir("conf")      # Hydra's config tree: config.yaml + groups algo/ engine/ backend/ tracking/
SWEEPS_DIR = _as_dir("sweeps")  # named sweeps: <name>.yaml
