#!/usr/bin/env bash
# All tests on a fresh machine: installs what they need (into .venv), runs the fast tier, then starts the services of
# the integration tier (a single-node Slurm cluster with slurmdbd; the tests start their own Ray head, MLflow server
# and Chromium), runs the integration tier with the end-to-end tests (marked e2e: whole sweeps, trackers and a wheel
# install in processes of their own, and those marked areal_real: a real AReaL sweep on the CPU, in the venv of
# scripts/areal_cpu_venv.sh), and stops every service it started by PID.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh --fast     only the fast tier (about a minute on 2 cores), after installing the Python packages
set -euo pipefail
cd "$(dirname "$0")/.."
# the venv's tools (harness, ray, mlflow) first on PATH, for the services the tests start
export PATH="$PWD/.venv/bin:$PATH"

lint() {  # ruff and mypy (configured in pyproject.toml), before any test
  .venv/bin/python -m ruff check harness tests && .venv/bin/python -m mypy harness
}

if [[ "${1:-}" == "--fast" ]]; then
  bash scripts/install.sh
  lint
  exec .venv/bin/python -m pytest -q
fi

bash scripts/install.sh --all
lint
status=0
.venv/bin/python -m pytest -q || status=$?
echo "test.sh: fast tier ended at $SECONDS s"

# Real AReaL on this CPU (tests marked areal_real: a sweep of real AReaL trails, Ctrl-C and resume included, about
# 15 min on 2 cores, and AReaL's StalenessManager against the embedded engine's clock). Its venv lives outside the
# clone, so a machine that built it reuses it (a check of seconds); a fresh one builds it (5 to 10 min, 9.4 GB, from
# the registry). HARNESS_AREAL_REAL=0 leaves them out (a quick local run); CI runs them.
markers="integration or e2e"
if [[ "${HARNESS_AREAL_REAL:-1}" == 0 ]]; then
  markers="(integration or e2e) and not areal_real"
else
  export HARNESS_AREAL_CPU_VENV="${HARNESS_AREAL_CPU_VENV:-/opt/harness-areal-cpu}"
  venv_start=$SECONDS
  bash scripts/areal_cpu_venv.sh "$HARNESS_AREAL_CPU_VENV" || status=$?
  echo "test.sh: AReaL CPU venv ready after $((SECONDS - venv_start)) s"
fi

SLURM_DIR="${HARNESS_SLURM_DIR:-/tmp/harness-slurm}"
bash scripts/slurm_cluster.sh start "$SLURM_DIR"
trap 'bash scripts/slurm_cluster.sh stop "$SLURM_DIR" || true' EXIT
export SLURM_CONF="$SLURM_DIR/etc/slurm.conf"
.venv/bin/python -m pytest -q -m "$markers" -p no:cacheprovider -n 0 --durations=30 || status=$?  # one session: one set of services; the slowest tests named
echo "test.sh: integration tier ended at $SECONDS s"
exit $status
