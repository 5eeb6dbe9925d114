#!/usr/bin/env bash
# Create a separate venv with the real `areal` package from PyPI and CPU torch, so that AReaL's own config parser
# (areal.api.cli_args.load_expr_config) can validate generated commands on a machine without a GPU.
#
# Why not a plain `pip install areal`: areal 1.0.4 requires torch<2.11, and the only torch builds PyPI serves for
# those versions are CUDA ones (several GB). The config parser runs fine on CPU torch, so torch is pinned with a
# constraint (torch==2.13.0, the CPU build this project installs) and areal's other dependencies are installed from
# its own metadata with torchvision and torchaudio left out (each is built against one exact torch version;
# the config parser imports neither).
#
# Usage: scripts/areal_venv.sh DIR        (idempotent: an existing venv whose parser imports is kept)
set -euo pipefail
DIR=${1:?usage: scripts/areal_venv.sh DIR}
AREAL_VERSION=${AREAL_VERSION:-1.0.4}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
PY=${PYTHON:-python3}

if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c "from areal.api.cli_args import GRPOConfig, load_expr_config" 2>/dev/null; then
  echo "areal venv ready: $DIR"
  exit 0
fi

"$PY" -m venv "$DIR"
CONSTRAINT="$DIR/constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINT"
PIP=("$DIR/bin/python" -m pip install --quiet --constraint "$CONSTRAINT")

"${PIP[@]}" "torch==$TORCH_VERSION"
"${PIP[@]}" --no-deps "areal==$AREAL_VERSION"
# areal's own requirements for this platform, minus the torch family (pinned above) and optional extras.
"$DIR/bin/python" - "$DIR/areal-requirements.txt" <<'PYEOF'
import sys
from importlib.metadata import requires
try:
    from packaging.requirements import Requirement
except ImportError:  # a fresh venv has only pip's vendored copy
    from pip._vendor.packaging.requirements import Requirement

skip = {"torch", "torchaudio", "torchvision"}  # built for one exact torch each; the parser needs none
lines = []
for spec in requires("areal") or []:
    req = Requirement(spec)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    lines.append(str(req))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
"${PIP[@]}" -r "$DIR/areal-requirements.txt"
"$DIR/bin/python" -c "from areal.api.cli_args import GRPOConfig, load_expr_config; import areal; print('areal', areal.__version__, 'ready:', '$DIR')"
